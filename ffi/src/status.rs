//! Statuses, the per-thread last error, and the panic boundary every export runs inside.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use twofold_core::{Error, ErrorCode};

/// The result of every fallible call, and of every host callback.
///
/// `TWOFOLD_OK` (0) is success; every other value is one of the stable error codes of the
/// specification, numbered once and never reused. `twofold_status_name` gives the code's
/// string form (`"invalid_input"`, ...), the same string the JSON, WIT and conformance
/// interfaces use; `twofold_status_message` a sentence for people. Host callbacks return these
/// values as a plain `int32_t`. A host should map the codes to its own answers (HTTP statuses)
/// and never parse messages.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
pub enum twofold_status {
    /// Success.
    TwofoldOk = 0,
    /// Malformed, oversized (over 64 KiB) or out-of-range input; a NULL pointer; invalid
    /// UTF-8; an unknown operation name.
    TwofoldInvalidInput = 1,
    /// Unknown email or wrong password (deliberately indistinguishable).
    TwofoldInvalidCredentials = 2,
    /// Too many failed attempts for the account; see `twofold_last_error_retry_after_secs`.
    TwofoldRateLimited = 3,
    /// The operation needs the second sign-in step first.
    TwofoldSecondFactorRequired = 4,
    /// A WebAuthn registration or assertion did not verify.
    TwofoldInvalidPasskey = 5,
    /// The backup code is unknown or already used.
    TwofoldInvalidBackupCode = 6,
    /// The ceremony, pending sign-in or challenge is over (expired, used or voided).
    TwofoldExpired = 7,
    /// An unknown user, passkey or other id.
    TwofoldNotFound = 8,
    /// The thing exists already (an account for the email, a credential id).
    TwofoldAlreadyExists = 9,
    /// Two-factor authentication is on already.
    TwofoldAlreadyEnabled = 10,
    /// Two-factor authentication is off.
    TwofoldNotEnabled = 11,
    /// The user has no passkey.
    TwofoldNoPasskey = 12,
    /// Concurrent writes kept conflicting; nothing was written. From a `commit` callback: an
    /// expected version did not hold, and nothing was applied.
    TwofoldConflict = 13,
    /// Storage, the clock or the randomness failed; nothing was written. From a callback: any
    /// failure other than a conflict.
    TwofoldStorage = 14,
    /// A bug or an impossible state (including a caught panic); nothing was written.
    TwofoldInternal = 15,
}

impl twofold_status {
    pub(crate) fn from_code(code: ErrorCode) -> twofold_status {
        use twofold_status::*;
        match code {
            ErrorCode::InvalidInput => TwofoldInvalidInput,
            ErrorCode::InvalidCredentials => TwofoldInvalidCredentials,
            ErrorCode::RateLimited => TwofoldRateLimited,
            ErrorCode::SecondFactorRequired => TwofoldSecondFactorRequired,
            ErrorCode::InvalidPasskey => TwofoldInvalidPasskey,
            ErrorCode::InvalidBackupCode => TwofoldInvalidBackupCode,
            ErrorCode::Expired => TwofoldExpired,
            ErrorCode::NotFound => TwofoldNotFound,
            ErrorCode::AlreadyExists => TwofoldAlreadyExists,
            ErrorCode::AlreadyEnabled => TwofoldAlreadyEnabled,
            ErrorCode::NotEnabled => TwofoldNotEnabled,
            ErrorCode::NoPasskey => TwofoldNoPasskey,
            ErrorCode::Conflict => TwofoldConflict,
            ErrorCode::Storage => TwofoldStorage,
            // ErrorCode is non-exhaustive: a code this library does not know is a bug here.
            _ => TwofoldInternal,
        }
    }
}

/// Why a call failed, before it is stored as the thread's last error.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: twofold_status,
    pub(crate) message: String,
    pub(crate) retry_after_secs: Option<u64>,
}

