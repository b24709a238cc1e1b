//! The one error type of the engine. Its variants are the stable codes of SPEC.md; hosts map
//! [`ErrorCode`] to their own statuses and never parse messages.

use std::fmt;

use crate::storage::HostError;

/// Every error code the engine can return, numbered once and never reused.
///
/// The numbers are the C status values (0 is reserved for "ok"); the strings are the codes in
/// JSON, WIT and the conformance transcripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Malformed, oversized or out-of-range input.
    InvalidInput = 1,
    /// Unknown email or wrong password (indistinguishable on purpose, rule A3).
    InvalidCredentials = 2,
    /// Too many failed attempts for this account; retry later (rule S6).
    RateLimited = 3,
    /// The operation needs the second sign-in step first.
    SecondFactorRequired = 4,
    /// A WebAuthn registration or assertion did not verify.
    InvalidPasskey = 5,
    /// The backup code is unknown or already used.
    InvalidBackupCode = 6,
    /// The ceremony, pending sign-in or challenge is over (expired, used or voided).
    Expired = 7,
    /// An unknown user, passkey or other id.
    NotFound = 8,
    /// The thing exists already (an account for the email, a credential id).
    AlreadyExists = 9,
    /// Two-factor authentication is on already.
    AlreadyEnabled = 10,
    /// Two-factor authentication is off.
    NotEnabled = 11,
    /// The user has no passkey.
    NoPasskey = 12,
    /// Concurrent writes kept conflicting; nothing was written.
    Conflict = 13,
    /// The host's storage (or clock, or randomness) failed; nothing was written.
    Storage = 14,
    /// A bug or an impossible state; nothing was written.
    Internal = 15,
}

impl ErrorCode {
    /// All codes, in numeric order.
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::InvalidInput,
        ErrorCode::InvalidCredentials,
        ErrorCode::RateLimited,
        ErrorCode::SecondFactorRequired,
        ErrorCode::InvalidPasskey,
        ErrorCode::InvalidBackupCode,
        ErrorCode::Expired,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::AlreadyEnabled,
        ErrorCode::NotEnabled,
        ErrorCode::NoPasskey,
        ErrorCode::Conflict,
        ErrorCode::Storage,
        ErrorCode::Internal,
    ];

    /// The stable snake_case code, as in SPEC.md.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::SecondFactorRequired => "second_factor_required",
            ErrorCode::InvalidPasskey => "invalid_passkey",
            ErrorCode::InvalidBackupCode => "invalid_backup_code",
            ErrorCode::Expired => "expired",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::AlreadyEnabled => "already_enabled",
            ErrorCode::NotEnabled => "not_enabled",
            ErrorCode::NoPasskey => "no_passkey",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Storage => "storage",
            ErrorCode::Internal => "internal",
        }
    }

    /// The numeric status (1..=15) used by the C library.
    pub fn number(self) -> i32 {
        self as i32
    }

    /// The code for a numeric status, if there is one.
    pub fn from_number(n: i32) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.number() == n)
    }

    /// The code for its string form, if there is one.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An engine error: a stable code plus a human message. Messages never contain secrets.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// See [`ErrorCode::InvalidInput`].
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// See [`ErrorCode::InvalidCredentials`].
    #[error("the email or password is not correct")]
    InvalidCredentials,
    /// See [`ErrorCode::RateLimited`].
    #[error("too many failed attempts; try again in {retry_after_secs} seconds")]
    RateLimited {
        /// Seconds until the account accepts attempts again.
        retry_after_secs: u64,
    },
    /// See [`ErrorCode::SecondFactorRequired`].
    #[error("a second factor is required")]
    SecondFactorRequired,
    /// See [`ErrorCode::InvalidPasskey`].
    #[error("the passkey could not be verified: {0}")]
    InvalidPasskey(String),
    /// See [`ErrorCode::InvalidBackupCode`].
    #[error("the backup code is not valid or was already used")]
    InvalidBackupCode,
    /// See [`ErrorCode::Expired`].
    #[error("{0}")]
    Expired(String),
    /// See [`ErrorCode::NotFound`].
    #[error("{0} not found")]
    NotFound(String),
    /// See [`ErrorCode::AlreadyExists`].
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// See [`ErrorCode::AlreadyEnabled`].
    #[error("two-factor authentication is already enabled")]
    AlreadyEnabled,
    /// See [`ErrorCode::NotEnabled`].
    #[error("two-factor authentication is not enabled")]
    NotEnabled,
    /// See [`ErrorCode::NoPasskey`].
    #[error("register a passkey before enabling two-factor authentication")]
    NoPasskey,
    /// See [`ErrorCode::Conflict`].
    #[error("the operation kept conflicting with concurrent changes; nothing was written")]
    Conflict,
    /// See [`ErrorCode::Storage`].
    #[error("storage failed; nothing was written: {0}")]
    Storage(#[source] HostError),
    /// See [`ErrorCode::Internal`].
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidInput(_) => ErrorCode::InvalidInput,
            Error::InvalidCredentials => ErrorCode::InvalidCredentials,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::SecondFactorRequired => ErrorCode::SecondFactorRequired,
            Error::InvalidPasskey(_) => ErrorCode::InvalidPasskey,
            Error::InvalidBackupCode => ErrorCode::InvalidBackupCode,
            Error::Expired(_) => ErrorCode::Expired,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Error::AlreadyEnabled => ErrorCode::AlreadyEnabled,
            Error::NotEnabled => ErrorCode::NotEnabled,
            Error::NoPasskey => ErrorCode::NoPasskey,
            Error::Conflict => ErrorCode::Conflict,
            Error::Storage(_) => ErrorCode::Storage,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Seconds to wait before retrying, for [`Error::RateLimited`].
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::InvalidInput(msg.into())
    }

    pub(crate) fn internal(msg: impl fmt::Display) -> Error {
        Error::Internal(msg.to_string())
    }
}

impl From<HostError> for Error {
    fn from(e: HostError) -> Error {
        match e {
            HostError::Conflict => Error::Conflict,
            other => Error::Storage(other),
        }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
