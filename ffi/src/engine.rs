//! The engine handle and one export per operation, each a one-line call into [`run`], which
//! hands the operation to `twofold_core::api::call`: the JSON shapes are the serde forms of the
//! `twofold-proto` types (documented as the records of `wit/types.wit`), so nothing here
//! describes or checks a shape of its own.

use std::ffi::{CString, c_char};

use twofold_core::Op::*;
use twofold_core::api::{self, Op};
use twofold_core::{Context, Engine};

use crate::host::{CHost, twofold_host};
use crate::status::{Failure, boundary, guard, twofold_status};

/// An engine: a configuration plus the host callbacks, created by `twofold_engine_new` and
/// freed by `twofold_engine_free`. Opaque.
///
/// Thread safety: every function taking a `const struct twofold_engine *` may be called on the
/// same engine from many threads at once; concurrent operations that would break a rule (one
/// backup code accepted twice, say) are prevented by the storage's conditional commits.
pub struct twofold_engine {
    engine: Engine,
    host: CHost,
}

/// Borrows `len` bytes; NULL is an error.
///
/// # Safety
/// A non-NULL `ptr` points to `len` readable bytes that outlive `'a`.
unsafe fn borrow<'a>(ptr: *const c_char, len: usize, what: &str) -> Result<&'a [u8], Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!("{what}: length out of range")));
    }
    // SAFETY: non-NULL and readable for `len` bytes by the caller's promise.
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) })
}

/// Hands a string to C: NUL-terminated, freed by `twofold_string_free`.
fn give_string(s: String) -> Result<(*mut c_char, usize), Failure> {
    let len = s.len();
    let s = CString::new(s).map_err(|_| Failure::internal("result contains a NUL byte"))?;
    Ok((s.into_raw(), len))
}

/// Creates an engine from a configuration and a host callback table.
///
/// `config_json` points to `config_len` bytes of UTF-8 JSON (not necessarily NUL-terminated,
/// at most `TWOFOLD_MAX_JSON_BYTES`): the record `config` of `wit/types.wit`, with snake_case
/// member names. Every member but `audit_keys` is optional and takes the specification's
/// default; unknown members are refused. `audit_keys` needs at least one key, `{"id":
/// "2026-01", "secret": "<64 to 128 hex digits>"}` (e.g. from `openssl rand -hex 32`), which
/// authenticates the audit log: keep it outside the database (a secret store, an environment
/// variable), never in source. A minimal configuration:
///
/// ```json
/// {"rp_id": "example.com", "rp_name": "Example", "origins": ["https://example.com"],
///  "audit_keys": [{"id": "2026-01", "secret": "..."}]}
/// ```
///
/// `host` is copied (see `struct twofold_host` for how long its contents must live). On
/// success `*out_engine` receives the new engine, which the caller owns and frees with
/// `twofold_engine_free`; on failure `*out_engine` is left unchanged.
///
/// Returns `TWOFOLD_OK`; `TWOFOLD_INVALID_INPUT` when any pointer is NULL, the JSON is invalid,
/// oversized or out of range, no audit key is given, or the host table has an unsupported
/// version or a NULL required callback; `TWOFOLD_INTERNAL`. The engine calls no callback while
/// being created.
///
/// Thread safety: may be called from any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_new(
    config_json: *const c_char,
    config_len: usize,
    host: *const twofold_host,
    out_engine: *mut *mut twofold_engine,
) -> twofold_status {
    boundary(|| {
        if out_engine.is_null() {
            return Err(Failure::invalid("out_engine is NULL"));
        }
        // SAFETY: the caller promises `config_len` readable bytes behind a non-NULL pointer.
        let config = unsafe { borrow(config_json, config_len, "config_json") }?;
        // SAFETY: the caller promises a readable table behind a non-NULL `host`.
        let host = unsafe { CHost::from_table(host) }?;
        let engine = Engine::new(api::config_from_json(config)?)?;
        let engine = Box::new(twofold_engine { engine, host });
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { out_engine.write(Box::into_raw(engine)) };
        Ok(())
    })
}

/// Frees an engine made by `twofold_engine_new`. NULL is a no-op.
///
/// No call on the engine may be running or made afterwards. After this returns the library
/// calls no callback of its host again, so the application may free `user_data`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_free(engine: *mut twofold_engine) {
    guard((), || {
        if !engine.is_null() {
            // SAFETY: made by `Box::into_raw` in `twofold_engine_new`, freed once (caller's
            // promise).
            drop(unsafe { Box::from_raw(engine) });
        }
    })
}

