//! The one error type of the engine. Its variants are the stable codes of SPEC.md (declared
//! once, in `twofold-proto`); hosts map [`ErrorCode`] to their own statuses and never parse
//! messages. At a boundary an [`Error`] becomes the wire record [`EngineError`].

use std::fmt;

pub use twofold_proto::ErrorCode;
use twofold_proto::{EngineError, HostError};

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
    #[error("too many attempts; try again in {}", in_words(*retry_after_secs))]
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

/// A wait for people: "1 second", "5 minutes", "2 hours" (rounded up).
fn in_words(secs: u64) -> String {
    let (n, unit) = match secs {
        0..60 => (secs, "second"),
        60..3600 => (secs.div_ceil(60), "minute"),
        _ => (secs.div_ceil(3600), "hour"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

impl From<Error> for EngineError {
    fn from(e: Error) -> EngineError {
        EngineError {
            code: e.code(),
            message: e.to_string(),
            retry_after_secs: e.retry_after_secs(),
        }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
