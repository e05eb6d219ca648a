#!/usr/bin/env bash
# `make bench`: starts anywhere, Botkit, nginx, the same-stack ceiling
# (ws-ceiling, bench/ceiling.c) and the raw Node peer (bench/botkit/ws_echo.js)
# in turn on 127.0.0.1, runs the same loads against each, and prints two
# tables with the ratios, each target and whether it is met, measured in the
# same run on the same machine. Then the cluster stage (bench/cluster.sh): as
# many nodes as it takes to hold 100,000 idle sessions on this one machine,
# and the server memory each costs. Only loopback is ever a target; every load
# has a fixed duration and every wait a bounded count.
#
#   bench/run.sh BUILD_DIR
#
# Environment: BENCH_IO_THREADS, BENCH_WORKERS (anywhere's flags, printed),
# BENCH_SECONDS (per load, default 10), BENCH_IDLE (idle sessions, default
# 19000), BENCH_PORT (default 3990), BENCH_COMMIT (the commit to print, for a
# tree that is not a git checkout); BENCH_CLUSTER_SESSIONS, BENCH_CLUSTER_NODES
# and BENCH_CLUSTER_HOLD for the cluster stage (bench/cluster.sh), which
# BENCH_CLUSTER=0 skips (a short run that only wants the other rows).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build-bench}
io_threads=${BENCH_IO_THREADS:-2}
workers=${BENCH_WORKERS:-1}
secs=${BENCH_SECONDS:-10}
idle_n=${BENCH_IDLE:-19000}
port=${BENCH_PORT:-3990}
open_rate=2000 # msg/s: a load every peer sustains, so latency is compared at the same rate
# Idle sessions come from 8 source addresses: with one, the client's kernel
# spends most of the run searching for a free port (measured: 4.6k sessions/s
# with one address, 13k with eight, the server's CPU the same).
sources=127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8
load="$build/bench/anywhere-load"
out=$(mktemp -d /tmp/anywhere-bench.XXXXXX)
server_pid=""

stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
trap 'stop_server; rm -rf "$out"' EXIT

wait_port() {
    for _ in $(seq 100); do
        if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "bench: nothing listens on 127.0.0.1:$port" >&2
    return 1
}

# jget FILE KEY: a number from the one-line JSON object in FILE, or "-".
jget() {
    local v
    v=$(sed -n "s/.*\"$2\":\([-0-9.]*\).*/\1/p" "$1" 2>/dev/null | head -1)
    echo "${v:--}"
}

# Each load starts on a server that has finished with the one before (its
# sockets closed, its history written).
settle() {
    sleep 3
}

run_loads() { # NAME WS_URL HTTP_URL
    local name=$1 ws=$2 http=$3
    run_ws_loads "$name" "$ws"
    run_http_loads "$name" "$http" "$ws"
}

run_ws_loads() { # NAME WS_URL
    local name=$1 ws=$2
    if [ -n "$ws" ]; then
        echo "bench: $name: websocket echo, 1000 connections, closed loop, ${secs}s"
        "$load" echo -u "$ws" -c 1000 -d "$secs" -P "$server_pid" -j "$out/$name.closed.json" || true
        settle
        echo "bench: $name: websocket echo, 1000 connections, open loop at $open_rate msg/s, ${secs}s"
        "$load" echo -u "$ws" -c 1000 -d "$secs" -r "$open_rate" -P "$server_pid" -j "$out/$name.open.json" || true
        settle
    fi
}

run_http_loads() { # NAME HTTP_URL [WS_URL]: the webhook, then the idle sessions
    local name=$1 http=$2 ws=${3:-}
    [ -n "$http" ] || return 0
    # one unmeasured second first: every server meets its 100 users once
    wrk -t2 -c100 -d1s -s "$here/bench/webhook.lua" "$http" >/dev/null || true
    echo "bench: $name: webhook, wrk -t2 -c100, ${secs}s"
    wrk -t2 -c100 -d"${secs}s" -s "$here/bench/webhook.lua" "$http" | tail -1 >"$out/$name.webhook.json" || true
    cat "$out/$name.webhook.json"
    if [ -n "$ws" ]; then
        settle
        echo "bench: $name: $idle_n idle sessions"
        "$load" idle -u "$ws" -c "$idle_n" -p 2 -d 4 -S "$sources" -P "$server_pid" -j "$out/$name.idle.json" || true
    fi
}