/// Frees a string the library returned (`out` of an operation). NULL is a no-op.
///
/// The string must be unmodified (no byte of it overwritten) and freed only once.
/// Thread safety: may be called from any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_string_free(s: *mut c_char) {
    guard((), || {
        if !s.is_null() {
            // SAFETY: made by `CString::into_raw` in this library (caller's promise).
            drop(unsafe { CString::from_raw(s) });
        }
    })
}

/// The body every operation export shares.
///
/// # Safety
/// Every non-NULL pointer is valid as `twofold_engine_call` documents.
#[allow(clippy::too_many_arguments)]
unsafe fn run(
    op: Op,
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    boundary(|| {
        // SAFETY: a non-NULL engine was made by `twofold_engine_new` and not yet freed.
        let Some(engine) = (unsafe { engine.as_ref() }) else {
            return Err(Failure::invalid("engine is NULL"));
        };
        if out.is_null() {
            return Err(Failure::invalid("out is NULL"));
        }
        if out_len.is_null() {
            return Err(Failure::invalid("out_len is NULL"));
        }
        // SAFETY: the caller promises readable buffers of these lengths behind non-NULL
        // pointers, for the duration of the call.
        let (ctx, args) = unsafe {
            (
                borrow(ctx, ctx_len, "ctx")?,
                borrow(args, args_len, "args")?,
            )
        };
        let ctx: Context = api::context_from_json(ctx)?;
        let result = api::call(&engine.engine, &engine.host, &ctx, op, args)?;
        let (ptr, len) = give_string(result)?;
        // SAFETY: checked non-NULL; the caller promises both are writable.
        unsafe {
            out.write(ptr);
            out_len.write(len);
        }
        Ok(())
    })
}

/// Runs any operation by name: `op` points to `op_len` bytes of UTF-8 naming it
/// (`"create_account"`, `"sign_in"`, ...: the names of the `twofold_engine_<name>` functions).
/// An unknown name, or a NULL `op`, gives `TWOFOLD_INVALID_INPUT`.
///
/// Every operation (`twofold_engine_<name>` and `twofold_engine_call`) works alike:
/// - `engine`: from `twofold_engine_new`.
/// - `ctx`: `ctx_len` bytes of UTF-8 JSON, the caller as the application sees it: the record
///   `context` of `wit/types.wit`, `{"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 ...",
///   "client_id": "", "device_token": "..."}`, every member optional (`"{}"` is a caller
///   nobody knows). `ip` and `user_agent` go into the audit log. `client_id` is who the
///   per-client limits count: the peer address, or the address a proxy you trust named;
///   empty means `ip`. `device_token` is the token a completed sign-in returned to this
///   browser (keep it in a long-lived HttpOnly cookie), absent or `null` when there is none: a
///   valid one keeps its owner's attempts apart from everyone else's (SPEC S6). Unknown members
///   are refused.
/// - `args`: `args_len` bytes of UTF-8 JSON (not necessarily NUL-terminated, at most
///   `TWOFOLD_MAX_JSON_BYTES`): the operation's request record in `wit/types.wit` (named on
///   each function), with snake_case member names (`remember-me` is `remember_me`). Optional
///   members may be left out; unknown members are refused. WebAuthn credentials may be the
///   browser's `toJSON()` object or that object as JSON text in a string.
/// - On success `*out` receives a NUL-terminated UTF-8 JSON document, the operation's answer
///   record with snake_case members (WebAuthn options and audit details as embedded JSON
///   values; optional members that are absent are left out), which the caller owns and frees
///   with `twofold_string_free`; `*out_len` receives its length in bytes (without the NUL). On
///   failure neither is written; `twofold_last_error_message` explains why.
/// - NULL `engine`, `ctx`, `args`, `out` or `out_len`, invalid UTF-8, JSON that is malformed,
///   oversized or of the wrong shape: `TWOFOLD_INVALID_INPUT`.
/// - Any operation may also return `TWOFOLD_CONFLICT` (concurrent writes kept conflicting),
///   `TWOFOLD_STORAGE` (a host callback failed or broke its contract) or `TWOFOLD_INTERNAL`;
///   nothing is written then. Each function lists its other statuses.
/// - Thread safety: any number of threads may call operations on one engine at once.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn twofold_engine_call(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    op: *const c_char,
    op_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    let named = guard(Err(Failure::internal("panic while reading op")), || {
        // SAFETY: the caller promises `op_len` readable bytes behind a non-NULL `op`.
        let name = unsafe { borrow(op, op_len, "op") }?;
        let name = std::str::from_utf8(name).map_err(|_| Failure::invalid("op is not UTF-8"))?;
        Op::parse(name).ok_or_else(|| Failure::invalid(format!("unknown operation {name:?}")))
    });
    match named {
        // SAFETY: the other pointers are this function's, with the same promises as `run`'s.
        Ok(op) => unsafe { run(op, engine, ctx, ctx_len, args, args_len, out, out_len) },
        Err(failure) => boundary(|| Err(failure)),
    }
}

