#!/usr/bin/env bash
# Installs what building, running and testing anywhere needs on Debian 12,
# and nothing that is already there. Idempotent: a second run does nothing.
# Debian packages come from apt-get; the Node.js test clients go into
# tests/node/node_modules (ignored by git), from the committed lockfile.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/lib.sh"

apt_install_missing setup \
    build-essential cmake pkg-config git \
    libuv1-dev libh2o-dev libwslay-dev libssl-dev libyajl-dev libck-dev \
    libsqlite3-dev libmongoc-dev libbson-dev libcurl4-openssl-dev \
    clang libclang-rt-14-dev clang-format \
    libnats-dev nats-server nginx \
    nodejs python3 python3-mockupdb chromium fonts-dejavu-core

npm_install_folder setup "$here/tests/node"
