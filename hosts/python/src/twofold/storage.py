"""The storage contract an engine reaches its data through (SPEC D1, D2), and an in-memory store.

A storage is any object with the three methods of `Storage`. The engine calls them from the
thread that called the operation, possibly from many threads at once, so a storage must be
thread-safe. The contract, the same for every twofold host (`wit/storage.wit`):

- keys are non-empty UTF-8 strings of at most 512 bytes, ordered byte-wise (UTF-8 bytes, which
  for `str` is code point order, not locale order); values are JSON text of at most 1 MiB:
  give back exactly the string that was stored;
- `get(key)` answers the value and its version (1 after the first put, one more after every
  later put), or None;
- `scan(prefix, after, limit)` answers at most `limit` entries whose keys start with `prefix`
  and, when `after` is not None, are strictly greater than it, in ascending key order;
- `commit(writes)` applies every write or none, atomically and durably, serialised with
  other commits: if any write's `expect` does not hold (`None`: the key must be absent; a
  number: the key must have exactly that version) nothing is applied and it raises
  `StorageConflict`. Any other exception means the commit failed and also applied nothing.

Exceptions of any kind are safe: the engine answers `storage` (or retries after a
`StorageConflict`) and writes nothing. They never cross into the C library.
"""

from __future__ import annotations

import bisect
import threading
from typing import Optional, Protocol, Sequence, runtime_checkable

from ._generated import Entry, Versioned, Write

__all__ = [
    "Entry",
    "MemoryStorage",
    "Storage",
    "StorageConflict",
    "Versioned",
    "Write",
    "prefix_upper_bound",
]


class StorageConflict(Exception):
    """`commit` only: an expectation did not hold, so nothing was applied.

    The engine re-reads and retries a bounded number of times, then answers `conflict`.
    """


@runtime_checkable
class Storage(Protocol):
    """What the engine needs from a database. Methods may be called from many threads at once."""

    def get(self, key: str) -> Optional[Versioned]:
        """The key's value and version, or None when it does not exist."""
        ...

    def scan(self, prefix: str, after: Optional[str], limit: int) -> Sequence[Entry]:
        """At most `limit` entries under `prefix`, strictly after `after`, in key order."""
        ...

    def commit(self, writes: Sequence[Write]) -> None:
        """Applies every write or none; raises `StorageConflict` when an expectation fails."""
        ...


def prefix_upper_bound(prefix: str) -> Optional[str]:
    """The least string above every string that starts with `prefix`, or None if none exists.

    The prefix with its last character replaced by the next code point (trailing U+10FFFF
    dropped; surrogates skipped, since no stored key holds one). A scan is then the range
    `prefix <= key < bound`, which an index answers without a filter.
    """
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last == 0x10FFFF:
            continue
        following = 0xE000 if last == 0xD7FF else last + 1
        return "".join(chars) + chr(following)
    return None


class MemoryStorage:
    """The contract in memory, for tests and examples: a dict and a sorted key list.

    Thread-safe: one lock around every call. Nothing survives the process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, Versioned] = {}
        self._keys: list[bytes] = []  # sorted UTF-8 encodings: byte order

    def get(self, key: str) -> Optional[Versioned]:
        with self._lock:
            return self._data.get(key)

    def scan(self, prefix: str, after: Optional[str], limit: int) -> list[Entry]:
        start = prefix.encode()
        with self._lock:
            i = bisect.bisect_left(self._keys, start)
            if after is not None:
                i = max(i, bisect.bisect_right(self._keys, after.encode()))
            out: list[Entry] = []
            while i < len(self._keys) and len(out) < limit and self._keys[i].startswith(start):
                key = self._keys[i].decode()
                out.append(Entry(key=key, value=self._data[key]))
                i += 1
            return out

    def commit(self, writes: Sequence[Write]) -> None:
        if len({w.key for w in writes}) != len(writes):
            raise ValueError("the batch names a key twice")
        with self._lock:
            for w in writes:
                current = self._data.get(w.key)
                if w.expect is None:
                    if current is not None:
                        raise StorageConflict()
                elif current is None or current.version != w.expect:
                    raise StorageConflict()
            for w in writes:
                if w.value is None:
                    if self._data.pop(w.key, None) is not None:
                        del self._keys[bisect.bisect_left(self._keys, w.key.encode())]
                else:
                    if w.key not in self._data:
                        bisect.insort(self._keys, w.key.encode())
                    version = 1 if w.expect is None else w.expect + 1
                    self._data[w.key] = Versioned(value=w.value, version=version)

    def clear(self) -> None:
        """Deletes everything."""
        with self._lock:
            self._data.clear()
            self._keys.clear()

    def snapshot(self) -> dict[str, Versioned]:
        """A copy of everything stored (for tests: "nothing was written")."""
        with self._lock:
            return dict(self._data)
