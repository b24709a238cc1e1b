#!/usr/bin/env bash
# Installs what building and testing twofold needs on a fresh Debian machine. Idempotent:
# every step checks first and does nothing when the thing is there.
# `tests/setup.sh demo` installs only what `make demo` needs (a C linker and the wasm target):
# no browser, no PostgreSQL, no npm.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-test}

if [ "$mode" = demo ]; then
  apt_packages=(gcc g++ binutils)
else
  # postgresql: the server's PostgreSQL tests and the conformance target on three processes
  # start their own throwaway server with its programs (initdb, pg_ctl).
  apt_packages=(gcc g++ binutils python3 python3-venv libsqlite3-dev libcjson-dev chromium chromium-driver postgresql)
fi

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for p in "${apt_packages[@]}"; do
  have_pkg "$p" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  echo "setup: adding the wasm32-wasip2 target"
  rustup target add wasm32-wasip2
fi
[ "$mode" = demo ] && exit 0
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

# The browser test's driver (playwright-core, pinned in package-lock.json; it never downloads
# a browser: the test uses Debian's chromium).
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund)
fi
