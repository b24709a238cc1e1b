//! Checks the contract suite itself: it passes on a small, obviously correct in-memory store and
//! fails on copies of that store with one classic bug each.
//!
//! The repository's own in-memory store (`core/testkit/src/host.rs`) still implements the old
//! core trait (`Record`, byte values, `usize` limits), not `twofold_proto::Storage`, so it
//! cannot run here yet; this one stands in.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard};

use twofold_proto::{Entry, Expect, HostError, Storage, Versioned, Write};
use twofold_storage_testkit::{check_failure_is_failed, check_storage_contract};

/// One deliberate bug, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    None,
    /// Applies each write as soon as its check passes, so a later conflict leaves a half batch.
    PartialBatch,
    /// Orders keys ignoring case, as a linguistic collation would.
    CaseInsensitiveOrder,
    /// Treats `after` as inclusive.
    InclusiveAfter,
    /// Deletes without checking the expected version.
    DeleteIgnoresVersion,
    /// Checks under the lock, then applies under a second lock: a lost-update race.
    CheckThenApply,
    /// A put expecting a version keeps that version instead of adding one.
    NoVersionBump,
    /// A scan stops at the last key below the prefix's next byte, computed on bytes, and
    /// ignores keys whose last prefix character is multi-byte.
    AsciiPrefixOnly,
}

type Data = Arc<Mutex<BTreeMap<String, Versioned>>>;

/// A handle onto shared in-memory data.
struct Memory {
    data: Data,
    bug: Bug,
    broken: bool,
}

impl Memory {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Versioned>> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn holds(data: &BTreeMap<String, Versioned>, w: &Write, bug: Bug) -> bool {
        let current = data.get(&w.key).map(|v| v.version);
        match w.expect {
            Expect::Version(_) if bug == Bug::DeleteIgnoresVersion && w.value.is_none() => true,
            Expect::Absent => current.is_none(),
            Expect::Version(v) => current == Some(v),
        }
    }

    fn apply(&self, data: &mut BTreeMap<String, Versioned>, w: &Write) {
        match &w.value {
            Some(value) => {
                let version = match (w.expect, self.bug) {
                    (Expect::Absent, _) => 1,
                    (Expect::Version(v), Bug::NoVersionBump) => v,
                    (Expect::Version(v), _) => v + 1,
                };
                data.insert(
                    w.key.clone(),
                    Versioned {
                        value: value.clone(),
                        version,
                    },
                );
            }
            None => {
                data.remove(&w.key);
            }
        }
    }
}

impl Storage for Memory {
    fn get(&self, key: &str) -> Result<Option<Versioned>, HostError> {
        if self.broken {
            return Err(HostError::Failed("memory: broken on purpose".into()));
        }
        Ok(self.lock().get(key).cloned())
    }

    fn scan(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<Entry>, HostError> {
        if self.broken {
            return Err(HostError::Failed("memory: broken on purpose".into()));
        }
        let data = self.lock();
        let mut entries: Vec<Entry> = data
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| match (after, self.bug) {
                (Some(a), Bug::InclusiveAfter) => k.as_str() >= a,
                (Some(a), _) => k.as_str() > a,
                (None, _) => true,
            })
            .filter(|_| {
                self.bug != Bug::AsciiPrefixOnly
                    || prefix.chars().last().is_none_or(|c| c.is_ascii())
            })
            .map(|(k, v)| Entry {
                key: k.clone(),
                value: v.clone(),
            })
            .collect();
        if self.bug == Bug::CaseInsensitiveOrder {
            entries.sort_by_key(|e| e.key.to_lowercase());
        }
        entries.truncate(limit as usize);
        Ok(entries)
    }

    fn commit(&self, writes: &[Write]) -> Result<(), HostError> {
        if self.broken {
            return Err(HostError::Failed("memory: broken on purpose".into()));
        }
        match self.bug {
            Bug::PartialBatch => {
                let mut data = self.lock();
                for w in writes {
                    if !Memory::holds(&data, w, self.bug) {
                        return Err(HostError::Conflict);
                    }
                    self.apply(&mut data, w);
                }
                Ok(())
            }
            Bug::CheckThenApply => {
                let ok = {
                    let data = self.lock();
                    writes.iter().all(|w| Memory::holds(&data, w, self.bug))
                };
                if !ok {
                    return Err(HostError::Conflict);
                }
                std::thread::yield_now();
                let mut data = self.lock();
                for w in writes {
                    self.apply(&mut data, w);
                }
                Ok(())
            }
            _ => {
                let mut data = self.lock();
                if !writes.iter().all(|w| Memory::holds(&data, w, self.bug)) {
                    return Err(HostError::Conflict);
                }
                for w in writes {
                    self.apply(&mut data, w);
                }
                Ok(())
            }
        }
    }
}

fn run_suite(bug: Bug) -> std::thread::Result<()> {
    let data: Data = Arc::default();
    let make = move || -> Box<dyn Storage + Send> {
        Box::new(Memory {
            data: data.clone(),
            bug,
            broken: false,
        })
    };
    catch_unwind(AssertUnwindSafe(|| check_storage_contract(&make)))
}

#[test]
fn the_suite_passes_on_a_correct_store() {
    if let Err(panic) = run_suite(Bug::None) {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn the_suite_catches_each_planted_bug() {
    for bug in [
        Bug::PartialBatch,
        Bug::CaseInsensitiveOrder,
        Bug::InclusiveAfter,
        Bug::DeleteIgnoresVersion,
        Bug::CheckThenApply,
        Bug::NoVersionBump,
        Bug::AsciiPrefixOnly,
    ] {
        assert!(run_suite(bug).is_err(), "the suite missed {bug:?}");
    }
}

#[test]
fn failures_are_reported_as_failed() {
    let broken = Memory {
        data: Arc::default(),
        bug: Bug::None,
        broken: true,
    };
    let messages = check_failure_is_failed(&broken);
    assert_eq!(messages.len(), 3);
}
