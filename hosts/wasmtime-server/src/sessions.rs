//! Browser sessions of the HTTP server, kept server-side in the database's `sessions` table
//! (SQLite or PostgreSQL, beside the engine's keys), so every server process on one database
//! honours every session. The layout is the Python backend's too (`hosts/python`), so servers
//! of both languages can share a database.
//!
//! H1: the table holds no secret. The cookie carries a random 256-bit id and the table keeps
//! its SHA-256. Between sign-in steps one and two the session is pending: the cookie carries
//! the id and the engine's pending-sign-in token (`<id>.<token>`; HttpOnly, so no script reads
//! it) and the table keeps the token's SHA-256, so a copy of the database can neither resume a
//! session nor finish a sign-in. Each signed-in session records the account's security epoch
//! (A6). Lifetimes here are the host's housekeeping; every sign-in rule, the pending token's
//! own expiry included, is the engine's.

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

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Equal without an early exit, so the time taken says nothing about where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A fresh session id: 32 bytes from the OS CSPRNG, hex.
fn new_id() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a session id: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The live session this cookie value stands for, if any.
pub(crate) fn get(table: &dyn SessionTable, cookie: &str) -> Result<Option<Session>, String> {
    let (id, token) = match cookie.split_once('.') {
        Some((id, token)) => (id, Some(token)),
        None => (cookie, None),
    };
    let Some(row) = table.session(&sha256_hex(id), now_secs())? else {
        return Ok(None);
    };
    Ok(match (row.pending_hash, token) {
        (None, None) => Some(Session::SignedIn {
            user_id: row.user_id,
        }),
        (Some(hash), Some(token)) if same(&hash, &sha256_hex(token)) => Some(Session::Pending {
            pending_token: token.to_owned(),
        }),
        _ => None,
    })
}

/// Starts a signed-in session; answers the cookie value.
pub(crate) fn sign_in(
    table: &dyn SessionTable,
    user_id: &str,
    epoch: u64,
    remember: bool,
) -> Result<String, String> {
    let life = if remember { REMEMBERED } else { NOT_REMEMBERED };
    create(table, user_id, epoch, remember, None, life)
}

/// Starts a pending sign-in; answers the cookie value (`<id>.<token>`).
pub(crate) fn pend(table: &dyn SessionTable, pending_token: &str) -> Result<String, String> {
    // The engine's token is `<user id>.<random>`; the row names the user like any other.
    let user_id = pending_token.split('.').next().unwrap_or_default();
    let id = create(table, user_id, 0, false, Some(pending_token), PENDING)?;
    Ok(format!("{id}.{pending_token}"))
}

fn create(
    table: &dyn SessionTable,
    user_id: &str,
    epoch: u64,
    remember: bool,
    pending_token: Option<&str>,
    life: Duration,
) -> Result<String, String> {
    let id = new_id()?;
    let now = now_secs();
    let row = SessionRow {
        user_id: user_id.to_owned(),
        epoch,
        remember,
        pending_hash: pending_token.map(sha256_hex),
        created_at: now,
        expires_at: now.saturating_add(secs(life)),
    };
    table.insert_session(&sha256_hex(&id), &row, now)?;
    Ok(id)
}

/// Ends the session this cookie value stands for (nothing happens if there is none).
pub(crate) fn end(table: &dyn SessionTable, cookie: &str) -> Result<(), String> {
    let id = cookie.split('.').next().unwrap_or_default();
    table.delete_session(&sha256_hex(id))
}
