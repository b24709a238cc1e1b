//! The engine handle and one export per operation. Every operation takes its arguments as a
//! JSON document and answers with one; the shapes are `twofold_core::api`'s, documented on
//! each function so that they reach the header.

use std::ffi::{CString, c_char};

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

/// Who is calling, as the application sees it; written into audit events.
///
/// Borrowed for the duration of the call. Neither string is NUL-terminated; either may be
/// NULL when its length is 0 (unknown).
#[repr(C)]
pub struct twofold_context {
    /// The client's IP address, `ip_len` bytes of UTF-8.
    pub ip: *const c_char,
    /// Length of `ip` in bytes.
    pub ip_len: usize,
    /// The client's user agent, `user_agent_len` bytes of UTF-8.
    pub user_agent: *const c_char,
    /// Length of `user_agent` in bytes.
    pub user_agent_len: usize,
}

/// Borrows `len` bytes; NULL is an error unless `len` is 0 and `null_ok`.
///
/// # Safety
/// A non-NULL `ptr` points to `len` readable bytes that outlive `'a`.
unsafe fn borrow<'a>(
    ptr: *const c_char,
    len: usize,
    what: &str,
    null_ok: bool,
) -> Result<&'a [u8], Failure> {
    if ptr.is_null() {
        return if null_ok && len == 0 {
            Ok(&[])
        } else {
            Err(Failure::invalid(format!("{what} is NULL")))
        };
    }
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!("{what}: length out of range")));
    }
    // SAFETY: non-NULL and readable for `len` bytes by the caller's promise.
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) })
}

/// Borrows `len` bytes of UTF-8.
///
/// # Safety
/// As [`borrow`].
unsafe fn borrow_str<'a>(
    ptr: *const c_char,
    len: usize,
    what: &str,
    null_ok: bool,
) -> Result<&'a str, Failure> {
    // SAFETY: forwarded.
    let bytes = unsafe { borrow(ptr, len, what, null_ok) }?;
    std::str::from_utf8(bytes).map_err(|_| Failure::invalid(format!("{what} is not valid UTF-8")))
}

