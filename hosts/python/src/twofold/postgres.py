"""`PostgresStorage`: the storage contract over PostgreSQL (psycopg 3), shared with every host.

The schema and the commit semantics are the Rust server's (hosts/wasmtime-server), so Rust,
Python and Node hosts can serve one database side by side:

- `kv(key text COLLATE "C" PRIMARY KEY, value text, version bigint)`: `COLLATE "C"` makes
  key order byte order whatever the database's collation; `twofold_schema` records the schema
  version (created under an advisory lock so that hosts starting together do not collide).
- A commit is one READ COMMITTED transaction of conditional statements in key order, each of
  which checks and locks its key at once: Absent+put is `INSERT ... ON CONFLICT DO NOTHING`,
  Version+put an `UPDATE ... WHERE version = v`, Version+delete a `DELETE ... WHERE version =
  v`; 0 rows is a conflict. Absent+delete claims the key with a placeholder insert and
  deletes it again in the same transaction: a bare "is it there?" read would allow write
  skew. Every commit thus holds all its keys' locks until it ends (strict two-phase locking),
  and keys are locked in one order, so commits never deadlock each other. SQLSTATE 40001
  (serialization failure) and 40P01 (deadlock) are conflicts too, so the engine retries.
- A connection that breaks during `COMMIT` leaves the outcome unknown; it is settled by
  asking a new connection about the transaction id (`pg_xact_status`).

Threading: each thread gets its own connection (opened on its first call), so calls run in
parallel; a broken connection is replaced on the next call, and a read is retried once on the
new one. Messages name SQLSTATEs and the server's primary message, never a key or the URL's
password.
"""

from __future__ import annotations

import threading
from typing import Any, Optional, Sequence

import psycopg

from .storage import Entry, StorageConflict, Versioned, Write, prefix_upper_bound

__all__ = ["PostgresStorage", "PostgresError"]

#: Statement lock timeout when the server sets none: a commit behind a stuck transaction fails
#: instead of hanging its thread (as SQLite's busy timeout does).
DEFAULT_LOCK_TIMEOUT_MS = 5000
DEFAULT_CONNECT_TIMEOUT_SECS = 10

#: `MIGRATIONS[i]` takes a database from schema version i to i + 1. The list is shared with the
#: Rust server (hosts/wasmtime-server/src/store/postgres.rs): every host on one database must
#: know the same steps. Step 2 is the sample servers' sessions table (twofold/web/sessions.py),
#: kept here so that servers of either language share sessions.
MIGRATIONS = (
    """CREATE TABLE IF NOT EXISTS kv (
         key text COLLATE "C" PRIMARY KEY,
         value text NOT NULL,
         version bigint NOT NULL CHECK (version >= 1)
     )""",
    """CREATE TABLE IF NOT EXISTS sessions (
         id_hash text PRIMARY KEY,
         user_id text NOT NULL,
         epoch bigint NOT NULL,
         remember boolean NOT NULL,
         pending_hash text,
         created_at bigint NOT NULL,
         expires_at bigint NOT NULL
     );
     CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at)""",
)
#: "twofold" in ASCII: the advisory lock that serialises schema creation between hosts.
SCHEMA_LOCK = 0x0074776F666F6C64
SCHEMA_TABLE = """CREATE TABLE IF NOT EXISTS twofold_schema (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        version integer NOT NULL
    )"""

_GET = "SELECT value, version FROM kv WHERE key = %s"
_SCAN = {
    (False, False): "SELECT key, value, version FROM kv WHERE key >= %s ORDER BY key LIMIT %s",
    (True, False): "SELECT key, value, version FROM kv WHERE key > %s ORDER BY key LIMIT %s",
    (False, True): "SELECT key, value, version FROM kv WHERE key >= %s AND key < %s "
    "ORDER BY key LIMIT %s",
    (True, True): "SELECT key, value, version FROM kv WHERE key > %s AND key < %s "
    "ORDER BY key LIMIT %s",
}
_INSERT = "INSERT INTO kv (key, value, version) VALUES (%s, %s, 1) ON CONFLICT (key) DO NOTHING"
_UPDATE = "UPDATE kv SET value = %s, version = %s WHERE key = %s AND version = %s"
_DELETE_VERSION = "DELETE FROM kv WHERE key = %s AND version = %s"
_DELETE_KEY = "DELETE FROM kv WHERE key = %s"
_BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"
_XID = "SELECT pg_current_xact_id()::text"
_XACT_STATUS = "SELECT pg_xact_status(%s::text::xid8)"
#: serialization_failure and deadlock_detected: the server rolled back; running again may work.
_RETRYABLE = ("40001", "40P01")


