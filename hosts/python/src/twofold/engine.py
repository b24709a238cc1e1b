"""`Engine`: the C library's engine with a Python storage, clock and randomness plugged in.

Each operation is a method (generated from the operations table into `Operations`); this
module supplies the one thing they share, `_call`, and the host callback table. The frictions
of ctypes live here so that no user meets them:

- every callback is wrapped so that an exception becomes `TWOFOLD_STORAGE` (a raising ctypes
  callback returns an undefined value to C, often 0, which would read as "written"); the
  exception is kept and chained to the `StorageError` the operation raises;
- the `CFUNCTYPE` objects live as long as the engine, and the engine is freed before them;
- keys and values are read as pointer + length (they are not NUL-terminated);
- every string the library returns is copied, then freed with `twofold_string_free` once.

Thread safety: one engine may be called from many threads at once. ctypes releases the GIL
while the library runs (argon2, signature checks), so threads really run in parallel; the
storage's methods are then called concurrently, each on the thread whose operation needs it.
"""

from __future__ import annotations

import ctypes
import json
import logging
import threading
from ctypes import byref, c_size_t, c_void_p
from typing import Any, Callable, Optional, Union

from . import _ffi
from ._errors import TwofoldError
from ._generated import (
    ERRORS_BY_STATUS,
    Config,
    ConflictError,
    Context,
    ErrorCode,
    InternalError,
    JsonObject,
    Operations,
    StorageError,
    Write,
)
from .storage import Storage, StorageConflict

__all__ = ["Engine"]

log = logging.getLogger("twofold")

_OK = _ffi.OK
_STORAGE_STATUS = StorageError.status
_CONFLICT_STATUS = ConflictError.status
_EMPTY_CONTEXT = b"{}"


def _version(version: int) -> int:
    """A stored version as C takes it; ctypes would silently wrap a negative number."""
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 2**64:
        raise ValueError(f"a stored version must be a whole number from 1, not {version!r}")
    return version


