//! What the server answers: a status, a body and headers. Every error has one shape,
//! `{"error": {"code", "message", "retry_after_secs"?}}` (the engine's [`EngineError`] as
//! serde writes it), and its HTTP status follows from its [`ErrorCode`] in [`status_of`].

use serde::Serialize;
use twofold_proto::{EngineError, ErrorCode};

/// An answer, ready to be written by the transport.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
    pub(crate) headers: Vec<(&'static str, String)>,
    /// Close the connection after this answer (the request was not read to its end).
    pub(crate) close: bool,
}

/// Headers every answer carries.
pub(crate) const COMMON_HEADERS: [(&str, &str); 4] = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
];

impl Reply {
    /// 200 with `body` as JSON; never cached.
    pub(crate) fn ok(body: &impl Serialize) -> Reply {
        match serde_json::to_vec(body) {
            Ok(bytes) => Reply::json(200, bytes),
            Err(e) => ApiError::internal(format!("an answer did not serialise: {e}")).reply(),
        }
    }

    fn json(status: u16, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body,
            headers: vec![("Cache-Control", "no-store".into())],
            close: false,
        }
    }

    /// A plain-text answer (static files' 404, transport-level refusals).
    pub(crate) fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
            headers: Vec::new(),
            close: false,
        }
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn with_cookies(mut self, cookies: Vec<String>) -> Reply {
        self.headers
            .extend(cookies.into_iter().map(|c| ("Set-Cookie", c)));
        self
    }
}

/// The HTTP status of an engine error code: the one table.
pub(crate) fn status_of(code: ErrorCode) -> u16 {
    use ErrorCode as C;
    match code {
        C::InvalidInput => 400,
        C::InvalidCredentials
        | C::SecondFactorRequired
        | C::InvalidPasskey
        | C::InvalidBackupCode => 401,
        C::NotFound => 404,
        C::AlreadyExists | C::AlreadyEnabled | C::NotEnabled | C::NoPasskey | C::Conflict => 409,
        C::Expired => 410,
        C::RateLimited => 429,
        C::Internal => 500,
        C::Storage => 503,
    }
}

/// An error answer: the engine's error (or one the host makes in the same shape) and its
/// HTTP status.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) error: EngineError,
    close: bool,
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        ApiError {
            status: status_of(error.code),
            error,
            close: false,
        }
    }
}

impl ApiError {
    /// An error of the host's with the status its code maps to.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::from(EngineError::new(code, message))
    }

    /// The same with a status of its own (403, 405, 408, 413, 431, 503 ...).
    pub(crate) fn with_status(
        status: u16,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            error: EngineError::new(code, message),
            close: false,
        }
    }

    /// The same, and the connection closes after the answer.
    pub(crate) fn closing(mut self) -> ApiError {
        self.close = true;
        self
    }

    pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidInput, message)
    }

    /// A failure of the server itself; `why` goes to the log, not to the client.
    pub(crate) fn internal(why: impl std::fmt::Display) -> ApiError {
        eprintln!("twofold-server: {why}");
        ApiError::new(
            ErrorCode::Internal,
            "the server failed on this request; try again",
        )
    }

    /// The database is not reachable; `why` goes to the log.
    pub(crate) fn storage(why: impl std::fmt::Display) -> ApiError {
        eprintln!("twofold-server: {why}");
        ApiError::new(
            ErrorCode::Storage,
            "the database is not available; try again later",
        )
    }

    /// No session, or not a signed-in one. The code is `expired` (the session is over or
    /// never was), not `invalid_credentials`, which means a wrong password.
    pub(crate) fn not_signed_in() -> ApiError {
        ApiError::with_status(
            401,
            ErrorCode::Expired,
            "not signed in, or the session has ended",
        )
    }

    pub(crate) fn reply(self) -> Reply {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a EngineError,
        }
        let body = serde_json::to_vec(&Body { error: &self.error }).unwrap_or_default();
        let mut reply = Reply::json(self.status, body);
        reply.close = self.close;
        match self.error.retry_after_secs {
            Some(secs) => reply.with_header("Retry-After", secs.to_string()),
            None => reply,
        }
    }
}
