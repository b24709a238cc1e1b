//! The stable error codes of SPEC.md, declared once: the Rust enum, the snake_case names used in
//! JSON, C and HTTP, the WIT case names, the C status numbers and the sentence each code means
//! all come from the one table below.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! codes {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident = $number:literal, $name:literal, $wit:literal;
    )+) => {
        /// Every error code the engine can return, numbered once and never reused.
        ///
        /// [`ErrorCode::number`] is the C status (0 is reserved for success);
        /// [`ErrorCode::as_str`] the code in JSON, C (`twofold_status_name`), HTTP bodies and
        /// the conformance transcripts; [`ErrorCode::wit_name`] the case of the WIT enum
        /// `error-code` (WIT names are kebab-case by the language's rules).
        ///
        /// Exhaustive on purpose: generated bindings match on it. A new code comes with a new
        /// WIT package version.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[repr(u8)]
        #[cfg_attr(
            feature = "wasmtime",
            derive(
                wasmtime::component::ComponentType,
                wasmtime::component::Lift,
                wasmtime::component::Lower
            ),
            component(enum)
        )]
        pub enum ErrorCode {
            $(
                $(#[doc = $doc])+
                #[cfg_attr(feature = "wasmtime", component(name = $wit))]
                $variant,
            )+
        }

        impl ErrorCode {
            /// All codes, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The stable snake_case code, as in SPEC.md.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name,)+ }
            }

            /// The case of the WIT enum `error-code`.
            pub fn wit_name(self) -> &'static str {
                match self { $(ErrorCode::$variant => $wit,)+ }
            }

            /// The numeric status used by the C library (1 or more).
            pub fn number(self) -> i32 {
                match self { $(ErrorCode::$variant => $number,)+ }
            }

            /// What the code means, one sentence for people and for generated documentation.
            pub fn description(self) -> &'static str {
                match self { $(ErrorCode::$variant => concat!($($doc),+).trim_ascii(),)+ }
            }
        }
    };
}

codes! {
    /// Malformed, oversized or out-of-range input.
    InvalidInput = 1, "invalid_input", "invalid-input";
    /// Unknown email or wrong password (indistinguishable on purpose, rule A3).
    InvalidCredentials = 2, "invalid_credentials", "invalid-credentials";
    /// Too many failed attempts from this client for this account, or from this client
    /// overall; retry after the given number of seconds (rule S6).
    RateLimited = 3, "rate_limited", "rate-limited";
    /// The operation needs the second sign-in step first.
    SecondFactorRequired = 4, "second_factor_required", "second-factor-required";
    /// A WebAuthn registration or assertion did not verify.
    InvalidPasskey = 5, "invalid_passkey", "invalid-passkey";
    /// The backup code is unknown or already used.
    InvalidBackupCode = 6, "invalid_backup_code", "invalid-backup-code";
    /// The ceremony, pending sign-in or challenge is over (expired, used or voided).
    Expired = 7, "expired", "expired";
    /// An unknown user, passkey or other id.
    NotFound = 8, "not_found", "not-found";
    /// The thing exists already (an account for the email, a credential id).
    AlreadyExists = 9, "already_exists", "already-exists";
    /// Two-factor authentication is on already.
    AlreadyEnabled = 10, "already_enabled", "already-enabled";
    /// Two-factor authentication is off.
    NotEnabled = 11, "not_enabled", "not-enabled";
    /// The user has no passkey.
    NoPasskey = 12, "no_passkey", "no-passkey";
    /// Concurrent writes kept conflicting; nothing was written.
    Conflict = 13, "conflict", "conflict";
    /// The host's storage (or clock, or randomness) failed; nothing was written.
    Storage = 14, "storage", "storage";
    /// A bug or an impossible state; nothing was written.
    Internal = 15, "internal", "internal";
}

impl ErrorCode {
    /// The code for a numeric status, if there is one.
    pub fn from_number(n: i32) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.number() == n)
    }

    /// The code for its snake_case name, if there is one.
    pub fn parse(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an operation failed, as it crosses every boundary: the WIT record `engine-error`, the
/// JSON `{"code", "message", "retry_after_secs"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "wasmtime",
    derive(
        wasmtime::component::ComponentType,
        wasmtime::component::Lift,
        wasmtime::component::Lower
    ),
    component(record)
)]
pub struct EngineError {
    /// The stable code; match on this, never on the message.
    pub code: ErrorCode,
    /// A sentence for people; never contains a secret. Do not parse it.
    pub message: String,
    /// With `rate_limited`: seconds until this client may try again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "retry-after-secs"))]
    pub retry_after_secs: Option<u64>,
}

impl EngineError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> EngineError {
        EngineError {
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for EngineError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_names_and_wit_names_are_consistent() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(code.number(), i32::try_from(i).unwrap() + 1);
            assert_eq!(code.as_str().replace('_', "-"), code.wit_name());
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
            assert_eq!(ErrorCode::from_number(code.number()), Some(*code));
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
            assert!(code.description().ends_with('.'));
        }
        assert_eq!(ErrorCode::from_number(0), None);
        assert_eq!(ErrorCode::from_number(16), None);
    }

    #[test]
    fn retry_after_is_left_out_when_absent() {
        let e = EngineError::new(ErrorCode::Expired, "gone");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"code":"expired","message":"gone"}"#
        );
    }
}
