//! A deterministic host whose storage can start from any snapshot and fail at any callback.
//!
//! The testkit's `TestHost` always starts empty; these tests build a world once and then run
//! thousands of cases, each on its own copy of that world with the versions it had. Faults count
//! every callback the engine makes (`get`, `scan`, `commit`, and, where the tests choose, the
//! clock and the randomness), because a C host can fail any of them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use twofold_core::{Environment, Expect, HostError, Record, Storage, Write};
use twofold_testkit::SeededRng;

/// Everything stored: key to record.
pub type Snapshot = BTreeMap<String, Record>;

/// Which callback the engine made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Callback {
    /// `get`
    Get,
    /// `scan`
    Scan,
    /// `commit`
    Commit,
    /// `now_ms`
    Now,
    /// `fill_random`
    Random,
}

/// How an injected fault answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A failure (`TWOFOLD_STORAGE` from C).
    Fail,
    /// A conflict (`TWOFOLD_CONFLICT` from C; for a commit, "nothing applied").
    Conflict,
}

#[derive(Default)]
struct Faults {
    calls: u64,
    log: Vec<Callback>,
    at: Option<(u64, Fault)>,
}

/// Storage over a map, a clock that moves only when told, and seeded randomness.
pub struct MapHost {
    data: Mutex<Snapshot>,
    faults: Mutex<Faults>,
    /// Whether the clock and the randomness count as callbacks (and can fail).
    count_environment: bool,
    now_ms: AtomicU64,
    rng: SeededRng,
}

/// 2026-01-01T00:00:00Z, where the testkit's clock starts too.
pub const START_MS: u64 = 1_767_225_600_000;

impl MapHost {
    /// A host over a copy of `snapshot`, its randomness seeded with `seed`.
    pub fn new(snapshot: Snapshot, seed: u64) -> MapHost {
        MapHost {
            data: Mutex::new(snapshot),
            faults: Mutex::default(),
            count_environment: false,
            now_ms: AtomicU64::new(START_MS),
            rng: SeededRng::new(seed),
        }
    }

    /// Counts the clock and the randomness as callbacks too (as the C table has them).
    pub fn counting_environment(mut self) -> MapHost {
        self.count_environment = true;
        self
    }

    /// Everything stored now.
    pub fn snapshot(&self) -> Snapshot {
        lock(&self.data).clone()
    }

    /// Callbacks made so far.
    pub fn calls(&self) -> u64 {
        lock(&self.faults).calls
    }

    /// The callbacks made so far, in order.
    pub fn log(&self) -> Vec<Callback> {
        lock(&self.faults).log.clone()
    }

    /// Makes the `n`th callback from now (1 = the next) answer `fault`.
    pub fn fail_at(&self, n: u64, fault: Fault) {
        let mut f = lock(&self.faults);
        f.at = Some((f.calls + n, fault));
    }

    /// Forgets a fault that has not fired.
    pub fn clear_fault(&self) {
        lock(&self.faults).at = None;
    }

    /// The clock, ms since the epoch.
    pub fn set_now_ms(&self, ms: u64) {
        self.now_ms.store(ms, Ordering::SeqCst);
    }

    fn enter(&self, callback: Callback) -> Result<(), HostError> {
        let mut f = lock(&self.faults);
        f.calls += 1;
        f.log.push(callback);
        match f.at {
            Some((at, fault)) if at == f.calls => {
                f.at = None;
                Err(match fault {
                    Fault::Fail => HostError::Failed(format!("injected at callback {at}")),
                    Fault::Conflict => HostError::Conflict,
                })
            }
            _ => Ok(()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Storage for MapHost {
    fn get(&self, key: &str) -> Result<Option<Record>, HostError> {
        self.enter(Callback::Get)?;
        Ok(lock(&self.data).get(key).cloned())
    }

    fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Record)>, HostError> {
        self.enter(Callback::Scan)?;
        Ok(lock(&self.data)
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
            .take(limit)
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect())
    }

    fn commit(&self, writes: &[Write]) -> Result<(), HostError> {
        self.enter(Callback::Commit)?;
        let mut data = lock(&self.data);
        for (i, w) in writes.iter().enumerate() {
            if writes[..i].iter().any(|other| other.key == w.key) {
                return Err(HostError::Failed(format!("batch names {} twice", w.key)));
            }
            let current = data.get(&w.key).map(|r| r.version);
            let holds = match w.expect {
                Expect::Absent => current.is_none(),
                Expect::Version(v) => current == Some(v),
            };
            if !holds {
                return Err(HostError::Conflict);
            }
        }
        for w in writes {
            match (&w.value, w.new_version()) {
                (Some(value), Some(version)) => {
                    let record = Record {
                        value: value.clone(),
                        version,
                    };
                    data.insert(w.key.clone(), record);
                }
                _ => {
                    data.remove(&w.key);
                }
            }
        }
        Ok(())
    }
}

impl Environment for MapHost {
    fn now_ms(&self) -> Result<u64, HostError> {
        if self.count_environment {
            self.enter(Callback::Now)?;
        }
        Ok(self.now_ms.load(Ordering::SeqCst))
    }

    fn fill_random(&self, buf: &mut [u8]) -> Result<(), HostError> {
        if self.count_environment {
            self.enter(Callback::Random)?;
        }
        self.rng.fill(buf);
        Ok(())
    }
}
