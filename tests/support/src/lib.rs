//! twofold-testsupport: what every test of the C boundary shares, written once.
//!
//! - [`CallbackTable`]: the `struct twofold_host` callback table written in Rust the way a C
//!   program writes it, over any [`Host`](twofold_core::Host) (storage, clock and randomness;
//!   the testkit's `TestHost` everywhere here), so every byte crosses the C interface both ways.
//!   A [`Fault`] makes it answer a status instead of working, or break the callback contract
//!   on purpose ([`Misbehave`]), at any callback.
//! - [`CEngine`]: an engine made by `twofold_engine_new` over such a table, called through
//!   each operation's own export or through `twofold_engine_call`.
//! - [`export`]: the export of each operation, an exhaustive match, so an operation added to
//!   the table without an export does not compile here.
//!
//! The in-memory store with fault injection is `twofold_testkit::MemoryStorage`, and the test
//! configuration `twofold_testkit::fast_config`: there is one of each.

mod chost;

pub use chost::{
    Answer, CEngine, CONTEXT, Callback, CallbackTable, Fault, Misbehave, OpFn, export, last_error,
};
