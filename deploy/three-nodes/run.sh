#!/usr/bin/env bash
# Three anywhere nodes on one machine acting as one server: a NATS cluster of
# three servers, the nodes sharing one SQLite file, and nginx in front, round
# robin (../nginx/anywhere.conf, with its addresses rewritten to loopback).
# Everything listens on 127.0.0.1 and keeps its files in a temporary folder.
# It prints the URL and runs until Ctrl-C or SIGTERM, which stops everything
# it started (nginx, then the nodes, then NATS) and removes the folder; a
# process that stops meanwhile (a node killed to try a failover) is reported.
#
#   deploy/three-nodes/run.sh
#
# Environment, with defaults:
#   ANYWHERE_BIN      the server binary            build/anywhere of this repository
#   LB_PORT           nginx's port                 8080
#   NODE_PORTS        the nodes' ports             "3001 3002 3003"
#   NATS_PORTS        the NATS client ports        "4222 4223 4224"
#   NATS_ROUTE_PORTS  the NATS cluster ports       "6222 6223 6224"
#   ANYWHERE_SECRET   the secret every node shares a random one
#   ANYWHERE_OPTS     more flags for every node    (e.g. "--bot echo")
#   KEEP=1            keep the folder and its logs after stopping
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${ANYWHERE_BIN:-$root/build/anywhere}
lb_port=${LB_PORT:-8080}
read -r -a node_ports <<<"${NODE_PORTS:-3001 3002 3003}"
read -r -a nats_ports <<<"${NATS_PORTS:-4222 4223 4224}"
read -r -a route_ports <<<"${NATS_ROUTE_PORTS:-6222 6223 6224}"
read -r -a opts <<<"${ANYWHERE_OPTS:-}"

say() { printf '%s\n' "$*" >&2; }
fail() { say "run.sh: $*"; exit 1; }

[ -x "$bin" ] || fail "no server binary at $bin (build it: cmake -S . -B build && cmake --build build), or set ANYWHERE_BIN"
command -v nats-server >/dev/null || fail "nats-server is not installed (apt-get install nats-server)"
command -v nginx >/dev/null || fail "nginx is not installed (apt-get install nginx)"
if [ "${#nats_ports[@]}" != 3 ] || [ "${#route_ports[@]}" != 3 ]; then
    fail "NATS_PORTS and NATS_ROUTE_PORTS take three ports each"
fi
[ "${#node_ports[@]}" -ge 1 ] || fail "NODE_PORTS is empty"

dir=$(mktemp -d "${TMPDIR:-/tmp}/anywhere-three-nodes.XXXXXX")
# nginx's workers run as another user when started by root: let them through
chmod 711 "$dir"
mkdir -p "$dir/logs" "$dir/nginx"

nats_pids=() node_pids=() nginx_pid=''
declare -A names=()
stopped=0

alive() {
    local pid
    for pid; do kill -0 "$pid" 2>/dev/null && return 0; done
    return 1
}

# Sends SIGTERM to `pids`, waits up to `secs` for them to exit, then kills
# what is left. Children of this shell are reaped by bash as they exit.
stop_pids() {
    local secs=$1 pid n=0
    shift
    [ "$#" -gt 0 ] || return 0
    kill -TERM "$@" 2>/dev/null || true
    while alive "$@" && ((n++ < secs * 10)); do sleep 0.1; done
    for pid; do
        alive "$pid" && say "run.sh: pid $pid did not stop in ${secs}s: killed" && kill -KILL "$pid" 2>/dev/null
    done
    return 0
}