impl Failure {
    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure {
            status: twofold_status::TwofoldInvalidInput,
            message: format!("invalid input: {}", message.into()),
            retry_after_secs: None,
        }
    }

    pub(crate) fn internal(message: impl Into<String>) -> Failure {
        Failure {
            status: twofold_status::TwofoldInternal,
            message: format!("internal error: {}", message.into()),
            retry_after_secs: None,
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure {
            status: twofold_status::from_code(error.code()),
            message: error.to_string(),
            retry_after_secs: error.retry_after_secs(),
        }
    }
}

struct LastError {
    status: twofold_status,
    message: CString,
    retry_after_secs: Option<u64>,
}

thread_local! {
    static LAST_ERROR: RefCell<Option<LastError>> = const { RefCell::new(None) };
}

fn record(failure: Failure) {
    let message = CString::new(failure.message.replace('\0', " ")).unwrap_or_default();
    // During thread teardown the slot may be gone; the status still reaches the caller.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = Some(LastError {
                status: failure.status,
                message,
                retry_after_secs: failure.retry_after_secs,
            });
        }
    });
}

fn with_last_error<T>(fallback: T, f: impl FnOnce(&LastError) -> T) -> T {
    LAST_ERROR
        .try_with(|slot| match slot.try_borrow() {
            Ok(slot) => slot.as_ref().map(f),
            Err(_) => None,
        })
        .ok()
        .flatten()
        .unwrap_or(fallback)
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panic: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panic: {s}")
    } else {
        "panic".to_owned()
    }
}

/// Runs a fallible export: catches panics, records a failure as the thread's last error and
/// turns the outcome into a status.
pub(crate) fn boundary(f: impl FnOnce() -> Result<(), Failure>) -> twofold_status {
    let failure = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => return twofold_status::TwofoldOk,
        Ok(Err(failure)) => failure,
        Err(payload) => Failure::internal(panic_message(payload.as_ref())),
    };
    let status = failure.status;
    record(failure);
    status
}

/// Runs an infallible export: a panic gives `fallback` instead of crossing into C.
pub(crate) fn guard<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

fn static_str(s: &'static str) -> *const c_char {
    s.as_ptr().cast()
}

/// The stable code string of a status: `"ok"`, `"invalid_input"`, `"rate_limited"`, ... (the
/// strings of the specification, the JSON and the WIT interface).
///
/// Any `int32_t` may be passed: a value that is not a status gives `"unknown"`.
/// Returns a static NUL-terminated string, never NULL; do not free it.
/// Thread safety: may be called from any thread at any time.
#[unsafe(no_mangle)]
pub extern "C" fn twofold_status_name(status: i32) -> *const c_char {
    guard(static_str("unknown\0"), || {
        if status == 0 {
            return static_str("ok\0");
        }
        match ErrorCode::from_number(status) {
            Some(code) => nul_terminated_code(code),
            None => static_str("unknown\0"),
        }
    })
}

fn nul_terminated_code(code: ErrorCode) -> *const c_char {
    static_str(match code {
        ErrorCode::InvalidInput => "invalid_input\0",
        ErrorCode::InvalidCredentials => "invalid_credentials\0",
        ErrorCode::RateLimited => "rate_limited\0",
        ErrorCode::SecondFactorRequired => "second_factor_required\0",
        ErrorCode::InvalidPasskey => "invalid_passkey\0",
        ErrorCode::InvalidBackupCode => "invalid_backup_code\0",
        ErrorCode::Expired => "expired\0",
        ErrorCode::NotFound => "not_found\0",
        ErrorCode::AlreadyExists => "already_exists\0",
        ErrorCode::AlreadyEnabled => "already_enabled\0",
        ErrorCode::NotEnabled => "not_enabled\0",
        ErrorCode::NoPasskey => "no_passkey\0",
        ErrorCode::Conflict => "conflict\0",
        ErrorCode::Storage => "storage\0",
        ErrorCode::Internal => "internal\0",
        _ => "unknown\0",
    })
}

