//! The storage contract of `twofold_proto::Storage` as executable checks, for any backend.
//!
//! [`check_storage_contract`] takes a function that opens another handle onto one store, empty
//! when the suite starts (for a database: a new connection to the same database). Each check
//! works under a key prefix of its own, so the checks share the store without seeing each
//! other's keys, and the concurrent checks give each thread its own handle, as engine workers
//! would have. A check that finds the contract broken panics with a message naming the rule.

use std::collections::BTreeMap;
use std::sync::Barrier;

use twofold_proto::{Entry, Expect, HostError, Storage, Versioned, Write};

/// Opens another handle onto the store under test.
pub type MakeStore<'a> = &'a dyn Fn() -> Box<dyn Storage + Send>;

/// Runs every check of the contract against the store `make` opens.
pub fn check_storage_contract(make: MakeStore<'_>) {
    let store = make();
    let store = &*store;
    empty_store(store);
    versions_start_at_one_and_grow_by_one(store);
    missing_keys(store);
    every_mismatch_is_a_conflict_and_changes_nothing(store);
    batches_are_all_or_nothing(store);
    deletes(store);
    scan_order_is_byte_order(store);
    scan_prefix_bounds(store);
    scan_after_and_limit(store);
    values_up_to_one_mib_round_trip(store);
    empty_batch(store);
    absent_guards_are_serialisable(make);
    concurrent_increments(make);
    whole_store_scan(store);
}

/// A put.
pub fn put(key: &str, value: &str, expect: Expect) -> Write {
    Write {
        key: key.to_owned(),
        value: Some(value.to_owned()),
        expect,
    }
}

/// A delete.
pub fn delete(key: &str, expect: Expect) -> Write {
    Write {
        key: key.to_owned(),
        value: None,
        expect,
    }
}

fn commit_ok(store: &dyn Storage, writes: &[Write], what: &str) {
    if let Err(e) = store.commit(writes) {
        panic!("{what}: commit should apply, got {e:?}");
    }
}

fn commit_conflicts(store: &dyn Storage, writes: &[Write], what: &str) {
    match store.commit(writes) {
        Err(HostError::Conflict) => {}
        other => panic!("{what}: commit should answer Conflict, got {other:?}"),
    }
}

fn get(store: &dyn Storage, key: &str) -> Option<Versioned> {
    match store.get(key) {
        Ok(found) => found,
        Err(e) => panic!("get({key:?}) failed: {e:?}"),
    }
}

fn scan(store: &dyn Storage, prefix: &str, after: Option<&str>, limit: u32) -> Vec<Entry> {
    match store.scan(prefix, after, limit) {
        Ok(entries) => entries,
        Err(e) => panic!("scan({prefix:?}, {after:?}, {limit}) failed: {e:?}"),
    }
}

fn keys(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.key.as_str()).collect()
}

/// Every entry under `prefix`, read in pages of `page`, checking on the way that a page with
/// fewer than `page` entries is the last one.
pub fn scan_all(store: &dyn Storage, prefix: &str, page: u32) -> Vec<Entry> {
    let mut all: Vec<Entry> = Vec::new();
    loop {
        let after = all.last().map(|e| e.key.clone());
        let batch = scan(store, prefix, after.as_deref(), page);
        assert!(
            batch.len() <= page as usize,
            "scan({prefix:?}) returned {} entries for limit {page}",
            batch.len()
        );
        let short = batch.len() < page as usize;
        all.extend(batch);
        if short {
            let after = all.last().map(|e| e.key.clone());
            let rest = scan(store, prefix, after.as_deref(), page);
            assert!(
                rest.is_empty(),
                "scan({prefix:?}) returned fewer than limit but more followed: {:?}",
                keys(&rest)
            );
            return all;
        }
    }
}

/// Everything under `prefix`, as a map, to compare before and after a refused commit.
fn snapshot(store: &dyn Storage, prefix: &str) -> BTreeMap<String, Versioned> {
    scan_all(store, prefix, 1000)
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect()
}

