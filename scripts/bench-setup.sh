#!/usr/bin/env bash
# Installs what `make bench` needs besides the build itself, and nothing that
# is already there. Idempotent: a second run does nothing.
#   - wrk (the webhook load) and nginx (the HTTP ceiling): Debian packages,
#     apt-get only when missing.
#   - Botkit 4.15 with botbuilder-adapter-web 1.0.10, the peer: from npm, into
#     bench/botkit/node_modules (ignored by git), from the committed lockfile.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)

debs=(wrk nginx nodejs)
missing=()
for p in "${debs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if ! command -v npm >/dev/null 2>&1; then
    missing+=(npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "bench-setup: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Debian starts nginx as a service on install; the bench runs its own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
    systemctl stop nginx || true
fi

node_dir="$here/bench/botkit"
stamp="$node_dir/node_modules/.installed"
if [ ! -f "$stamp" ] || [ "$node_dir/package-lock.json" -nt "$stamp" ]; then
    echo "bench-setup: installing Botkit into bench/botkit/node_modules"
    # botbuilder-dialogs' install script runs npx, which would ask to confirm.
    if [ -f "$node_dir/package-lock.json" ]; then
        (cd "$node_dir" && npm_config_yes=true npm ci --no-audit --no-fund --loglevel=error)
    else
        (cd "$node_dir" && npm_config_yes=true npm install --no-audit --no-fund --loglevel=error)
    fi
    touch "$stamp"
fi