/// A sentence describing a status in general, for logs and people (for the details of one
/// failed call use `twofold_last_error_message`).
///
/// Any `int32_t` may be passed: a value that is not a status gives `"unknown status"`.
/// Returns a static NUL-terminated string, never NULL; do not free it.
/// Thread safety: may be called from any thread at any time.
#[unsafe(no_mangle)]
pub extern "C" fn twofold_status_message(status: i32) -> *const c_char {
    guard(static_str("unknown status\0"), || {
        static_str(match status {
            0 => "ok\0",
            1 => {
                "invalid input: malformed, oversized or out-of-range data, a NULL pointer or invalid UTF-8\0"
            }
            2 => "the email or password is not correct\0",
            3 => "too many failed attempts; try again later\0",
            4 => "a second factor is required\0",
            5 => "the passkey could not be verified\0",
            6 => "the backup code is not valid or was already used\0",
            7 => "the sign-in or ceremony has expired or was already used\0",
            8 => "not found\0",
            9 => "already exists\0",
            10 => "two-factor authentication is already enabled\0",
            11 => "two-factor authentication is not enabled\0",
            12 => "the user has no passkey\0",
            13 => "concurrent changes kept conflicting; nothing was written\0",
            14 => "storage, the clock or the randomness failed; nothing was written\0",
            15 => "internal error; nothing was written\0",
            _ => "unknown status\0",
        })
    })
}

/// The status of the most recent call on this thread that failed, or `TWOFOLD_OK` when no
/// call on this thread has failed yet.
///
/// "Calls" are the functions that return a `twofold_status`; a successful call does not
/// clear the last error.
/// Thread safety: reads state private to the calling thread. Bindings whose threads are not
/// fixed (Go: use `runtime.LockOSThread`) must read it on the thread that made the call.
#[unsafe(no_mangle)]
pub extern "C" fn twofold_last_error_status() -> twofold_status {
    guard(twofold_status::TwofoldInternal, || {
        with_last_error(twofold_status::TwofoldOk, |e| e.status)
    })
}

/// The message of the most recent call on this thread that failed: what was wrong, in words
/// (never a secret). `""` when no call on this thread has failed yet.
///
/// Returns a NUL-terminated string owned by the library, never NULL; do not free it. It stays
/// valid until the next failing call on the same thread, or until the thread exits; copy it to
/// keep it. Thread safety: as `twofold_last_error_status`.
#[unsafe(no_mangle)]
pub extern "C" fn twofold_last_error_message() -> *const c_char {
    guard(static_str("\0"), || {
        with_last_error(static_str("\0"), |e| e.message.as_ptr())
    })
}

/// When the most recent failed call on this thread returned `TWOFOLD_RATE_LIMITED`: the seconds
/// until the account accepts attempts again (at least 1). Otherwise 0.
///
/// Thread safety: as `twofold_last_error_status`.
#[unsafe(no_mangle)]
pub extern "C" fn twofold_last_error_retry_after_secs() -> u64 {
    guard(0, || {
        with_last_error(0, |e| e.retry_after_secs.map_or(0, |s| s.max(1)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn every_core_code_has_the_same_number_and_name() {
        for code in ErrorCode::ALL {
            let status = twofold_status::from_code(code);
            assert_eq!(status as i32, code.number());
            let name = unsafe { CStr::from_ptr(twofold_status_name(code.number())) };
            assert_eq!(name.to_str().unwrap(), code.as_str());
            let message = unsafe { CStr::from_ptr(twofold_status_message(code.number())) };
            assert!(!message.to_bytes().is_empty());
        }
        let unknown = unsafe { CStr::from_ptr(twofold_status_name(16)) };
        assert_eq!(unknown.to_str().unwrap(), "unknown");
    }

    #[test]
    fn a_panic_becomes_internal_and_is_recorded() {
        let status = boundary(|| panic!("boom"));
        assert_eq!(status, twofold_status::TwofoldInternal);
        assert_eq!(twofold_last_error_status(), twofold_status::TwofoldInternal);
        let message = unsafe { CStr::from_ptr(twofold_last_error_message()) };
        assert!(message.to_str().unwrap().contains("boom"));
    }
}