/// Fills `keys` with version-1 values equal to their key.
fn seed(store: &dyn Storage, keys: &[&str]) {
    let writes: Vec<Write> = keys.iter().map(|k| put(k, k, Expect::Absent)).collect();
    commit_ok(store, &writes, "seeding");
}

/// A new store holds nothing.
pub fn empty_store(store: &dyn Storage) {
    assert_eq!(
        keys(&scan(store, "", None, 10)),
        Vec::<&str>::new(),
        "the store should start empty"
    );
}

/// Versions: 1 after the first put, one more after every put.
pub fn versions_start_at_one_and_grow_by_one(store: &dyn Storage) {
    let key = "ver/k";
    commit_ok(store, &[put(key, "v1", Expect::Absent)], "first put");
    assert_eq!(
        get(store, key),
        Some(Versioned {
            value: "v1".into(),
            version: 1
        }),
        "a new key has version 1"
    );
    for version in 1..=5_u64 {
        let value = format!("v{}", version + 1);
        commit_ok(
            store,
            &[put(key, &value, Expect::Version(version))],
            "update",
        );
        assert_eq!(
            get(store, key),
            Some(Versioned {
                value,
                version: version + 1
            }),
            "a put at version {version} leaves version {}",
            version + 1
        );
    }
}

/// A key never written, or under a prefix with nothing, reads as nothing.
pub fn missing_keys(store: &dyn Storage) {
    assert_eq!(get(store, "missing/k"), None, "get of a missing key");
    assert!(
        scan(store, "missing/", None, 10).is_empty(),
        "scan of an empty prefix"
    );
}

/// Every kind of mismatch answers Conflict and leaves storage as it was.
pub fn every_mismatch_is_a_conflict_and_changes_nothing(store: &dyn Storage) {
    let present = "conf/present";
    let at3 = "conf/at3";
    let missing = "conf/missing";
    seed(store, &[present, at3]);
    commit_ok(store, &[put(at3, "2", Expect::Version(1))], "to version 2");
    commit_ok(store, &[put(at3, "3", Expect::Version(2))], "to version 3");
    let before = snapshot(store, "conf/");
    let cases: Vec<(&str, Write)> = vec![
        (
            "put expecting absent, key present",
            put(present, "x", Expect::Absent),
        ),
        (
            "delete expecting absent, key present",
            delete(present, Expect::Absent),
        ),
        (
            "put expecting a version, key absent",
            put(missing, "x", Expect::Version(1)),
        ),
        (
            "delete expecting a version, key absent",
            delete(missing, Expect::Version(1)),
        ),
        (
            "put expecting an older version",
            put(at3, "x", Expect::Version(2)),
        ),
        (
            "put expecting a newer version",
            put(at3, "x", Expect::Version(4)),
        ),
        (
            "delete expecting an older version",
            delete(at3, Expect::Version(2)),
        ),
        (
            "delete expecting a newer version",
            delete(at3, Expect::Version(4)),
        ),
        ("put expecting version 0", put(at3, "x", Expect::Version(0))),
        (
            "put expecting the largest version",
            put(at3, "x", Expect::Version(u64::MAX)),
        ),
        (
            "delete expecting the largest version",
            delete(at3, Expect::Version(u64::MAX)),
        ),
    ];
    for (what, write) in cases {
        commit_conflicts(store, std::slice::from_ref(&write), what);
        assert_eq!(snapshot(store, "conf/"), before, "{what}: storage changed");
    }
}

