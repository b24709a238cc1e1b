"""Shared fixtures: the test configuration, the storages, a throwaway PostgreSQL server.

PostgreSQL tests are skipped with a message when its server programs are missing, unless
TWOFOLD_REQUIRE_POSTGRES=1 (`make test-python` sets it), which makes them fail instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pg import PostgresServer, server_bin  # noqa: E402

import twofold  # noqa: E402
from twofold import Argon2Params, AuditKey, Config, Context, Engine, SQLiteStorage  # noqa: E402

ORIGIN = "http://localhost:8080"
TEST_KEY = AuditKey(id="test", secret="8f1d5c0a3b7e9f2461d8c7b5a3e9f0c2d4b6a8e0f2c4d6b8a0e2f4c6d8b0a2e4")
CTX = Context(ip="198.51.100.4", user_agent="pytest", client_id="198.51.100.4")
PASSWORD = "correct horse battery staple"


def fast_config(**changes: Any) -> Config:
    """The testkit's fast configuration: cheap argon2, the test audit key."""
    fields: dict[str, Any] = dict(
        rp_id="localhost",
        rp_name="twofold test",
        origins=[ORIGIN],
        audit_keys=[TEST_KEY],
        password_hash=Argon2Params(m_kib=64, t=1, p=1),
        backup_code_hash=Argon2Params(m_kib=32, t=1, p=1),
    )
    fields.update(changes)
    return Config(**fields)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = server_bin()
    if bindir is None:
        message = "PostgreSQL's server programs (initdb) are not installed: run tests/setup.sh"
        if os.environ.get("TWOFOLD_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(bindir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.database()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[twofold.Storage]:
    """Each storage implementation in turn."""
    if request.param == "memory":
        yield twofold.MemoryStorage()
    elif request.param == "sqlite":
        sqlite = SQLiteStorage(tmp_path / "twofold.db")
        yield sqlite
        sqlite.close()
    else:
        from twofold.postgres import PostgresStorage

        pg = PostgresStorage(request.getfixturevalue("postgres_url"))
        yield pg
        pg.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[twofold.Storage]:
    """The two database storages."""
    if request.param == "sqlite":
        sqlite = SQLiteStorage(tmp_path / "twofold.db")
        yield sqlite
        sqlite.close()
    else:
        from twofold.postgres import PostgresStorage

        pg = PostgresStorage(request.getfixturevalue("postgres_url"))
        yield pg
        pg.close()


@pytest.fixture
def engine(database: twofold.Storage) -> Iterator[Engine]:
    with Engine(fast_config(), database) as e:
        yield e
