"""The storage contract (D1, D2) on every storage: versions, all-or-nothing conditional
commits, byte-order scans, and the conflicts that keep concurrent commits serialisable."""

from __future__ import annotations

import threading
from typing import Optional

import pytest

import twofold
from twofold import StorageConflict, Write, prefix_upper_bound


def put(key: str, value: str, expect: Optional[int] = None) -> Write:
    return Write(key=key, value=value, expect=expect)


def delete(key: str, expect: Optional[int]) -> Write:
    return Write(key=key, value=None, expect=expect)


def test_d1_versions_start_at_one_and_grow(storage: twofold.Storage) -> None:
    assert storage.get("a") is None
    storage.commit([put("a", '{"n":1}')])
    first = storage.get("a")
    assert first is not None and (first.value, first.version) == ('{"n":1}', 1)
    storage.commit([put("a", '{"n":2}', expect=1)])
    second = storage.get("a")
    assert second is not None and (second.value, second.version) == ('{"n":2}', 2)
    storage.commit([delete("a", expect=2)])
    assert storage.get("a") is None


def test_d1_values_come_back_exactly(storage: twofold.Storage) -> None:
    value = '{"name":"Jörg 🔑","empty":"","quote":"\\"","nl":"a\\nb"}'
    storage.commit([put("k", value), put("e", "")])
    got = storage.get("k")
    assert got is not None and got.value == value
    empty = storage.get("e")
    assert empty is not None and empty.value == ""


@pytest.mark.parametrize(
    "batch",
    [
        [put("a", "x")],  # absent expected, present
        [put("a", "x", expect=2)],  # wrong version
        [delete("a", expect=2)],
        [delete("a", None)],  # must be absent, is present
        [put("b", "x", expect=1)],  # expects a version of a missing key
        [delete("b", expect=1)],
    ],
)
def test_d2_a_failed_expectation_is_a_conflict_and_applies_nothing(
    storage: twofold.Storage, batch: list[Write]
) -> None:
    storage.commit([put("a", "1")])
    with pytest.raises(StorageConflict):
        storage.commit([put("c", "new")] + batch + [put("d", "new")])
    assert storage.get("c") is None and storage.get("d") is None
    a = storage.get("a")
    assert a is not None and (a.value, a.version) == ("1", 1)


def test_d2_absent_delete_of_a_missing_key_succeeds(storage: twofold.Storage) -> None:
    storage.commit([delete("missing", None), put("other", "v")])
    assert storage.get("missing") is None and storage.get("other") is not None


def test_d2_a_batch_naming_a_key_twice_is_refused(storage: twofold.Storage) -> None:
    with pytest.raises(Exception) as caught:
        storage.commit([put("a", "1"), put("a", "2")])
    assert not isinstance(caught.value, StorageConflict)
    assert storage.get("a") is None


KEYS = ["user/B", "user/a", "user/z", "user/é", "user/\U0001f511", "user/a/b", "user0", "use"]


def test_d1_scans_are_in_byte_order_under_the_prefix(storage: twofold.Storage) -> None:
    storage.commit([put(k, k) for k in KEYS])
    expected = sorted([k for k in KEYS if k.startswith("user/")], key=lambda k: k.encode())
    assert [e.key for e in storage.scan("user/", None, 100)] == expected
    assert [e.key for e in storage.scan("user/", None, 2)] == expected[:2]
    assert [e.key for e in storage.scan("user/", expected[1], 100)] == expected[2:]
    assert [e.key for e in storage.scan("user/", "a", 100)] == expected  # `after` before the prefix
    assert [e.key for e in storage.scan("user/", expected[-1], 100)] == []
    assert [e.key for e in storage.scan("", None, 100)] == sorted(KEYS, key=lambda k: k.encode())
    entry = storage.scan("user/z", None, 1)[0]
    assert (entry.value.value, entry.value.version) == ("user/z", 1)


def test_d1_a_prefix_ending_in_the_last_code_point_still_scans(storage: twofold.Storage) -> None:
    keys = ["p\U0010ffff", "p\U0010ffffa", "q"]
    storage.commit([put(k, "v") for k in keys])
    assert [e.key for e in storage.scan("p\U0010ffff", None, 10)] == keys[:2]


def test_prefix_upper_bound_is_the_next_string() -> None:
    assert prefix_upper_bound("user/") == "user0"
    assert prefix_upper_bound("z/ÿ") == "z/Ā"
    assert prefix_upper_bound("\ud7ff") == "\ue000"
    assert prefix_upper_bound("a\U0010ffff") == "b"
    assert prefix_upper_bound("") is None


def _race(database: twofold.Storage, batches: list[list[Write]]) -> list[str]:
    outcomes: list[str] = []
    barrier = threading.Barrier(len(batches))

    def run(batch: list[Write]) -> None:
        barrier.wait()
        try:
            database.commit(batch)
            outcomes.append("ok")
        except StorageConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=run, args=(b,)) for b in batches]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return outcomes


def test_d2_racing_commits_on_one_version_let_exactly_one_through(database: twofold.Storage) -> None:
    database.commit([put("counter", "0")])
    outcomes = _race(database, [[put("counter", str(i), expect=1)] for i in range(8)])
    assert outcomes.count("ok") == 1, outcomes


def test_d2_absent_delete_allows_no_write_skew(database: twofold.Storage) -> None:
    """Each commit expects the other's key to be absent and creates its own: in any serial
    order the second sees the first's key, so both may never succeed (at PostgreSQL's READ
    COMMITTED this needs Absent+delete to claim its key)."""
    for round in range(20):
        x, y = f"x{round}", f"y{round}"
        outcomes = _race(
            database,
            [[delete(y, None), put(x, "1")], [delete(x, None), put(y, "1")]],
        )
        assert outcomes.count("ok") <= 1, (round, outcomes)
        assert (database.get(x) is None) or (database.get(y) is None)


def test_postgres_refuses_nul_and_keeps_byte_order(postgres_url: str) -> None:
    from twofold.postgres import PostgresError, PostgresStorage

    store = PostgresStorage(postgres_url)
    with pytest.raises(PostgresError):
        store.commit([put("a\0b", "v")])
    store.close()
    again = PostgresStorage(postgres_url)  # opening an existing schema is fine
    again.commit([put("B", "1"), put("a", "2")])
    assert [e.key for e in again.scan("", None, 10)] == ["B", "a"]
    again.close()
