"""The mixed fleet (issue 15): the Rust server, the Python backend and the Node driver on one
PostgreSQL serve the same users. An account made through one signs in through another, a
backup code spent in one is spent in all, a passkey registered in one signs in everywhere.

Runs with `pytest -m fleet` (`make test-python` does). It starts its own PostgreSQL and every
host it finds: two Python backends always, `target/debug/twofold-server` (HTTP, `--db
postgres://`) and `node hosts/node/bin/twofold-node.mjs --driver --db postgres://`. It runs
every check between the hosts that are there, then FAILS naming each host that is missing or
could not serve, so an incomplete fleet never passes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any, Iterator, Optional, Protocol

import pytest
from conftest import PASSWORD, TEST_KEY
from pg import PostgresServer, free_port
from softkey import SoftKey

pytestmark = pytest.mark.fleet

ROOT = Path(__file__).resolve().parents[3]
AUDIT_KEYS = f"{TEST_KEY.id}:{TEST_KEY.secret}"


class Host(Protocol):
    name: str

    def sign_up(self, email: str) -> None: ...
    def step_one(self, email: str, password: str = PASSWORD) -> dict[str, Any]: ...
    def backup_code(self, code: str) -> tuple[bool, str]: ...
    def passkey(self, key: SoftKey, options: dict[str, Any]) -> tuple[bool, str]: ...


class HttpHost:
    """A web backend (Rust or Python) driven as a browser would: cookies, Origin, JSON."""

    def __init__(self, name: str, command: list[str], port: int, log: Path) -> None:
        self.name = name
        self.origin = f"http://localhost:{port}"
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        out = open(log, "wb")
        env = dict(os.environ, TWOFOLD_AUDIT_KEYS=AUDIT_KEYS, RUST_LOG="warn")
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=out, env=env)
        out.close()
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def wait(self, seconds: float = 180) -> Optional[str]:
        """None when the server answers, else why not."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"exited with {self.process.returncode}: {self.log_tail()}"
            try:
                with socket.create_connection(("127.0.0.1", int(self.base.rsplit(":", 1)[1])), 0.5):
                    return None
            except OSError:
                time.sleep(0.2)
        return f"did not listen within {seconds:.0f} s: {self.log_tail()}"

    def log_tail(self) -> str:
        return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-4:])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def call(self, method: str, path: str, body: Optional[dict[str, Any]] = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Origin", self.origin)
        request.add_header("Content-Type", "application/json")
        try:
            with self.opener.open(request, timeout=60) as reply:
                return reply.status, json.loads(reply.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def expect(self, method: str, path: str, body: Optional[dict[str, Any]] = None) -> Any:
        status, answer = self.call(method, path, body)
        assert status == 200, f"{self.name} {method} {path}: {status} {answer}"
        return answer

    def sign_up(self, email: str) -> None:
        self.expect("POST", "/api/signup", {"email": email, "password": PASSWORD})

    def step_one(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        answer: dict[str, Any] = self.expect(
            "POST", "/api/signin", {"email": email, "password": password, "remember_me": False}
        )
        return answer

    def backup_code(self, code: str) -> tuple[bool, str]:
        status, answer = self.call("POST", "/api/signin/backup-code", {"code": code})
        return status == 200, answer.get("error", {}).get("code", "ok")

    def passkey(self, key: SoftKey, options: dict[str, Any]) -> tuple[bool, str]:
        status, answer = self.call("POST", "/api/signin/passkey", {"credential": key.get(options, self.origin)})
        return status == 200, answer.get("error", {}).get("code", "ok")

    def register_passkey(self, key: SoftKey) -> list[str]:
        started = self.expect("POST", "/api/passkeys/registration/start", {"name": "Fleet key", "password": PASSWORD})
        done = self.expect(
            "POST", "/api/passkeys/registration/finish", {"credential": key.create(started["options"], self.origin)}
        )
        codes: list[str] = done["backup_codes"]
        return codes


class NodeDriver:
    """The Node package's conformance driver: engine calls as JSON lines, no sessions."""

    origin = "http://localhost:8080"

    def __init__(self, url: str, log: Path) -> None:
        self.name = "node"
        err = open(log, "wb")
        self.process = subprocess.Popen(
            ["node", "hosts/node/bin/twofold-node.mjs", "--driver", "--db", url],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
        )
        err.close()
        self.log = log
        self.next_id = 0
        self.pending: Optional[str] = None
        config = {
            "rp_id": "localhost",
            "rp_name": "twofold",
            "origins": [self.origin],
            "audit_keys": [{"id": TEST_KEY.id, "secret": TEST_KEY.secret}],
        }
        self.request("configure", config)

    def request(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        if op not in ("configure", "set_clock"):
            # The driver's clock stands still; keep it on the real time the servers use.
            self.request("set_clock", {"now_ms": int(time.time() * 1000)})
        self.next_id += 1
        line = json.dumps({"id": self.next_id, "op": op, "args": args}) + "\n"
        self.process.stdin.write(line.encode())
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"node driver exited: {self.log.read_text(errors='replace')[-500:]}")
        parsed: dict[str, Any] = json.loads(answer)
        return parsed

    def ok(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        answer = self.request(op, args)
        assert "ok" in answer, f"node {op}: {answer}"
        result: dict[str, Any] = answer["ok"]
        return result

    def sign_up(self, email: str) -> None:
        self.ok("create_account", {"email": email, "password": PASSWORD})

    def step_one(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        answer = self.ok("sign_in", {"email": email, "password": password, "remember_me": False})
        self.pending = answer.get("pending_token")
        return answer

    def _second(self, op: str, args: dict[str, Any]) -> tuple[bool, str]:
        answer = self.request(op, dict(args, pending_token=self.pending))
        return "ok" in answer, answer.get("error", {}).get("code", "ok")

    def backup_code(self, code: str) -> tuple[bool, str]:
        return self._second("sign_in_backup_code", {"code": code})

    def passkey(self, key: SoftKey, options: dict[str, Any]) -> tuple[bool, str]:
        return self._second("sign_in_passkey", {"credential": key.get(options, self.origin)})

    def stop(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture
def fleet_db(postgres_server: PostgresServer) -> Iterator[str]:
    yield postgres_server.database()


def test_issue15_one_postgres_serves_the_same_users_through_every_host(fleet_db: str, tmp_path: Path) -> None:
    missing: list[str] = []
    started: list[Any] = []
    ran = "no host"

    def http(name: str, command: list[str], port: int) -> Optional[HttpHost]:
        host = HttpHost(name, command, port, tmp_path / f"{name}.log")
        started.append(host)
        why = host.wait()
        if why is None:
            return host
        missing.append(f"{name} could not serve on PostgreSQL ({why})")
        return None

    try:
        python_hosts = []
        for name in ("python-a", "python-b"):
            port = free_port()
            command = [sys.executable, "-m", "twofold.cli", "--listen", f"127.0.0.1:{port}", "--db", fleet_db]
            host = http(name, command, port)
            assert host is not None, missing
            python_hosts.append(host)

        hosts: list[Host] = list(python_hosts)
        rust_bin = Path(os.environ.get("TWOFOLD_SERVER_BIN", ROOT / "target" / "debug" / "twofold-server"))
        if not rust_bin.is_file():
            missing.append(f"rust: {rust_bin} not found (cargo build -p twofold-server, wasm-component/build.sh)")
        else:
            port = free_port()
            rust = http("rust", [str(rust_bin), "--listen", f"127.0.0.1:{port}", "--db", fleet_db], port)
            if rust is not None:
                hosts.append(rust)
        node_bin = ROOT / "hosts" / "node" / "bin" / "twofold-node.mjs"
        if shutil.which("node") is None or not node_bin.is_file():
            missing.append(f"node: {node_bin} or the node program not found")
        else:
            try:
                node = NodeDriver(fleet_db, tmp_path / "node.log")
                started.append(node)
                hosts.append(node)
            except (RuntimeError, AssertionError) as e:
                missing.append(f"node could not serve on PostgreSQL ({e})")

        problems = run_fleet(hosts, python_hosts[0])
        ran = ", ".join(h.name for h in hosts)
    finally:
        for host in started:
            host.stop()
    report = problems + [f"missing: {m}" for m in missing]
    if report:
        pytest.fail(
            f"mixed fleet incomplete or inconsistent (checked between {ran}):\n  " + "\n  ".join(report),
            pytrace=False,
        )


def run_fleet(hosts: list[Host], registrar: HttpHost) -> list[str]:
    """Every cross-host check the hosts allow; answers what went wrong, host by host."""
    problems: list[str] = []
    names = [h.name for h in hosts]

    def check(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    # An account made through each host signs in (2FA off) through every other.
    for i, maker in enumerate(hosts):
        email = f"made-by-{maker.name}@example.com"
        try:
            maker.sign_up(email)
        except AssertionError as e:
            problems.append(f"{maker.name} could not make an account: {e}")
            continue
        for other in hosts:
            if other is maker:
                continue
            try:
                outcome = other.step_one(email)
                check(outcome.get("status") == "signed_in", f"{email} through {other.name}: {outcome}")
            except AssertionError as e:
                problems.append(f"{email} could not sign in through {other.name}: {e}")

    # A passkey registered through one host: 2FA on, ten codes; each code works once, anywhere.
    key = SoftKey()
    owner = "fleet-owner@example.com"
    try:
        registrar.sign_up(owner)
        codes = registrar.register_passkey(key)
    except AssertionError as e:
        return problems + [f"{registrar.name} could not set up 2FA: {e}"]
    for n, spender in enumerate(hosts):
        code = codes[n]
        try:
            spender.step_one(owner)
            ok, why = spender.backup_code(code)
            check(ok, f"backup code {n} refused by {spender.name}, where it was spent first: {why}")
        except AssertionError as e:
            problems.append(f"{spender.name} could not start a sign-in: {e}")
            continue
        for other in hosts:
            if other is spender:
                continue
            try:
                other.step_one(owner)
                ok, why = other.backup_code(code)
                check(
                    not ok and why == "invalid_backup_code",
                    f"code spent through {spender.name} was {'accepted' if ok else why} by {other.name}",
                )
            except AssertionError as e:
                problems.append(f"{other.name} could not start a sign-in: {e}")
    for host in hosts:
        try:
            outcome = host.step_one(owner)
            ok, why = host.passkey(key, outcome["options"])
            check(ok, f"the passkey registered through {registrar.name} was refused by {host.name}: {why}")
        except (AssertionError, KeyError) as e:
            problems.append(f"{host.name}: passkey sign-in could not run: {e}")
    report = registrar.expect("GET", "/api/audit/verify") if registrar.call("GET", "/api/me")[0] == 200 else None
    if report is not None:
        check(report.get("intact") is True, f"the audit chain written by {names} does not verify: {report}")
    return problems

