#!/bin/sh
# Builds the twofold WASI component (release) to
#   ${CARGO_TARGET_DIR:-<workspace>/target}/wasm32-wasip2/release/twofold_component.wasm
# Safe to run again: the target is only added when missing, and cargo rebuilds only on change.
set -eu
cd "$(dirname "$0")/.."
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi
cargo build --release -p twofold-component --target wasm32-wasip2 "$@"
wasm="${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/twofold_component.wasm"
echo "component: $wasm ($(wc -c < "$wasm") bytes)"