/// A batch with one failing expectation applies none of its writes, wherever that write is.
pub fn batches_are_all_or_nothing(store: &dyn Storage) {
    let (a, b, z, new) = ("aon/a", "aon/b", "aon/z", "aon/new");
    seed(store, &[a, b, z]);
    let before = snapshot(store, "aon/");
    let good = || {
        vec![
            put(a, "a2", Expect::Version(1)),
            delete(b, Expect::Version(1)),
            put(new, "new", Expect::Absent),
        ]
    };
    let bad = put(z, "z2", Expect::Version(7));
    // The bad write last in the batch and last in key order.
    let mut last = good();
    last.push(bad.clone());
    commit_conflicts(store, &last, "conflict in the last write");
    assert_eq!(
        snapshot(store, "aon/"),
        before,
        "the first writes were applied"
    );
    // First in the batch, last in key order.
    let mut first = vec![bad.clone()];
    first.extend(good());
    commit_conflicts(store, &first, "conflict in the first write");
    assert_eq!(
        snapshot(store, "aon/"),
        before,
        "the later writes were applied"
    );
    // In the middle, with a conflicting absent-put.
    let mut middle = good();
    middle.insert(1, put(z, "z2", Expect::Absent));
    commit_conflicts(store, &middle, "conflict in the middle");
    assert_eq!(
        snapshot(store, "aon/"),
        before,
        "part of the batch was applied"
    );
    // All expectations hold: everything applies at once.
    let mut all = good();
    all.push(put(z, "z2", Expect::Version(1)));
    commit_ok(store, &all, "a batch whose expectations all hold");
    let after = snapshot(store, "aon/");
    let expected: BTreeMap<String, Versioned> = [(a, "a2", 2), (new, "new", 1), (z, "z2", 2)]
        .into_iter()
        .map(|(k, v, version)| {
            (
                k.to_owned(),
                Versioned {
                    value: v.to_owned(),
                    version,
                },
            )
        })
        .collect();
    assert_eq!(after, expected, "the applied batch");
}

/// Deletes remove keys; a key re-created after a delete starts again at version 1; deleting
/// a missing key that is expected absent changes nothing.
pub fn deletes(store: &dyn Storage) {
    let key = "del/k";
    seed(store, &[key]);
    commit_ok(store, &[put(key, "2", Expect::Version(1))], "update");
    commit_ok(store, &[delete(key, Expect::Version(2))], "delete");
    assert_eq!(get(store, key), None, "a deleted key is gone");
    assert!(scan(store, "del/", None, 10).is_empty(), "and not scanned");
    commit_ok(
        store,
        &[delete(key, Expect::Absent)],
        "delete of a missing key",
    );
    assert_eq!(
        get(store, key),
        None,
        "deleting a missing key creates nothing"
    );
    commit_ok(store, &[put(key, "again", Expect::Absent)], "re-create");
    assert_eq!(
        get(store, key).map(|v| v.version),
        Some(1),
        "a re-created key starts at version 1"
    );
    // A delete and a put of other keys in one batch.
    commit_ok(
        store,
        &[
            delete(key, Expect::Version(1)),
            put("del/other", "o", Expect::Absent),
        ],
        "delete and put together",
    );
    assert_eq!(keys(&scan(store, "del/", None, 10)), vec!["del/other"]);
}

/// Keys of the order checks: ASCII classes, separators, multi-byte UTF-8, the edges of the
/// surrogate gap and the last code point.
const ORDER_KEYS: &[&str] = &[
    "ord/a",
    "ord/B",
    "ord/b",
    "ord/A",
    "ord/Z",
    "ord/z",
    "ord/0",
    "ord/9",
    "ord/10",
    "ord/~",
    "ord//",
    "ord/-",
    "ord/ ",
    "ord/_",
    "ord/a/b",
    "ord/a~",
    "ord/a0",
    "ord/e",
    "ord/é",
    "ord/f",
    "ord/ÿ",
    "ord/Ā",
    "ord/😀",
    "ord/😀/x",
    "ord/\u{7f}",
    "ord/\u{1}",
    "ord/\u{D7FF}",
    "ord/\u{E000}",
    "ord/\u{FFFD}",
    "ord/\u{10FFFF}",
    "ord/日本",
];

/// Scans return keys in ascending byte order, whatever the characters.
pub fn scan_order_is_byte_order(store: &dyn Storage) {
    seed(store, ORDER_KEYS);
    let mut expected: Vec<&str> = ORDER_KEYS.to_vec();
    expected.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(
        keys(&scan(store, "ord/", None, 100)),
        expected,
        "byte order"
    );
    assert_eq!(
        keys(&scan_all(store, "ord/", 4)),
        expected,
        "byte order across pages"
    );
    for entry in scan(store, "ord/", None, 100) {
        assert_eq!(
            entry.value.value, entry.key,
            "scan pairs each key with its value"
        );
        assert_eq!(entry.value.version, 1);
    }
}

