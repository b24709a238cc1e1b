//! A deterministic [`Host`](twofold_core::Host) for tests: in-memory storage that can be told
//! to fail, a clock that moves only when told, and a seeded random generator.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::time::Duration;

use sha2::{Digest, Sha256};
use twofold_proto::{Entry, Environment, Expect, HostError, Storage, Versioned, Write};

/// Which callback a storage call was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `get`
    Get,
    /// `scan`
    Scan,
    /// `commit`
    Commit,
}

/// What an injected fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The call fails with [`HostError::Failed`].
    Fail,
    /// The call reports [`HostError::Conflict`] (for a commit: nothing applied, as if another
    /// writer had got there first).
    Conflict,
}

#[derive(Default)]
struct State {
    data: BTreeMap<String, Versioned>,
    calls: u64,
    log: Vec<Call>,
    /// (call number, fault): the fault fires on that call, counted from 1 over all kinds.
    faults: Vec<(u64, Fault)>,
    /// Commits that still have to meet at the gate before applying.
    gate: Option<(Arc<Barrier>, usize)>,
}

/// In-memory storage implementing the engine's contract exactly, with fault injection.
#[derive(Default)]
pub struct MemoryStorage {
    state: Mutex<State>,
}

impl MemoryStorage {
    /// Empty storage.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// Storage holding `data` (keys, values and versions), e.g. another's
    /// [`snapshot`](MemoryStorage::snapshot): a world built once, copied for every case.
    pub fn with_data(data: BTreeMap<String, Versioned>) -> MemoryStorage {
        MemoryStorage {
            state: Mutex::new(State {
                data,
                ..State::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes the `n`th storage call from now (1 = the next one) fail with `fault`.
    pub fn inject(&self, n: u64, fault: Fault) {
        let mut s = self.lock();
        let at = s.calls + n;
        s.faults.push((at, fault));
    }

    /// Removes injected faults that have not fired.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Storage calls made so far.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// Every call made so far, in order.
    pub fn call_log(&self) -> Vec<Call> {
        self.lock().log.clone()
    }

    /// Makes the next `commits` commits wait for each other before any applies, so that
    /// threads racing for the same thing all read before any of them writes.
    pub fn gate_commits(&self, commits: usize) {
        self.lock().gate = Some((Arc::new(Barrier::new(commits)), commits));
    }

    /// Everything stored, with versions.
    pub fn snapshot(&self) -> BTreeMap<String, Versioned> {
        self.lock().data.clone()
    }

    /// Overwrites a key behind the engine's back (tamper tests), keeping its version.
    pub fn tamper(&self, key: &str, value: String) {
        let mut s = self.lock();
        let version = s.data.get(key).map_or(1, |r| r.version);
        s.data.insert(key.to_owned(), Versioned { value, version });
    }

    /// Removes a key behind the engine's back (tamper tests).
    pub fn tamper_remove(&self, key: &str) {
        self.lock().data.remove(key);
    }

    fn enter(&self, call: Call) -> Result<MutexGuard<'_, State>, HostError> {
        let mut s = self.lock();
        s.calls += 1;
        s.log.push(call);
        let now = s.calls;
        if let Some(pos) = s.faults.iter().position(|(at, _)| *at == now) {
            let (_, fault) = s.faults.remove(pos);
            return Err(match fault {
                Fault::Fail => HostError::Failed(format!("injected failure at storage call {now}")),
                Fault::Conflict => HostError::Conflict,
            });
        }
        Ok(s)
    }
}

impl Storage for MemoryStorage {
    fn get(&self, key: &str) -> Result<Option<Versioned>, HostError> {
        Ok(self.enter(Call::Get)?.data.get(key).cloned())
    }

    fn scan(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<Entry>, HostError> {
        let s = self.enter(Call::Scan)?;
        Ok(s.data
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
            .take(limit as usize)
            .map(|(k, r)| Entry {
                key: k.clone(),
                value: r.clone(),
            })
            .collect())
    }

    fn commit(&self, writes: &[Write]) -> Result<(), HostError> {
        let gate = {
            let mut s = self.enter(Call::Commit)?;
            match &mut s.gate {
                Some((barrier, left)) if *left > 0 => {
                    *left -= 1;
                    Some(barrier.clone())
                }
                _ => None,
            }
        };
        if let Some(barrier) = gate {
            barrier.wait();
        }
        let mut s = self.lock();
        for (i, w) in writes.iter().enumerate() {
            // The contract lets a store assume this; here a test sees the engine break it.
            if writes[..i].iter().any(|other| other.key == w.key) {
                return Err(HostError::Failed(format!(
                    "the batch names {} twice",
                    w.key
                )));
            }
            let current = s.data.get(&w.key).map(|r| r.version);
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
                    s.data.insert(
                        w.key.clone(),
                        Versioned {
                            value: value.clone(),
                            version,
                        },
                    );
                }
                _ => {
                    s.data.remove(&w.key);
                }
            }
        }
        Ok(())
    }
}

/// A clock that moves only when told. Starts at 2026-01-01T00:00:00Z.
#[derive(Debug)]
pub struct ManualClock {
    ms: AtomicU64,
}

impl Default for ManualClock {
    fn default() -> ManualClock {
        ManualClock {
            ms: AtomicU64::new(1_767_225_600_000),
        }
    }
}

impl ManualClock {
    /// The time now, ms since the epoch.
    pub fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }
    /// Sets the time.
    pub fn set_ms(&self, ms: u64) {
        self.ms.store(ms, Ordering::SeqCst);
    }
    /// Moves the time forward.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.ms.fetch_add(ms, Ordering::SeqCst);
    }
}