class _Host:
    """The callbacks of one engine. Holds no reference to the engine, so the engine can be
    collected (and freed) while this lives on in the `CFUNCTYPE` closures."""

    def __init__(
        self,
        storage: Storage,
        clock: Optional[Callable[[], int]],
        random: Optional[Callable[[int], bytes]],
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.random = random
        self.local = threading.local()  # .error: the exception a callback swallowed
        self.record_fns: dict[int, Any] = {}
        self.entry_fns: dict[int, Any] = {}
        self.table = _ffi.HostStruct(
            version=_ffi.HOST_VERSION,
            user_data=None,
            get=_ffi.GET_FN(self.get),
            scan=_ffi.SCAN_FN(self.scan),
            commit=_ffi.COMMIT_FN(self.commit),
            now_ms=_ffi.NOW_MS_FN(self.now_ms) if clock else _ffi.NOW_MS_FN(),
            fill_random=_ffi.FILL_RANDOM_FN(self.fill_random) if random else _ffi.FILL_RANDOM_FN(),
        )

    def failed(self, e: BaseException, what: str) -> int:
        self.local.error = e
        if isinstance(e, Exception):
            log.warning("twofold: storage %s failed: %s: %s", what, type(e).__name__, e)
        return _STORAGE_STATUS

    def _record_fn(self, address: int) -> Any:
        fn = self.record_fns.get(address)
        if fn is None:
            fn = self.record_fns[address] = _ffi.RECORD_FN(address)
        return fn

    def _entry_fn(self, address: int) -> Any:
        fn = self.entry_fns.get(address)
        if fn is None:
            fn = self.entry_fns[address] = _ffi.ENTRY_FN(address)
        return fn

    def get(self, _user: Any, key: int, key_len: int, found: int, sink: int) -> int:
        try:
            record = self.storage.get(ctypes.string_at(key, key_len).decode())
            if record is None:
                return _OK
            value = record.value.encode()
            return int(self._record_fn(found)(sink, value, len(value), _version(record.version)))
        except BaseException as e:  # noqa: BLE001 - nothing may unwind into C
            return self.failed(e, "get")

    def scan(
        self,
        _user: Any,
        prefix: int,
        prefix_len: int,
        after: Optional[int],
        after_len: int,
        limit: int,
        emit: int,
        sink: int,
    ) -> int:
        try:
            start = ctypes.string_at(prefix, prefix_len).decode() if prefix_len else ""
            past = None if not after else ctypes.string_at(after, after_len).decode()
            entries = self.storage.scan(start, past, limit)
            put = self._entry_fn(emit)
            for entry in entries:
                key = entry.key.encode()
                value = entry.value.value.encode()
                status = int(put(sink, key, len(key), value, len(value), _version(entry.value.version)))
                if status != _OK:
                    return status
            return _OK
        except BaseException as e:  # noqa: BLE001
            return self.failed(e, "scan")

    def commit(self, _user: Any, writes: Any, count: int) -> int:
        try:
            batch = []
            for i in range(count):
                w = writes[i]
                batch.append(
                    Write(
                        key=ctypes.string_at(w.key, w.key_len).decode(),
                        value=None
                        if not w.value
                        else ctypes.string_at(w.value, w.value_len).decode(),
                        expect=w.expected_version or None,
                    )
                )
            self.storage.commit(batch)
            return _OK
        except StorageConflict:
            return _CONFLICT_STATUS
        except BaseException as e:  # noqa: BLE001
            return self.failed(e, "commit")

    def now_ms(self, _user: Any, out: Any) -> int:
        try:
            assert self.clock is not None
            out[0] = int(self.clock())
            return _OK
        except BaseException as e:  # noqa: BLE001
            return self.failed(e, "clock")

    def fill_random(self, _user: Any, buf: Any, length: int) -> int:
        try:
            assert self.random is not None
            data = self.random(length)
            if len(data) != length:
                raise ValueError(f"randomness gave {len(data)} bytes, not {length}")
            ctypes.memmove(buf, data, length)
            return _OK
        except BaseException as e:  # noqa: BLE001
            return self.failed(e, "randomness")


class Engine(Operations):
    """A configured twofold engine over your storage.

    `config` is a `Config` (or its JSON text); `storage` any object with the `Storage`
    methods. `clock` (milliseconds since the Unix epoch) and `random` (n bytes from a CSPRNG)
    default to the system's; tests pass their own. Raises `InvalidInputError` for a
    configuration the engine refuses (it names the field).

    Every operation raises a subclass of `TwofoldError` on failure and writes nothing then.
    Use the engine from as many threads as you like; `close()` (or `with Engine(...)`) frees
    it once no call is running.
    """

    def __init__(
        self,
        config: Union[Config, str],
        storage: Storage,
        *,
        clock: Optional[Callable[[], int]] = None,
        random: Optional[Callable[[int], bytes]] = None,
    ) -> None:
        self._lib = _ffi.library()
        self._host = _Host(storage, clock, random)
        self._lock = threading.Condition()
        self._running = 0
        self._handle: Optional[int] = None
        text = config if isinstance(config, str) else json.dumps(config.to_json())
        data = text.encode()
        handle = c_void_p()
        status = self._lib.twofold_engine_new(data, len(data), byref(self._host.table), byref(handle))
        if status != _OK:
            raise self._error(status)
        self._handle = handle.value

    @property
    def storage(self) -> Storage:
        """The storage this engine was made with."""
        return self._host.storage

    def close(self) -> None:
        """Frees the engine after the calls in progress end. Later calls raise RuntimeError."""
        with self._lock:
            handle, self._handle = self._handle, None
            while self._running:
                self._lock.wait()
        if handle is not None:
            self._lib.twofold_engine_free(handle)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self._handle = None
            self._lib.twofold_engine_free(handle)

    def call_json(self, op: str, args: str = "{}", ctx: str = "{}") -> str:
        """Runs an operation by its JSON name on JSON text, answering JSON text.

        The raw form of every method (and of the C library's `twofold_engine_call`): `args` is
        the operation's request and `ctx` a `Context`, both as JSON; the answer is exactly the
        library's. Raises `TwofoldError` as the methods do.
        """
        return self._call_bytes(op.encode(), args.encode(), ctx.encode()).decode()

    def _call(self, op: str, args: JsonObject, ctx: Optional[Context]) -> JsonObject:
        context = _EMPTY_CONTEXT if ctx is None else json.dumps(ctx.to_json()).encode()
        answer: JsonObject = json.loads(
            self._call_bytes(op.encode(), json.dumps(args).encode(), context)
        )
        return answer

    def _call_bytes(self, op: bytes, args: bytes, ctx: bytes) -> bytes:
        with self._lock:
            handle = self._handle
            if handle is None:
                raise RuntimeError("the engine is closed")
            self._running += 1
        try:
            self._host.local.error = None
            out = c_void_p()
            out_len = c_size_t()
            status = self._lib.twofold_engine_call(
                handle, ctx, len(ctx), op, len(op), args, len(args), byref(out), byref(out_len)
            )
            if status != _OK:
                raise self._error(status)
            if out.value is None:
                raise InternalError("the library answered OK without an answer")
            try:
                return ctypes.string_at(out.value, out_len.value)
            finally:
                self._lib.twofold_string_free(out)
        finally:
            with self._lock:
                self._running -= 1
                if not self._running:
                    self._lock.notify_all()

    def _error(self, status: int) -> TwofoldError:
        """The exception for a failed call, read on the thread that made it."""
        message = self._lib.twofold_last_error_message().decode(errors="replace")
        kind = ERRORS_BY_STATUS.get(status, InternalError)
        retry = None
        if kind.code is ErrorCode.RATE_LIMITED:
            retry = int(self._lib.twofold_last_error_retry_after_secs())
        error = kind(message, retry)
        cause: Optional[BaseException] = getattr(self._host.local, "error", None)
        self._host.local.error = None
        if cause is not None:
            if not isinstance(cause, Exception):
                raise cause  # KeyboardInterrupt, SystemExit: the engine wrote nothing; go on
            error.__cause__ = cause
        return error
