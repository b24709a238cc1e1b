"""`SQLiteStorage`: the storage contract over an SQLite file (the standard library's sqlite3).

One table of versioned keys, the same as the Rust sample server's (`kv(key, value,
version)`), so both can open one file. WAL mode (readers never wait for the writer) and
`synchronous=FULL` (a commit is on disk when it returns); each commit is one `BEGIN
IMMEDIATE` transaction that takes the write lock first, checks every expected version, then
writes, so concurrent commits from any thread or process serialise. SQLite compares TEXT with
`memcmp`, which is the contract's byte order.

Threading: each thread gets its own connection (sqlite3 connections are not shared across
threads), opened on its first call; any number of threads and processes may use one file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Optional, Sequence, Union

from .storage import Entry, StorageConflict, Versioned, Write, prefix_upper_bound

__all__ = ["SQLiteStorage"]

#: How long a connection waits for another writer before the call fails, in seconds.
BUSY_TIMEOUT_SECS = 5.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1)
) WITHOUT ROWID
"""

_GET = "SELECT value, version FROM kv WHERE key = ?"
_SCAN = {
    (False, False): "SELECT key, value, version FROM kv WHERE key >= ? ORDER BY key LIMIT ?",
    (True, False): "SELECT key, value, version FROM kv WHERE key > ? ORDER BY key LIMIT ?",
    (False, True): "SELECT key, value, version FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?",
    (True, True): "SELECT key, value, version FROM kv WHERE key > ? AND key < ? ORDER BY key LIMIT ?",
}
_INSERT = "INSERT INTO kv (key, value, version) VALUES (?, ?, 1) ON CONFLICT (key) DO NOTHING"
_UPDATE = "UPDATE kv SET value = ?, version = version + 1 WHERE key = ? AND version = ?"
_DELETE = "DELETE FROM kv WHERE key = ? AND version = ?"
_EXISTS = "SELECT 1 FROM kv WHERE key = ?"


class SQLiteStorage:
    """The storage contract over the SQLite file at `path` (created if needed)."""

    def __init__(self, path: Union[str, "os.PathLike[str]"]) -> None:
        self.path = os.fspath(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        conn = self.connection()
        conn.execute(SCHEMA)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode: transactions are explicit)."""
        conn: Optional[sqlite3.Connection] = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_SECS, isolation_level=None, check_same_thread=False
            )
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal" and self.path != ":memory:":
                conn.close()
                raise sqlite3.OperationalError(f"{self.path} refused WAL mode (journal_mode {mode})")
            conn.execute("PRAGMA synchronous = FULL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Closes every thread's connection; the storage must not be used afterwards."""
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    def clear(self) -> None:
        """Deletes every key (the conformance driver's `reset`); other tables are left alone."""
        self.connection().execute("DELETE FROM kv")

    def get(self, key: str) -> Optional[Versioned]:
        row = self.connection().execute(_GET, (key,)).fetchone()
        return None if row is None else Versioned(value=row[0], version=row[1])

    def scan(self, prefix: str, after: Optional[str], limit: int) -> list[Entry]:
        if limit <= 0:
            return []
        exclusive = after is not None and after >= prefix
        lower = after if exclusive and after is not None else prefix
        upper = prefix_upper_bound(prefix)
        params: tuple[object, ...] = (lower, upper, limit) if upper is not None else (lower, limit)
        rows = self.connection().execute(_SCAN[(exclusive, upper is not None)], params)
        return [Entry(key=k, value=Versioned(value=v, version=n)) for k, v, n in rows]

    def commit(self, writes: Sequence[Write]) -> None:
        if not writes:
            return
        if len({w.key for w in writes}) != len(writes):
            raise ValueError("the batch names a key twice")
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for w in writes:
                if not _apply(conn, w):
                    raise StorageConflict()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _apply(conn: sqlite3.Connection, w: Write) -> bool:
    """One write inside the open transaction; False when its expectation does not hold."""
    if w.value is not None:
        if w.expect is None:
            return conn.execute(_INSERT, (w.key, w.value)).rowcount == 1
        return conn.execute(_UPDATE, (w.value, w.key, w.expect)).rowcount == 1
    if w.expect is None:
        # BEGIN IMMEDIATE holds the write lock: no one can create the key before COMMIT.
        return conn.execute(_EXISTS, (w.key,)).fetchone() is None
    return conn.execute(_DELETE, (w.key, w.expect)).rowcount == 1