/// # Safety
/// `ctx` is NULL or points to a `twofold_context` whose buffers are readable.
unsafe fn context(ctx: *const twofold_context) -> Result<Context, Failure> {
    // SAFETY: non-NULL was promised readable.
    let Some(ctx) = (unsafe { ctx.as_ref() }) else {
        return Err(Failure::invalid("ctx is NULL"));
    };
    // SAFETY: the context's buffers were promised readable.
    let (ip, user_agent) = unsafe {
        (
            borrow_str(ctx.ip, ctx.ip_len, "ctx.ip", true)?,
            borrow_str(ctx.user_agent, ctx.user_agent_len, "ctx.user_agent", true)?,
        )
    };
    Ok(Context::new(ip, user_agent))
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
/// at most 64 KiB), an object whose fields are all optional and default to the
/// specification's values:
///
/// ```json
/// {"rp_id": "example.com", "rp_name": "Example", "origins": ["https://example.com"],
///  "password_hash": {"m_kib": 19456, "t": 2, "p": 1},
///  "backup_code_hash": {"m_kib": 4096, "t": 1, "p": 1},
///  "user_verification": "preferred",
///  "pending_sign_in_ttl_secs": 300, "registration_ttl_secs": 300,
///  "max_second_factor_attempts": 5, "lockout_threshold": 10, "lockout_secs": 900,
///  "backup_code_count": 10, "backup_code_low_watermark": 3, "max_conflict_retries": 8}
/// ```
///
/// (`user_verification` is `"required"`, `"preferred"` or `"discouraged"`; unknown fields are
/// refused.) `host` is copied (see `struct twofold_host` for how long its contents must live).
/// On success `*out_engine` receives the new engine, which the caller owns and frees with
/// `twofold_engine_free`; on failure `*out_engine` is left unchanged.
///
/// Returns `TWOFOLD_OK`; `TWOFOLD_INVALID_INPUT` when any pointer is NULL, the JSON is invalid,
/// oversized or out of range, or the host table has an unsupported version or a NULL required
/// callback; `TWOFOLD_INTERNAL`. The engine calls no callback while being created.
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
        // SAFETY: the caller promises readable buffers behind non-NULL pointers.
        let config = unsafe { borrow(config_json, config_len, "config_json", false) }?;
        // SAFETY: as above.
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

/// Frees a string the library returned (`out_json` of an operation). NULL is a no-op.
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
/// Every non-NULL pointer is valid as the operation's documentation describes.
unsafe fn run(
    op: Result<Op, Failure>,
    engine: *const twofold_engine,
    ctx: *const twofold_context,
    args_json: *const c_char,
    args_len: usize,
    out_json: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    boundary(|| {
        let op = op?;
        // SAFETY: a non-NULL engine was made by `twofold_engine_new` and not yet freed.
        let Some(engine) = (unsafe { engine.as_ref() }) else {
            return Err(Failure::invalid("engine is NULL"));
        };
        if out_json.is_null() {
            return Err(Failure::invalid("out_json is NULL"));
        }
        if out_len.is_null() {
            return Err(Failure::invalid("out_len is NULL"));
        }
        // SAFETY: the caller promises readable buffers behind non-NULL pointers.
        let ctx = unsafe { context(ctx) }?;
        // SAFETY: as above.
        let args = unsafe { borrow(args_json, args_len, "args_json", false) }?;
        let result = api::call(&engine.engine, &engine.host, &ctx, op, args)?;
        let (ptr, len) = give_string(result)?;
        // SAFETY: checked non-NULL; the caller promises both are writable.
        unsafe {
            out_json.write(ptr);
            out_len.write(len);
        }
        Ok(())
    })
}

/// Runs any operation by name: `op` points to `op_len` bytes of UTF-8 naming it
/// (`"create_account"`, `"sign_in"`, ... : the names of the `twofold_engine_<name>` functions).
///
/// Arguments, results and statuses are those of the named operation's function; an unknown
/// name, or a NULL `op`, gives `TWOFOLD_INVALID_INPUT`.
///
/// Every operation (`twofold_engine_<op>` and `twofold_engine_call`) works alike:
/// - `engine`: from `twofold_engine_new`; `ctx`: the caller's context, borrowed for the call.
/// - `args_json`: `args_len` bytes of UTF-8 JSON (not necessarily NUL-terminated, at most
///   64 KiB), borrowed for the call. Unknown fields are refused.
/// - On success `*out_json` receives a NUL-terminated UTF-8 JSON document that the caller owns
///   and frees with `twofold_string_free`, and `*out_len` its length in bytes (without the
///   NUL). On failure neither is written; `twofold_last_error_message` explains why.
/// - NULL `engine`, `ctx`, `args_json`, `out_json` or `out_len`, invalid UTF-8, JSON that is
///   malformed, oversized or of the wrong shape: `TWOFOLD_INVALID_INPUT`.
/// - Any operation may also return `TWOFOLD_CONFLICT` (concurrent writes kept conflicting),
///   `TWOFOLD_STORAGE` (a host callback failed) or `TWOFOLD_INTERNAL`; nothing is written then.
/// - Thread safety: any number of threads may call operations on one engine at once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_call(
    engine: *const twofold_engine,
    ctx: *const twofold_context,
    op: *const c_char,
    op_len: usize,
    args_json: *const c_char,
    args_len: usize,
    out_json: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    let op = guard(Err(Failure::internal("panic while reading op")), || {
        // SAFETY: the caller promises `op_len` readable bytes behind a non-NULL `op`.
        let name = unsafe { borrow_str(op, op_len, "op", false) }?;
        Op::parse(name).ok_or_else(|| Failure::invalid(format!("unknown operation {name:?}")))
    });
    // SAFETY: forwarded.
    unsafe { run(op, engine, ctx, args_json, args_len, out_json, out_len) }
}

