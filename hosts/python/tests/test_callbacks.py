"""D2 and E1 at the Python boundary: whatever a storage, clock or randomness callback does
(raise, answer the wrong type, break the contract), the operation raises `StorageError` or
`ConflictError`, the cause is kept, and nothing is written."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import pytest
from conftest import CTX, PASSWORD, fast_config

import twofold
from twofold import Engine, Entry, MemoryStorage, StorageConflict, Versioned, Write


class Faulty(MemoryStorage):
    """A MemoryStorage whose methods can be made to misbehave, once or always."""

    def __init__(self) -> None:
        super().__init__()
        self.fault: dict[str, Any] = {}

    def _maybe(self, method: str) -> Any:
        fault = self.fault.get(method)
        if isinstance(fault, BaseException):
            raise fault
        return fault

    def get(self, key: str) -> Optional[Versioned]:
        fault = self._maybe("get")
        return fault if fault is not None else super().get(key)

    def scan(self, prefix: str, after: Optional[str], limit: int) -> list[Entry]:
        fault = self._maybe("scan")
        return fault if fault is not None else super().scan(prefix, after, limit)

    def commit(self, writes: Sequence[Write]) -> None:
        self._maybe("commit")
        super().commit(writes)


@pytest.fixture
def faulty() -> Faulty:
    return Faulty()


def account(engine: Engine) -> str:
    return engine.create_account(email="ada@example.com", password=PASSWORD, ctx=CTX).user_id


@pytest.mark.parametrize("method", ["get", "scan", "commit"])
def test_d2_a_raising_callback_is_a_storage_error_and_writes_nothing(faulty: Faulty, method: str) -> None:
    engine = Engine(fast_config(), faulty)
    user = account(engine)
    before = faulty.snapshot()
    boom = OSError("disk on fire")
    faulty.fault[method] = boom
    with pytest.raises(twofold.StorageError) as caught:
        engine.change_password(user_id=user, current_password=PASSWORD, new_password="another passphrase", ctx=CTX)
    assert caught.value.__cause__ is boom, "the storage's exception is chained"
    assert caught.value.code is twofold.ErrorCode.STORAGE and caught.value.status == 14
    assert faulty.snapshot() == before
    faulty.fault.clear()
    assert engine.status(user_id=user).user_id == user, "the engine works on afterwards"


@pytest.mark.parametrize(
    "method, answer",
    [
        ("get", "not a Versioned"),
        ("get", Versioned(value="{}", version=0)),  # version 0 breaks the contract
        ("get", Versioned(value="{}", version=-1)),  # ctypes would wrap it to 2^64 - 1
        ("scan", [("key", "value", 1)]),  # tuples, not Entry
        ("scan", [Entry(key="elsewhere/1", value=Versioned(value="{}", version=1))]),  # off-prefix
    ],
)
def test_e1_a_callback_answer_of_the_wrong_shape_is_a_storage_error(faulty: Faulty, method: str, answer: Any) -> None:
    engine = Engine(fast_config(), faulty)
    user = account(engine)
    before = faulty.snapshot()
    faulty.fault[method] = answer
    with pytest.raises(twofold.StorageError):
        engine.audit_events(user_id=user, ctx=CTX)
    assert faulty.snapshot() == before


def test_d2_commits_that_always_conflict_end_in_conflict(faulty: Faulty) -> None:
    engine = Engine(fast_config(max_conflict_retries=2), faulty)
    faulty.fault["commit"] = StorageConflict()
    with pytest.raises(twofold.ConflictError) as caught:
        account(engine)
    assert caught.value.__cause__ is None
    assert faulty.snapshot() == {}


def test_d2_a_conflict_from_get_breaks_the_contract(faulty: Faulty) -> None:
    engine = Engine(fast_config(), faulty)
    faulty.fault["get"] = StorageConflict()
    with pytest.raises(twofold.StorageError):
        account(engine)


def test_a_raising_clock_or_random_source_is_a_storage_error() -> None:
    storage = MemoryStorage()

    def clock() -> int:
        raise RuntimeError("no time")

    with pytest.raises(twofold.StorageError) as caught:
        Engine(fast_config(), storage, clock=clock).create_account(email="a@example.com", password=PASSWORD)
    assert isinstance(caught.value.__cause__, RuntimeError)
    with pytest.raises(twofold.StorageError):
        Engine(fast_config(), storage, random=lambda n: b"short").create_account(
            email="a@example.com", password=PASSWORD
        )
    assert storage.snapshot() == {}


def test_a_host_clock_and_randomness_are_used() -> None:
    seen: list[int] = []

    def random(n: int) -> bytes:
        seen.append(n)
        return bytes(range(n))

    engine = Engine(fast_config(), MemoryStorage(), clock=lambda: 1_767_225_600_000, random=random)
    user = account(engine)
    assert seen, "the engine drew its randomness from the host"
    assert engine.audit_events(user_id=user).events[0].at == 1_767_225_600_000


def test_keyboard_interrupt_in_a_callback_reaches_the_caller_after_a_clean_failure(faulty: Faulty) -> None:
    engine = Engine(fast_config(), faulty)
    faulty.fault["commit"] = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        account(engine)
    assert faulty.snapshot() == {}
