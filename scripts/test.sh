#!/usr/bin/env bash
# The test command: installs what the tests need (only when missing), builds every
# binary, then runs the whole workspace's tests, including the end-to-end tests in
# tests/ that start the real g3proxy and drive it with curl and python.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -p px-e2e       # extra args go to `cargo test` (and skip the TLCP steps)
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
# Incremental caches would add ~3 GiB to target/ for builds that are made once per run.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# build-time packages (cmake for the vendored c-ares), shared with run-example.sh
scripts/deps.sh build
TONGSUO_BIN="$ROOT/target/tongsuo/g3proxy"
if [ "$#" -eq 0 ]; then
    # TLCP needs a g3proxy on Tongsuo, built from source by the vendored-tongsuo feature (about
    # 2 minutes once, then cached). It is built in target/debug like the default one, with the
    # same workspace-wide feature set, so only variant-ssl, px-tls, px-servers and the crates
    # above them are compiled a second time; a fresh build is a no-op. Its binary is copied to
    # target/tongsuo/ before the default build below puts the default g3proxy back in place.
    log "cargo build --workspace --bins --features g3proxy/vendored-tongsuo"
    cargo build --workspace --bins --features g3proxy/vendored-tongsuo
    mkdir -p "$(dirname "$TONGSUO_BIN")"
    cmp -s target/debug/g3proxy "$TONGSUO_BIN" || cp target/debug/g3proxy "$TONGSUO_BIN"
    # the io-uring and ktls features (doc/data-path.md), kept aside the same way
    log "cargo build --workspace --bins --features g3proxy/io-uring,g3proxy/ktls"
    cargo build --workspace --bins --features g3proxy/io-uring,g3proxy/ktls
    mkdir -p target/features
    cmp -s target/debug/g3proxy target/features/g3proxy || cp target/debug/g3proxy target/features/
fi
log "cargo build --workspace --bins"
cargo build --workspace --bins
status=0
log "cargo test --workspace --no-fail-fast $*"
cargo test --workspace --no-fail-fast "$@" || status=$?
if [ "$#" -eq 0 ]; then
    log "cargo test -p px-tls --features vendored-tongsuo"
    cargo test -p px-tls --features vendored-tongsuo || status=$?
    # tests/tests/tlcp.rs: TLCP through the Tongsuo daemon (compiled only with px-e2e's `tlcp`)
    log "PX_G3PROXY_BIN=$TONGSUO_BIN cargo test -p px-e2e --features tlcp --test tlcp"
    PX_G3PROXY_BIN="$TONGSUO_BIN" cargo test -p px-e2e --features tlcp --test tlcp || status=$?
    # io_uring relays and the kTLS fallback (no kTLS on these kernels): unit tests, then the
    # relay and TLS end-to-end tests against the g3proxy built with both features
    log "cargo test -p px-io -p px-tls -p px-servers --features (io-uring, ktls)"
    cargo test -p px-io -p px-tls -p px-servers \
        --features px-io/io-uring,px-tls/ktls,px-servers/ktls || status=$?
    log "PX_G3PROXY_BIN=target/features/g3proxy cargo test -p px-e2e (relay and TLS tests)"
    PX_G3PROXY_BIN="$ROOT/target/features/g3proxy" cargo test -p px-e2e --test http_proxy \
        --test socks_proxy --test tls_servers --test port_servers --test sni_proxy || status=$?
fi
exit "$status"