/// Creates an account from an email and a password (SPEC A1, A2).
///
/// Request `create-account`, answer `account-created` (`wit/types.wit`). The email is trimmed
/// and put in Unicode NFC, and compared case-insensitively, but it keeps its case when stored
/// and answered (`Ada@Example.com` stays so). Passwords are 8 to 1024 bytes.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_ALREADY_EXISTS`,
/// `TWOFOLD_RATE_LIMITED` (too many accounts from one client), and those of every operation
/// (`twofold_engine_call`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_create_account(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: this function's documented promises are `run`'s.
    unsafe {
        run(
            CreateAccount,
            engine,
            ctx,
            ctx_len,
            args,
            args_len,
            out,
            out_len,
        )
    }
}

/// Sign-in step one: email and password (SPEC S1, S2, S6).
///
/// Request `sign-in`, answer `sign-in-outcome`: in JSON `{"status": "signed_in", ...}` (the
/// record `signed-in`) when two-factor authentication is off, `{"status":
/// "second_factor_required", ...}` (`second-factor-required`) when it is on. The pending token
/// then has the form `<user id>.<43 base64url characters>`, lives 5 minutes and goes to
/// `twofold_engine_sign_in_passkey` or `twofold_engine_sign_in_backup_code`; keep it
/// server-side. A user has at most 16 live pending sign-ins: a 17th voids the oldest.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_INVALID_CREDENTIALS` (unknown
/// email or wrong password, indistinguishable), `TWOFOLD_RATE_LIMITED` (see
/// `twofold_last_error_retry_after_secs`), and those of every operation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_sign_in(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: this function's documented promises are `run`'s.
    unsafe { run(SignIn, engine, ctx, ctx_len, args, args_len, out, out_len) }
}

/// Sign-in step two with a passkey (SPEC S3, S5, P6).
///
/// Request `passkey-sign-in`, answer `signed-in`. `credential` is the browser's
/// `PublicKeyCredential.toJSON()` for the options of step one. Remember-me is always false
/// after a second factor. A `pending_token` that is not of the form `<user id>.<43 base64url
/// characters>` is `TWOFOLD_INVALID_INPUT`; a well-formed one that is unknown, used, voided or
/// past its 5 minutes is `TWOFOLD_EXPIRED`.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_INVALID_PASSKEY` (the assertion
/// did not verify), `TWOFOLD_EXPIRED`, `TWOFOLD_RATE_LIMITED`, and those of every operation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_sign_in_passkey(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: this function's documented promises are `run`'s.
    unsafe {
        run(
            SignInPasskey,
            engine,
            ctx,
            ctx_len,
            args,
            args_len,
            out,
            out_len,
        )
    }
}

/// Sign-in step two with a backup code, which is used up (SPEC S4, S5, B1, B3, B6).
///
/// Request `backup-code-sign-in`, answer `signed-in` (with the codes left). A code is 12
/// characters of `23456789abcdefghjkmnpqrstuvwxyz`, shown as `xxxx-xxxx-xxxx`; case, spaces and
/// hyphens in what the user types do not matter. Pending tokens as in
/// `twofold_engine_sign_in_passkey`.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_INVALID_BACKUP_CODE`,
/// `TWOFOLD_EXPIRED`, `TWOFOLD_RATE_LIMITED`, and those of every operation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_sign_in_backup_code(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: this function's documented promises are `run`'s.
    unsafe {
        run(
            SignInBackupCode,
            engine,
            ctx,
            ctx_len,
            args,
            args_len,
            out,
            out_len,
        )
    }
}

