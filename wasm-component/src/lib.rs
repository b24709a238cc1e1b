//! The twofold engine as a WASI component: the WIT world `twofold:engine/twofold`.
//!
//! This crate only translates. Requests arrive as WIT records and become `twofold-core`
//! requests; answers and errors go back as WIT records. The engine reaches storage through the
//! imported `twofold:engine/storage` interface, the clock through `wasi:clocks` (via
//! `std::time::SystemTime`) and randomness through `wasi:random` (via `getrandom`). Nothing
//! here unwraps: a failing import or bad input becomes a typed `error`, never a trap.
//!
//! It builds natively too, so the workspace's clippy covers it; only the wasm32-wasip2 build
//! is a usable component.
#![deny(
    unsafe_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::todo,
    clippy::unimplemented,
    clippy::indexing_slicing
)]

mod convert;

use std::time::{SystemTime, UNIX_EPOCH};

use twofold_core as tf;

use crate::bindings::exports::twofold::engine::engine::{Guest, GuestEngine};
use crate::bindings::exports::twofold::engine::types as wit;
use crate::bindings::twofold::engine::storage;
use crate::convert::{IntoCore, IntoWit};

/// The generated bindings; kept in a module so their names stay apart from core's.
#[allow(missing_docs, clippy::all, unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        world: "twofold",
        path: "../wit",
    });
}

/// The type the component exports.
struct Component;

impl Guest for Component {
    type Engine = EngineResource;
}

