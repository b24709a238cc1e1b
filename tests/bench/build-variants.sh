#!/usr/bin/env bash
# Builds the component twice more, with wasm features the default build must not use (jco and
# wasmtime-py have to load the default one), so the benchmark can show what they would buy:
#   simd128         +simd128                     (V8 and wasmtime run it)
#   wide-arithmetic +simd128,+wide-arithmetic    (64x64->128-bit multiply; V8 cannot run it,
#                                                 wasmtime needs Config::wasm_wide_arithmetic)
# Each goes to its own target directory, <target>/bench-variants/<name>/, so neither the default
# component nor anybody's build is touched. A clean build of each takes a few minutes.
#   tests/bench/build-variants.sh && cargo run --release -p twofold-bench -- --variants
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi
build() {
    local name="$1" features="$2"
    local dir="$target/bench-variants/$name"
    # wide-arithmetic is not yet a stable target feature of rustc: it warns and passes it on.
    CARGO_TARGET_DIR="$dir" RUSTFLAGS="-C target-feature=$features" \
        cargo build --release -p twofold-component --target wasm32-wasip2
    local wasm="$dir/wasm32-wasip2/release/twofold_component.wasm"
    echo "variant $name: $wasm ($(wc -c < "$wasm") bytes)"
}
build simd128 "+simd128"
build wide-arithmetic "+simd128,+wide-arithmetic"
