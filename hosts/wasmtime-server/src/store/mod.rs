//! Where the server keeps things: the engine's keys ([`twofold_proto::Storage`]) and the
//! server's own session table, side by side in one database, chosen by `--db`: a file path is
//! SQLite ([`sqlite`]), a `postgres://` URL is PostgreSQL ([`postgres`]).
//!
//! Each engine worker opens its own [`Backend`] (one connection); any number of workers and
//! server processes may share one database.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use twofold_proto::Storage;

pub mod postgres;
pub mod sqlite;

/// A session as stored. Nothing in it is a secret (H1): the cookie's id and a pending
/// sign-in's token are kept only as SHA-256 hashes. The layout is shared with the Python
/// backend (`hosts/python`), so servers of both languages serve one database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRow {
    /// The account (for a pending sign-in, the user id the engine's token names).
    pub user_id: String,
    /// The account's security epoch when the session was made (A6, H2); 0 while pending.
    pub epoch: u64,
    /// Whether the user asked to stay signed in.
    pub remember: bool,
    /// Between sign-in steps one and two: the SHA-256 (hex) of the engine's pending token,
    /// which only the browser's cookie holds.
    pub pending_hash: Option<String>,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// Seconds since the Unix epoch after which the session is gone.
    pub expires_at: i64,
}

/// The server's session table, keyed by the SHA-256 (hex) of the cookie's id. Errors are
/// messages for the log (they name no data).
pub trait SessionTable {
    /// The session whose id hashes to `id_hash`, if it has not expired by `now`.
    fn session(&self, id_hash: &str, now: i64) -> Result<Option<SessionRow>, String>;
    /// Stores a new session, sweeping those expired by `now` on the way.
    fn insert_session(&self, id_hash: &str, row: &SessionRow, now: i64) -> Result<(), String>;
    /// Ends a session (nothing happens if there is none).
    fn delete_session(&self, id_hash: &str) -> Result<(), String>;
}

/// One connection to the server's database: the engine's storage and the session table.
pub trait Backend: Storage + SessionTable + Send + Sync {
    /// Empties every table (driver mode's `reset`).
    fn clear(&self) -> Result<(), String>;
}

/// The database named by `--db`.
#[derive(Clone)]
pub enum Database {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A private in-memory SQLite database (driver mode without `--db`).
    Memory,
    /// A PostgreSQL connection string.
    Postgres(String),
}

impl Database {
    /// `postgres://` or `postgresql://` is PostgreSQL; anything else a file path.
    pub fn from_arg(arg: &str) -> Database {
        if arg.starts_with("postgres://") || arg.starts_with("postgresql://") {
            Database::Postgres(arg.to_owned())
        } else {
            Database::Sqlite(PathBuf::from(arg))
        }
    }

    /// Opens a connection (creating or migrating the tables).
    pub fn open(&self) -> Result<Arc<dyn Backend>, String> {
        Ok(match self {
            Database::Sqlite(path) => {
                Arc::new(sqlite::SqliteStorage::open(path).map_err(|e| format!("{e:#}"))?)
            }
            Database::Memory => {
                Arc::new(sqlite::SqliteStorage::open_in_memory().map_err(|e| format!("{e:#}"))?)
            }
            Database::Postgres(url) => {
                Arc::new(postgres::PostgresStorage::open(url).map_err(|e| e.to_string())?)
            }
        })
    }
}

impl fmt::Display for Database {
    /// The database for people: the file, or PostgreSQL's host, port and database, never a
    /// password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "SQLite {}", path.display()),
            Database::Memory => f.write_str("in-memory SQLite"),
            Database::Postgres(url) => match url.parse::<::postgres::Config>() {
                Ok(config) => write!(f, "PostgreSQL {}", postgres::target_of(&config)),
                Err(_) => f.write_str("PostgreSQL (an unreadable URL)"),
            },
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
