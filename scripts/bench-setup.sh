#!/usr/bin/env bash
# Installs what `make bench` needs besides the build itself, and nothing that
# is already there. Idempotent: a second run does nothing.
#   - wrk (the webhook load) and nginx (the HTTP ceiling): Debian packages,
#     apt-get only when missing.
#   - Botkit 4.15 with botbuilder-adapter-web 1.0.10, the peer: from npm, into
#     bench/botkit/node_modules (ignored by git), from the committed lockfile.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)

. "$here/scripts/lib.sh"

apt_install_missing bench-setup wrk nginx nodejs

# Debian starts nginx as a service on install; the bench runs its own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
    systemctl stop nginx || true
fi

npm_install_folder bench-setup "$here/bench/botkit"