# anywhere on an empty data folder of its own (`$1`), with the flags after it.
start_ours() {
    local data=$1
    shift
    mkdir -p "$data"
    # --rate 0: the per-user rate limit would refuse a load test's messages
    "$build/anywhere" --host 127.0.0.1 --port "$port" --bot echo --rate 0 --io-threads "$io_threads" \
        --workers "$workers" --data-dir "$data" --log-level warn "$@" >>"$out/anywhere.log" 2>&1 &
    server_pid=$!
    wait_port
}

# The websocket loads, then the webhook and idle loads on a fresh server:
# each measures the server as a new deployment finds it, not with the
# hundreds of megabytes of history the loads before it stored (a store
# larger than SQLite's cache makes every append dearer, whatever the route).
bench_ours() {
    start_ours "$out/data"
    run_ws_loads anywhere "ws://127.0.0.1:$port/"
    stop_server
    start_ours "$out/data-webhook"
    run_http_loads anywhere "http://127.0.0.1:$port/botkit/receive" "ws://127.0.0.1:$port/"
    stop_server
}

# The same echo with --durable-delivery: every reply waits until its record
# is durable in the store (docs/protocol.md, Delivery).
bench_durable() {
    start_ours "$out/data-durable" --durable-delivery
    run_ws_loads durable "ws://127.0.0.1:$port/"
    stop_server
}

bench_botkit() {
    (cd "$here/bench/botkit" && PORT=$port exec node echo.js >"$out/botkit.log" 2>&1) &
    server_pid=$!
    wait_port
    run_loads botkit "ws://127.0.0.1:$port/" "http://127.0.0.1:$port/api/messages"
    stop_server
}

bench_nginx() {
    sed -e "s|@PORT@|$port|g" -e "s|@DIR@|$out|g" "$here/bench/nginx.conf" >"$out/nginx.conf"
    nginx -c "$out/nginx.conf" -e "$out/nginx-error.log" >"$out/nginx.log" 2>&1 &
    server_pid=$!
    wait_port
    run_loads nginx "" "http://127.0.0.1:$port/botkit/receive"
    stop_server
}

# The peers without a webhook: websocket echo only.
bench_ceiling() {
    "$build/bench/ws-ceiling" -t "$io_threads" "$port" >"$out/ceiling.log" 2>&1 &
    server_pid=$!
    wait_port
    run_loads ceiling "ws://127.0.0.1:$port/" ""
    stop_server
}

bench_node() {
    (cd "$here/bench/botkit" && PORT=$port exec node ws_echo.js >"$out/node.log" 2>&1) &
    server_pid=$!
    wait_port
    run_loads node "ws://127.0.0.1:$port/" ""
    stop_server
}

# Several nodes of one cluster on this machine, over one nats-server, hold
# the idle sessions one process cannot (its file limit): bench/cluster.sh,
# which also runs alone. Skipped without nats-server.
bench_cluster() {
    if [ "${BENCH_CLUSTER:-1}" = 0 ]; then
        echo "bench: cluster: BENCH_CLUSTER=0: skipped"
        return 0
    fi
    if ! command -v nats-server >/dev/null; then
        echo "bench: cluster: nats-server is missing (scripts/setup.sh installs it): skipped"
        return 0
    fi
    bash "$here/bench/cluster.sh" "$build" "$out" || true
}

# ratio A B [invert]: A/B (or B/A), one decimal, "-" when either is missing.
ratio() {
    awk -v a="$1" -v b="$2" -v inv="${3:-0}" 'BEGIN {
        if (a == "-" || b == "-" || a + 0 <= 0 || b + 0 <= 0) { print "-"; exit }
        r = inv ? b / a : a / b; printf(r >= 10 ? "%.0fx" : "%.2fx", r) }'
}

# meets A OP B [A2 OP2 B2]: "yes" when A OP B holds (and A2 OP2 B2), "no" when
# it does not, "-" when a figure is missing or not above 0 (every figure here
# is positive: a load that connected nobody writes zeros). OP: ge or le.
meets() {
    awk -v a="$1" -v op="$2" -v b="$3" -v a2="${4:-1}" -v op2="${5:-ge}" -v b2="${6:-1}" 'function ok(x, o, y) {
            return o == "ge" ? x + 0 >= y + 0 : x + 0 <= y + 0 }
        BEGIN {
            if (a == "-" || b == "-" || a2 == "-" || b2 == "-" || a == "" || b == "" || a + 0 <= 0 || b + 0 <= 0 ||
                a2 + 0 <= 0 || b2 + 0 <= 0) { print "-"; exit }
            print (ok(a, op, b) && ok(a2, op2, b2)) ? "yes" : "no" }'
}