/// Creates an account (an email and a password).
///
/// Args: `{"email": string, "password": string}`. Emails are trimmed and compared
/// case-insensitively; passwords are 8 to 1024 bytes.
/// Result: `{"user_id": string, "email": string}` (the email as stored).
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_ALREADY_EXISTS`, and the common ones
/// (see `twofold_engine_call`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_create_account(
    engine: *const twofold_engine,
    ctx: *const twofold_context,
    args_json: *const c_char,
    args_len: usize,
    out_json: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: forwarded.
    unsafe {
        run(
            Ok(Op::CreateAccount),
            engine,
            ctx,
            args_json,
            args_len,
            out_json,
            out_len,
        )
    }
}

/// Sign-in step one: email and password.
///
/// Args: `{"email": string, "password": string, "remember_me": bool (optional, false)}`.
/// Result, when two-factor authentication is off:
/// `{"status": "signed_in", "user_id": string, "remember_me": bool}`; when it is on:
/// `{"status": "second_factor_required", "pending_token": string, "options": object}`, where
/// `options` is the WebAuthn request options (the `publicKey` member, WebAuthn Level 3 JSON,
/// for `PublicKeyCredential.parseRequestOptionsFromJSON`) and `pending_token` goes to
/// `twofold_engine_sign_in_passkey` or `twofold_engine_sign_in_backup_code` (valid 5 minutes).
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_INVALID_CREDENTIALS` (unknown
/// email or wrong password, indistinguishable), `TWOFOLD_RATE_LIMITED` (see
/// `twofold_last_error_retry_after_secs`), and the common ones (see
/// `twofold_engine_call`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_sign_in(
    engine: *const twofold_engine,
    ctx: *const twofold_context,
    args_json: *const c_char,
    args_len: usize,
    out_json: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: forwarded.
    unsafe {
        run(
            Ok(Op::SignIn),
            engine,
            ctx,
            args_json,
            args_len,
            out_json,
            out_len,
        )
    }
}

/// Sign-in step two with a passkey.
///
/// Args: `{"pending_token": string, "credential": object or string}`, where `credential` is
/// the browser's `PublicKeyCredential.toJSON()` for the options of step one (as an object, or
/// as JSON text in a string).
/// Result: `{"user_id": string, "remember_me": false}` (remember-me is always false after a
/// second factor).
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_INVALID_PASSKEY` (the assertion
/// did not verify), `TWOFOLD_EXPIRED` (unknown, used, expired or voided pending token),
/// `TWOFOLD_RATE_LIMITED`, and the common ones (see `twofold_engine_call`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_sign_in_passkey(
    engine: *const twofold_engine,
    ctx: *const twofold_context,
    args_json: *const c_char,
    args_len: usize,
    out_json: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: forwarded.
    unsafe {
        run(
            Ok(Op::SignInPasskey),
            engine,
            ctx,
            args_json,
            args_len,
            out_json,
            out_len,
        )
    }
}

/// Sign-in step two with a backup code.
///
/// Args: `{"pending_token": string, "code": string}` (case, spaces and hyphens in the code do
/// not matter).
/// Result: `{"user_id": string, "remember_me": false, "backup_codes_remaining": number,
/// "backup_codes_running_low": bool}`. The code is used up.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_INVALID_BACKUP_CODE`,
/// `TWOFOLD_EXPIRED`, `TWOFOLD_RATE_LIMITED`, and the common ones (see
/// `twofold_engine_call`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_sign_in_backup_code(
    engine: *const twofold_engine,
    ctx: *const twofold_context,
    args_json: *const c_char,
    args_len: usize,
    out_json: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: forwarded.
    unsafe {
        run(
            Ok(Op::SignInBackupCode),
            engine,
            ctx,
            args_json,
            args_len,
            out_json,
            out_len,
        )
    }
}

/// Starts registering a passkey for a signed-in user.
///
/// Args: `{"user_id": string, "name": string, "password": string}` (the passkey's name, 1 to
/// 64 characters after trimming, and the user's current password).
/// Result: `{"options": object}`, the WebAuthn creation options (the `publicKey` member,
/// WebAuthn Level 3 JSON, for `PublicKeyCredential.parseCreationOptionsFromJSON`). The
/// ceremony is valid 5 minutes and finishes with `twofold_engine_finish_passkey_registration`.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND` (unknown user),
/// `TWOFOLD_INVALID_CREDENTIALS` (wrong password), `TWOFOLD_RATE_LIMITED`, and the common ones
/// (see `twofold_engine_call`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_start_passkey_registration(
    engine: *const twofold_engine,
    ctx: *const twofold_context,
    args_json: *const c_char,
    args_len: usize,
    out_json: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: forwarded.
    unsafe {
        let op = Ok(Op::StartPasskeyRegistration);
        run(op, engine, ctx, args_json, args_len, out_json, out_len)
    }
}