/// The generated `extern "C"` entry points.
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
    fn get(&self, key: &str) -> Result<Option<tf::Record>, tf::HostError> {
        let found = storage::get(key).map_err(host_error)?;
        Ok(found.map(|v| tf::Record {
            value: v.value,
            version: v.version,
        }))
    }

    fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, tf::Record)>, tf::HostError> {
        // The engine never asks for more than u32::MAX entries; clamping keeps the contract
        // ("fewer than limit means no more") because a clamped limit is never reached.
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let entries = storage::scan(prefix, after, limit).map_err(host_error)?;
        Ok(entries
            .into_iter()
            .map(|e| {
                let record = tf::Record {
                    value: e.value.value,
                    version: e.value.version,
                };
                (e.key, record)
            })
            .collect())
    }

    fn commit(&self, writes: &[tf::Write]) -> Result<(), tf::HostError> {
        let writes: Vec<storage::Write> = writes
            .iter()
            .map(|w| storage::Write {
                key: w.key.clone(),
                value: w.value.clone(),
                expect: match w.expect {
                    tf::Expect::Absent => storage::Expect::Absent,
                    tf::Expect::Version(v) => storage::Expect::Version(v),
                },
            })
            .collect();
        storage::commit(&writes).map_err(host_error)
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

fn host_error(e: storage::StorageError) -> tf::HostError {
    match e {
        storage::StorageError::Conflict => tf::HostError::Conflict,
        storage::StorageError::Failed(message) => tf::HostError::Failed(message),
    }
}

/// Runs one engine operation: converts the request, calls the engine with the WASI host, and
/// converts the answer or the error.
fn call<Req, T>(
    ctx: wit::Context,
    req: Req,
    op: impl FnOnce(&ComponentHost, &tf::Context, Req::Core) -> tf::Result<T>,
) -> Result<T::Wit, wit::Error>
where
    Req: IntoCore,
    T: IntoWit,
{
    let ctx = tf::Context {
        ip: ctx.ip,
        user_agent: ctx.user_agent,
    };
    let answer = op(&ComponentHost, &ctx, req.into_core()).map_err(convert::error)?;
    answer.into_wit()
}

impl GuestEngine for EngineResource {
    fn new(config: wit::Config) -> Result<Self, wit::Error> {
        let inner = tf::Engine::new(convert::config(config)).map_err(convert::error)?;
        Ok(EngineResource { inner })
    }

    fn create_account(
        &self,
        ctx: wit::Context,
        req: wit::CreateAccount,
    ) -> Result<wit::AccountCreated, wit::Error> {
        call(ctx, req, |h, c, r| self.inner.create_account(h, c, r))
    }

    fn sign_in(
        &self,
        ctx: wit::Context,
        req: wit::SignIn,
    ) -> Result<wit::SignInOutcome, wit::Error> {
        call(ctx, req, |h, c, r| self.inner.sign_in(h, c, r))
    }

    fn sign_in_with_passkey(
        &self,
        ctx: wit::Context,
        req: wit::PasskeySignIn,
    ) -> Result<wit::SignedIn, wit::Error> {
        call(ctx, req, |h, c, r| self.inner.sign_in_with_passkey(h, c, r))
    }

    fn sign_in_with_backup_code(
        &self,
        ctx: wit::Context,
        req: wit::BackupCodeSignIn,
    ) -> Result<wit::SignedIn, wit::Error> {
        call(ctx, req, |h, c, r| {
            self.inner.sign_in_with_backup_code(h, c, r)
        })
    }

    fn start_passkey_registration(
        &self,
        ctx: wit::Context,
        req: wit::StartRegistration,
    ) -> Result<wit::RegistrationStarted, wit::Error> {
        call(ctx, req, |h, c, r| {
            self.inner.start_passkey_registration(h, c, r)
        })
    }

    fn finish_passkey_registration(
        &self,
        ctx: wit::Context,
        req: wit::FinishRegistration,
    ) -> Result<wit::PasskeyRegistered, wit::Error> {
        call(ctx, req, |h, c, r| {
            self.inner.finish_passkey_registration(h, c, r)
        })
    }

    fn list_passkeys(
        &self,
        ctx: wit::Context,
        req: wit::UserRef,
    ) -> Result<Vec<wit::Passkey>, wit::Error> {
        call(ctx, req, |h, c, r| self.inner.list_passkeys(h, c, r))
    }

    fn rename_passkey(
        &self,
        ctx: wit::Context,
        req: wit::RenamePasskey,
    ) -> Result<wit::Passkey, wit::Error> {
        call(ctx, req, |h, c, r| self.inner.rename_passkey(h, c, r))
    }

    fn remove_passkey(
        &self,
        ctx: wit::Context,
        req: wit::RemovePasskey,
    ) -> Result<wit::Status, wit::Error> {
        call(ctx, req, |h, c, r| self.inner.remove_passkey(h, c, r))
    }

    fn enable_two_factor(
        &self,
        ctx: wit::Context,
        req: wit::PasswordConfirmed,
    ) -> Result<wit::BackupCodes, wit::Error> {
        call(ctx, req, |h, c, r| self.inner.enable_two_factor(h, c, r))
    }

    fn disable_two_factor(
        &self,
        ctx: wit::Context,
        req: wit::PasswordConfirmed,
    ) -> Result<wit::Status, wit::Error> {
        call(ctx, req, |h, c, r| self.inner.disable_two_factor(h, c, r))
    }

    fn regenerate_backup_codes(
        &self,
        ctx: wit::Context,
        req: wit::PasswordConfirmed,
    ) -> Result<wit::BackupCodes, wit::Error> {
        call(ctx, req, |h, c, r| {
            self.inner.regenerate_backup_codes(h, c, r)
        })
    }

    fn status(&self, ctx: wit::Context, req: wit::UserRef) -> Result<wit::Status, wit::Error> {
        call(ctx, req, |h, c, r| self.inner.status(h, c, r))
    }

    fn audit_events(
        &self,
        ctx: wit::Context,
        req: wit::AuditQuery,
    ) -> Result<wit::AuditPage, wit::Error> {
        call(ctx, req, |h, c, r| self.inner.audit_events(h, c, r))
    }

    fn verify_audit_chain(
        &self,
        ctx: wit::Context,
        req: wit::UserRef,
    ) -> Result<wit::ChainReport, wit::Error> {
        call(ctx, req, |h, c, r| self.inner.verify_audit_chain(h, c, r))
    }
}
