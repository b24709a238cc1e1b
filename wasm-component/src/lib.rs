//! The twofold engine as a WASI component: the WIT world `twofold:engine/twofold`.
//!
//! This crate only translates, and there is almost nothing to translate: the bindings map every
//! WIT record, variant and enum of `wit/types.wit` and `wit/storage.wit` onto the
//! `twofold-proto` type of the same shape (`with` below), so requests arrive as the core's own
//! types and answers leave as they are. A WIT type that drifts from its Rust twin is a compile
//! error here. The engine reaches storage through the imported `twofold:engine/storage`
//! interface, the clock through `wasi:clocks` (via `std::time::SystemTime`) and randomness
//! through `wasi:random` (via `getrandom`). Nothing here unwraps: a failing import or bad input
//! becomes a typed `engine-error`, never a trap.
//!
//! It builds natively too, so the workspace's clippy and tests cover it; only the wasm32-wasip2
//! build is a usable component, and only that build exports the component's entry points.
#![deny(
    unsafe_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::todo,
    clippy::unimplemented,
    clippy::indexing_slicing
)]

use std::time::{SystemTime, UNIX_EPOCH};

use twofold_core as tf;
use twofold_core::proto;

use crate::bindings::exports::twofold::engine::engine::{Guest, GuestEngine};
use crate::bindings::twofold::engine::storage;

/// The generated bindings; kept in a module so their names stay apart from core's.
#[allow(missing_docs, clippy::all, unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        world: "twofold",
        path: "../wit",
        with: {
            "twofold:engine/types@0.2.0/error-code": twofold_core::proto::ErrorCode,
            "twofold:engine/types@0.2.0/engine-error": twofold_core::proto::EngineError,
            "twofold:engine/types@0.2.0/argon2-params": twofold_core::proto::Argon2Params,
            "twofold:engine/types@0.2.0/user-verification": twofold_core::proto::UserVerification,
            "twofold:engine/types@0.2.0/audit-key": twofold_core::proto::AuditKey,
            "twofold:engine/types@0.2.0/config": twofold_core::proto::Config,
            "twofold:engine/types@0.2.0/context": twofold_core::proto::Context,
            "twofold:engine/types@0.2.0/create-account": twofold_core::proto::CreateAccount,
            "twofold:engine/types@0.2.0/account-created": twofold_core::proto::AccountCreated,
            "twofold:engine/types@0.2.0/sign-in": twofold_core::proto::SignIn,
            "twofold:engine/types@0.2.0/signed-in": twofold_core::proto::SignedIn,
            "twofold:engine/types@0.2.0/second-factor-required": twofold_core::proto::SecondFactorRequired,
            "twofold:engine/types@0.2.0/sign-in-outcome": twofold_core::proto::SignInOutcome,
            "twofold:engine/types@0.2.0/passkey-sign-in": twofold_core::proto::PasskeySignIn,
            "twofold:engine/types@0.2.0/backup-code-sign-in": twofold_core::proto::BackupCodeSignIn,
            "twofold:engine/types@0.2.0/start-registration": twofold_core::proto::StartRegistration,
            "twofold:engine/types@0.2.0/registration-started": twofold_core::proto::RegistrationStarted,
            "twofold:engine/types@0.2.0/finish-registration": twofold_core::proto::FinishRegistration,
            "twofold:engine/types@0.2.0/passkey": twofold_core::proto::Passkey,
            "twofold:engine/types@0.2.0/passkey-list": twofold_core::proto::PasskeyList,
            "twofold:engine/types@0.2.0/passkey-registered": twofold_core::proto::PasskeyRegistered,
            "twofold:engine/types@0.2.0/rename-passkey": twofold_core::proto::RenamePasskey,
            "twofold:engine/types@0.2.0/remove-passkey": twofold_core::proto::RemovePasskey,
            "twofold:engine/types@0.2.0/password-confirmed": twofold_core::proto::PasswordConfirmed,
            "twofold:engine/types@0.2.0/backup-codes": twofold_core::proto::BackupCodes,
            "twofold:engine/types@0.2.0/user-ref": twofold_core::proto::UserRef,
            "twofold:engine/types@0.2.0/status": twofold_core::proto::Status,
            "twofold:engine/types@0.2.0/change-password": twofold_core::proto::ChangePassword,
            "twofold:engine/types@0.2.0/password-changed": twofold_core::proto::PasswordChanged,
            "twofold:engine/types@0.2.0/reset-password": twofold_core::proto::ResetPassword,
            "twofold:engine/types@0.2.0/audit-query": twofold_core::proto::AuditQuery,
            "twofold:engine/types@0.2.0/event-kind": twofold_core::proto::EventKind,
            "twofold:engine/types@0.2.0/audit-event": twofold_core::proto::AuditEvent,
            "twofold:engine/types@0.2.0/audit-page": twofold_core::proto::AuditPage,
            "twofold:engine/types@0.2.0/audit-anchor": twofold_core::proto::AuditAnchor,
            "twofold:engine/types@0.2.0/verify-audit": twofold_core::proto::VerifyAudit,
            "twofold:engine/types@0.2.0/chain-problem-kind": twofold_core::proto::ChainProblemKind,
            "twofold:engine/types@0.2.0/chain-problem": twofold_core::proto::ChainProblem,
            "twofold:engine/types@0.2.0/chain-report": twofold_core::proto::ChainReport,
            "twofold:engine/types@0.2.0/prune-audit": twofold_core::proto::PruneAudit,
            "twofold:engine/types@0.2.0/audit-pruned": twofold_core::proto::AuditPruned,
            "twofold:engine/storage@0.2.0/host-error": twofold_core::proto::HostError,
            "twofold:engine/storage@0.2.0/versioned": twofold_core::proto::Versioned,
            "twofold:engine/storage@0.2.0/entry": twofold_core::proto::Entry,
            "twofold:engine/storage@0.2.0/expect": twofold_core::proto::Expect,
            "twofold:engine/storage@0.2.0/write": twofold_core::proto::Write,
        },
    });
}