/// Finishes registering a passkey.
///
/// Args: `{"user_id": string, "credential": object or string}`, where `credential` is the
/// browser's `PublicKeyCredential.toJSON()` for the options of the start call.
/// Result: `{"passkey": passkey, "two_factor_enabled": bool, "backup_codes": [string]
/// (only when this registration turned two-factor authentication on: shown this once),
/// "backup_codes_remaining": number, "backup_codes_running_low": bool}`, where a passkey is
/// `{"id": string (credential id, base64url), "name": string, "created_at": number (ms since
/// the Unix epoch), "last_used_at": number or null, "backup_eligible": bool, "backed_up":
/// bool, "transports": [string]}`.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_INVALID_PASSKEY` (the attestation
/// did not verify), `TWOFOLD_EXPIRED` (no, a used or an expired ceremony),
/// `TWOFOLD_ALREADY_EXISTS` (the credential is registered already), `TWOFOLD_NOT_FOUND`, and
/// the common ones (see `twofold_engine_call`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_finish_passkey_registration(
    engine: *const twofold_engine,
    ctx: *const twofold_context,
    args_json: *const c_char,
    args_len: usize,
    out_json: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: forwarded.
    unsafe {
        let op = Ok(Op::FinishPasskeyRegistration);
        run(op, engine, ctx, args_json, args_len, out_json, out_len)
    }
}

/// Lists a user's passkeys, oldest first.
///
/// Args: `{"user_id": string}`.
/// Result: `{"passkeys": [passkey]}` (passkey as in
/// `twofold_engine_finish_passkey_registration`).
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND`, and the common ones
/// (see `twofold_engine_call`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_list_passkeys(
    engine: *const twofold_engine,
    ctx: *const twofold_context,
    args_json: *const c_char,
    args_len: usize,
    out_json: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: forwarded.
    unsafe {
        run(
            Ok(Op::ListPasskeys),
            engine,
            ctx,
            args_json,
            args_len,
            out_json,
            out_len,
        )
    }
}

/// Renames a passkey.
///
/// Args: `{"user_id": string, "passkey_id": string, "name": string}` (1 to 64 characters
/// after trimming).
/// Result: the renamed passkey (as in `twofold_engine_finish_passkey_registration`).
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND` (unknown user or
/// passkey), and the common ones (see `twofold_engine_call`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_rename_passkey(
    engine: *const twofold_engine,
    ctx: *const twofold_context,
    args_json: *const c_char,
    args_len: usize,
    out_json: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: forwarded.
    unsafe {
        run(
            Ok(Op::RenamePasskey),
            engine,
            ctx,
            args_json,
            args_len,
            out_json,
            out_len,
        )
    }
}

/// Removes a passkey. Removing the last one turns two-factor authentication off and voids
/// every backup code.
///
/// Args: `{"user_id": string, "passkey_id": string, "password": string}`.
/// Result: the user's status afterwards (as in `twofold_engine_status`).
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND`,
/// `TWOFOLD_INVALID_CREDENTIALS` (wrong password), `TWOFOLD_RATE_LIMITED`, and the common ones
/// (see `twofold_engine_call`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_remove_passkey(
    engine: *const twofold_engine,
    ctx: *const twofold_context,
    args_json: *const c_char,
    args_len: usize,
    out_json: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: forwarded.
    unsafe {
        run(
            Ok(Op::RemovePasskey),
            engine,
            ctx,
            args_json,
            args_len,
            out_json,
            out_len,
        )
    }
}

/// Turns two-factor authentication on (the user needs a passkey) and makes a fresh set of
/// backup codes.
///
/// Args: `{"user_id": string, "password": string}`.
/// Result: `{"codes": [string]}`, the new backup codes: the only time they can be read.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND`,
/// `TWOFOLD_INVALID_CREDENTIALS`, `TWOFOLD_ALREADY_ENABLED`, `TWOFOLD_NO_PASSKEY`,
/// `TWOFOLD_RATE_LIMITED`, and the common ones (see `twofold_engine_call`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_enable_two_factor(
    engine: *const twofold_engine,
    ctx: *const twofold_context,
    args_json: *const c_char,
    args_len: usize,
    out_json: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: forwarded.
    unsafe {
        run(
            Ok(Op::EnableTwoFactor),
            engine,
            ctx,
            args_json,
            args_len,
            out_json,
            out_len,
        )
    }
}

