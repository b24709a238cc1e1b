"""The conformance driver: tests/conformance/PROTOCOL.md on standard input and output.

One JSON request per line in, one answer per line out, in order. Engine operations go through
`Engine.call_json` unchanged (the C library checks them); the test-only operations (`reset`,
`configure`, `set_clock`, `advance_clock`, `seed`) set the scene on the same storage this host
uses in production, and the clock is the host table's `now_ms`, which only they move.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any, Callable, Optional, Union

from ._errors import TwofoldError
from .engine import Engine
from .storage import Storage

__all__ = ["DEFAULT_CONFIG", "RESET_CLOCK_MS", "Driver", "serve"]

#: Where `reset` puts the clock: 2026-01-01T00:00:00Z.
RESET_CLOCK_MS = 1_767_225_600_000
#: What the driver starts with and `reset` restores (PROTOCOL.md): the test audit key `test`.
DEFAULT_CONFIG = json.dumps(
    {
        "rp_id": "localhost",
        "rp_name": "twofold",
        "origins": ["http://localhost:8080"],
        "audit_keys": [
            {
                "id": "test",
                "secret": "8f1d5c0a3b7e9f2461d8c7b5a3e9f0c2d4b6a8e0f2c4d6b8a0e2f4c6d8b0a2e4",
            }
        ],
    }
)
U64_MAX = 2**64 - 1
TEST_OPS = ("reset", "configure", "set_clock", "advance_clock", "seed")


class _Refused(Exception):
    """A request the driver answers with `invalid_input` itself."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _u64(args: dict[str, Any], member: str) -> int:
    if set(args) != {member}:
        raise _Refused(f"the arguments must be exactly {{{member!r}: a whole number}}")
    value = args[member]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
        raise _Refused(f"{member} must be a whole number from 0 to 2^64-1")
    return value


class Driver:
    """Answers protocol lines over one storage. `clear` empties that storage for `reset`."""

    def __init__(self, storage: Storage, clear: Callable[[], None]) -> None:
        self.storage = storage
        self.clear = clear
        self.now_ms = RESET_CLOCK_MS
        self.engine = Engine(DEFAULT_CONFIG, storage, clock=lambda: self.now_ms)

    def _replace_engine(self, config: str) -> None:
        engine = Engine(config, self.storage, clock=lambda: self.now_ms)  # raises: old one stays
        old, self.engine = self.engine, engine
        old.close()

    def handle_line(self, line: bytes) -> str:
        request_id: Union[int, float, None] = None
        try:
            try:
                request = json.loads(line.decode("utf-8"), parse_constant=_no_constants)
            except (UnicodeDecodeError, ValueError):
                raise _Refused("a request is one JSON object of valid UTF-8 on one line") from None
            if not isinstance(request, dict):
                raise _Refused("a request is a JSON object")
            raw_id = request.get("id")
            if isinstance(raw_id, bool) or not isinstance(raw_id, (int, float)):
                raise _Refused("a request needs a numeric id")
            request_id = raw_id
            op = request.get("op")
            if not isinstance(op, str):
                raise _Refused("a request needs a string op")
            args = request.get("args", {})
            if not isinstance(args, dict):
                raise _Refused("args must be a JSON object")
            if op in TEST_OPS:
                ok = self._test_op(op, args)
            else:
                context = request.get("context")
                ctx = "{}" if context is None else json.dumps(context)
                ok = self.engine.call_json(op, json.dumps(args), ctx)
            return f'{{"id":{json.dumps(request_id)},"ok":{ok}}}'
        except _Refused as e:
            error: dict[str, object] = {"code": "invalid_input", "message": str(e)}
        except TwofoldError as e:
            error = e.to_json()
        return json.dumps({"id": request_id, "error": error})

    def _test_op(self, op: str, args: dict[str, Any]) -> str:
        if op == "reset":
            if args:
                raise _Refused("reset takes no arguments")
            self.clear()
            self.now_ms = RESET_CLOCK_MS
            self._replace_engine(DEFAULT_CONFIG)
            return "{}"
        if op == "configure":
            self._replace_engine(json.dumps(args))
            return "{}"
        if op == "set_clock":
            self.now_ms = _u64(args, "now_ms")
            return "{}"
        if op == "advance_clock":
            self.now_ms = min(self.now_ms + _u64(args, "ms"), U64_MAX)
            return "{}"
        _u64(args, "seed")
        return '{"seeded":false}'  # randomness stays the operating system's CSPRNG


def serve(
    storage: Storage,
    clear: Callable[[], None],
    stdin: Optional[IO[bytes]] = None,
    stdout: Optional[IO[bytes]] = None,
) -> None:
    """Answers every line of `stdin` until it closes."""
    source = stdin if stdin is not None else sys.stdin.buffer
    sink = stdout if stdout is not None else sys.stdout.buffer
    driver = Driver(storage, clear)
    for line in source:
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        sink.write(driver.handle_line(line).encode() + b"\n")
        sink.flush()
    driver.engine.close()
