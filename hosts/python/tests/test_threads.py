"""One engine shared by many threads (D2): concurrent operations all complete, and racing
second factors are accepted exactly once, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from conftest import CTX, ORIGIN, PASSWORD
from softkey import SoftKey
from test_lifecycle import step_one, two_factor_user

import twofold
from twofold import Engine, SignedIn, TwofoldError

T = TypeVar("T")


def race(n: int, run: Callable[[int], T]) -> list[object]:
    """Runs `run(i)` on n threads released together; answers results or exceptions."""
    barrier = threading.Barrier(n)

    def go(i: int) -> object:
        barrier.wait()
        try:
            return run(i)
        except TwofoldError as e:
            return e

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


def test_d2_threads_share_one_engine(engine: Engine) -> None:
    results = race(8, lambda i: engine.create_account(email=f"user{i}@example.com", password=PASSWORD, ctx=CTX))
    users = [r.user_id for r in results if isinstance(r, twofold.AccountCreated)]
    assert len(set(users)) == 8
    signed = race(
        8, lambda i: engine.sign_in(email=f"user{i}@example.com", password=PASSWORD, remember_me=False, ctx=CTX)
    )
    assert all(isinstance(s, SignedIn) for s in signed)
    statuses = race(8, lambda i: engine.status(user_id=users[i], ctx=CTX))
    assert [s.user_id for s in statuses if isinstance(s, twofold.Status)] == users


def test_b3_one_backup_code_raced_by_threads_is_accepted_once(engine: Engine) -> None:
    _, codes = two_factor_user(engine, SoftKey())
    pendings = [step_one(engine).pending_token for _ in range(6)]
    results = race(6, lambda i: engine.sign_in_backup_code(pending_token=pendings[i], code=codes[0], ctx=CTX))
    assert sum(isinstance(r, SignedIn) for r in results) == 1, results
    assert all(isinstance(r, (SignedIn, twofold.InvalidBackupCodeError)) for r in results), results


def test_s5_one_pending_token_raced_by_threads_signs_in_once(engine: Engine) -> None:
    key = SoftKey()
    two_factor_user(engine, key)
    pending = step_one(engine)
    assertions = [key.get(pending.options, ORIGIN) for _ in range(6)]
    results = race(
        6,
        lambda i: engine.sign_in_passkey(pending_token=pending.pending_token, credential=assertions[i], ctx=CTX),
    )
    assert sum(isinstance(r, SignedIn) for r in results) == 1, results
