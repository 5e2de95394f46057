#!/usr/bin/env bash
# The benchmark: the direct path (no proxy), this project's g3proxy and the Debian
# peers (squid, tinyproxy, dante, microsocks, haproxy, socat, nginx stream), under
# the same load, one at a time, each proxy pinned alone to core 1 with one worker,
# the load generator and the nginx target on core 0. See doc/benchmark.md.
#
#   scripts/bench.sh                    # short run (under 10 minutes): installs what
#                                       # is missing, builds the release binary
#   scripts/bench.sh --quick            # 1 s per cell, a few hundred idle tunnels;
#                                       # installs only wrk + nginx, skips peers that
#                                       # are not installed
#   scripts/bench.sh --json PATH        # where the JSON goes (default target/bench/result.json;
#                                       # the Markdown tables go beside it as .md)
#   scripts/bench.sh --peers squid,haproxy | all | none
#   scripts/bench.sh --only http_forward,connect_rate
#   scripts/bench.sh --bin PATH         # the g3proxy under test (also $PX_G3PROXY_BIN)
#   scripts/bench.sh --wait-quiet 60    # before each cell, wait (up to 60 s) for other
#                                       # processes on the machine to go quiet
#   scripts/bench.sh --retry-noisy N    # measure a cell again (up to N times, default 1) when
#                                       # other processes used > 0.25 core meanwhile
#   scripts/bench.sh --duration S       # seconds of load per cell
#   scripts/bench.sh --variant io-uring=PATH   # another g3proxy build as its own column
#   scripts/bench.sh --no-feature-build # the default run also builds `--features io-uring,ktls`
#                                       # (target/features/release) and measures it as the
#                                       # column "io-uring+ktls"; this skips that
#   scripts/bench.sh --no-install       # never call apt-get
#
# The load tool scripts/bench/loadgen is its own cargo workspace (std only), built
# into target/bench/loadgen. The orchestrator is scripts/bench/bench.py (stdlib).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"
CMDLINE="scripts/bench.sh $*"

log() { printf '[bench.sh] %s\n' "$*" >&2; }

quick=0
install=1
feature_build=1
bin="${PX_G3PROXY_BIN:-}"
peers="all"
pass=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1; pass+=("$1") ;;
        --no-install) install=0 ;;
        --no-feature-build) feature_build=0 ;;
        --bin) bin="$2"; shift ;;
        --bin=*) bin="${1#--bin=}" ;;
        --peers) peers="$2"; pass+=("$1" "$2"); shift ;;
        --peers=*) peers="${1#--peers=}"; pass+=("$1") ;;
        --json|--md|--only|--duration|--wait-quiet|--http-conns|--variant|--retry-noisy|--budget) pass+=("$1" "$2"); shift ;;
        --keep|--json=*|--md=*|--only=*|--duration=*|--wait-quiet=*|--http-conns=*|--variant=*|--retry-noisy=*|--budget=*) pass+=("$1") ;;
        -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin" ;; esac

# ---- Debian packages -------------------------------------------------------
have() { command -v "$1" >/dev/null 2>&1; }
want_peer() { [ "$peers" = "all" ] || [[ ",$peers," == *",$1,"* ]]; }

need=()
have wrk || need+=(wrk)
have nginx || need+=(nginx)
have openssl || need+=(openssl)
have taskset || need+=(util-linux)
have python3 || need+=(python3)
have cc || need+=(gcc)
if [ "$quick" -eq 0 ] && [ "$peers" != "none" ]; then
    # the peers; --quick never installs them (it skips those that are missing)
    want_peer squid && ! have squid && need+=(squid)
    want_peer tinyproxy && ! have tinyproxy && need+=(tinyproxy)
    want_peer dante && ! have danted && need+=(dante-server)
    want_peer microsocks && ! have microsocks && need+=(microsocks)
    want_peer haproxy && ! have haproxy && need+=(haproxy)
    want_peer socat && ! have socat && need+=(socat)
    if want_peer nginx && [ ! -e /usr/lib/nginx/modules/ngx_stream_module.so ]; then
        need+=(libnginx-mod-stream)
    fi
fi
if [ "${#need[@]}" -gt 0 ]; then
    if [ "$install" -eq 0 ]; then
        log "missing (and --no-install given): ${need[*]}"
    else
        log "installing Debian packages: ${need[*]}"
        SUDO=""
        if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
        export DEBIAN_FRONTEND=noninteractive
        # a fresh container has no package lists; a stale one may 404
        $SUDO apt-get update -qq >/dev/null
        $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
fi

# ---- binaries ----------------------------------------------------------------
log "building the load generator (scripts/bench/loadgen)"
cargo build --quiet --release --manifest-path scripts/bench/loadgen/Cargo.toml \
    --target-dir "$ROOT/target/bench/loadgen"
LOADGEN="$ROOT/target/bench/loadgen/release/px-bench-loadgen"

if [ -z "$bin" ]; then
    if [ "$quick" -eq 1 ] && [ -x target/release/g3proxy ]; then
        bin="target/release/g3proxy"
    elif [ "$quick" -eq 1 ] && [ -x target/debug/g3proxy ]; then
        bin="target/debug/g3proxy"
    else
        log "cargo build --release -p g3proxy"
        if ! cargo build --quiet --release -p g3proxy; then
            if [ -x target/release/g3proxy ]; then
                log "WARNING: the release build failed; measuring the existing target/release/g3proxy" \
                    "built $(date -r target/release/g3proxy '+%F %T')"
            else
                exit 1
            fi
        fi
        bin="target/release/g3proxy"
    fi
fi
[ -x "$bin" ] || { echo "bench.sh: no g3proxy binary at $bin" >&2; exit 1; }
log "g3proxy under test: $bin"

# the cargo features of the data path (issue 6): io_uring relays and kTLS, each probed at
# run time with a per-connection fallback, measured side by side with the default build
if [ "$quick" -eq 0 ] && [ "$feature_build" -eq 1 ]; then
    log "cargo build --release -p g3proxy --features io-uring,ktls --target-dir target/features"
    if cargo build --quiet --release -p g3proxy --features io-uring,ktls --target-dir "$ROOT/target/features"; then
        pass+=(--variant "io-uring+ktls=$ROOT/target/features/release/g3proxy")
    else
        log "WARNING: the io-uring,ktls build failed; its column is left out"
    fi
fi

exec python3 scripts/bench/bench.py --bin "$bin" --loadgen "$LOADGEN" --cmdline "$CMDLINE" "${pass[@]}"
