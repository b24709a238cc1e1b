#!/usr/bin/env bash
# Builds libtwofold, checks include/twofold.h as C and C++, checks that the shared library
# exports only `twofold_` symbols, and runs the C tests under AddressSanitizer (with leak
# checking) and UndefinedBehaviorSanitizer. Needs cargo, gcc, g++ and binutils; idempotent.
#
#   ffi/tests/run-c-tests.sh            (from anywhere)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
lib_dir="$target_dir/debug"
out_dir="$target_dir/c-tests"
mkdir -p "$out_dir"

CC="${CC:-cc}"
CXX="${CXX:-c++}"
cflags=(-std=c11 -Wall -Wextra -Wpedantic -Werror -g -O1 -fno-omit-frame-pointer -I include)
sanitize=(-fsanitize=address,undefined -fno-sanitize-recover=all)

step() { printf '== %s\n' "$*"; }

step "cargo build -p twofold-ffi"
cargo build --quiet -p twofold-ffi

step "header compiles on its own as C11 and as C++"
"$CC" -std=c11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only include/twofold.h
"$CXX" -fsyntax-only -x c++ include/twofold.h
"$CXX" -std=c++11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -x c++ include/twofold.h

step "libtwofold.so exports exactly the header's functions"
exported="$(nm -D --defined-only "$lib_dir/libtwofold.so" | awk '{print $3}' |
    grep -v -x -E '_init|_fini|_edata|_end|__bss_start' | sort)"
stray="$(grep -v '^twofold_' <<<"$exported" || true)"
if [[ -n "$stray" ]]; then
    echo "libtwofold.so exports symbols without the twofold_ prefix:" >&2
    echo "$stray" >&2
    exit 1
fi
declared="$("$CC" -E -P include/twofold.h | grep -o -E '\btwofold_[a-z0-9_]+\(' | tr -d '(' |
    sort -u)"
if [[ "$exported" != "$declared" ]]; then
    echo "exported and declared functions differ (< exported, > declared):" >&2
    diff <(echo "$exported") <(echo "$declared") >&2 || true
    exit 1
fi
echo "$(wc -l <<<"$exported") functions"

step "C tests (ASan + LSan + UBSan, linked against libtwofold.so)"
"$CC" "${cflags[@]}" "${sanitize[@]}" ffi/tests/c/test_twofold.c -o "$out_dir/test_twofold" \
    -L "$lib_dir" -Wl,-rpath,"$lib_dir" -ltwofold -lpthread
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
"$out_dir/test_twofold"

step "README example (ASan + UBSan, linked against libtwofold.a)"
"$CC" "${cflags[@]}" "${sanitize[@]}" ffi/tests/c/example.c -o "$out_dir/example" \
    "$lib_dir/libtwofold.a" -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
# The test audit key (twofold_testkit::TEST_AUDIT_KEY_HEX); a real host keeps its own elsewhere.
TWOFOLD_AUDIT_KEY=8f1d5c0a3b7e9f2461d8c7b5a3e9f0c2d4b6a8e0f2c4d6b8a0e2f4c6d8b0a2e4 \
    "$out_dir/example" >"$out_dir/example.out"
grep -q '"email":"ada@example.com"' "$out_dir/example.out"
cat "$out_dir/example.out"

step "C tests passed"
