//! Everything the engine needs from outside: storage, the clock and randomness (rule D1).
//!
//! The engine never does I/O itself. A host implements [`Storage`] and [`Environment`] (one
//! value may implement both; anything that does is a [`Host`]) and passes it to every
//! operation. This contract is the one every host implements, whether in Rust (this trait), in
//! C (`include/twofold.h`) or behind the WIT `storage` interface. A store written once against
//! [`Storage`] (in memory, SQLite, PostgreSQL) serves the in-process core and, through a thin
//! adapter, the component in wasmtime.

use serde::{Deserialize, Serialize};

use crate::model::wire;

/// What a host callback reports when it fails (the WIT variant `host-error`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(
    feature = "wasmtime",
    derive(
        wasmtime::component::ComponentType,
        wasmtime::component::Lift,
        wasmtime::component::Lower
    ),
    component(variant)
)]
pub enum HostError {
    /// `commit` only: an expectation did not hold, so nothing was applied. The engine re-reads
    /// and retries a bounded number of times, then answers `conflict`. From `get` or `scan`
    /// it breaks the contract and is treated as a failure (`storage`).
    #[error("a write's expected version did not match")]
    #[cfg_attr(feature = "wasmtime", component(name = "conflict"))]
    Conflict,
    /// Any other failure (I/O, a full disk, a lost connection). The message is the host's and
    /// must not contain secrets; it reaches the caller inside a `storage` error.
    #[error("{0}")]
    #[cfg_attr(feature = "wasmtime", component(name = "failed"))]
    Failed(String),
}

wire!(record
/// A stored value with its version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// What the engine stored: a JSON document (UTF-8 text; treat it as opaque).
    pub value: String,
    /// The key's version: 1 after the first put, and one more after every put since.
    pub version: u64,
});

wire!(record
/// One key found by a scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// Its value and version.
    pub value: Versioned,
});

/// What a write expects to find before it applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(
    feature = "wasmtime",
    derive(
        wasmtime::component::ComponentType,
        wasmtime::component::Lift,
        wasmtime::component::Lower
    ),
    component(variant)
)]
pub enum Expect {
    /// The key must not exist.
    #[cfg_attr(feature = "wasmtime", component(name = "absent"))]
    Absent,
    /// The key must exist with exactly this version.
    #[cfg_attr(feature = "wasmtime", component(name = "version"))]
    Version(u64),
}

wire!(record
/// One conditional write of a commit batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    /// The key written. A batch names each key at most once.
    pub key: String,
    /// `Some(document)` stores it (version: expected + 1, or 1 where the key was absent);
    /// `None` deletes the key.
    pub value: Option<String>,
    /// The state the key must be in for the batch to apply.
    pub expect: Expect,
});

impl Write {
    /// The version the key has after this write applies (`None` once deleted):
    /// `expected + 1`, or 1 where the key was absent.
    pub fn new_version(&self) -> Option<u64> {
        self.value.as_ref().map(|_| match self.expect {
            Expect::Absent => 1,
            Expect::Version(v) => v + 1,
        })
    }
}

/// Key-value storage with versioned, all-or-nothing commits.
///
/// # Contract
/// - Keys are non-empty UTF-8 strings of at most 512 bytes, compared byte-wise. Values are
///   UTF-8 JSON documents of at most 1 MiB.
/// - `get(key)` returns the value and version stored under `key`, or `None`.
/// - `scan(prefix, after, limit)` returns up to `limit` entries whose key starts with
///   `prefix` and, when `after` is given, is strictly greater than `after`, in ascending
///   byte order of key. Fewer than `limit` entries means there are no more.
/// - `commit(writes)` applies every write or none. Each write first checks its expectation:
///   [`Expect::Absent`] needs the key missing, [`Expect::Version(v)`](Expect::Version) needs it
///   present with version `v`. If any check fails, nothing is applied and the result is
///   [`HostError::Conflict`]. Otherwise every put stores its value with version `expected + 1`
///   (1 when the key was absent) and every delete removes its key, atomically and durably
///   before `commit` returns. A batch names each key at most once.
/// - Any other failure is [`HostError::Failed`], and must also leave storage unchanged. A
///   `get` or `scan` that answers [`HostError::Conflict`] is treated as a failure.
/// - Calls may come from several threads at once (the engine is `Sync`); `commit` must be
///   serialisable with respect to other commits (one SQLite `BEGIN IMMEDIATE` transaction is;
///   so is one PostgreSQL transaction whose conditional statements check affected rows).
///
/// The engine never deletes and re-creates a key whose old version could still be expected
/// by a concurrent operation, so versions never repeat in a way that matters (no ABA).
pub trait Storage {
    /// Reads one key.
    fn get(&self, key: &str) -> Result<Option<Versioned>, HostError>;
    /// Reads keys under a prefix, in ascending order, after `after`, at most `limit`.
    fn scan(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<Entry>, HostError>;
    /// Applies a batch of conditional writes, all or nothing.
    fn commit(&self, writes: &[Write]) -> Result<(), HostError>;
}

impl<T: Storage + ?Sized> Storage for &T {
    fn get(&self, key: &str) -> Result<Option<Versioned>, HostError> {
        (**self).get(key)
    }
    fn scan(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<Entry>, HostError> {
        (**self).scan(prefix, after, limit)
    }
    fn commit(&self, writes: &[Write]) -> Result<(), HostError> {
        (**self).commit(writes)
    }
}

impl<T: Storage + ?Sized> Storage for Box<T> {
    fn get(&self, key: &str) -> Result<Option<Versioned>, HostError> {
        (**self).get(key)
    }
    fn scan(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<Entry>, HostError> {
        (**self).scan(prefix, after, limit)
    }
    fn commit(&self, writes: &[Write]) -> Result<(), HostError> {
        (**self).commit(writes)
    }
}

impl<T: Storage + ?Sized> Storage for std::sync::Arc<T> {
    fn get(&self, key: &str) -> Result<Option<Versioned>, HostError> {
        (**self).get(key)
    }
    fn scan(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<Entry>, HostError> {
        (**self).scan(prefix, after, limit)
    }
    fn commit(&self, writes: &[Write]) -> Result<(), HostError> {
        (**self).commit(writes)
    }
}

/// The clock and the randomness, from the host.
///
/// Production hosts use the system clock and the OS CSPRNG; tests use a manual clock and a
/// seeded generator, so every run can be replayed.
pub trait Environment {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> Result<u64, HostError>;
    /// Fills `buf` with bytes from a cryptographically secure generator.
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), HostError>;
}

/// Everything an operation reaches outside the engine: storage plus environment.
pub trait Host: Storage + Environment {}

impl<T: Storage + Environment + ?Sized> Host for T {}
