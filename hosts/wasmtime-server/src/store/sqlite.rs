//! [`twofold_proto::Storage`] over SQLite: one table of versioned keys, each commit one
//! `BEGIN IMMEDIATE` transaction that checks every expected version before it writes.
//!
//! Any number of processes and connections may share a database file: SQLite serialises
//! writers, WAL lets readers run beside them, and a commit whose expectations no longer hold
//! rolls back and answers `conflict`, which the engine re-runs from a fresh read.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use twofold_proto::{Entry, Expect, HostError, Storage, Versioned, Write};

use crate::store::{Backend, SessionRow, SessionTable};

/// How long a connection waits for another writer before giving up with `storage`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS kv (
        key TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version >= 1)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS sessions (
        id_hash TEXT PRIMARY KEY NOT NULL,
        user_id TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        remember INTEGER NOT NULL,
        pending_hash TEXT,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at);
";

/// One SQLite connection serving the storage import. Clones share the connection (and the
/// host's session table lives in the same database), so give each thread its own
/// [`SqliteStorage::open`].
#[derive(Clone, Debug)]
pub struct SqliteStorage {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStorage {
    /// Opens (creating if needed) the database file at `path`, in WAL mode with a busy timeout
    /// and full synchronous commits, and creates the tables.
    pub fn open(path: &Path) -> wasmtime::Result<SqliteStorage> {
        let conn = Connection::open(path)
            .map_err(|e| wasmtime::format_err!("cannot open {}: {e}", path.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // WAL: readers do not block the writer. FULL: a commit is durable when it returns,
        // as the storage contract asks.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            wasmtime::bail!(
                "{} refused WAL mode (journal_mode is {mode})",
                path.display()
            );
        }
        conn.execute_batch("PRAGMA synchronous = FULL;")?;
        Ok(SqliteStorage::init(conn)?)
    }

    /// A private in-memory database (driver mode without `--db`).
    pub fn open_in_memory() -> wasmtime::Result<SqliteStorage> {
        Ok(SqliteStorage::init(Connection::open_in_memory()?)?)
    }