/// A prefix selects exactly the keys that start with it, including where the prefix is itself
/// a key or a prefix of another prefix, and where the next string after it is not a plain
/// byte increment (the last character's encoding ends in 0xBF, is the last before the
/// surrogates, or is U+10FFFF).
pub fn scan_prefix_bounds(store: &dyn Storage) {
    let all = [
        "pp/",
        "pp/a",
        "pp/aa",
        "pp/ab",
        "pp/ab/x",
        "pp/abc",
        "pp/abd",
        "pp/ab\u{10FFFF}",
        "pp/b",
        "pp0",
        "hi/ÿ",
        "hi/ÿa",
        "hi/Ā",
        "hi/\u{D7FF}",
        "hi/\u{D7FF}x",
        "hi/\u{E000}",
        "hi/\u{10FFFF}",
        "hi/\u{10FFFF}z",
        "hi0",
        "hj",
        "\u{10FFFF}",
        "\u{10FFFF}\u{10FFFF}k",
    ];
    seed(store, &all);
    let cases: &[(&str, &[&str])] = &[
        (
            "pp/ab",
            &["pp/ab", "pp/ab/x", "pp/abc", "pp/abd", "pp/ab\u{10FFFF}"],
        ),
        ("pp/abc", &["pp/abc"]),
        (
            "pp/a",
            &[
                "pp/a",
                "pp/aa",
                "pp/ab",
                "pp/ab/x",
                "pp/abc",
                "pp/abd",
                "pp/ab\u{10FFFF}",
            ],
        ),
        (
            "pp/",
            &[
                "pp/",
                "pp/a",
                "pp/aa",
                "pp/ab",
                "pp/ab/x",
                "pp/abc",
                "pp/abd",
                "pp/ab\u{10FFFF}",
                "pp/b",
            ],
        ),
        ("pp/c", &[]),
        ("hi/ÿ", &["hi/ÿ", "hi/ÿa"]),
        ("hi/\u{D7FF}", &["hi/\u{D7FF}", "hi/\u{D7FF}x"]),
        ("hi/\u{10FFFF}", &["hi/\u{10FFFF}", "hi/\u{10FFFF}z"]),
        (
            "hi/",
            &[
                "hi/ÿ",
                "hi/ÿa",
                "hi/Ā",
                "hi/\u{D7FF}",
                "hi/\u{D7FF}x",
                "hi/\u{E000}",
                "hi/\u{10FFFF}",
                "hi/\u{10FFFF}z",
            ],
        ),
        ("\u{10FFFF}", &["\u{10FFFF}", "\u{10FFFF}\u{10FFFF}k"]),
        ("\u{10FFFF}\u{10FFFF}", &["\u{10FFFF}\u{10FFFF}k"]),
    ];
    for (prefix, expected) in cases {
        assert_eq!(
            keys(&scan(store, prefix, None, 100)),
            expected.to_vec(),
            "scan of prefix {prefix:?}"
        );
    }
}

