#!/usr/bin/env bash
# Builds twofold-c (plain, and with AddressSanitizer + UBSan) and runs every test of the C +
# SQLite host under the sanitizers, leak checking on: the storage callbacks (test_kv.c), a
# scripted driver session (driver_test.py), the demo, and the SIGKILL acceptance test
# (crash_test.py). Idempotent. Exits non-zero on any failure; the last line is
# `c-sqlite: N passed, M failed`.
#
#   hosts/c-sqlite/tests/run.sh            (from anywhere; needs cargo, cc, python3,
#                                           libsqlite3-dev, libcjson-dev)
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$here/build"
passed=0
failed=0

finish() {
    echo "c-sqlite: $passed passed, $failed failed"
    ((failed == 0))
    exit
}

step() { printf '== %s\n' "$*"; }

# Runs a test program whose last output line is "<name>: N passed, M failed" and adds its
# counts; a non-zero exit with no failure counted (a sanitizer report, a crash) counts as one.
run_counted() {
    local log status counts p f
    log="$(mktemp)"
    "$@" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    counts="$(grep -E ': [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)"
    rm -f "$log"
    p="$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$counts")"
    f="$(sed -E 's/.*, ([0-9]+) failed$/\1/' <<<"$counts")"
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    if ((status != 0)) && ((${f:-0} == 0)); then
        echo "run.sh: $1 exited with status $status" >&2
        failed=$((failed + 1))
    fi
}

# One check of this script's own.
check() {
    local what="$1"
    shift
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "run.sh: FAILED: $what" >&2
    fi
}

step "build: make all sanitize"
if ! make --no-print-directory -C "$here" all sanitize; then
    failed=$((failed + 1))
    finish
fi

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONDONTWRITEBYTECODE=1
twofold_c="$build/asan/twofold-c"

step "storage callbacks (test_kv)"
run_counted "$build/asan/test_kv"

step "driver protocol (driver_test.py)"
run_counted python3 "$here/tests/driver_test.py" "$twofold_c"

step "demo"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
demo_ok() {
    "$@" >"$tmp/demo.out" 2>"$tmp/demo.err"
    local status=$?
    cat "$tmp/demo.out"
    [[ ! -s "$tmp/demo.err" ]] || cat "$tmp/demo.err" >&2
    return $status
}
shows() { grep -q -- "$1" "$tmp/demo.out"; }
mkdir -p "$tmp/tmpdir"
check "demo exits 0" demo_ok env TMPDIR="$tmp/tmpdir" "$twofold_c" demo
check "demo signs up" shows "create_account -> ok"
check "demo shows no_passkey" shows "enable_two_factor -> no_passkey"
check "demo shows not_enabled" shows "regenerate_backup_codes -> not_enabled"
check "demo says passkeys need a browser" shows "Passkeys need a browser"
check "demo shows the audit log" shows "account_created"
check "demo verifies the chain" shows "intact true, [0-9]* events checked"
check "demo removes its temporary database" test -z "$(ls -A "$tmp/tmpdir")"
events_checked() { sed -n -E 's/.*intact true, ([0-9]+) events checked.*/\1/p' "$tmp/demo.out"; }
check "demo on a new --db exits 0" demo_ok "$twofold_c" demo --db "$tmp/demo.db"
first_events="$(events_checked)"
check "demo on the same --db again exits 0" demo_ok "$twofold_c" demo --db "$tmp/demo.db"
check "demo reuses the account" shows "left from an earlier run"
check "demo's chain grows and stays intact" test "$(events_checked)" -gt "${first_events:-0}"
check "plain build runs the demo" demo_ok "$build/twofold-c" demo
check "--version" "$build/twofold-c" --version
usage_status() { "$build/twofold-c" "$@" >/dev/null 2>&1; [[ $? == 2 ]]; }
check "bad usage exits 2" usage_status --bogus

step "SIGKILL mid-run, restart, nothing half-applied (crash_test.py)"
run_counted python3 "$here/tests/crash_test.py" "$twofold_c"

finish
