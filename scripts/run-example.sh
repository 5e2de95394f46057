#!/usr/bin/env bash
# Starts g3proxy on a shipped example (loopback only), installing the Debian
# build packages it needs when missing.
#
#   scripts/run-example.sh                          # examples/http_socks_proxy
#   scripts/run-example.sh examples/OTHER [ARGS]    # another example
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
example="${1:-examples/http_socks_proxy}"
shift || true
exec cargo run -p g3proxy -- -c "$example" "$@"
