//! An in-memory implementation of the `twofold:engine/storage` import, with fault injection,
//! for tests and demos.
//!
//! Clones share one map, so a test can hand a clone to an instance and inspect or sabotage
//! the same data from outside. [`MemoryStorage::fork`] makes an independent copy instead.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::bindings::twofold::engine::storage::{
    Entry, Expect, Host, StorageError, Versioned, Write,
};

/// How an injected fault makes a storage call fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The call answers `failed(message)`.
    Failed(String),
    /// The call answers `conflict`.
    Conflict,
}

impl Fault {
    fn error(&self) -> StorageError {
        match self {
            Fault::Failed(message) => StorageError::Failed(message.clone()),
            Fault::Conflict => StorageError::Conflict,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct State {
    /// Key to (value, version).
    map: BTreeMap<String, (Vec<u8>, u64)>,
    /// Calls made so far (get, scan and commit alike).
    calls: u64,
    /// Absolute call numbers (1-based) that fail, and how.
    planned: BTreeMap<u64, Fault>,
    /// A fault every commit gets until cleared.
    every_commit: Option<Fault>,
}

/// Versioned key-value storage in memory, implementing the storage contract of
/// `wit/storage.wit` (all-or-nothing commits, versions from 1).
#[derive(Clone, Debug, Default)]
pub struct MemoryStorage {
    state: Arc<Mutex<State>>,
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// An independent copy of the data (faults and the call count start afresh).
    pub fn fork(&self) -> MemoryStorage {
        let map = self.lock().map.clone();
        MemoryStorage {
            state: Arc::new(Mutex::new(State {
                map,
                ..State::default()
            })),
        }
    }

    /// Every key with its value and version, in key order.
    pub fn snapshot(&self) -> BTreeMap<String, (Vec<u8>, u64)> {
        self.lock().map.clone()
    }

    /// Storage calls answered so far.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// Makes the `n`-th call from now (1 = the next one) fail with `fault`, whatever it is.
    pub fn fail_nth_call(&self, n: u64, fault: Fault) {
        let mut state = self.lock();
        let at = state.calls + n.max(1);
        state.planned.insert(at, fault);
    }

    /// Makes every commit fail with `fault` until called with `None`.
    pub fn fail_every_commit(&self, fault: Option<Fault>) {
        self.lock().every_commit = fault;
    }

    /// Removes every planned fault.
    pub fn clear_faults(&self) {
        let mut state = self.lock();
        state.planned.clear();
        state.every_commit = None;
    }

    /// The state, even if a panicking test thread poisoned the lock (the map is only changed
    /// after every check has passed, so it is never half-written).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// Counts a call and answers its planned fault, if any.
    fn begin_call(&mut self) -> Result<(), StorageError> {
        self.calls += 1;
        match self.planned.remove(&self.calls) {
            Some(fault) => Err(fault.error()),
            None => Ok(()),
        }
    }
}

impl Host for MemoryStorage {
    fn get(&mut self, key: String) -> Result<Option<Versioned>, StorageError> {
        let mut state = self.lock();
        state.begin_call()?;
        Ok(state.map.get(&key).map(|(value, version)| Versioned {
            value: value.clone(),
            version: *version,
        }))
    }

    fn scan(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<Entry>, StorageError> {
        let mut state = self.lock();
        state.begin_call()?;
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix.clone()),
        };
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(state
            .map
            .range((start, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(&prefix))
            .take(limit)
            .map(|(key, (value, version))| Entry {
                key: key.clone(),
                value: Versioned {
                    value: value.clone(),
                    version: *version,
                },
            })
            .collect())
    }

    fn commit(&mut self, writes: Vec<Write>) -> Result<(), StorageError> {
        let mut state = self.lock();
        state.begin_call()?;
        if let Some(fault) = &state.every_commit {
            return Err(fault.error());
        }
        for (i, write) in writes.iter().enumerate() {
            if writes[..i].iter().any(|w| w.key == write.key) {
                return Err(StorageError::Failed(format!(
                    "the batch names {:?} twice",
                    write.key
                )));
            }
            let current = state.map.get(&write.key).map(|(_, version)| *version);
            let holds = match write.expect {
                Expect::Absent => current.is_none(),
                Expect::Version(v) => current == Some(v),
            };
            if !holds {
                return Err(StorageError::Conflict);
            }
        }
        for write in writes {
            match write.value {
                Some(value) => {
                    let version = match write.expect {
                        Expect::Absent => 1,
                        Expect::Version(v) => v + 1,
                    };
                    state.map.insert(write.key, (value, version));
                }
                None => {
                    state.map.remove(&write.key);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &[u8], expect: Expect) -> Write {
        Write {
            key: key.into(),
            value: Some(value.to_vec()),
            expect,
        }
    }

    #[test]
    fn commits_are_versioned_and_all_or_nothing() {
        let mut s = MemoryStorage::new();
        s.commit(vec![put("a", b"1", Expect::Absent)]).unwrap();
        assert_eq!(s.get("a".into()).unwrap().unwrap().version, 1);
        s.commit(vec![put("a", b"2", Expect::Version(1))]).unwrap();
        assert_eq!(s.get("a".into()).unwrap().unwrap().version, 2);

        let before = s.snapshot();
        let stale = s.commit(vec![
            put("b", b"x", Expect::Absent),
            put("a", b"3", Expect::Version(1)),
        ]);
        assert_eq!(stale, Err(StorageError::Conflict));
        assert_eq!(s.snapshot(), before);

        s.commit(vec![Write {
            key: "a".into(),
            value: None,
            expect: Expect::Version(2),
        }])
        .unwrap();
        assert_eq!(s.get("a".into()).unwrap(), None);
    }

    #[test]
    fn scan_respects_prefix_after_and_limit() {
        let mut s = MemoryStorage::new();
        for key in ["p/1", "p/2", "p/3", "q/1", "o/9"] {
            s.commit(vec![put(key, b"v", Expect::Absent)]).unwrap();
        }
        let keys = |entries: Vec<Entry>| entries.into_iter().map(|e| e.key).collect::<Vec<_>>();
        assert_eq!(
            keys(s.scan("p/".into(), None, 10).unwrap()),
            ["p/1", "p/2", "p/3"]
        );
        assert_eq!(
            keys(s.scan("p/".into(), Some("p/1".into()), 1).unwrap()),
            ["p/2"]
        );
        assert_eq!(
            keys(s.scan("p/".into(), Some("a".into()), 10).unwrap()).len(),
            3
        );
        assert!(
            s.scan("p/".into(), Some("p/3".into()), 10)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn planned_faults_hit_the_nth_call_only() {
        let mut s = MemoryStorage::new();
        s.fail_nth_call(2, Fault::Failed("disk".into()));
        assert!(s.get("k".into()).is_ok());
        assert_eq!(s.get("k".into()), Err(StorageError::Failed("disk".into())));
        assert!(s.get("k".into()).is_ok());

        s.fail_every_commit(Some(Fault::Conflict));
        assert_eq!(
            s.commit(vec![put("k", b"v", Expect::Absent)]),
            Err(StorageError::Conflict)
        );
        s.clear_faults();
        assert!(s.commit(vec![put("k", b"v", Expect::Absent)]).is_ok());
    }
}
