#!/usr/bin/env bash
# The cluster stage of `make bench`: how many idle websocket sessions this one
# machine holds with enough anywhere nodes (docs/cluster.md), and the server
# memory each costs. It starts one nats-server and N nodes on 127.0.0.1, all
# sharing one SQLite store, then one `anywhere-load idle` process per node;
# it reads every node's resident memory (VmRSS) before the load and during
# the hold, and writes the figures as one JSON line. Only loopback is ever
# used; every wait is bounded, and whatever it started is stopped and its
# folder removed on the way out, failed or not.
#
#   bench/cluster.sh BUILD_DIR [OUT_DIR]
#
# Writes OUT_DIR/cluster.json (and the nodes' logs) when OUT_DIR is given,
# which is how bench/run.sh calls it; alone, it prints its rows of the table.
# Environment: BENCH_CLUSTER_SESSIONS (default 100000), BENCH_CLUSTER_NODES
# (default: enough that each node and each load process stays 3,000 files
# under `ulimit -n`), BENCH_CLUSTER_HOLD (seconds all sessions are held
# together before memory is read, default 5).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build-bench}
keep=${2:-}
sessions=${BENCH_CLUSTER_SESSIONS:-100000}
hold=${BENCH_CLUSTER_HOLD:-5}
load="$build/bench/anywhere-load"
# A node serves at most the file limit less 100 connections (--max-connections)
# and a load process holds one file per session: each keeps 3,000 files spare
# (a node's store, NATS connection and logs; the /healthz reads below).
nofile=$(ulimit -n)
[ "$nofile" = unlimited ] && nofile=1048576
per_max=$((nofile - 3000))
nodes=${BENCH_CLUSTER_NODES:-$(((sessions + per_max - 1) / per_max))}
tmp=$(mktemp -d /tmp/anywhere-bench-cluster.XXXXXX)
nats_pid=""
node_pids=()
load_pids=()

# stop PID...: SIGTERM, up to 5 s to go, then SIGKILL.
stop() {
    local p alive
    [ "$#" -gt 0 ] || return 0
    kill "$@" 2>/dev/null || true
    for _ in $(seq 50); do
        alive=0
        for p in "$@"; do
            kill -0 "$p" 2>/dev/null && alive=1
        done
        [ "$alive" = 1 ] || break
        sleep 0.1
    done
    kill -9 "$@" 2>/dev/null || true
}

# Stops what this script started, by pid: the load first (its sockets close
# with it), then the nodes (each says it leaves, over NATS), then NATS.
cleanup() {
    stop "${load_pids[@]}"
    stop "${node_pids[@]}"
    stop $nats_pid
    if [ -n "$keep" ]; then
        cp "$tmp"/*.log "$keep/" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
    echo "bench: cluster: $*" >&2
    exit 1
}

# port_of LOG PATTERN: the port a process logged it listens on, waiting up to
# 10 s for the line.
port_of() {
    local p
    for _ in $(seq 100); do
        p=$(sed -n "s/.*$2 *[^ ]*:\([0-9][0-9]*\).*/\1/p" "$1" 2>/dev/null | head -1)
        [ -n "$p" ] && { echo "$p"; return 0; }
        sleep 0.1
    done
    return 1
}

rss_kib() {
    sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"
}

