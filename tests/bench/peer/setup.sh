#!/usr/bin/env bash
# Makes the Python environment of the peer reference (py_webauthn) under the target directory:
#   tests/bench/peer/setup.sh            -> <target>/bench-peer-venv
# Idempotent: does nothing when the pinned version is installed already. Needs PyPI once;
# the benchmark itself needs no network.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
venv="$target/bench-peer-venv"
stamp="$venv/.installed"
if [[ -f "$stamp" ]] && cmp -s "$stamp" "$here/requirements.txt"; then
    exit 0
fi
python="${PYTHON:-python3}"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
cp "$here/requirements.txt" "$stamp"
echo "peer environment ready: $venv" >&2