/// `after` is exclusive and may lie before, inside or beyond the prefix's keys; `limit` caps
/// the answer, 0 included.
pub fn scan_after_and_limit(store: &dyn Storage) {
    let ns: Vec<String> = (0..10).map(|i| format!("pg/{i:02}")).collect();
    let refs: Vec<&str> = ns.iter().map(String::as_str).collect();
    seed(store, &refs);
    seed(store, &["pf", "ph"]);
    let page = |after: Option<&str>, limit: u32| keys(&scan(store, "pg/", after, limit)).join(",");
    assert_eq!(page(None, 3), "pg/00,pg/01,pg/02");
    assert_eq!(page(Some("pg/03"), 3), "pg/04,pg/05,pg/06", "after a key");
    assert_eq!(page(Some("pg/035"), 2), "pg/04,pg/05", "after a non-key");
    assert_eq!(page(Some("pf"), 2), "pg/00,pg/01", "after below the prefix");
    assert_eq!(page(Some("pg/"), 1), "pg/00", "after equal to the prefix");
    assert_eq!(page(Some("pg/09"), 5), "", "after the last key");
    assert_eq!(page(Some("ph"), 5), "", "after beyond the prefix");
    assert_eq!(page(None, 0), "", "limit 0");
    assert_eq!(page(None, 1), "pg/00", "limit 1");
    assert_eq!(
        page(Some("pg/07"), 100),
        "pg/08,pg/09",
        "fewer than the limit"
    );
    assert_eq!(page(None, 10).split(',').count(), 10, "exactly the limit");
    assert_eq!(
        page(None, u32::MAX).split(',').count(),
        10,
        "the largest limit"
    );
    for size in [1, 2, 3, 10, 11] {
        assert_eq!(
            keys(&scan_all(store, "pg/", size)),
            refs,
            "paging by {size} finds every key once, in order"
        );
    }
}

/// A JSON document of exactly `len` bytes, mixing one-, two- and four-byte characters.
fn document(len: usize, salt: char) -> String {
    let mut doc = String::with_capacity(len);
    doc.push_str("{\"blob\":\"");
    let body = ['a', 'é', '😀', salt];
    let mut i = 0;
    while doc.len() + 2 + 4 <= len {
        doc.push(body[i % body.len()]);
        i += 1;
    }
    while doc.len() + 2 < len {
        doc.push('a');
    }
    doc.push_str("\"}");
    doc
}

/// Values of up to 1 MiB are stored and read back exactly, by get and by scan.
pub fn values_up_to_one_mib_round_trip(store: &dyn Storage) {
    let key = "big/k";
    let first = document(1 << 20, 'x');
    assert_eq!(first.len(), 1 << 20);
    commit_ok(store, &[put(key, &first, Expect::Absent)], "a 1 MiB value");
    assert_eq!(get(store, key).map(|v| v.value == first), Some(true), "get");
    let second = document(1 << 20, 'y');
    commit_ok(
        store,
        &[put(key, &second, Expect::Version(1))],
        "replacing it",
    );
    let scanned = scan(store, "big/", None, 10);
    assert_eq!(scanned.len(), 1);
    assert!(
        scanned
            .iter()
            .all(|e| e.value.value == second && e.value.version == 2),
        "scan returns the replaced 1 MiB value"
    );
    commit_ok(
        store,
        &[put("big/empty", "", Expect::Absent)],
        "an empty value",
    );
    assert_eq!(
        get(store, "big/empty").map(|v| v.value),
        Some(String::new())
    );
}

/// An empty batch succeeds and changes nothing.
pub fn empty_batch(store: &dyn Storage) {
    let before = snapshot(store, "");
    commit_ok(store, &[], "the empty batch");
    assert_eq!(
        snapshot(store, ""),
        before,
        "the empty batch changed storage"
    );
}