# nginx first (no new connections), then the nodes, which finish their turns,
# write their history and tell the others they leave over NATS, then NATS.
# A node may take twice --store-timeout (10 s) and a few seconds more.
stop_all() {
    [ "$stopped" = 0 ] || return 0
    stopped=1
    trap '' INT TERM
    say "stopping..."
    stop_pids 5 ${nginx_pid:+"$nginx_pid"}
    stop_pids 30 ${node_pids[@]+"${node_pids[@]}"}
    stop_pids 5 ${nats_pids[@]+"${nats_pids[@]}"}
    wait 2>/dev/null || true
    if [ "${KEEP:-}" = 1 ]; then say "kept $dir"; else rm -rf "$dir"; fi
    say "stopped"
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

# Starts a program in the background in a session of its own, so that the
# terminal's Ctrl-C reaches this script only and the order above holds.
# Sets `started` to its pid.
start() {
    local log=$1
    shift
    setsid "$@" </dev/null >"$dir/logs/$log.log" 2>&1 &
    started=$!
    names[$started]=$log
}

# One HTTP GET on a loopback port, without curl: prints the answer.
http_get() (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$2" "$1" >&3
    IFS= read -r -d '' -t 5 answer <&3 || true
    printf '%s' "${answer:-}"
) 2>/dev/null

# Waits up to `secs` for `cmd` to succeed while `pid` runs.
wait_for() {
    local what=$1 secs=$2 pid=$3 n
    shift 3
    for ((n = 0; n < secs * 10; n++)); do
        "$@" && return 0
        alive "$pid" || fail "$what exited; its log, $dir/logs:$(printf '\n')$(tail -n 20 "$dir/logs/$what.log")"
        sleep 0.1
    done
    fail "$what was not ready in ${secs}s; see $dir/logs/$what.log"
}
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
healthy() { [[ $(http_get "$1" /healthz) == "HTTP/1."?" 200 "* ]]; }
# Through the balancer, each answer comes from the next node: every one of
# them must count all the nodes.
all_members() {
    local i
    for ((i = 0; i < ${#node_ports[@]}; i++)); do
        [[ $(http_get "$lb_port" /healthz) == *"\"members\":${#node_ports[@]}}"* ]] || return 1
    done
}

# NATS: three servers, each routed to the two others (nats.conf).
nats_urls=''
for i in 0 1 2; do
    peers=()
    for j in 0 1 2; do [ "$j" = "$i" ] || peers+=("nats://127.0.0.1:${route_ports[$j]}"); done
    NATS_NAME="nats-$((i + 1))" NATS_PORT=${nats_ports[$i]} NATS_ROUTE_PORT=${route_ports[$i]} \
        NATS_ROUTE_1=${peers[0]} NATS_ROUTE_2=${peers[1]} start "nats-$((i + 1))" nats-server -c "$here/nats.conf"
    nats_pids+=("$started")
    nats_urls+="${nats_urls:+,}nats://127.0.0.1:${nats_ports[$i]}"
done
for i in 0 1 2; do wait_for "nats-$((i + 1))" 10 "${nats_pids[$i]}" listening "${nats_ports[$i]}"; done

# The nodes: the same secret, NATS servers and SQLite file; each its own
# data folder (its journal and seq reservations). The secret goes in the
# environment, not on the command line, which any user may read.
ANYWHERE_SECRET=${ANYWHERE_SECRET:-$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')}
export ANYWHERE_SECRET
for i in "${!node_ports[@]}"; do
    start "node-$((i + 1))" "$bin" --host 127.0.0.1 --port "${node_ports[$i]}" \
        --nats "$nats_urls" --node-id "node-$((i + 1))" \
        --data-dir "$dir/node-$((i + 1))" --store "sqlite:$dir/history.db" ${opts[@]+"${opts[@]}"}
    node_pids+=("$started")
done
for i in "${!node_ports[@]}"; do wait_for "node-$((i + 1))" 15 "${node_pids[$i]}" healthy "${node_ports[$i]}"; done

# nginx: the site file of ../nginx, its upstream servers and listen lines
# pointed at this machine's ports, inside a main file of our own.
awk -v ports="${node_ports[*]}" -v lb="$lb_port" '
    /^[ \t]*upstream[ \t]/ { up = 1; first = 1; print; next }
    up && /^[ \t]*}/ { up = 0; print; next }
    up && /^[ \t]*server[ \t]/ {
        if (first) {
            params = $0
            sub(/^[ \t]*server[ \t]+[^ \t;]+/, "", params)
            n = split(ports, p, " ")
            for (i = 1; i <= n; i++) printf "    server 127.0.0.1:%s%s\n", p[i], params
            first = 0
        }
        next
    }
    /^[ \t]*listen[ \t]+\[::\]:80;/ { next }
    /^[ \t]*listen[ \t]+80;/ { sub(/80;/, "127.0.0.1:" lb ";"); print; next }
    { print }
' "$here/../nginx/anywhere.conf" >"$dir/nginx/anywhere.conf"
if ! grep -q "listen 127.0.0.1:$lb_port;" "$dir/nginx/anywhere.conf" ||
    ! grep -q "server 127.0.0.1:${node_ports[0]} " "$dir/nginx/anywhere.conf"; then
    fail "deploy/nginx/anywhere.conf has no 'listen 80;' line or no upstream servers to rewrite"
fi
cat >"$dir/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx/nginx.pid;
error_log $dir/logs/nginx-error.log warn;
daemon off;
events { worker_connections 1024; }
http {
    access_log $dir/logs/nginx-access.log;
    client_body_temp_path $dir/nginx/body;
    proxy_temp_path $dir/nginx/proxy;
    fastcgi_temp_path $dir/nginx/fastcgi;
    uwsgi_temp_path $dir/nginx/uwsgi;
    scgi_temp_path $dir/nginx/scgi;
    include $dir/nginx/anywhere.conf;
}
EOF
start nginx nginx -e "$dir/logs/nginx-error.log" -p "$dir/nginx" -c "$dir/nginx/nginx.conf"
nginx_pid=$started
wait_for nginx 10 "$nginx_pid" listening "$lb_port"
wait_for nginx 20 "$nginx_pid" all_members

say "anywhere: ${#node_ports[@]} nodes behind nginx at http://127.0.0.1:$lb_port/"
for i in "${!node_ports[@]}"; do say "  node-$((i + 1))  http://127.0.0.1:${node_ports[$i]}/"; done
say "  NATS    $nats_urls"
say "  files   $dir (logs/)"
say "Ctrl-C stops everything."

# Until a signal. A process that stops by itself (a node killed to see its
# users move to the others) is reported; the rest go on.
while alive "${nats_pids[@]}" "${node_pids[@]}" "$nginx_pid"; do
    status=0
    gone=''
    wait -n -p gone || status=$?
    [ -z "$gone" ] || say "run.sh: ${names[$gone]:-pid $gone} stopped (status $status); the rest go on"
done
say "run.sh: nothing left running"
exit 1
