#!/usr/bin/env bash
# Installs the Debian packages a step needs, only those missing.
#   scripts/deps.sh build   # what building the workspace needs
#   scripts/deps.sh capnp   # the Cap'n Proto compiler, only for scripts/capnp-regen.sh
set -euo pipefail
what="${1:-build}"
need=()
case "$what" in
    build)
        command -v cmake >/dev/null 2>&1 || need+=(cmake)
        command -v cc >/dev/null 2>&1 || need+=(gcc)
        # native_tls_port links the system OpenSSL
        command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
        [ -f /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
        # the vendored Tongsuo of the vendored-tongsuo feature is configured by perl
        command -v perl >/dev/null 2>&1 || need+=(perl)
        command -v make >/dev/null 2>&1 || need+=(make)
        ;;
    capnp)
        command -v capnp >/dev/null 2>&1 || need+=(capnproto)
        ;;
    *) echo "deps.sh: unknown step $what" >&2; exit 2 ;;
esac
if [ "${#need[@]}" -gt 0 ]; then
    echo "[deps.sh] installing Debian packages: ${need[*]}" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
