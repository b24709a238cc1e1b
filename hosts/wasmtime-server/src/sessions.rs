//! Browser sessions of the HTTP server, kept server-side in the database's `sessions` table
//! (SQLite or PostgreSQL, beside the engine's keys), so every server process on one database
//! honours every session.
//!
//! The cookie carries a random 256-bit id; the table stores only its SHA-256, so a copy of
//! the database does not hand out live sessions. A session is either signed in (a user id)
//! or pending (between sign-in steps one and two: the engine's pending-sign-in token, which
//! never reaches the browser). Lifetimes here are the host's housekeeping; every sign-in
//! rule, the pending token's own expiry included, is the engine's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::store::{SessionRow, SessionTable};

/// How long a remembered session lasts (the cookie's Max-Age too).
pub(crate) const REMEMBERED: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// How long a session that is not remembered lasts on the server; its cookie ends with the
/// browser session anyway.
const NOT_REMEMBERED: Duration = Duration::from_secs(12 * 60 * 60);
/// How long a pending sign-in is kept; the engine voids the token itself after 5 minutes.
const PENDING: Duration = Duration::from_secs(10 * 60);

/// What a session cookie stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Session {
    /// Signed in.
    SignedIn { user_id: String },
    /// Step one passed; the engine waits for a second factor on this token.
    Pending { pending_token: String },
}

fn now_secs() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn id_hash(id: &str) -> Vec<u8> {
    Sha256::digest(id.as_bytes()).to_vec()
}

/// A fresh session id: 32 bytes from the OS CSPRNG, hex.
fn new_id() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a session id: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The live session with this cookie value, if any.
pub(crate) fn get(table: &dyn SessionTable, id: &str) -> Result<Option<Session>, String> {
    let row = table.session(&id_hash(id), now_secs())?;
    Ok(match row {
        Some(SessionRow {
            user_id: Some(user_id),
            ..
        }) => Some(Session::SignedIn { user_id }),
        Some(SessionRow {
            pending_token: Some(pending_token),
            ..
        }) => Some(Session::Pending { pending_token }),
        _ => None,
    })
}

/// Starts a session and answers its id (the cookie value).
pub(crate) fn create(
    table: &dyn SessionTable,
    session: &Session,
    remember_me: bool,
) -> Result<String, String> {
    let id = new_id()?;
    let now = now_secs();
    let row = match session {
        Session::SignedIn { user_id } => SessionRow {
            user_id: Some(user_id.clone()),
            pending_token: None,
            remember_me,
            expires_at: now.saturating_add(secs(if remember_me {
                REMEMBERED
            } else {
                NOT_REMEMBERED
            })),
        },
        Session::Pending { pending_token } => SessionRow {
            user_id: None,
            pending_token: Some(pending_token.clone()),
            remember_me,
            expires_at: now.saturating_add(secs(PENDING)),
        },
    };
    table.insert_session(&id_hash(&id), &row, now)?;
    Ok(id)
}

/// Ends the session with this cookie value (nothing happens if there is none).
pub(crate) fn delete(table: &dyn SessionTable, id: &str) -> Result<(), String> {
    table.delete_session(&id_hash(id))
}