/// A deterministic byte stream: SHA-256 of (seed, counter) blocks. For tests only.
#[derive(Debug)]
pub struct SeededRng {
    seed: u64,
    counter: AtomicU64,
}

impl SeededRng {
    /// A generator that always yields the same bytes for the same seed.
    pub fn new(seed: u64) -> SeededRng {
        SeededRng {
            seed,
            counter: AtomicU64::new(0),
        }
    }

    /// Fills `buf`.
    pub fn fill(&self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(32) {
            let n = self.counter.fetch_add(1, Ordering::SeqCst);
            let mut h = Sha256::new();
            h.update(self.seed.to_le_bytes());
            h.update(n.to_le_bytes());
            let block = h.finalize();
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
}

/// Storage, clock and randomness together: what the engine's operations take.
pub struct TestHost {
    /// The storage.
    pub storage: MemoryStorage,
    /// The clock.
    pub clock: ManualClock,
    /// The randomness.
    pub rng: SeededRng,
}

impl TestHost {
    /// A fresh host whose randomness comes from `seed`.
    pub fn new(seed: u64) -> TestHost {
        TestHost::with_data(BTreeMap::new(), seed)
    }

    /// A host whose storage starts with `data` (see [`MemoryStorage::with_data`]).
    pub fn with_data(data: BTreeMap<String, Versioned>, seed: u64) -> TestHost {
        TestHost {
            storage: MemoryStorage::with_data(data),
            clock: ManualClock::default(),
            rng: SeededRng::new(seed),
        }
    }
}

impl Storage for TestHost {
    fn get(&self, key: &str) -> Result<Option<Versioned>, HostError> {
        self.storage.get(key)
    }
    fn scan(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<Entry>, HostError> {
        self.storage.scan(prefix, after, limit)
    }
    fn commit(&self, writes: &[Write]) -> Result<(), HostError> {
        self.storage.commit(writes)
    }
}

impl Environment for TestHost {
    fn now_ms(&self) -> Result<u64, HostError> {
        Ok(self.clock.now_ms())
    }
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), HostError> {
        self.rng.fill(buf);
        Ok(())
    }
}