/// Starts registering a passkey for a signed-in user (SPEC P1).
///
/// Request `start-registration` (the passkey's name, 1 to 64 characters after trimming, and
/// the current password), answer `registration-started`: creation options for
/// `PublicKeyCredential.parseCreationOptionsFromJSON`. The ceremony lives 5 minutes and ends
/// with `twofold_engine_finish_passkey_registration`.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND` (unknown user),
/// `TWOFOLD_INVALID_CREDENTIALS` (wrong password), `TWOFOLD_RATE_LIMITED`, and those of every
/// operation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_start_passkey_registration(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: this function's documented promises are `run`'s.
    unsafe {
        run(
            StartPasskeyRegistration,
            engine,
            ctx,
            ctx_len,
            args,
            args_len,
            out,
            out_len,
        )
    }
}

/// Finishes registering a passkey (SPEC P2, P3).
///
/// Request `finish-registration` (`credential`: the browser's `toJSON()` for the start call's
/// options), answer `passkey-registered`. The first passkey turns two-factor authentication
/// on and its answer carries a backup-code set: the only time those codes can be read.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_INVALID_PASSKEY` (the attestation
/// did not verify), `TWOFOLD_EXPIRED` (no ceremony, a used or an expired one),
/// `TWOFOLD_ALREADY_EXISTS` (the credential is registered already), `TWOFOLD_NOT_FOUND`, and
/// those of every operation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_finish_passkey_registration(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: this function's documented promises are `run`'s.
    unsafe {
        run(
            FinishPasskeyRegistration,
            engine,
            ctx,
            ctx_len,
            args,
            args_len,
            out,
            out_len,
        )
    }
}

/// Lists a user's passkeys, oldest first (SPEC P4).
///
/// Request `user-ref`, answer `passkey-list`.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND`, and those of every
/// operation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_list_passkeys(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: this function's documented promises are `run`'s.
    unsafe {
        run(
            ListPasskeys,
            engine,
            ctx,
            ctx_len,
            args,
            args_len,
            out,
            out_len,
        )
    }
}

/// Renames a passkey (SPEC P4).
///
/// Request `rename-passkey` (1 to 64 characters after trimming), answer `passkey`.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND` (unknown user or
/// passkey), and those of every operation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_rename_passkey(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: this function's documented promises are `run`'s.
    unsafe {
        run(
            RenamePasskey,
            engine,
            ctx,
            ctx_len,
            args,
            args_len,
            out,
            out_len,
        )
    }
}

/// Removes a passkey; the last one turns two-factor authentication off and voids every backup
/// code (SPEC P4, P5).
///
/// Request `remove-passkey` (with the current password), answer `status` afterwards.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND`,
/// `TWOFOLD_INVALID_CREDENTIALS`, `TWOFOLD_RATE_LIMITED`, and those of every operation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_remove_passkey(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: this function's documented promises are `run`'s.
    unsafe {
        run(
            RemovePasskey,
            engine,
            ctx,
            ctx_len,
            args,
            args_len,
            out,
            out_len,
        )
    }
}

/// Turns two-factor authentication on (the user needs a passkey) and makes a fresh set of
/// backup codes (SPEC T1).
///
/// Request `password-confirmed`, answer `backup-codes`: the only time they can be read (format
/// as in `twofold_engine_sign_in_backup_code`).
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND`,
/// `TWOFOLD_INVALID_CREDENTIALS`, `TWOFOLD_ALREADY_ENABLED`, `TWOFOLD_NO_PASSKEY`,
/// `TWOFOLD_RATE_LIMITED`, and those of every operation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_enable_two_factor(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: this function's documented promises are `run`'s.
    unsafe {
        run(
            EnableTwoFactor,
            engine,
            ctx,
            ctx_len,
            args,
            args_len,
            out,
            out_len,
        )
    }
}

/// Turns two-factor authentication off; passkeys are kept, backup codes voided (SPEC T2).
///
/// Request `password-confirmed`, answer `status` afterwards.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND`,
/// `TWOFOLD_INVALID_CREDENTIALS`, `TWOFOLD_NOT_ENABLED`, `TWOFOLD_RATE_LIMITED`, and those of
/// every operation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_disable_two_factor(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: this function's documented promises are `run`'s.
    unsafe {
        run(
            DisableTwoFactor,
            engine,
            ctx,
            ctx_len,
            args,
            args_len,
            out,
            out_len,
        )
    }
}