# measured A: A, or "-" when it is missing or not above 0 (a load that
# connected nobody writes zeros).
measured() {
    awk -v a="$1" 'BEGIN { print (a == "-" || a + 0 <= 0) ? "-" : a }'
}

# times A B: A*B, or "-".
times() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf("%.3f", a * b) }'
}

row() { # LABEL OURS PEER1 PEER2 VS_PEER1 VS_PEER2 TARGET MET
    printf "| %-40s | %10s | %10s | %10s | %11s | %10s | %-27s | %-4s |\n" "$@"
}

reach_row() { # as row, with a last column of five: "reach"
    printf "| %-40s | %10s | %10s | %10s | %11s | %10s | %-27s | %-5s |\n" "$@"
}

table() {
    local a=$out/anywhere b=$out/botkit n=$out/nginx c=$out/ceiling d=$out/node u=$out/durable
    local ac ao aw ai bc bo bw bi nw
    ac=$a.closed.json ao=$a.open.json aw=$a.webhook.json ai=$a.idle.json
    bc=$b.closed.json bo=$b.open.json bw=$b.webhook.json bi=$b.idle.json nw=$n.webhook.json
    echo
    local commit=${BENCH_COMMIT:-}
    if [ -z "$commit" ]; then
        commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
        git -C "$here" diff --quiet HEAD -- . 2>/dev/null || commit="$commit+changes"
    fi
    echo "anywhere bench, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit"
    echo "machine: $(nproc) cores, $(uname -r); load tool on the same machine"
    echo "anywhere: --io-threads $io_threads --workers $workers --bot echo --rate 0; Botkit 4.15 + botbuilder-adapter-web 1.0.10 on node $(node --version); $(nginx -v 2>&1 | sed 's/.*: //')"
    echo "ceiling: ws-ceiling -t $io_threads (libh2o + wslay echo, bench/ceiling.c); Node peer: ws $(sed -n 's/.*"version": "\(.*\)".*/\1/p' "$here/bench/botkit/node_modules/ws/package.json" 2>/dev/null) echo (bench/botkit/ws_echo.js)"
    echo
    local v1 v2 v3
    row "load" "anywhere" "Botkit" "nginx" "vs Botkit" "vs nginx" "target" "met"
    row "----------------------------------------" "----------" "----------" "----------" "-----------" "----------" "---------------------------" "----"
    v1=$(jget "$ac" msgs_per_s) v2=$(jget "$bc" msgs_per_s)
    row "ws echo, 1000 conns, closed: msg/s" "$v1" "$v2" "" "$(ratio "$v1" "$v2")" "" ">= 10x Botkit" "$(meets "$v1" ge "$(times "$v2" 10)")"
    v1=$(jget "$ac" p99_ms) v2=$(jget "$bc" p99_ms)
    row "ws echo, 1000 conns, closed: p99 ms" "$v1" "$v2" "" "$(ratio "$v1" "$v2" 1)" "" "<= 1/10 of Botkit" "$(meets "$v1" le "$(times "$v2" 0.1)")"
    v1=$(jget "$ac" server_cpu_us_per_msg) v2=$(jget "$bc" server_cpu_us_per_msg)
    row "ws echo, closed: server CPU us/msg" "$v1" "$v2" "" "$(ratio "$v1" "$v2" 1)" "" "" ""
    v1=$(jget "$ao" p99_ms) v2=$(jget "$bo" p99_ms)
    row "ws echo, open $open_rate msg/s: p99 ms" "$v1" "$v2" "" "$(ratio "$v1" "$v2" 1)" "" "" ""
    v1=$(jget "$ao" p999_ms) v2=$(jget "$bo" p999_ms)
    row "ws echo, open $open_rate msg/s: p99.9 ms" "$v1" "$v2" "" "$(ratio "$v1" "$v2" 1)" "" "<= 1/10 of Botkit" "$(meets "$v1" le "$(times "$v2" 0.1)")"
    v1=$(jget "$u.closed.json" msgs_per_s) v2=$(jget "$bc" msgs_per_s)
    row "ws echo --durable-delivery, closed: msg/s" "$v1" "$v2" "" "$(ratio "$v1" "$v2")" "" ">= 10x Botkit" "$(meets "$v1" ge "$(times "$v2" 10)")"
    v1=$(jget "$u.closed.json" p99_ms) v2=$(jget "$bc" p99_ms)
    row "ws echo --durable-delivery, closed: p99 ms" "$v1" "$v2" "" "$(ratio "$v1" "$v2" 1)" "" "" ""
    v1=$(jget "$u.open.json" p99_ms) v2=$(jget "$bo" p99_ms)
    row "ws echo --durable-delivery, open: p99 ms" "$v1" "$v2" "" "$(ratio "$v1" "$v2" 1)" "" "" ""
    v1=$(jget "$aw" requests_per_s) v2=$(jget "$bw" requests_per_s) v3=$(jget "$nw" requests_per_s)
    row "webhook POST, wrk -c100: req/s" "$v1" "$v2" "$v3" "$(ratio "$v1" "$v2")" "$(ratio "$v1" "$v3")" ">= 10x Botkit, 0.6x nginx" \
        "$(meets "$v1" ge "$(times "$v2" 10)" "$v1" ge "$(times "$v3" 0.6)")"
    v1=$(jget "$aw" p99_ms) v2=$(jget "$bw" p99_ms) v3=$(jget "$nw" p99_ms)
    row "webhook POST, wrk -c100: p99 ms" "$v1" "$v2" "$v3" "$(ratio "$v1" "$v2" 1)" "$(ratio "$v1" "$v3" 1)" "" ""
    v1=$(jget "$ai" connected) v2=$(jget "$bi" connected)
    row "idle sessions held (of $idle_n)" "$v1" "$v2" "" "" "" "$idle_n in one process" "$(meets "$v1" ge "$idle_n")"
    v1=$(jget "$ai" bytes_per_session) v2=$(jget "$bi" bytes_per_session)
    row "idle: server RSS bytes per session" "${v1%.*}" "${v2%.*}" "" "$(ratio "$v1" "$v2" 1)" "" "<= 4096" "$(meets "$v1" le 4096)"
    v1=$(jget "$ai" sessions_per_s) v2=$(jget "$bi" sessions_per_s)
    row "new sessions per second" "${v1%.*}" "${v2%.*}" "" "$(ratio "$v1" "$v2")" "" ">= 10000" "$(meets "$v1" ge 10000)"
    if [ -f "$out/cluster.json" ]; then
        local cl=$out/cluster.json cn
        cn=$(jget "$cl" sessions)
        v1=$(jget "$cl" held)
        row "cluster: sessions held (of $cn)" "$v1" "" "" "" "" "$cn on $(jget "$cl" nodes) nodes" "$(meets "$v1" ge "$cn")"
        v1=$(jget "$cl" bytes_per_session)
        row "cluster: server RSS bytes per session" "$v1" "" "" "" "" "<= 4096" "$(meets "$v1" le 4096 "$v1" ge 1)"
        row "cluster: new sessions per second" "$(jget "$cl" sessions_per_s)" "" "" "" "" "" ""
    fi
    if [ -f "$out/history.txt" ]; then
        v1=$(sed -n 's/.*batched through the history actor: \([0-9]*\).*/\1/p' "$out/history.txt")
        v2=$(sed -n 's/.*ratio batched \/ per-message: \([0-9.]*x\).*/\1/p' "$out/history.txt")
        row "history store: records/s (batched)" "${v1:--}" "" "" "" "" ">= 200000" "$(meets "${v1:--}" ge 200000)"
        row "history store: batched / one per record" "${v2:--}" "" "" "" "" ">= 50x" "$(meets "${v2%x}" ge 50)"
    fi
    echo
    row "against the limit" "anywhere" "ceiling" "ws (Node)" "vs ceiling" "vs Node" "target" "met"
    row "----------------------------------------" "----------" "----------" "----------" "-----------" "----------" "---------------------------" "----"
    v1=$(jget "$ac" msgs_per_s) v2=$(jget "$c.closed.json" msgs_per_s) v3=$(jget "$d.closed.json" msgs_per_s)
    row "ws echo, 1000 conns, closed: msg/s" "$v1" "$v2" "$v3" "$(ratio "$v1" "$v2")" "$(ratio "$v1" "$v3")" ">= 0.6x ceiling" "$(meets "$v1" ge "$(times "$v2" 0.6)")"
    row "" "" "" "" "" "" ">= 5x Node" "$(meets "$v1" ge "$(times "$v3" 5)")"
    v1=$(jget "$ac" p99_ms) v2=$(jget "$c.closed.json" p99_ms) v3=$(jget "$d.closed.json" p99_ms)
    row "ws echo, 1000 conns, closed: p99 ms" "$v1" "$v2" "$v3" "$(ratio "$v1" "$v2" 1)" "$(ratio "$v1" "$v3" 1)" "<= 2x ceiling" "$(meets "$v1" le "$(times "$v2" 2)")"
    v1=$(jget "$ac" server_cpu_us_per_msg) v2=$(jget "$c.closed.json" server_cpu_us_per_msg) v3=$(jget "$d.closed.json" server_cpu_us_per_msg)
    row "ws echo, closed: server CPU us/msg" "$v1" "$v2" "$v3" "$(ratio "$v1" "$v2" 1)" "$(ratio "$v1" "$v3" 1)" "" ""
    v1=$(jget "$ao" p99_ms) v2=$(jget "$c.open.json" p99_ms) v3=$(jget "$d.open.json" p99_ms)
    row "ws echo, open $open_rate msg/s: p99 ms" "$v1" "$v2" "$v3" "$(ratio "$v1" "$v2" 1)" "$(ratio "$v1" "$v3" 1)" "" ""
    v1=$(jget "$ao" p999_ms) v2=$(jget "$c.open.json" p999_ms) v3=$(jget "$d.open.json" p999_ms)
    row "ws echo, open $open_rate msg/s: p99.9 ms" "$v1" "$v2" "$v3" "$(ratio "$v1" "$v2" 1)" "$(ratio "$v1" "$v3" 1)" "" ""
    echo
    # The same echo targets asked of the ceiling: what anywhere's stack
    # reaches against Botkit with nothing of anywhere on it, in this run.
    # "reach" says whether the ceiling meets the target: "no" means the
    # target is beyond what the transport alone does on this machine now.
    reach_row "the targets against Botkit, at the limit" "anywhere" "ceiling" "Botkit" "anywhere vs" "ceiling vs" "target" "reach"
    reach_row "----------------------------------------" "----------" "----------" "----------" "-----------" "----------" "---------------------------" "-----"
    local cc=$c.closed.json co=$c.open.json
    v1=$(jget "$ac" msgs_per_s) v2=$(measured "$(jget "$cc" msgs_per_s)") v3=$(jget "$bc" msgs_per_s)
    reach_row "ws echo, 1000 conns, closed: msg/s" "$v1" "$v2" "$v3" "$(ratio "$v1" "$v3")" "$(ratio "$v2" "$v3")" ">= 10x Botkit" "$(meets "$v2" ge "$(times "$v3" 10)")"
    v1=$(jget "$ac" p99_ms) v2=$(measured "$(jget "$cc" p99_ms)") v3=$(jget "$bc" p99_ms)
    reach_row "ws echo, 1000 conns, closed: p99 ms" "$v1" "$v2" "$v3" "$(ratio "$v1" "$v3" 1)" "$(ratio "$v2" "$v3" 1)" "<= 1/10 of Botkit" "$(meets "$v2" le "$(times "$v3" 0.1)")"
    v1=$(jget "$ao" p999_ms) v2=$(measured "$(jget "$co" p999_ms)") v3=$(jget "$bo" p999_ms)
    reach_row "ws echo, open $open_rate msg/s: p99.9 ms" "$v1" "$v2" "$v3" "$(ratio "$v1" "$v3" 1)" "$(ratio "$v2" "$v3" 1)" "<= 1/10 of Botkit" "$(meets "$v2" le "$(times "$v3" 0.1)")"
    echo "(the targets at the limit: anywhere's and the ceiling's ratios against Botkit in this run; reach: whether"
    echo " the ceiling itself meets the target, \"no\" when it is beyond the transport alone on this machine now."
    echo " The webhook has no same-stack ceiling: nginx is its limit, in the first table)"
    echo
    echo "(vs: how many times better anywhere is; latency, CPU and memory ratios are the peer's over ours."
    echo " server CPU us/msg: the server process's CPU time over the measured window per message answered;"
    echo " the load tool shares the cores, so msg/s is bounded by both, CPU per message by the server alone)"
}

for tool in wrk nginx node; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing: run scripts/bench-setup.sh" >&2; exit 1; }
done
[ -x "$load" ] || { echo "bench: $load is missing: build first" >&2; exit 1; }

bench_ours
bench_durable
bench_botkit
bench_nginx
bench_ceiling
bench_node
bench_cluster
if [ -x "$build/bench/history_bench" ]; then
    echo "bench: history store, batched against one transaction per record"
    "$build/bench/history_bench" 100000 | tee "$out/history.txt" || true
fi
table | tee "$out/table.txt"
mkdir -p "$build/bench-results"
cp "$out"/*.json "$out/table.txt" "$build/bench-results/" 2>/dev/null || true
