//! twofold-reliability: tests that try to break twofold from outside, through every boundary.
//!
//! - `tests/fuzz.rs`: proptest on stable over every JSON input of the core (`api::call` for each
//!   operation, credentials mutated from the software authenticator's), the conformance
//!   driver's request lines, and every export of the C library (arbitrary bytes, NULL pointers,
//!   short lengths).
//! - `tests/storage_faults.rs`: a storage failure or conflict at every callback of every
//!   operation, through the C callback table and through the component's storage import.
//! - `tests/http_races.rs`: concurrent clients of `twofold-server` over loopback racing for one
//!   backup code, one pending sign-in, one registration response; a load run.
//! - `tests/crash.rs`: SIGKILL of the C host and of the server at random points, then the
//!   stored state checked rule by rule.
//!
//! This library holds what they share: the stored-state rules, a world every operation can work
//! on, and clients for driver processes and HTTP. The C callback table, the fault-injecting
//! store and the test configuration are the workspace's one each (`twofold-testsupport`,
//! `twofold_testkit::MemoryStorage`, `twofold_testkit::fast_config`).

use std::collections::BTreeMap;

pub mod driver;
pub mod hosts;
pub mod http;
pub mod invariants;
pub mod rng;
pub mod server;
pub mod sqlite;
pub mod world;

/// Everything stored: key to value and version (`MemoryStorage::snapshot`, or an SQLite file).
pub type Snapshot = BTreeMap<String, twofold_core::Versioned>;

/// Cases per fuzz target: `$TWOFOLD_FUZZ_CASES`, else 2048 (the short pass of `cargo test`).
pub fn fuzz_cases() -> u32 {
    std::env::var("TWOFOLD_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(2048)
}