class PostgresError(Exception):
    """A PostgreSQL call failed; the message holds no data and no password."""


def describe(e: BaseException) -> str:
    """SQLSTATE and primary message (never DETAIL, which can quote a key), or the client's."""
    if isinstance(e, psycopg.Error) and e.diag.sqlstate:
        return f"{e.diag.sqlstate} {e.diag.severity}: {e.diag.message_primary}"
    return f"{type(e).__name__}: {e}"


def _lost(conn: psycopg.Connection[Any], e: BaseException) -> bool:
    """Whether the connection is unusable after `e` (closed, class 08, or 57P shutdown)."""
    if conn.closed or conn.broken:
        return True
    state = e.diag.sqlstate if isinstance(e, psycopg.Error) else None
    return state is not None and (state.startswith("08") or state.startswith("57P"))


class _InDoubt(Exception):
    def __init__(self, xid: str, reason: str) -> None:
        super().__init__(reason)
        self.xid = xid
        self.reason = reason


class PostgresStorage:
    """The storage contract over the PostgreSQL database at `url` (`postgresql://...` or
    `key=value` form). Opening creates or migrates the schema and fails with `PostgresError`
    when the database cannot be used (not UTF8, a newer schema, a `kv` without byte order)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[psycopg.Connection[Any]] = []
        _migrate(self.connection())

    def connection(self) -> psycopg.Connection[Any]:
        """This thread's connection (autocommit: transactions are explicit), opened if needed."""
        conn: Optional[psycopg.Connection[Any]] = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=DEFAULT_CONNECT_TIMEOUT_SECS,
                application_name="twofold-python",
            )
            synchronous, lock_timeout = conn.execute(
                "SELECT current_setting('synchronous_commit'), current_setting('lock_timeout')"
            ).fetchone() or ("on", "0")
            # A commit must be durable when it returns; and never wait forever for a lock.
            if synchronous == "off":
                conn.execute("SET synchronous_commit = on")
            if lock_timeout == "0":
                conn.execute(f"SET lock_timeout = {DEFAULT_LOCK_TIMEOUT_MS}")
        except psycopg.Error as e:
            raise PostgresError(f"postgres: cannot connect: {describe(e)}") from None
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
        try:
            self.connection().execute("DELETE FROM kv")
        except psycopg.Error as e:
            raise PostgresError(f"postgres: {describe(e)}") from None

    def _read(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        for attempt in (1, 2):
            conn = self.connection()
            try:
                return conn.execute(sql, params, prepare=True).fetchall()
            except psycopg.Error as e:
                # Reading twice is harmless: retry once on a fresh connection.
                if attempt == 1 and _lost(conn, e):
                    conn.close()
                    continue
                raise PostgresError(f"postgres: {describe(e)}") from None
        raise PostgresError("postgres: unreachable")

    def get(self, key: str) -> Optional[Versioned]:
        _check_text(key)
        rows = self._read(_GET, (key,))
        return Versioned(value=rows[0][0], version=rows[0][1]) if rows else None

    def scan(self, prefix: str, after: Optional[str], limit: int) -> list[Entry]:
        _check_text(prefix)
        if after is not None:
            _check_text(after)
        if limit <= 0:
            return []
        exclusive = after is not None and after >= prefix
        lower = after if exclusive and after is not None else prefix
        upper = prefix_upper_bound(prefix)
        params: tuple[object, ...] = (lower, upper, limit) if upper is not None else (lower, limit)
        rows = self._read(_SCAN[(exclusive, upper is not None)], params)
        return [Entry(key=k, value=Versioned(value=v, version=n)) for k, v, n in rows]

    def commit(self, writes: Sequence[Write]) -> None:
        if not writes:
            return
        for w in writes:
            _check_text(w.key)
            if w.value is not None:
                _check_text(w.value)
        # One lock order for every commit, so two commits that share keys wait, not deadlock.
        ordered = sorted(writes, key=lambda w: w.key.encode())
        if any(a.key == b.key for a, b in zip(ordered, ordered[1:])):
            raise ValueError("the batch names a key twice")
        conn = self.connection()
        try:
            self._commit(conn, ordered)
        except _InDoubt as doubt:
            self._settle(doubt)

    def _commit(self, conn: psycopg.Connection[Any], ordered: Sequence[Write]) -> None:
        try:
            conn.execute(_BEGIN)
            row = conn.execute(_XID).fetchone()
            xid = str(row[0]) if row else ""
        except psycopg.Error as e:
            if _lost(conn, e):
                conn.close()
            raise PostgresError(f"postgres: {describe(e)}") from None
        try:
            for w in ordered:
                if not _apply(conn, w):
                    conn.execute("ROLLBACK")
                    raise StorageConflict()
        except psycopg.Error as e:
            _rollback(conn)
            if e.diag.sqlstate in _RETRYABLE:
                raise StorageConflict() from None
            raise PostgresError(f"postgres: {describe(e)}") from None
        try:
            conn.execute("COMMIT")
        except psycopg.Error as e:
            if e.diag.sqlstate in _RETRYABLE:
                raise StorageConflict() from None
            if e.diag.sqlstate:
                raise PostgresError(f"postgres: {describe(e)}") from None
            conn.close()
            raise _InDoubt(xid, describe(e)) from None

    def _settle(self, doubt: _InDoubt) -> None:
        """Whether a commit whose answer was lost happened, asked on a new connection."""
        try:
            rows = self._read(_XACT_STATUS, (doubt.xid,))
        except PostgresError:
            rows = []
        status = rows[0][0] if rows else None
        if status == "committed":
            return
        if status == "aborted":
            raise PostgresError(
                f"postgres: the connection broke during COMMIT ({doubt.reason}); "
                "the batch was not applied"
            )
        raise PostgresError(
            f"postgres: the connection broke during COMMIT ({doubt.reason}); "
            "whether the batch was applied is unknown"
        )


def _apply(conn: psycopg.Connection[Any], w: Write) -> bool:
    """One write inside the open transaction; False when its expectation does not hold."""
    if w.value is not None:
        if w.expect is None:
            cur = conn.execute(_INSERT, (w.key, w.value), prepare=True)
        else:
            cur = conn.execute(_UPDATE, (w.value, w.expect + 1, w.key, w.expect), prepare=True)
    elif w.expect is not None:
        cur = conn.execute(_DELETE_VERSION, (w.key, w.expect), prepare=True)
    else:
        # Claim the key as an insert would, then take the placeholder out again.
        cur = conn.execute(_INSERT, (w.key, ""), prepare=True)
        if cur.rowcount == 1:
            cur = conn.execute(_DELETE_KEY, (w.key,), prepare=True)
    return cur.rowcount == 1


def _rollback(conn: psycopg.Connection[Any]) -> None:
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error:
        conn.close()  # the server rolls back a transaction whose connection closed


def _check_text(text: str) -> None:
    if "\0" in text:
        raise PostgresError("postgres: keys and values cannot contain NUL characters")


def _migrate(conn: psycopg.Connection[Any]) -> None:
    """Creates or migrates the schema in one transaction, serialised with other hosts."""
    try:
        row = conn.execute("SHOW server_encoding").fetchone()
        if not row or row[0] != "UTF8":
            raise PostgresError(f"postgres: the database's encoding is {row and row[0]}; twofold needs UTF8")
        supported = len(MIGRATIONS)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            conn.execute(SCHEMA_TABLE)
            row = conn.execute("SELECT version FROM twofold_schema").fetchone()
            found = int(row[0]) if row else 0
            if found > supported:
                raise PostgresError(
                    f"postgres: the database has twofold schema {found}; this build knows up to {supported}"
                )
            for step in MIGRATIONS[found:]:
                for statement in filter(str.strip, step.split(";")):
                    conn.execute(statement)
            if found < supported:
                conn.execute(
                    "INSERT INTO twofold_schema (version) VALUES (%s) "
                    "ON CONFLICT (singleton) DO UPDATE SET version = excluded.version",
                    (supported,),
                )
            row = conn.execute(
                "SELECT collation_name::text FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = 'kv' AND column_name = 'key'"
            ).fetchone()
            if not row or row[0] != "C":
                raise PostgresError('postgres: table kv does not order keys byte-wise (COLLATE "C")')
    except psycopg.Error as e:
        raise PostgresError(f"postgres: cannot set up twofold's tables: {describe(e)}") from None
