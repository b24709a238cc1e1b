//! Browser sessions of the HTTP server, kept server-side in the database's `sessions` table.
//!
//! The cookie carries a random 256-bit id; the table stores only its SHA-256, so a copy of
//! the database does not hand out live sessions. A session is either signed in (a user id)
//! or pending (between sign-in steps one and two: the engine's pending-sign-in token, which
//! never reaches the browser). Lifetimes here are the host's housekeeping; every sign-in
//! rule, the pending token's own expiry included, is the engine's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::sqlite::SqliteStorage;

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

/// The sessions of one database connection.
pub(crate) struct Sessions {
    db: SqliteStorage,
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

impl Sessions {
    pub(crate) fn new(db: SqliteStorage) -> Sessions {
        Sessions { db }
    }

    /// The live session with this cookie value, if any.
    pub(crate) fn get(&self, id: &str) -> Result<Option<Session>, String> {
        let conn = self.db.lock();
        let row = conn
            .query_row(
                "SELECT user_id, pending_token FROM sessions
                 WHERE id_hash = ?1 AND expires_at > ?2",
                params![id_hash(id), now_secs()],
                |row| {
                    Ok((
                        row.get::<_, Option<String>>(0)?,
                        row.get::<_, Option<String>>(1)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| format!("sessions: {e}"))?;
        Ok(match row {
            Some((Some(user_id), _)) => Some(Session::SignedIn { user_id }),
            Some((None, Some(pending_token))) => Some(Session::Pending { pending_token }),
            _ => None,
        })
    }

    /// Starts a session and answers its id (the cookie value). Expired sessions are swept
    /// on the way.
    pub(crate) fn create(&self, session: &Session, remember_me: bool) -> Result<String, String> {
        let id = new_id()?;
        let (user_id, pending_token, lifetime) = match session {
            Session::SignedIn { user_id } => (
                Some(user_id.as_str()),
                None,
                if remember_me {
                    REMEMBERED
                } else {
                    NOT_REMEMBERED
                },
            ),
            Session::Pending { pending_token } => (None, Some(pending_token.as_str()), PENDING),
        };
        let now = now_secs();
        let conn = self.db.lock();
        let run = || -> rusqlite::Result<()> {
            conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", params![now])?;
            conn.execute(
                "INSERT INTO sessions (id_hash, user_id, pending_token, remember_me, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    id_hash(&id),
                    user_id,
                    pending_token,
                    remember_me,
                    now.saturating_add(secs(lifetime))
                ],
            )?;
            Ok(())
        };
        run().map_err(|e| format!("sessions: {e}"))?;
        Ok(id)
    }

    /// Ends the session with this cookie value (nothing happens if there is none).
    pub(crate) fn delete(&self, id: &str) -> Result<(), String> {
        self.db
            .lock()
            .execute(
                "DELETE FROM sessions WHERE id_hash = ?1",
                params![id_hash(id)],
            )
            .map(|_| ())
            .map_err(|e| format!("sessions: {e}"))
    }
}
