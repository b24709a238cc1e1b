//! twofold-proto: the shape of twofold's API, written once.
//!
//! Every edge of twofold speaks these types. The core takes and answers them; the WASI component
//! hands them across the WIT boundary as they are (its bindings map the WIT records of
//! `wit/types.wit` onto these structs, so a field that differs is a compile error there, not a
//! silent drift); the wasmtime host lowers and lifts them directly (feature `wasmtime`); the C
//! library, the conformance drivers and the sample servers read and write their JSON with serde.
//!
//! What lives here:
//! - the requests and answers of every operation ([`model`], [`audit`]), the engine
//!   [`Config`], the [`Context`] of a call;
//! - the stable error codes ([`ErrorCode`], one table that also gives the C status numbers)
//!   and the wire error ([`EngineError`]);
//! - the storage contract every host implements ([`Storage`], [`Environment`]);
//! - the table of operations ([`for_each_op!`], [`Operation`], [`Op`]) that the component,
//!   the drivers and the C dispatch expand instead of listing the operations again.
//!
//! JSON conventions: member names are the Rust field names (snake_case); optional answer
//! members that are absent are left out (`last_used_at` is the one member that is `null`
//! until set); WebAuthn options, credentials and audit details are JSON text in memory and in
//! WIT, and embedded JSON values in JSON documents (a credential may also arrive as JSON text).
//!
//! No type here prints a secret: types that hold a password, code or token have a redacting
//! `Debug`, and a secret member of the wrong JSON type is refused with a message that names the
//! member, never its value.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::todo,
        clippy::unimplemented,
        clippy::indexing_slicing
    )
)]

pub mod audit;
pub mod config;
pub mod error;
pub mod json;
pub mod model;
pub mod ops;
mod secret;
pub mod storage;

pub use audit::*;
pub use config::*;
pub use error::{EngineError, ErrorCode};
pub use model::*;
pub use ops::{Op, Operation};
pub use storage::{Entry, Environment, Expect, Host, HostError, Storage, Versioned, Write};

/// The largest JSON document the engine accepts in one call (E1).
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// The WIT package these types match, as hosts name its interfaces.
pub const WIT_PACKAGE: &str = "twofold:engine@0.2.0";
