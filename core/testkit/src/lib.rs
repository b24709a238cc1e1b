//! Test support for twofold, shared by the core's tests, the conformance runner and the hosts'
//! tests: a deterministic host (in-memory storage with fault injection, a manual clock, a
//! seeded generator), a software authenticator that speaks the browser's WebAuthn JSON, and a
//! configuration with cheap hashing so tests stay fast.

pub mod authenticator;
mod host;

pub use host::{Call, Fault, ManualClock, MemoryStorage, SeededRng, TestHost};

use twofold_core::{Argon2Params, Config};

/// The origin the test configuration allows.
pub const ORIGIN: &str = "http://localhost:8080";
/// The relying party id of the test configuration.
pub const RP_ID: &str = "localhost";

/// SPEC defaults, but with argon2 cheap enough for thousands of test hashes. Tests of the
/// hashing rules themselves use [`Config::default`] costs.
pub fn fast_config() -> Config {
    Config {
        password_hash: Argon2Params {
            m_kib: 64,
            t: 1,
            p: 1,
        },
        backup_code_hash: Argon2Params {
            m_kib: 32,
            t: 1,
            p: 1,
        },
        ..Config::new(RP_ID, "twofold test", ORIGIN)
    }
}
