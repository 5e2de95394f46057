#!/usr/bin/env bash
# The test command: installs what the tests need (only when missing), builds every
# binary, then runs the whole workspace's tests, including the end-to-end tests in
# tests/ that start the real g3proxy and drive it with curl and python.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -p px-e2e       # extra args go to `cargo test`
#
# Idempotent: a second run installs nothing and only rebuilds what changed.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"

log() { printf '[test.sh] %s\n' "$*" >&2; }

# ---- Debian packages -------------------------------------------------------
# binary -> package that provides it
declare -A NEED=(
    [curl]=curl
    [dnsmasq]=dnsmasq-base
    [redis-server]=redis-server
    [openssl]=openssl
    [haproxy]=haproxy
)
missing=()
for bin in "${!NEED[@]}"; do
    if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ]; then
        missing+=("${NEED[$bin]}")
    fi
done

# the system python must be able to create a venv (Debian splits venv/ensurepip out)
SYS_PY=""
for cand in /usr/bin/python3 python3; do
    if command -v "$cand" >/dev/null 2>&1; then SYS_PY="$(command -v "$cand")"; break; fi
done
VENV="$ROOT/.venv"
VENV_PY="$VENV/bin/python"
if [ ! -x "$VENV_PY" ]; then
    if [ -z "$SYS_PY" ]; then
        missing+=(python3 python3-venv)
    elif ! "$SYS_PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        missing+=(python3-venv)
    fi
fi

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ -z "$SYS_PY" ]; then SYS_PY="$(command -v python3)"; fi
fi
# dnsmasq lives in /usr/sbin, which is not on every user's PATH
case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin" ;; esac

# ---- python venv with requests + PySocks -----------------------------------
if [ ! -x "$VENV_PY" ]; then
    log "creating python venv at .venv"
    "$SYS_PY" -m venv "$VENV"
fi
if ! "$VENV_PY" -c 'import requests, socks' >/dev/null 2>&1; then
    log "installing requests and PySocks into .venv"
    "$VENV_PY" -m pip install --quiet --disable-pip-version-check requests PySocks
fi
export PX_PYTHON="$VENV_PY"

# ---- build and test --------------------------------------------------------
# build-time packages (cmake for the vendored c-ares), shared with run-example.sh
scripts/deps.sh build
log "cargo build --workspace --bins"
cargo build --workspace --bins
if [ "$#" -eq 0 ]; then
    # TLCP needs Tongsuo, built from source by this feature (about 2 minutes, then cached)
    log "cargo test -p px-tls --features vendored-tongsuo"
    cargo test -p px-tls --features vendored-tongsuo
fi
log "cargo test --workspace --no-fail-fast $*"
exec cargo test --workspace --no-fail-fast "$@"