/// Replaces the user's backup codes with a fresh set; the old set is void (SPEC B4).
///
/// Request `password-confirmed`, answer `backup-codes`: the only time they can be read.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND`,
/// `TWOFOLD_INVALID_CREDENTIALS`, `TWOFOLD_NOT_ENABLED`, `TWOFOLD_RATE_LIMITED`, and those of
/// every operation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_regenerate_backup_codes(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: this function's documented promises are `run`'s.
    unsafe {
        run(
            RegenerateBackupCodes,
            engine,
            ctx,
            ctx_len,
            args,
            args_len,
            out,
            out_len,
        )
    }
}

/// Changes the password of a signed-in user, who gives the current one (SPEC A4, A6).
///
/// Request `change-password`, answer `password-changed`: the account's new security epoch.
/// End the user's other sessions.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND`,
/// `TWOFOLD_INVALID_CREDENTIALS`, `TWOFOLD_RATE_LIMITED`, and those of every operation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_change_password(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: this function's documented promises are `run`'s.
    unsafe {
        run(
            ChangePassword,
            engine,
            ctx,
            ctx_len,
            args,
            args_len,
            out,
            out_len,
        )
    }
}

/// Sets a new password without the old one, after the application has proved by its own means
/// (a reset link sent to the address) that the caller owns the email (SPEC A5, A6). Two-factor
/// authentication is left as it was: the next sign-in still asks for a second factor.
///
/// Request `reset-password`, answer `password-changed`. End the user's sessions.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND` (no account for the
/// email), and those of every operation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_reset_password(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: this function's documented promises are `run`'s.
    unsafe {
        run(
            ResetPassword,
            engine,
            ctx,
            ctx_len,
            args,
            args_len,
            out,
            out_len,
        )
    }
}

/// A user's two-factor state: enabled or not, passkeys, codes left, security epoch (SPEC T3,
/// A6).
///
/// Request `user-ref`, answer `status`.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND`, and those of every
/// operation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_status(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: this function's documented promises are `run`'s.
    unsafe { run(Status, engine, ctx, ctx_len, args, args_len, out, out_len) }
}

/// A page of a user's audit events, newest first (SPEC L1, L2, L4).
///
/// Request `audit-query`, answer `audit-page`. Each event's `kind` is an `event-kind` and its
/// `details` a JSON object whose members per kind the README's audit table lists; `notify`
/// marks the events the user should hear about.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND`, and those of every
/// operation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_audit_events(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: this function's documented promises are `run`'s.
    unsafe {
        run(
            AuditEvents,
            engine,
            ctx,
            ctx_len,
            args,
            args_len,
            out,
            out_len,
        )
    }
}

/// The newest event of a user's audit chain, to keep outside the database (SPEC L3).
///
/// Request `user-ref`, answer `audit-anchor`: store it where the database's writers cannot
/// change it (a log shipper, WORM storage) and pass it to `twofold_engine_verify_audit_chain`
/// to detect a truncated or deleted log.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND`, and those of every
/// operation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_audit_anchor(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: this function's documented promises are `run`'s.
    unsafe {
        run(
            AuditAnchor,
            engine,
            ctx,
            ctx_len,
            args,
            args_len,
            out,
            out_len,
        )
    }
}

/// Verifies a user's audit chain with the configured audit keys, optionally against an anchor
/// (SPEC L3): altered, dropped, reordered or forged events, security state changed without an
/// event, and with an anchor a truncated or deleted log, are reported.
///
/// Request `verify-audit`, answer `chain-report`. A broken chain is a successful call with
/// `intact` false.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND`, and those of every
/// operation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_verify_audit_chain(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: this function's documented promises are `run`'s.
    unsafe {
        run(
            VerifyAuditChain,
            engine,
            ctx,
            ctx_len,
            args,
            args_len,
            out,
            out_len,
        )
    }
}

/// Removes a user's events older than the retention age, keeping the chain verifiable from a
/// checkpoint; the pruning is itself an event (SPEC L5).
///
/// Request `prune-audit`, answer `audit-pruned` (at most 500 events a call: call again while
/// it prunes some).
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND`, and those of every
/// operation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_prune_audit_events(
    engine: *const twofold_engine,
    ctx: *const c_char,
    ctx_len: usize,
    args: *const c_char,
    args_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: this function's documented promises are `run`'s.
    unsafe {
        run(
            PruneAuditEvents,
            engine,
            ctx,
            ctx_len,
            args,
            args_len,
            out,
            out_len,
        )
    }
}
