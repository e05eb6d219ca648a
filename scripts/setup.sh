#!/usr/bin/env bash
# Installs what building, running and testing anywhere needs on Debian 12,
# and nothing that is already there. Idempotent: a second run does nothing.
# Debian packages come from apt-get; the Node.js test clients go into
# tests/node/node_modules (ignored by git), from the committed lockfile.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)

debs=(
    build-essential cmake pkg-config git
    libuv1-dev libh2o-dev libwslay-dev libssl-dev libyajl-dev libck-dev
    libsqlite3-dev libmongoc-dev libbson-dev libcurl4-openssl-dev
    clang libclang-rt-14-dev clang-format
    nodejs python3 python3-mockupdb chromium fonts-dejavu-core
)

missing=()
for p in "${debs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
# nodejs from another source may ship npm itself; Debian's splits it out.
if ! command -v npm >/dev/null 2>&1; then
    missing+=(npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

node_dir="$here/tests/node"
if [ -f "$node_dir/package.json" ]; then
    stamp="$node_dir/node_modules/.installed"
    if [ ! -f "$stamp" ] || [ "$node_dir/package-lock.json" -nt "$stamp" ]; then
        echo "setup: installing test clients into tests/node/node_modules"
        (cd "$node_dir" && npm_config_yes=true npm ci --no-audit --no-fund --loglevel=error)
        touch "$stamp"
    fi
fi
