//! twofold-core: a pure engine for two-factor sign-in with passkeys (WebAuthn) and one-time
//! backup codes.
//!
//! The engine owns every security decision of `SPEC.md` and nothing else: no I/O, no globals,
//! no clock, no OS randomness. A host passes a [`Host`] (storage, clock, randomness) to each
//! operation of an [`Engine`]; each operation reads what it needs and makes at most one
//! all-or-nothing commit. The C library (`ffi/`) and the WASI component (`wasm-component/`)
//! only translate types around this crate.
//!
//! ```no_run
//! use twofold_core::{Config, Context, CreateAccount, Engine};
//! # fn demo(host: &dyn twofold_core::Host) -> twofold_core::Result<()> {
//! let engine = Engine::new(Config::new("example.com", "Example", "https://example.com"))?;
//! let ctx = Context::new("203.0.113.7", "Mozilla/5.0");
//! let account = engine.create_account(host, &ctx, CreateAccount {
//!     email: "ada@example.com".into(),
//!     password: "correct horse battery".into(),
//! })?;
//! # let _ = account; Ok(()) }
//! ```
#![forbid(unsafe_code)]
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
#![warn(missing_docs)]

pub mod api;
mod audit;
mod config;
mod docs;
mod engine;
mod error;
mod model;
mod secrets;
mod storage;
mod txn;
mod webauthn;

pub use config::{Argon2Params, Config, UserVerification};
pub use engine::Engine;
pub use error::{Error, ErrorCode, Result};
pub use model::*;
pub use storage::{Environment, Expect, Host, HostError, Record, Storage, Write};

/// The largest JSON document the engine accepts in one call (E1).
pub const MAX_JSON_BYTES: usize = 64 * 1024;
