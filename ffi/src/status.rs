//! Statuses, the per-thread last error, and the panic boundary every export runs inside.
//!
//! The status numbers, names and sentences are `twofold_core::ErrorCode`'s table; nothing here
//! lists the codes again. The header's `enum { TWOFOLD_OK = 0, ... }` is generated from the
//! same table by `tests/header.rs`.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use twofold_core::{Error, ErrorCode};

/// The result of every fallible call, and of every host callback: `TWOFOLD_OK` (0) or one of
/// the `TWOFOLD_<CODE>` values above, the stable error codes of the specification, numbered
/// once and never reused.
///
/// `twofold_status_name` gives a code's string form (`"invalid_input"`, ...), the same string
/// the JSON, WIT and conformance interfaces use; `twofold_status_message` a sentence for
/// people. A host maps the codes to its own answers (HTTP statuses) and never parses messages.
/// A plain `int32_t`, so that any value a callback returns is defined behaviour.
pub type twofold_status = i32;

/// Success.
pub(crate) const OK: twofold_status = 0;

/// The status of a code.
pub(crate) fn status_of(code: ErrorCode) -> twofold_status {
    code.number()
}

/// Why a call failed, before it is stored as the thread's last error.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    pub(crate) retry_after_secs: Option<u64>,
}

impl Failure {
    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::from(Error::InvalidInput(message.into()))
    }

    pub(crate) fn internal(message: impl Into<String>) -> Failure {
        Failure::from(Error::Internal(message.into()))
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure {
            code: error.code(),
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
                status: status_of(failure.code),
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
        Ok(Ok(())) => return OK,
        Ok(Err(failure)) => failure,
        Err(payload) => Failure::internal(panic_message(payload.as_ref())),
    };
    let status = status_of(failure.code);
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

/// NUL-terminated copies of one column of the code table, made once: index = status - 1.
fn column(
    cell: &'static OnceLock<Vec<CString>>,
    text: fn(ErrorCode) -> &'static str,
) -> &'static [CString] {
    cell.get_or_init(|| {
        ErrorCode::ALL
            .iter()
            .map(|c| CString::new(text(*c)).unwrap_or_default())
            .collect()
    })
}

/// One column of the code table for `status`: `ok` for success, `unknown` for a number that
/// is not a status (both NUL-terminated).
fn describe(
    status: twofold_status,
    cell: &'static OnceLock<Vec<CString>>,
    text: fn(ErrorCode) -> &'static str,
    ok: &'static str,
    unknown: &'static str,
) -> *const c_char {
    guard(static_str(unknown), || {
        if status == OK {
            return static_str(ok);
        }
        ErrorCode::ALL
            .iter()
            .position(|c| c.number() == status)
            .and_then(|index| column(cell, text).get(index))
            .map_or(static_str(unknown), |s| s.as_ptr())
    })
}

/// The stable code string of a status: `"ok"`, `"invalid_input"`, `"rate_limited"`, ... (the
/// strings of the specification, the JSON and the WIT interface).
///
/// Any `int32_t` may be passed: a value that is not a status gives `"unknown"`.
/// Returns a static NUL-terminated string, never NULL; do not free it.
/// Thread safety: may be called from any thread at any time.
#[unsafe(no_mangle)]
pub extern "C" fn twofold_status_name(status: twofold_status) -> *const c_char {
    static NAMES: OnceLock<Vec<CString>> = OnceLock::new();
    describe(status, &NAMES, ErrorCode::as_str, "ok\0", "unknown\0")
}

/// A sentence describing a status in general, for logs and people (for the details of one
/// failed call use `twofold_last_error_message`).
///
/// Any `int32_t` may be passed: a value that is not a status gives `"unknown status"`.
/// Returns a static NUL-terminated string, never NULL; do not free it.
/// Thread safety: may be called from any thread at any time.
#[unsafe(no_mangle)]
pub extern "C" fn twofold_status_message(status: twofold_status) -> *const c_char {
    static MESSAGES: OnceLock<Vec<CString>> = OnceLock::new();
    let description = ErrorCode::description;
    describe(
        status,
        &MESSAGES,
        description,
        "Success.\0",
        "unknown status\0",
    )
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
    guard(status_of(ErrorCode::Internal), || {
        with_last_error(OK, |e| e.status)
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
/// until this client may try again (at least 1). Otherwise 0.
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

    fn text(p: *const c_char) -> &'static str {
        unsafe { CStr::from_ptr(p) }.to_str().unwrap()
    }

    #[test]
    fn names_and_messages_are_the_code_table() {
        for code in ErrorCode::ALL {
            assert_eq!(text(twofold_status_name(code.number())), code.as_str());
            assert_eq!(
                text(twofold_status_message(code.number())),
                code.description()
            );
        }
        assert_eq!(text(twofold_status_name(0)), "ok");
        for unknown in [-1, 16, 99, i32::MIN, i32::MAX] {
            assert_eq!(text(twofold_status_name(unknown)), "unknown");
            assert_eq!(text(twofold_status_message(unknown)), "unknown status");
        }
    }

    #[test]
    fn a_panic_becomes_internal_and_is_recorded() {
        let status = boundary(|| panic!("boom"));
        assert_eq!(status, ErrorCode::Internal.number());
        assert_eq!(twofold_last_error_status(), ErrorCode::Internal.number());
        assert!(text(twofold_last_error_message()).contains("boom"));
    }
}