/// Turns two-factor authentication off; passkeys are kept, backup codes voided.
///
/// Args: `{"user_id": string, "password": string}`.
/// Result: the user's status afterwards (as in `twofold_engine_status`).
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND`,
/// `TWOFOLD_INVALID_CREDENTIALS`, `TWOFOLD_NOT_ENABLED`, `TWOFOLD_RATE_LIMITED`, and the
/// common ones (see `twofold_engine_call`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_disable_two_factor(
    engine: *const twofold_engine,
    ctx: *const twofold_context,
    args_json: *const c_char,
    args_len: usize,
    out_json: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: forwarded.
    unsafe {
        run(
            Ok(Op::DisableTwoFactor),
            engine,
            ctx,
            args_json,
            args_len,
            out_json,
            out_len,
        )
    }
}

/// Replaces the user's backup codes with a fresh set; the old set is void.
///
/// Args: `{"user_id": string, "password": string}`.
/// Result: `{"codes": [string]}`, the new backup codes: the only time they can be read.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND`,
/// `TWOFOLD_INVALID_CREDENTIALS`, `TWOFOLD_NOT_ENABLED`, `TWOFOLD_RATE_LIMITED`, and the
/// common ones (see `twofold_engine_call`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_regenerate_backup_codes(
    engine: *const twofold_engine,
    ctx: *const twofold_context,
    args_json: *const c_char,
    args_len: usize,
    out_json: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: forwarded.
    unsafe {
        let op = Ok(Op::RegenerateBackupCodes);
        run(op, engine, ctx, args_json, args_len, out_json, out_len)
    }
}

/// A user's two-factor state.
///
/// Args: `{"user_id": string}`.
/// Result: `{"user_id": string, "email": string, "two_factor_enabled": bool, "passkeys":
/// [passkey], "backup_codes_remaining": number, "backup_codes_running_low": bool}` (passkey as
/// in `twofold_engine_finish_passkey_registration`).
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND`, and the common ones
/// (see `twofold_engine_call`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_status(
    engine: *const twofold_engine,
    ctx: *const twofold_context,
    args_json: *const c_char,
    args_len: usize,
    out_json: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: forwarded.
    unsafe {
        run(
            Ok(Op::Status),
            engine,
            ctx,
            args_json,
            args_len,
            out_json,
            out_len,
        )
    }
}

/// A page of a user's audit events, newest first.
///
/// Args: `{"user_id": string, "before": number (optional: the previous page's
/// `next_before`), "limit": number (optional, 1 to 200, default 50)}`.
/// Result: `{"events": [event], "next_before": number (absent on the last page)}`, where an
/// event is `{"seq": number, "at": number (ms since the Unix epoch), "user_id": string,
/// "kind": string, "details": object, "ip": string, "user_agent": string, "notify": bool,
/// "prev_hash": string, "hash": string}` and `kind` is one of `account_created`,
/// `password_ok`, `password_failed`, `second_factor_required`, `passkey_ok`,
/// `passkey_failed`, `backup_code_ok`, `backup_code_failed`, `throttled`,
/// `passkey_registered`, `passkey_renamed`, `passkey_removed`, `two_factor_enabled`,
/// `two_factor_disabled`, `backup_codes_generated`. `notify` marks events the user should be
/// told about.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND`, and the common ones
/// (see `twofold_engine_call`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_audit_events(
    engine: *const twofold_engine,
    ctx: *const twofold_context,
    args_json: *const c_char,
    args_len: usize,
    out_json: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: forwarded.
    unsafe {
        run(
            Ok(Op::AuditEvents),
            engine,
            ctx,
            args_json,
            args_len,
            out_json,
            out_len,
        )
    }
}

/// Verifies a user's audit hash chain: reports altered, dropped or reordered events.
///
/// Args: `{"user_id": string}`.
/// Result: `{"intact": bool, "events_checked": number, "problems": [{"seq": number,
/// "problem": string}]}`, where `problem` is `altered`, `missing`, `out_of_order`,
/// `broken_link` or `unreadable`. A broken chain is a successful call with `intact` false.
///
/// Statuses: `TWOFOLD_OK`, `TWOFOLD_INVALID_INPUT`, `TWOFOLD_NOT_FOUND`, and the common ones
/// (see `twofold_engine_call`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twofold_engine_verify_audit_chain(
    engine: *const twofold_engine,
    ctx: *const twofold_context,
    args_json: *const c_char,
    args_len: usize,
    out_json: *mut *mut c_char,
    out_len: *mut usize,
) -> twofold_status {
    // SAFETY: forwarded.
    unsafe {
        run(
            Ok(Op::VerifyAuditChain),
            engine,
            ctx,
            args_json,
            args_len,
            out_json,
            out_len,
        )
    }
}
