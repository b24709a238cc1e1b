"""The C library through ctypes: finding `libtwofold`, and every type and function it exports.

This is the only module that knows the C ABI (`include/twofold.h`). Everything here is a
declaration; the behaviour (callbacks that never raise into C, strings freed once) is in
`engine.py`.

How the library is found, first match wins:
1. `TWOFOLD_LIBRARY`: a path to `libtwofold.so` (`.dylib`, `twofold.dll`); nothing else is tried.
2. The copy bundled into the installed package: `pip install hosts/python` copies the library
   it finds at build time (`TWOFOLD_LIBRARY`, else `target/release` of the checkout) into
   `twofold/_lib/`.
3. In a source checkout (an editable install): `$CARGO_TARGET_DIR` or `target/`, `release`.
4. The system's search path (`ctypes.util.find_library("twofold")`: `/usr/local/lib`, ...).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_int32,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

from ._generated import HOST_VERSION, LIBRARY_VERSION


class LibraryNotFound(ImportError):
    """libtwofold could not be loaded, or is not a version these bindings speak."""


if sys.platform == "darwin":
    LIBRARY_FILE = "libtwofold.dylib"
elif sys.platform == "win32":
    LIBRARY_FILE = "twofold.dll"
else:
    LIBRARY_FILE = "libtwofold.so"

# --- the types of include/twofold.h ------------------------------------------------------

#: `twofold_record_fn`: a `get` callback hands its record over through this.
RECORD_FN = CFUNCTYPE(c_int32, c_void_p, c_char_p, c_size_t, c_uint64)
#: `twofold_entry_fn`: a `scan` callback hands each entry over through this.
ENTRY_FN = CFUNCTYPE(c_int32, c_void_p, c_char_p, c_size_t, c_char_p, c_size_t, c_uint64)


class WriteStruct(Structure):
    """`struct twofold_write`. Pointers, not `c_char_p`: neither key nor value ends in NUL."""

    _fields_ = [
        ("key", c_void_p),
        ("key_len", c_size_t),
        ("value", c_void_p),
        ("value_len", c_size_t),
        ("expected_version", c_uint64),
    ]


# Keys and buffers arrive as raw pointers (`c_void_p`): `c_char_p` would read up to a NUL that
# is not there. The function-pointer arguments arrive as addresses and are wrapped once each.
GET_FN = CFUNCTYPE(c_int32, c_void_p, c_void_p, c_size_t, c_void_p, c_void_p)
SCAN_FN = CFUNCTYPE(
    c_int32, c_void_p, c_void_p, c_size_t, c_void_p, c_size_t, c_size_t, c_void_p, c_void_p
)
COMMIT_FN = CFUNCTYPE(c_int32, c_void_p, POINTER(WriteStruct), c_size_t)
NOW_MS_FN = CFUNCTYPE(c_int32, c_void_p, POINTER(c_uint64))
FILL_RANDOM_FN = CFUNCTYPE(c_int32, c_void_p, POINTER(c_uint8), c_size_t)


class HostStruct(Structure):
    """`struct twofold_host`, version `HOST_VERSION`. A NULL callback is `None`."""

    _fields_ = [
        ("version", c_uint32),
        ("user_data", c_void_p),
        ("get", GET_FN),
        ("scan", SCAN_FN),
        ("commit", COMMIT_FN),
        ("now_ms", NOW_MS_FN),
        ("fill_random", FILL_RANDOM_FN),
    ]


OK = 0


def _candidates() -> list[tuple[str, Path]]:
    explicit = os.environ.get("TWOFOLD_LIBRARY")
    if explicit:
        return [("TWOFOLD_LIBRARY", Path(explicit))]
    here = Path(__file__).resolve().parent
    found = [("the copy bundled with the package", here / "_lib" / LIBRARY_FILE)]
    # hosts/python/src/twofold -> the repository, when running from a checkout.
    repo = here.parents[3] if len(here.parents) > 3 else here
    if (repo / "include" / "twofold.h").is_file():
        target = Path(os.environ.get("CARGO_TARGET_DIR") or repo / "target")
        found.append(("the checkout's release build", target / "release" / LIBRARY_FILE))
    system = ctypes.util.find_library("twofold")
    if system:
        found.append(("the system library path", Path(system)))
    return found


def _load() -> ctypes.CDLL:
    tried = []
    for where, path in _candidates():
        if where != "the system library path" and not path.is_file():
            tried.append(f"{path} ({where}): not there")
            continue
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as e:
            tried.append(f"{path} ({where}): {e}")
            continue
        _declare(lib)
        version = lib.twofold_version().decode()
        if version.split(".")[:2] != LIBRARY_VERSION.split(".")[:2]:
            raise LibraryNotFound(
                f"{path} is libtwofold {version}; this package speaks {LIBRARY_VERSION}: "
                "rebuild the library (cargo build -p twofold-ffi --release) or reinstall the "
                "package from the same checkout"
            )
        return lib
    raise LibraryNotFound(
        "libtwofold not found. Build it with `cargo build -p twofold-ffi --release` and "
        "reinstall (`pip install hosts/python` bundles it), or set TWOFOLD_LIBRARY to the "
        "file. Tried: " + "; ".join(tried or ["nothing"])
    )


def _declare(lib: ctypes.CDLL) -> None:
    """Argument and result types of every function the package calls."""
    engine_p = c_void_p
    lib.twofold_version.argtypes = []
    lib.twofold_version.restype = c_char_p
    lib.twofold_engine_new.argtypes = [c_char_p, c_size_t, POINTER(HostStruct), POINTER(c_void_p)]
    lib.twofold_engine_new.restype = c_int32
    lib.twofold_engine_free.argtypes = [engine_p]
    lib.twofold_engine_free.restype = None
    lib.twofold_string_free.argtypes = [c_void_p]
    lib.twofold_string_free.restype = None
    lib.twofold_engine_call.argtypes = [
        engine_p,
        c_char_p,
        c_size_t,
        c_char_p,
        c_size_t,
        c_char_p,
        c_size_t,
        POINTER(c_void_p),
        POINTER(c_size_t),
    ]
    lib.twofold_engine_call.restype = c_int32
    lib.twofold_status_name.argtypes = [c_int32]
    lib.twofold_status_name.restype = c_char_p
    lib.twofold_last_error_status.argtypes = []
    lib.twofold_last_error_status.restype = c_int32
    lib.twofold_last_error_message.argtypes = []
    lib.twofold_last_error_message.restype = c_char_p
    lib.twofold_last_error_retry_after_secs.argtypes = []
    lib.twofold_last_error_retry_after_secs.restype = c_uint64


_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """The loaded library (loaded on first use, so `import twofold` never fails)."""
    global _lib
    if _lib is None:
        _lib = _load()
    return _lib


__all__ = [
    "COMMIT_FN",
    "ENTRY_FN",
    "FILL_RANDOM_FN",
    "GET_FN",
    "HOST_VERSION",
    "HostStruct",
    "LIBRARY_FILE",
    "LibraryNotFound",
    "NOW_MS_FN",
    "OK",
    "RECORD_FN",
    "SCAN_FN",
    "WriteStruct",
    "library",
]
