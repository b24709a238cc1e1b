# The two commands of the README:
#   make demo   builds everything and runs the demo
#   make test   sets up the machine and runs every check and test
# Both install what they need (tests/setup.sh) and can be run again safely.

COMPONENT := target/wasm32-wasip2/release/twofold_component.wasm

.PHONY: demo setup-demo test setup component lint test-rust test-c test-c-sqlite test-node test-python test-conformance test-browser

# The demo needs no browser, PostgreSQL or npm: `setup-demo` installs only a C linker and the
# wasm target. A debug build of the server (wasmtime's optimised build is what makes a release
# build slow); the compiled component is cached beside the .wasm, so later starts are quick.
demo: setup-demo component
	cargo build -p twofold-server
	@echo "make demo: open http://localhost:8080/ (the address must be exactly this: Ctrl-C stops the server)"
	target/debug/twofold-server --listen 127.0.0.1:8080 --origin http://localhost:8080 --db twofold.db

setup-demo:
	@tests/setup.sh demo

test: setup lint component test-c test-c-sqlite test-rust test-node test-python test-conformance test-browser
	@echo "make test: all checks passed"

setup:
	@tests/setup.sh

component:
	wasm-component/build.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# Every Rust test, including tests/reliability, which drives the two host binaries: the C host
# is built by test-c-sqlite first, the server by this same cargo run.
test-rust: component test-c-sqlite
	TWOFOLD_REQUIRE_HOSTS=1 cargo test --workspace

test-c:
	ffi/tests/run-c-tests.sh

# The C host: storage callbacks, driver, demo and the SIGKILL crash test, under ASan + UBSan.
test-c-sqlite:
	hosts/c-sqlite/tests/run.sh

# The Node package (hosts/node): npm ci (npm registry only), the component transpiled by jco,
# tsc --noEmit on its types and examples, node:test (which starts its own PostgreSQL).
test-node: component
	cd hosts/node && npm ci --no-audit --no-fund && npm run build && npm run typecheck && TWOFOLD_REQUIRE_HOSTS=1 npm test

# The Python package (hosts/python) in a virtual environment under target/ (PyPI only), with the
# debug libtwofold bundled: mypy --strict, pytest (PostgreSQL required), the browser test against
# the Python backend (twofold-web takes the Rust server's flags), then the mixed fleet.
PY_VENV := $(or $(CARGO_TARGET_DIR),target)/python-venv
test-python:
	cargo build -q -p twofold-ffi
	test -x $(PY_VENV)/bin/python || python3 -m venv $(PY_VENV)
	$(PY_VENV)/bin/pip install -q --disable-pip-version-check './hosts/python[web,postgres,test]'
	TWOFOLD_LIBRARY=$(abspath $(or $(CARGO_TARGET_DIR),target)/debug/libtwofold.so) $(PY_VENV)/bin/pip install -q --disable-pip-version-check --no-deps --force-reinstall ./hosts/python
	cd hosts/python && $(abspath $(PY_VENV))/bin/mypy --strict
	TWOFOLD_REQUIRE_POSTGRES=1 $(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider hosts/python/tests
	TWOFOLD_SERVER_BIN=$(PY_VENV)/bin/twofold-web SCREENSHOT_DIR=target/browser-screenshots-python tests/browser/run.sh
	TWOFOLD_REQUIRE_POSTGRES=1 $(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider -m fleet hosts/python/tests

# Every scenario against every host; transcripts must be identical.
# (target/debug/twofold-server is the binary `cargo test --workspace` built; building the
# server package alone would resolve other features and compile wasmtime a second time.)
test-conformance: test-rust test-c-sqlite
	cargo run -q -p twofold-conformance -- --require-all

# The web UI in headless Chromium with a virtual authenticator, through every screen.
test-browser: test-rust
	TWOFOLD_SERVER_BIN=target/debug/twofold-server tests/browser/run.sh
