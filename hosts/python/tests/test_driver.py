"""The conformance driver's own part (PROTOCOL.md): lines that are not requests, the test-only
operations and the settable clock. Engine answers are the library's and the suite checks them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from twofold import MemoryStorage
from twofold.driver import RESET_CLOCK_MS, Driver


def driver() -> Driver:
    storage = MemoryStorage()
    return Driver(storage, storage.clear)


def answer(d: Driver, line: bytes) -> dict[str, object]:
    out = json.loads(d.handle_line(line))
    assert isinstance(out, dict)
    return out


def code(d: Driver, line: bytes) -> object:
    error = answer(d, line)["error"]
    assert isinstance(error, dict)
    return error["code"]


def test_e1_lines_that_are_not_requests_are_invalid_input_with_a_null_id() -> None:
    d = driver()
    for line in [b"not json", b"[1]", b'{"op":"reset"}', b'{"id":"1","op":"reset"}', b'{"id":true,"op":"reset"}',
                 b'{"id":1,"op":"reset","x":"\xff"}', b'{"id":NaN,"op":"reset"}']:
        out = answer(d, line)
        assert out["id"] is None and code(d, line) == "invalid_input", line


def test_e1_bad_op_args_and_context_keep_the_id() -> None:
    d = driver()
    for line in [b'{"id":7}', b'{"id":7,"op":5}', b'{"id":7,"op":"nope"}', b'{"id":7,"op":"status","args":[]}',
                 b'{"id":7,"op":"status","args":{},"context":"x"}', b'{"id":7,"op":"set_clock","args":{"now_ms":1.5}}',
                 b'{"id":7,"op":"set_clock","args":{"now_ms":1,"x":1}}', b'{"id":7,"op":"reset","args":{"a":1}}',
                 b'{"id":7,"op":"seed","args":{"seed":-1}}', b'{"id":7,"op":"configure","args":{"rp_id":"x"}}']:
        assert answer(d, line)["id"] == 7 and code(d, line) == "invalid_input", line


def test_the_clock_moves_only_when_told() -> None:
    d = driver()
    assert answer(d, b'{"id":1,"op":"reset"}') == {"id": 1, "ok": {}}
    assert d.now_ms == RESET_CLOCK_MS
    assert answer(d, b'{"id":2,"op":"advance_clock","args":{"ms":1500}}')["ok"] == {}
    created = answer(d, b'{"id":3,"op":"create_account","args":{"email":"a@example.com","password":"12345678"}}')
    ok = created["ok"]
    assert isinstance(ok, dict)
    events = answer(d, json.dumps({"id": 4, "op": "audit_events", "args": {"user_id": ok["user_id"]}}).encode())
    assert events["ok"]["events"][0]["at"] == RESET_CLOCK_MS + 1500  # type: ignore[index]
    assert answer(d, b'{"id":5,"op":"seed","args":{"seed":42}}')["ok"] == {"seeded": False}


def test_the_cli_driver_speaks_the_protocol_over_sqlite(tmp_path: Path) -> None:
    lines = b'{"id":1,"op":"reset"}\n\n{"id":2,"op":"status","args":{"user_id":"AAAAAAAAAAAAAAAAAAAAAA"}}\n'
    run = subprocess.run(
        [sys.executable, "-m", "twofold.cli", "--driver", "--db", str(tmp_path / "d.db")],
        input=lines,
        capture_output=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    answers = [json.loads(line) for line in run.stdout.splitlines()]
    assert answers[0] == {"id": 1, "ok": {}}
    assert answers[1]["error"]["code"] == "not_found"