/// Commits are serialisable even where a write only asserts that a key is absent: two commits
/// that each create the key the other asserts absent cannot both apply (write skew).
pub fn absent_guards_are_serialisable(make: MakeStore<'_>) {
    const ROUNDS: usize = 60;
    let stores = [make(), make()];
    let barrier = Barrier::new(2);
    let results: Vec<Vec<Result<(), HostError>>> = std::thread::scope(|s| {
        let handles: Vec<_> = stores
            .into_iter()
            .enumerate()
            .map(|(side, store)| {
                let barrier = &barrier;
                s.spawn(move || {
                    (0..ROUNDS)
                        .map(|round| {
                            let a = format!("skew/{round:03}/a");
                            let b = format!("skew/{round:03}/b");
                            let batch = if side == 0 {
                                [delete(&a, Expect::Absent), put(&b, "0", Expect::Absent)]
                            } else {
                                [put(&a, "1", Expect::Absent), delete(&b, Expect::Absent)]
                            };
                            barrier.wait();
                            store.commit(&batch)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let store = make();
    let store = &*store;
    let rounds = results[0].iter().zip(&results[1]).enumerate();
    for (round, (r0, r1)) in rounds {
        for r in [r0, r1] {
            assert!(
                matches!(r, Ok(()) | Err(HostError::Conflict)),
                "round {round}: a racing commit answered {r:?}"
            );
        }
        assert!(
            !(r0.is_ok() && r1.is_ok()),
            "round {round}: both commits applied, which no serial order allows"
        );
        let a = get(store, &format!("skew/{round:03}/a")).is_some();
        let b = get(store, &format!("skew/{round:03}/b")).is_some();
        assert_eq!(
            (a, b),
            (r1.is_ok(), r0.is_ok()),
            "round {round}: storage vs answers"
        );
    }
}

/// Four threads, each with its own handle, add 1 to one counter 200 times each by
/// read-modify-write, retrying on Conflict: no increment may be lost or applied twice.
pub fn concurrent_increments(make: MakeStore<'_>) {
    const THREADS: usize = 4;
    const EACH: u64 = 200;
    let key = "ctr/n";
    let stores: Vec<Box<dyn Storage + Send>> = (0..THREADS).map(|_| make()).collect();
    commit_ok(&*stores[0], &[put(key, "0", Expect::Absent)], "the counter");
    let barrier = Barrier::new(THREADS);
    let conflicts: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = stores
            .into_iter()
            .map(|store| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let mut conflicts = 0_u64;
                    for _ in 0..EACH {
                        loop {
                            let current =
                                get(&*store, key).unwrap_or_else(|| panic!("the counter vanished"));
                            let n: u64 = current.value.parse().unwrap_or_else(|e| {
                                panic!("the counter holds {:?}: {e}", current.value)
                            });
                            let next = (n + 1).to_string();
                            match store.commit(&[put(key, &next, Expect::Version(current.version))])
                            {
                                Ok(()) => break,
                                Err(HostError::Conflict) => {
                                    conflicts += 1;
                                    assert!(conflicts < 1_000_000, "no progress");
                                }
                                Err(e) => panic!("an increment failed: {e:?}"),
                            }
                        }
                    }
                    conflicts
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .sum()
    });
    let total = THREADS as u64 * EACH;
    assert_eq!(
        get(&*make(), key),
        Some(Versioned {
            value: total.to_string(),
            version: total + 1
        }),
        "after {total} increments ({conflicts} conflicts retried)"
    );
}

/// A scan of everything (the empty prefix: no upper bound) is in byte order, page by page.
pub fn whole_store_scan(store: &dyn Storage) {
    let all = scan_all(store, "", 7);
    assert!(
        all.windows(2)
            .all(|w| matches!(w, [x, y] if x.key.as_bytes() < y.key.as_bytes())),
        "a whole-store scan is strictly ascending"
    );
    let found: Vec<&str> = keys(&all);
    for key in ORDER_KEYS
        .iter()
        .chain(["ctr/n", "\u{10FFFF}\u{10FFFF}k"].iter())
    {
        assert!(found.contains(key), "the whole-store scan misses {key:?}");
    }
}

/// Every call on a store whose backend is unreachable answers Failed (never Conflict, which
/// would make the engine retry as if another writer had won). Returns the messages, for the
/// caller to check they hold no secret.
pub fn check_failure_is_failed(store: &dyn Storage) -> Vec<String> {
    let answers = [
        ("get", store.get("fail/k").map(drop)),
        ("scan", store.scan("fail/", None, 10).map(drop)),
        (
            "commit",
            store.commit(&[put("fail/k", "v", Expect::Absent)]),
        ),
    ];
    answers
        .into_iter()
        .map(|(call, answer)| match answer {
            Err(HostError::Failed(message)) => {
                assert!(!message.is_empty(), "{call}: an empty failure message");
                message
            }
            other => panic!("{call} on a broken store should answer Failed, got {other:?}"),
        })
        .collect()
}
