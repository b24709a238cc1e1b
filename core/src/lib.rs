//! twofold-core: a pure engine for two-factor sign-in with passkeys (WebAuthn) and one-time
//! backup codes.
//!
//! The engine owns every security decision of `SPEC.md` and nothing else: no I/O, no globals,
//! no clock, no OS randomness. A host passes a [`Host`] (storage, clock, randomness) to each
//! operation of an [`Engine`]; each operation reads what it needs and makes at most one
//! all-or-nothing commit. The C library (`ffi/`) and the WASI component (`wasm-component/`)
//! only translate types around this crate.
//!
//! The requests and answers are the wire types of `twofold-proto`, re-exported here, so every
//! edge (C library, component, hosts) speaks the same types.
//!
//! ```no_run
//! use twofold_core::{AuditKey, Config, Context, CreateAccount, Engine};
//! # fn demo(host: &dyn twofold_core::Host) -> twofold_core::Result<()> {
//! let key = AuditKey::new("2026-01", std::env::var("TWOFOLD_AUDIT_KEY").unwrap_or_default());
//! let engine = Engine::new(Config::new("example.com", "Example", "https://example.com", key))?;
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
mod devices;
mod docs;
mod engine;
mod error;
mod secrets;
mod text;
mod throttle;
mod txn;
mod webauthn;

pub use engine::Engine;
pub use error::{Error, ErrorCode, Result};
pub use twofold_proto as proto;
pub use twofold_proto::ops::op;
pub use twofold_proto::{
    AccountCreated, Argon2Params, AuditAnchor, AuditEvent, AuditKey, AuditPage, AuditPruned,
    AuditQuery, BackupCodeSignIn, BackupCodes, ChainProblem, ChainProblemKind, ChainReport,
    ChangePassword, Config, Context, CreateAccount, EngineError, Entry, Environment, EventKind,
    Expect, FinishRegistration, Host, HostError, MAX_JSON_BYTES, Op, Operation, Passkey,
    PasskeyList, PasskeyRegistered, PasskeySignIn, PasswordChanged, PasswordConfirmed, PruneAudit,
    RegistrationStarted, RemovePasskey, RenamePasskey, ResetPassword, SecondFactorRequired, SignIn,
    SignInOutcome, SignedIn, StartRegistration, Status, Storage, UserRef, UserVerification,
    VerifyAudit, Versioned, Write, for_each_op,
};
