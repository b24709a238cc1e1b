"""Browser sessions of the web backend, in a `sessions` table beside the engine's `kv`.

H1: the table holds no secret. The cookie carries a random 256-bit id; the table keeps its
SHA-256. Between sign-in steps one and two the session is "pending": the cookie carries the id
and the engine's pending-sign-in token (`<id>.<token>`, HttpOnly, never readable by scripts),
and the table keeps the token's SHA-256, so a copy of the database can neither resume a
session nor finish a sign-in. Device tokens never reach the table (the engine keeps their
hashes). H2: each signed-in session records the account's security epoch at sign-in.

The schema is the Rust server's, so one database serves a mixed fleet; SQLite and PostgreSQL
share the SQL below (`?` placeholders become `%s` for psycopg).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

__all__ = ["REMEMBERED_SECS", "Session", "Sessions"]

#: A remembered session's lifetime (and its cookie's Max-Age): 30 days.
REMEMBERED_SECS = 30 * 24 * 60 * 60
#: A session that is not remembered ends with the browser; the server drops it after 12 hours.
NOT_REMEMBERED_SECS = 12 * 60 * 60
#: A pending sign-in's row; the engine voids the token itself after 5 minutes.
PENDING_SECS = 10 * 60

SCHEMA = """CREATE TABLE IF NOT EXISTS sessions (
    id_hash text PRIMARY KEY,
    user_id text NOT NULL,
    epoch bigint NOT NULL,
    remember boolean NOT NULL,
    pending_hash text,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL
)"""
COLUMNS = ["id_hash", "user_id", "epoch", "remember", "pending_hash", "created_at", "expires_at"]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    """A live session: signed in, or pending (then `pending_token` is set)."""

    id: str
    user_id: str
    epoch: int
    remember: bool
    pending_token: Optional[str] = None


class Sessions:
    """The sessions table over one database. `connect` gives this thread's DB-API connection
    (autocommit); `postgres` switches the placeholder style."""

    def __init__(self, connect: Callable[[], Any], postgres: bool) -> None:
        self._connect = connect
        self._postgres = postgres
        columns = [row[0] for row in self._rows(_columns_sql(postgres), ())]
        if not columns and not postgres:
            # PostgreSQL's comes with the shared schema (twofold.postgres.MIGRATIONS).
            self._run(SCHEMA, ())
        elif sorted(columns) != sorted(COLUMNS):
            raise RuntimeError(
                "the database has a sessions table of another layout "
                f"({', '.join(columns) or 'none'}); expected {', '.join(COLUMNS)}: "
                "a server of another version made it"
            )

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._postgres else sql

    def _run(self, sql: str, params: Sequence[object]) -> int:
        cur = self._connect().execute(self._sql(sql), params)
        return int(cur.rowcount)

    def _rows(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        return list(self._connect().execute(self._sql(sql), params).fetchall())

    def get(self, cookie: str) -> Optional[Session]:
        """The live session this cookie value stands for, if any."""
        sid, _, token = cookie.partition(".")
        rows = self._rows(
            "SELECT user_id, epoch, remember, pending_hash FROM sessions "
            "WHERE id_hash = ? AND expires_at > ?",
            (_sha256(sid), int(time.time())),
        )
        if not rows:
            return None
        user_id, epoch, remember, pending_hash = rows[0]
        if pending_hash is None:
            return None if token else Session(sid, user_id, int(epoch), bool(remember))
        if not token or not hmac.compare_digest(_sha256(token), pending_hash):
            return None
        return Session(sid, user_id, int(epoch), bool(remember), pending_token=token)

    def _create(self, user_id: str, epoch: int, remember: bool, pending: Optional[str], life: int) -> str:
        sid = secrets.token_hex(32)
        now = int(time.time())
        self._run("DELETE FROM sessions WHERE expires_at <= ?", (now,))
        self._run(
            "INSERT INTO sessions (id_hash, user_id, epoch, remember, pending_hash, created_at, "
            "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                _sha256(sid),
                user_id,
                epoch,
                remember,
                None if pending is None else _sha256(pending),
                now,
                now + life,
            ),
        )
        return sid

    def sign_in(self, user_id: str, epoch: int, remember: bool) -> str:
        """A new signed-in session; answers the cookie value."""
        life = REMEMBERED_SECS if remember else NOT_REMEMBERED_SECS
        return self._create(user_id, epoch, remember, None, life)

    def pend(self, pending_token: str) -> str:
        """A new pending sign-in; answers the cookie value (`<id>.<token>`)."""
        user_id = pending_token.partition(".")[0]
        return self._create(user_id, 0, False, pending_token, PENDING_SECS) + "." + pending_token

    def end(self, session_id: str) -> None:
        """Ends one session (nothing happens when there is none)."""
        self._run("DELETE FROM sessions WHERE id_hash = ?", (_sha256(session_id),))

    def adopt_epoch(self, session: Session, epoch: int) -> None:
        """H2: the account's protection changed through this session: it keeps the new epoch
        and every other session of the account ends."""
        id_hash = _sha256(session.id)
        self._run("UPDATE sessions SET epoch = ? WHERE id_hash = ?", (epoch, id_hash))
        self._run("DELETE FROM sessions WHERE user_id = ? AND id_hash <> ?", (session.user_id, id_hash))

    def clear(self) -> None:
        """Deletes every session (tests)."""
        self._run("DELETE FROM sessions", ())


def _columns_sql(postgres: bool) -> str:
    if postgres:
        return (
            "SELECT column_name::text FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'sessions'"
        )
    return "SELECT name FROM pragma_table_info('sessions')"
