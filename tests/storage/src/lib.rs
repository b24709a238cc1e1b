//! Test support for twofold's storage backends: [`contract`], the storage contract as checks
//! any backend can run, and [`pg_harness`], a real PostgreSQL server started for the tests.
//!
//! Test support, so failing checks panic by design; everything else returns typed errors.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod contract;
pub mod pg_harness;

pub use contract::{check_failure_is_failed, check_storage_contract};
pub use pg_harness::{PgServer, TestDatabase, shared, test_database};
