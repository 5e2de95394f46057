#!/usr/bin/env bash
# Regenerates the Rust of the control protocol from its Cap'n Proto schema:
#   lib/px-ctl-proto/schema/*.capnp -> lib/px-ctl-proto/src/generated/
# and writes the stamp (hashes of schema and generated code) that the crate's
# drift test checks. Needs the `capnp` compiler (Debian `capnproto`, installed
# by `scripts/deps.sh capnp`) and capnpc-rust (installed under target/ here).
# A normal build needs neither: the generated code is committed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/deps.sh capnp
tools="$root/target/capnpc-tools"
if [ ! -x "$tools/bin/capnpc-rust" ]; then
    echo "[capnp-regen] installing capnpc-rust 0.27 into $tools" >&2
    cargo install --quiet capnpc --version '~0.27' --root "$tools"
fi
crate="lib/px-ctl-proto"
out="$crate/src/generated"
rm -rf "$out"
mkdir -p "$out"
PATH="$tools/bin:$PATH" capnp compile -orust:"$out" --src-prefix="$crate/schema" "$crate"/schema/*.capnp


# the stamp: what the drift test recomputes (FNV-1a 64 of each file, in name order)
cargo run --quiet -p px-ctl-proto --example stamp > "$crate/src/generated/STAMP"
echo "[capnp-regen] regenerated $out" >&2