/// The type the component exports.
struct Component;

impl Guest for Component {
    type Engine = EngineResource;
}

/// The generated `extern "C"` entry points; only a wasm build exports them (a native build of
/// this crate is for clippy and tests, and the linker refuses the WIT names as symbols).
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod export {
    use crate::Component;

    crate::bindings::export!(Component with_types_in crate::bindings);
}

/// The `engine` resource: a configured core engine.
pub struct EngineResource {
    inner: tf::Engine,
}

/// Storage through the imported interface; clock and randomness through WASI.
struct ComponentHost;

impl tf::Storage for ComponentHost {
    fn get(&self, key: &str) -> Result<Option<tf::Versioned>, tf::HostError> {
        storage::get(key)
    }

    fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<tf::Entry>, tf::HostError> {
        storage::scan(prefix, after, limit)
    }

    fn commit(&self, writes: &[tf::Write]) -> Result<(), tf::HostError> {
        storage::commit(writes)
    }
}

impl tf::Environment for ComponentHost {
    fn now_ms(&self) -> Result<u64, tf::HostError> {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| tf::HostError::Failed("the wall clock is before 1970".into()))?;
        u64::try_from(since.as_millis())
            .map_err(|_| tf::HostError::Failed("the wall clock is out of range".into()))
    }

    fn fill_random(&self, buf: &mut [u8]) -> Result<(), tf::HostError> {
        getrandom::fill(buf).map_err(|e| tf::HostError::Failed(format!("randomness: {e}")))
    }
}

/// One exported method per operation of the table, each a call of the core's method of the
/// same name with the WASI host.
macro_rules! methods {
    ($($(#[doc = $doc:literal])+ $variant:ident, $method:ident, $name:literal, $wit:literal,
       $req:path => $answer:path;)+) => {
        impl GuestEngine for EngineResource {
            fn new(config: proto::Config) -> Result<Self, proto::EngineError> {
                let inner = tf::Engine::new(config)?;
                Ok(EngineResource { inner })
            }

            $(
                fn $method(
                    &self,
                    ctx: proto::Context,
                    req: $req,
                ) -> Result<$answer, proto::EngineError> {
                    Ok(self.inner.$method(&ComponentHost, &ctx, req)?)
                }
            )+
        }
    };
}

tf::for_each_op!(methods);