# healthz_sum KEY: KEY of every node's /healthz added up ("members" gives the
# smallest member count instead: every node must see all the others).
healthz_sum() {
    local port sum=0 min=999999 v
    for port in "${node_ports[@]}"; do
        v=$(curl -s -m 1 "http://127.0.0.1:$port/healthz" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p")
        v=${v:-0}
        sum=$((sum + v))
        [ "$v" -lt "$min" ] && min=$v
    done
    if [ "$1" = members ]; then echo "$min"; else echo "$sum"; fi
}

[ -x "$load" ] && [ -x "$build/anywhere" ] || fail "$build has no anywhere or bench/anywhere-load: build first"
command -v nats-server >/dev/null || fail "nats-server is missing: run scripts/setup.sh"
per_node=$(((sessions + nodes - 1) / nodes))
[ "$per_node" -le "$per_max" ] || fail "$per_node sessions a node is too many for $nofile files: set BENCH_CLUSTER_NODES"
# Four source addresses a load process, none shared: each (source address,
# node port) pair then carries a quarter of a node's sessions, far below the
# ~28,000 source ports the kernel's ephemeral range (ip_local_port_range)
# gives one such pair, so the kernel never searches long for a free one.
[ $((2 + 4 * nodes)) -le 254 ] || fail "$nodes nodes need more source addresses than 127.0.0.2-254 has"

nats-server -a 127.0.0.1 -p -1 >"$tmp/nats.log" 2>&1 &
nats_pid=$!
nats_port=$(port_of "$tmp/nats.log" "Listening for client connections on") || fail "nats-server did not start"
secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')

# Each node on a free port of its own rather than all on one --reuse-port
# port: the load then gives every node exactly its share (the kernel's hash
# spreads a shared port only about evenly, and a node over its file limit
# would refuse sessions), and every node port is a 4-tuple space of its own.
node_ports=()
for i in $(seq "$nodes"); do
    mkdir -p "$tmp/n$i"
    "$build/anywhere" --host 127.0.0.1 --port 0 --nats "nats://127.0.0.1:$nats_port" --secret "$secret" \
        --node-id "n$i" --store "sqlite:$tmp/shared.db" --data-dir "$tmp/n$i" --bot echo \
        --io-threads 1 --workers 1 --log-level warn >"$tmp/n$i.log" 2>&1 &
    node_pids+=($!)
done
for i in $(seq "$nodes"); do
    p=$(port_of "$tmp/n$i.log" "listening on http:") || fail "node n$i did not start"
    node_ports+=("$p")
done
# Every node must know every other before the first hello: a member that
# joins later would move homes and close sockets (1012) during the load.
deadline=$((SECONDS + 15))
while [ "$(healthz_sum members)" -lt "$nodes" ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "the $nodes nodes did not all see each other in 15 s"
    sleep 0.2
done
sleep 1
rss0=0 before=()
for p in "${node_pids[@]}"; do
    before+=("$(rss_kib "$p")")
    rss0=$((rss0 + ${before[-1]}))
done

echo "bench: cluster: $sessions idle sessions over $nodes nodes (nats 127.0.0.1:$nats_port), held ${hold}s"
nats0=$(rss_kib "$nats_pid")
t0=$(date +%s.%N)
for i in $(seq "$nodes"); do
    n=$((sessions / nodes + (i <= sessions % nodes)))
    src=""
    for j in 0 1 2 3; do
        src="$src${src:+,}127.0.0.$((2 + 4 * (i - 1) + j))"
    done
    # Each process holds its sessions for -d seconds from its own last one
    # up (or from the end of its 30 s connect wait): 10 s more than the hold
    # measured below, so that none has let go when memory is read. The tool
    # ends by itself (an alarm); timeout is only a last bound.
    timeout -k 5 $((hold + 100)) "$load" idle -u "ws://127.0.0.1:${node_ports[i - 1]}/" -c "$n" -p 1 \
        -d $((hold + 10)) -S "$src" -j "$tmp/load$i.json" >"$tmp/load$i.log" 2>&1 &
    load_pids+=($!)
done

# The hold starts when every user has its session on its home (the nodes'
# sessions, summed), or when that count has stood still for 2 s (the rest
# failed), at most 45 s after the first connect; memory is read at its end.
homes=0 last=-1 still=0 deadline=$((SECONDS + 45))
while [ "$SECONDS" -lt "$deadline" ]; do
    sleep 0.5
    homes=$(healthz_sum sessions)
    [ "$homes" -ge "$sessions" ] && break
    if [ "$homes" -eq "$last" ] && [ "$homes" -gt 0 ]; then
        still=$((still + 1))
        [ "$still" -ge 4 ] && break
    else
        still=0
    fi
    last=$homes
done
t1=$(date +%s.%N)
up=$homes
sleep "$hold"
rss1=0
for i in $(seq "$nodes"); do
    r=$(rss_kib "${node_pids[i - 1]}")
    rss1=$((rss1 + r))
    echo "bench: cluster: n$i: RSS $((${before[i - 1]} / 1024)) -> $((r / 1024)) MiB," \
        "$(curl -s -m 2 "http://127.0.0.1:${node_ports[i - 1]}/healthz" | sed 's/.*"sessions":\([0-9]*\),"websockets":\([0-9]*\).*/\2 sockets, \1 sessions homed/')"
done
nats1=$(rss_kib "$nats_pid")
open=$(healthz_sum websockets)
homes=$(healthz_sum sessions)
for p in "${load_pids[@]}"; do
    wait "$p" || true
done
load_pids=()

# Sessions held: up at the end of each process's hold (connected, less those
# the server closed meanwhile).
held=0 failed=0
for i in $(seq "$nodes"); do
    f="$tmp/load$i.json"
    c=$(sed -n 's/.*"connected":\([0-9]*\).*/\1/p' "$f" 2>/dev/null)
    x=$(sed -n 's/.*"closed":\([0-9]*\).*/\1/p' "$f" 2>/dev/null)
    y=$(sed -n 's/.*"failed":\([0-9]*\).*/\1/p' "$f" 2>/dev/null)
    held=$((held + ${c:-0} - ${x:-0}))
    failed=$((failed + ${y:-0} + ${x:-0}))
done
per=$(awk -v h="$held" -v r0="$rss0" -v r1="$rss1" 'BEGIN { printf("%.0f", h > 0 ? (r1 - r0) * 1024 / h : -1) }')
rate=$(awk -v n="$up" -v t0="$t0" -v t1="$t1" 'BEGIN { printf("%.0f", n / (t1 - t0)) }')
json="{\"nodes\":$nodes,\"sessions\":$sessions,\"held\":$held,\"failed_or_closed\":$failed,\"open_at_sample\":$open,"
json="$json\"server_sessions_at_sample\":$homes,\"rss_before_kib\":$rss0,\"rss_hold_kib\":$rss1,"
json="$json\"bytes_per_session\":$per,\"sessions_per_s\":$rate,\"nats_rss_growth_kib\":$((nats1 - nats0))}"
echo "$json"
if [ -n "$keep" ]; then
    echo "$json" >"$keep/cluster.json"
else
    # the rows as bench/run.sh prints them in its table
    row() {
        printf "| %-40s | %10s | %10s | %10s | %11s | %10s | %-27s | %-4s |\n" "$@"
    }
    yes_no() {
        if "$@"; then echo yes; else echo no; fi
    }
    echo
    row "load" "anywhere" "" "" "" "" "target" "met"
    row "----------------------------------------" "----------" "----------" "----------" "-----------" "----------" "---------------------------" "----"
    row "cluster: sessions held (of $sessions)" "$held" "" "" "" "" "$sessions on $nodes nodes" "$(yes_no [ "$held" -ge "$sessions" ])"
    row "cluster: server RSS bytes per session" "$per" "" "" "" "" "<= 4096" "$(yes_no [ "$per" -ge 1 -a "$per" -le 4096 ])"
    row "cluster: new sessions per second" "$rate" "" "" "" "" "" ""
fi