    fn init(conn: Connection) -> rusqlite::Result<SqliteStorage> {
        // Sessions of an earlier layout (a pending token kept in the clear) are dropped:
        // their users sign in again.
        let old_layout: bool = conn.query_row(
            "SELECT count(*) > 0 FROM pragma_table_info('sessions') WHERE name = 'pending_token'",
            [],
            |row| row.get(0),
        )?;
        if old_layout {
            conn.execute_batch("DROP TABLE sessions")?;
        }
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteStorage {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The connection. A thread that panicked while holding it cannot have left a
    /// transaction open: `rusqlite::Transaction` rolls back when dropped during unwinding.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A storage failure for the engine; SQLite's messages name no data, so none leaks.
fn failed(e: rusqlite::Error) -> HostError {
    HostError::Failed(format!("sqlite: {e}"))
}

fn version_of(raw: i64) -> Result<u64, HostError> {
    u64::try_from(raw).map_err(|_| HostError::Failed(format!("sqlite: bad version {raw}")))
}

fn to_sql_version(version: u64) -> Result<i64, HostError> {
    i64::try_from(version)
        .map_err(|_| HostError::Failed(format!("version {version} does not fit SQLite")))
}

impl Storage for SqliteStorage {
    fn get(&self, key: &str) -> Result<Option<Versioned>, HostError> {
        let conn = self.lock();
        let row = conn
            .query_row(
                "SELECT value, version FROM kv WHERE key = ?1",
                params![key],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
            )
            .optional()
            .map_err(failed)?;
        match row {
            Some((value, version)) => Ok(Some(Versioned {
                value,
                version: version_of(version)?,
            })),
            None => Ok(None),
        }
    }

    fn scan(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<Entry>, HostError> {
        let conn = self.lock();
        // Keys compare byte-wise (BINARY collation), so the keys with `prefix` are one
        // contiguous run starting at `prefix`: read from there and stop at the first key
        // without it.
        let start = match after {
            Some(after) if after >= prefix => after,
            _ => prefix,
        };
        let inclusive = start == prefix;
        let sql = if inclusive {
            "SELECT key, value, version FROM kv WHERE key >= ?1 ORDER BY key"
        } else {
            "SELECT key, value, version FROM kv WHERE key > ?1 ORDER BY key"
        };
        let mut statement = conn.prepare(sql).map_err(failed)?;
        let mut rows = statement.query(params![start]).map_err(failed)?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut entries = Vec::new();
        while entries.len() < limit {
            let Some(row) = rows.next().map_err(failed)? else {
                break;
            };
            let key: String = row.get(0).map_err(failed)?;
            if !key.starts_with(prefix) {
                break;
            }
            entries.push(Entry {
                key,
                value: Versioned {
                    value: row.get(1).map_err(failed)?,
                    version: version_of(row.get(2).map_err(failed)?)?,
                },
            });
        }
        Ok(entries)
    }

    fn commit(&self, writes: &[Write]) -> Result<(), HostError> {
        for (i, write) in writes.iter().enumerate() {
            if writes[..i].iter().any(|w| w.key == write.key) {
                return Err(HostError::Failed(format!(
                    "the batch names {:?} twice",
                    write.key
                )));
            }
        }
        let mut conn = self.lock();
        // IMMEDIATE takes the write lock before the first read, so no other writer can change
        // a checked version between the check and the write.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(failed)?;
        for write in writes {
            let current: Option<i64> = tx
                .query_row(
                    "SELECT version FROM kv WHERE key = ?1",
                    params![write.key],
                    |row| row.get(0),
                )
                .optional()
                .map_err(failed)?;
            let current = current.map(version_of).transpose()?;
            let holds = match write.expect {
                Expect::Absent => current.is_none(),
                Expect::Version(v) => current == Some(v),
            };
            if !holds {
                // Dropping `tx` rolls back; nothing was written yet anyway.
                return Err(HostError::Conflict);
            }
            match &write.value {
                Some(value) => {
                    let version = match write.expect {
                        Expect::Absent => 1,
                        Expect::Version(v) => v.checked_add(1).ok_or_else(|| {
                            HostError::Failed(format!("version overflow at {:?}", write.key))
                        })?,
                    };
                    tx.execute(
                        "INSERT INTO kv (key, value, version) VALUES (?1, ?2, ?3)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                                                         version = excluded.version",
                        params![write.key, value, to_sql_version(version)?],
                    )
                    .map_err(failed)?;
                }
                None => {
                    tx.execute("DELETE FROM kv WHERE key = ?1", params![write.key])
                        .map_err(failed)?;
                }
            }
        }
        tx.commit().map_err(failed)
    }
}

fn sessions_error(e: rusqlite::Error) -> String {
    format!("sessions: {e}")
}

impl SessionTable for SqliteStorage {
    fn session(&self, id_hash: &str, now: i64) -> Result<Option<SessionRow>, String> {
        self.lock()
            .query_row(
                "SELECT user_id, epoch, remember, pending_hash, created_at, expires_at
                 FROM sessions WHERE id_hash = ?1 AND expires_at > ?2",
                params![id_hash, now],
                |row| {
                    Ok(SessionRow {
                        user_id: row.get(0)?,
                        epoch: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                        remember: row.get(2)?,
                        pending_hash: row.get(3)?,
                        created_at: row.get(4)?,
                        expires_at: row.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(sessions_error)
    }

    fn insert_session(&self, id_hash: &str, row: &SessionRow, now: i64) -> Result<(), String> {
        let conn = self.lock();
        conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", params![now])
            .map_err(sessions_error)?;
        conn.execute(
            "INSERT INTO sessions
             (id_hash, user_id, epoch, remember, pending_hash, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id_hash,
                row.user_id,
                i64::try_from(row.epoch).unwrap_or(i64::MAX),
                row.remember,
                row.pending_hash,
                row.created_at,
                row.expires_at
            ],
        )
        .map(drop)
        .map_err(sessions_error)
    }

    fn delete_session(&self, id_hash: &str) -> Result<(), String> {
        self.lock()
            .execute("DELETE FROM sessions WHERE id_hash = ?1", params![id_hash])
            .map(drop)
            .map_err(sessions_error)
    }
}

impl Backend for SqliteStorage {
    fn clear(&self) -> Result<(), String> {
        self.lock()
            .execute_batch("BEGIN IMMEDIATE; DELETE FROM kv; DELETE FROM sessions; COMMIT;")
            .map_err(|e| format!("sqlite: {e}"))
    }
}
