//! Test support for twofold, shared by the core's tests, the conformance runner and the hosts'
//! tests: a deterministic host (in-memory storage with fault injection, a manual clock, a
//! seeded generator), a software authenticator that speaks the browser's WebAuthn JSON, and a
//! configuration with cheap hashing so tests stay fast.

pub mod authenticator;
mod host;

pub use host::{Call, Fault, ManualClock, MemoryStorage, SeededRng, TestHost};

use twofold_proto::{Argon2Params, AuditKey, Config};

/// The origin the test configuration allows.
pub const ORIGIN: &str = "http://localhost:8080";
/// The relying party id of the test configuration.
pub const RP_ID: &str = "localhost";

/// The audit key of the test configurations (id `test`). A real host keeps its key outside the
/// database and never in source.
pub const TEST_AUDIT_KEY_HEX: &str =
    "8f1d5c0a3b7e9f2461d8c7b5a3e9f0c2d4b6a8e0f2c4d6b8a0e2f4c6d8b0a2e4";

/// The test audit key.
pub fn test_audit_key() -> AuditKey {
    AuditKey::new("test", TEST_AUDIT_KEY_HEX)
}

/// The test relying party (`localhost`, origin [`ORIGIN`]) with the test audit key and SPEC
/// defaults for everything else, argon2 costs included.
pub fn spec_config() -> Config {
    Config::new(RP_ID, "twofold test", ORIGIN, test_audit_key())
}

/// [`spec_config`], but with argon2 cheap enough for thousands of test hashes (the costs the
/// conformance suite uses). Tests of the hashing rules themselves use [`spec_config`].
pub fn fast_config() -> Config {
    Config {
        password_hash: Some(Argon2Params {
            m_kib: 64,
            t: 1,
            p: 1,
        }),
        backup_code_hash: Some(Argon2Params {
            m_kib: 32,
            t: 1,
            p: 1,
        }),
        ..spec_config()
    }
}
