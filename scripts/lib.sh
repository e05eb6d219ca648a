# Shared by the set-up scripts (sourced, not run): installs Debian packages
# and npm folders only when something is missing, so a second run does nothing.

# apt_install_missing TAG PACKAGE...: apt-get installs the packages not yet
# installed (npm too when no npm is on PATH: nodejs from elsewhere may bring
# its own, Debian's splits it out), running `apt-get update` first.
apt_install_missing() {
    local tag=$1
    shift
    local missing=() p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    if ! command -v npm >/dev/null 2>&1; then
        missing+=(npm)
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        echo "$tag: installing ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        export DEBIAN_FRONTEND=noninteractive
        $sudo apt-get update -q
        $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

# npm_install_folder TAG DIR: installs DIR's node_modules from its committed
# lockfile, again only when the lockfile is newer than the last install.
# npm_config_yes: some packages' install scripts run npx, which would ask.
npm_install_folder() {
    local tag=$1 dir=$2
    local stamp="$dir/node_modules/.installed"
    if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
        echo "$tag: installing npm packages into ${dir#"$PWD"/}/node_modules"
        (cd "$dir" && npm_config_yes=true npm ci --no-audit --no-fund --loglevel=error)
        touch "$stamp"
    fi
}
