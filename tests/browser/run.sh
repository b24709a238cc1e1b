#!/usr/bin/env bash
# Runs the browser end-to-end test of the web UI (issue 5): headless Debian Chromium with a
# DevTools WebAuthn virtual authenticator, driven by playwright-core, against a real
# twofold-server on a free localhost port. Prints `browser: N passed, M failed` last and exits
# non-zero on failure. Screenshots go to target/browser-screenshots/ (or $SCREENSHOT_DIR).
#
# Needs: Debian's chromium (tests/setup.sh installs it) and Node.js 20 with npm.
# Builds the component and the server unless TWOFOLD_SERVER_BIN names a server binary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

chromium=${CHROMIUM_PATH:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  echo "browser: $chromium not found: install Debian's chromium and chromium-driver (tests/setup.sh)" >&2
  echo "browser: 0 passed, 1 failed"
  exit 1
fi

# npm ci only when the installed playwright-core is not the one the lock file pins.
if ! (cd "$here" && node -e '
  const want = require("./package-lock.json").packages["node_modules/playwright-core"].version;
  const have = require("./node_modules/playwright-core/package.json").version;
  process.exit(want === have ? 0 : 1);') 2>/dev/null; then
  (cd "$here" && npm ci --no-audit --no-fund)
fi

if [ -z "${TWOFOLD_SERVER_BIN:-}" ]; then
  # The server embeds the web files: building it picks up any change to them.
  wasm-component/build.sh
  cargo build -p twofold-server
fi

exec node "$here/e2e.mjs"
