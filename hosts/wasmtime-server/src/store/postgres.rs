//! twofold's storage contract ([`Storage`]) over PostgreSQL: one table of versioned keys, each
//! commit one transaction of conditional statements whose affected-row counts decide
//! [`HostError::Conflict`]; and the server's session table beside it.
//!
//! # Why the contract holds at READ COMMITTED
//! Every write of a batch is one statement that both checks and takes the key's lock: an
//! `UPDATE`/`DELETE ... WHERE key = $1 AND version = $v` locks the row it changes, and an
//! `INSERT ... ON CONFLICT DO NOTHING` claims the key's primary-key entry. A statement that meets
//! a row another transaction is changing waits for it, then re-evaluates its `WHERE` against
//! the newest committed row (PostgreSQL's EvalPlanQual), so a concurrent commit can only make it
//! match nothing (0 rows: `Conflict`), never make it overwrite a version it did not expect. The
//! one write that changes nothing, `Expect::Absent` with a delete, would otherwise be a bare
//! read and allow write skew, so it claims the key too: it inserts a placeholder row and
//! deletes it again in the same transaction (invisible to everyone else). Every commit thus
//! holds exclusive locks on all its keys until it ends, checked against the latest committed
//! state when taken: strict two-phase locking, which is serialisable for commits whatever the
//! isolation level. Keys are locked in byte order, so our commits cannot deadlock each other.
//!
//! No ABA: while a key exists its version only grows (`v` to `v + 1`). A key deleted and
//! re-created is a new row: a statement that was waiting on the old row finds it gone and
//! answers `Conflict`, and the contract says the engine never expects a pre-delete version of a
//! re-created key. `get` and `scan` run outside any transaction, each one consistent statement:
//! a stale read can only lead to a commit whose expected versions no longer hold, which the
//! commit re-checks, so staleness costs a retry, never a lost update.
//!
//! On a distributed SQL engine that speaks PostgreSQL's protocol (CockroachDB, YugabyteDB)
//! transactions are SERIALIZABLE (READ COMMITTED may be silently upgraded) and a commit can
//! fail with SQLSTATE 40001 at any statement, `COMMIT` included; that is mapped to `Conflict`,
//! so the engine re-reads and retries, which is the retry such engines ask clients to run.
//! `ON CONFLICT DO NOTHING` and affected-row counts behave the same there. Check on such an
//! engine that `COLLATE "C"` compares bytes, and note that `pg_current_xact_id` (used to
//! settle a commit whose connection broke) is PostgreSQL's own.
//!
//! # Other choices
//! - Scans use `key >= lower AND key < upper` with `upper` the least string above every key
//!   that has the prefix. Both bounds are parameters of one prepared statement, so even its
//!   generic plan is a primary-key range scan; `LIKE $1` with an escaped pattern is correct
//!   under `COLLATE "C"` too, but its generic plan can only filter the index, not range it.
//! - One connection per store, behind a `Mutex`, prepared statements made once per connection:
//!   give each engine worker thread its own [`PostgresStorage`]. A broken connection is dropped
//!   and replaced on the next call (one attempt per call); a read whose connection turns out to
//!   be dead is re-run once on the new one, since reading twice is harmless.
//! - No TLS: connect over a Unix socket or loopback, or through a local proxy that adds TLS.

use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::Type;
use postgres::{Client, Config, NoTls, Statement};
use twofold_proto::{Entry, Expect, HostError, Storage, Versioned, Write};

use crate::store::{Backend, SessionRow, SessionTable};

/// How long opening a connection may take when the URL sets no `connect_timeout`: a server
/// that does not answer should fail a call, not hang an engine worker.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a statement waits for another transaction's row lock, in milliseconds, when the
/// server sets no `lock_timeout`: the SQLite store's busy timeout, for the same reason.
const DEFAULT_LOCK_TIMEOUT_MS: u32 = 5_000;

/// The schema this build writes and reads. `MIGRATIONS[i]` takes a database from version `i`
/// to `i + 1` (version 0: no tables yet), so a later build appends steps and older databases
/// catch up at `open`.
const MIGRATIONS: &[&str] = &[
    // 1: the key-value table. COLLATE "C" makes key order byte order whatever the database's
    // default collation, so ORDER BY and the range bounds of a scan agree with the contract.
    "CREATE TABLE IF NOT EXISTS kv (
         key text COLLATE \"C\" PRIMARY KEY,
         value text NOT NULL,
         version bigint NOT NULL CHECK (version >= 1)
     )",
    // 2: the sample servers' sessions (`crate::sessions`; the Python backend's too, so one
    // database serves both), in the same database so that every server honours every session.
    "CREATE TABLE IF NOT EXISTS sessions (
         id_hash text PRIMARY KEY,
         user_id text NOT NULL,
         epoch bigint NOT NULL,
         remember boolean NOT NULL,
         pending_hash text,
         created_at bigint NOT NULL,
         expires_at bigint NOT NULL
     );
     CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at)",
];

/// Serialises schema creation between processes opening the same database at once (two
/// concurrent `CREATE TABLE IF NOT EXISTS` can still collide in the catalog). "twofold" in
/// ASCII, so it is recognisable in `pg_locks`.
const SCHEMA_LOCK: i64 = 0x0074_776f_666f_6c64;

const SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS twofold_schema (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        version integer NOT NULL
    )";

const GET: &str = "SELECT value, version FROM kv WHERE key = $1";
const SCAN_FROM: &str = "SELECT key, value, version FROM kv WHERE key >= $1 ORDER BY key LIMIT $2";
const SCAN_AFTER: &str = "SELECT key, value, version FROM kv WHERE key > $1 ORDER BY key LIMIT $2";
const SCAN_FROM_BELOW: &str =
    "SELECT key, value, version FROM kv WHERE key >= $1 AND key < $2 ORDER BY key LIMIT $3";
const SCAN_AFTER_BELOW: &str =
    "SELECT key, value, version FROM kv WHERE key > $1 AND key < $2 ORDER BY key LIMIT $3";
const INSERT: &str =
    "INSERT INTO kv (key, value, version) VALUES ($1, $2, 1) ON CONFLICT (key) DO NOTHING";
const UPDATE: &str = "UPDATE kv SET value = $2, version = $4 WHERE key = $1 AND version = $3";
const DELETE_VERSION: &str = "DELETE FROM kv WHERE key = $1 AND version = $2";
const DELETE_KEY: &str = "DELETE FROM kv WHERE key = $1";
const SESSION_GET: &str = "SELECT user_id, epoch, remember, pending_hash, created_at, expires_at
     FROM sessions WHERE id_hash = $1 AND expires_at > $2";
const SESSION_SWEEP: &str = "DELETE FROM sessions WHERE expires_at <= $1";
const SESSION_INSERT: &str = "INSERT INTO sessions
     (id_hash, user_id, epoch, remember, pending_hash, created_at, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
const SESSION_DELETE: &str = "DELETE FROM sessions WHERE id_hash = $1";
/// One round trip that opens the transaction and names it, so that a commit whose connection
/// breaks can later be looked up with `pg_xact_status`.
const BEGIN: &str = "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_current_xact_id()::text";
const XACT_STATUS: &str = "SELECT pg_xact_status($1::text::xid8)";

/// Why [`PostgresStorage::open`] failed. No message holds the URL's password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL is not a PostgreSQL connection string.
    #[error("invalid PostgreSQL URL: {0}")]
    Url(String),
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to PostgreSQL at {target}: {reason}")]
    Connect {
        /// host:port/database, never the password.
        target: String,
        /// What the client reported.
        reason: String,
    },
    /// The database's text encoding is not UTF-8, so keys could not be stored as given.
    #[error("database {target} has encoding {found}; twofold needs UTF8")]
    Encoding {
        /// host:port/database.
        target: String,
        /// `server_encoding`.
        found: String,
    },
    /// The database was set up by a newer build of twofold.
    #[error("database {target} has twofold schema {found}; this build knows up to {supported}")]
    SchemaTooNew {
        /// host:port/database.
        target: String,
        /// The version stored in `twofold_schema`.
        found: i32,
        /// The newest version this build can use.
        supported: i32,
    },
    /// A `kv` table exists that does not order keys byte-wise.
    #[error("table kv in {target} has key collation {found:?}; twofold needs \"C\" (byte order)")]
    Collation {
        /// host:port/database.
        target: String,
        /// The collation found.
        found: Option<String>,
    },
    /// Creating or checking the schema, or preparing statements, failed.
    #[error("cannot set up twofold's tables in {target}: {reason}")]
    Setup {
        /// host:port/database.
        target: String,
        /// What the server reported.
        reason: String,
    },
}

/// [`Storage`] over one PostgreSQL connection.
///
/// `Sync` through a `Mutex`: calls from several threads take turns. Open one per engine worker
/// thread for parallelism; they may all share one database.
pub struct PostgresStorage {
    config: Config,
    /// host:port/database for open errors; never the password.
    target: String,
    /// `None` after the connection broke, until the next call reconnects.
    session: Mutex<Option<Session>>,
}

impl fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Deliberately not `config`: it holds the password.
        f.debug_struct("PostgresStorage")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// A live connection and the statements prepared on it (statements belong to a connection).
struct Session {
    client: Client,
    get: Statement,
    scan_from: Statement,
    scan_after: Statement,
    scan_from_below: Statement,
    scan_after_below: Statement,
    insert: Statement,
    update: Statement,
    delete_version: Statement,
    delete_key: Statement,
    session_get: Statement,
    session_sweep: Statement,
    session_insert: Statement,
    session_delete: Statement,
}

/// How one attempt at a call went wrong.
enum CallError {
    /// An expectation did not hold, or the server gave up on the transaction (40001, 40P01);
    /// nothing was applied.
    Conflict,
    /// Failed before anything could have been applied, so the call may be re-run as it is.
    Unapplied(postgres::Error),
    /// Failed while a transaction was open; the server rolls it back.
    Aborted(postgres::Error),
    /// `COMMIT` was sent and no answer came: the transaction `xid` may or may not have
    /// committed.
    InDoubt { xid: String, error: postgres::Error },
    /// Anything that is not the server's (a value that does not fit, a malformed row).
    Other(String),
}

impl PostgresStorage {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, or
    /// the key=value form), creates or migrates twofold's tables, and prepares the statements.
    pub fn open(url: &str) -> Result<PostgresStorage, OpenError> {
        let mut config: Config = url
            .parse()
            .map_err(|e: postgres::Error| OpenError::Url(describe(&e)))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("twofold");
        }
        let target = target_of(&config);
        let mut client = config.connect(NoTls).map_err(|e| OpenError::Connect {
            target: target.clone(),
            reason: describe(&e),
        })?;
        migrate(&mut client, &target)?;
        let session = Session::prepare(client).map_err(|e| OpenError::Setup {
            target: target.clone(),
            reason: describe(&e),
        })?;
        Ok(PostgresStorage {
            config,
            target,
            session: Mutex::new(Some(session)),
        })
    }

    /// The slot for the connection. A thread that panicked mid-call may have left a
    /// transaction open on it, so after a panic the connection is thrown away, not reused.
    fn lock(&self) -> MutexGuard<'_, Option<Session>> {
        match self.session.lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                let mut guard = poisoned.into_inner();
                *guard = None;
                self.session.clear_poison();
                guard
            }
        }
    }

    fn connect(&self) -> Result<Session, HostError> {
        let client = self.config.connect(NoTls).map_err(|e| {
            HostError::Failed(format!("postgres: cannot reconnect: {}", describe(&e)))
        })?;
        Session::prepare(client)
            .map_err(|e| HostError::Failed(format!("postgres: cannot reconnect: {}", describe(&e))))
    }

    /// Runs `attempt` on the connection, reconnecting first when there is none or it is known
    /// to be closed. When the connection turns out to be dead during the attempt it is dropped,
    /// and, if the attempt had applied nothing and this call has not reconnected yet, the
    /// attempt runs once more on a new connection.
    fn call<T>(
        &self,
        mut attempt: impl FnMut(&mut Session) -> Result<T, CallError>,
    ) -> Result<T, Failure> {
        let mut slot = self.lock();
        let mut reconnected = false;
        loop {
            let session = match slot.take() {
                Some(session) if !session.client.is_closed() => slot.insert(session),
                // None, or a connection known to be dead: use this call's one reconnect.
                _ if !reconnected => {
                    reconnected = true;
                    slot.insert(self.connect()?)
                }
                _ => {
                    return Err(Failure::Host(HostError::Failed(
                        "postgres: the connection closed again right after reconnecting".into(),
                    )));
                }
            };
            let error = match attempt(session) {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let lost = match &error {
                CallError::Unapplied(e) | CallError::Aborted(e) => {
                    connection_lost(&session.client, e)
                }
                CallError::InDoubt { .. } => true,
                CallError::Conflict | CallError::Other(_) => session.client.is_closed(),
            };
            if lost {
                *slot = None;
            }
            let error = match error {
                // Nothing was applied and the connection was dead: run it again, once.
                CallError::Unapplied(_) if lost && !reconnected => continue,
                CallError::Conflict => HostError::Conflict,
                CallError::Unapplied(e) | CallError::Aborted(e) => host_error(&e),
                CallError::Other(message) => HostError::Failed(message),
                CallError::InDoubt { xid, error } => {
                    return Err(Failure::InDoubt {
                        xid,
                        reason: describe(&error),
                    });
                }
            };
            return Err(Failure::Host(error));
        }
    }

    /// Finds out whether a transaction whose `COMMIT` got no answer committed, so that
    /// `Failed` keeps its promise that nothing was applied (the server aborts a transaction
    /// whose connection is gone before it commits, so the answer is final once it is known).
    fn settle(&self, xid: &str, reason: &str) -> Result<(), HostError> {
        let status = self.call(|session| {
            let row = session
                .client
                .query_one(XACT_STATUS, &[&xid])
                .map_err(CallError::Unapplied)?;
            row.try_get::<_, Option<String>>(0)
                .map_err(|e| CallError::Other(describe(&e)))
        });
        match status {
            Ok(Some(status)) if status == "committed" => Ok(()),
            Ok(Some(status)) if status == "aborted" => Err(HostError::Failed(format!(
                "postgres: the connection broke during COMMIT ({reason}); the batch was not applied"
            ))),
            _ => Err(HostError::Failed(format!(
                "postgres: the connection broke during COMMIT ({reason}); whether the batch was \
                 applied is unknown"
            ))),
        }
    }
}

/// How a call failed, before it becomes a [`HostError`].
enum Failure {
    Host(HostError),
    /// `COMMIT` got no answer; `settle` asks a new connection what became of `xid`.
    InDoubt {
        xid: String,
        reason: String,
    },
}

impl From<HostError> for Failure {
    fn from(e: HostError) -> Failure {
        Failure::Host(e)
    }
}

impl Failure {
    /// For reads, which never leave a transaction in doubt.
    fn into_host(self) -> HostError {
        match self {
            Failure::Host(e) => e,
            Failure::InDoubt { reason, .. } => HostError::Failed(format!("postgres: {reason}")),
        }
    }
}

impl Session {
    fn prepare(mut client: Client) -> Result<Session, postgres::Error> {
        // The contract promises durability when `commit` returns; a server (or role) set to
        // `synchronous_commit = off` would break that, so this session turns it back on. Every
        // other value already waits for the local WAL flush and is left as the DBA chose.
        // Without a lock timeout a commit queued behind a stuck transaction (an idle psql
        // session holding a row) would hang its worker forever; like SQLite's busy timeout,
        // give up after a while with `Failed`, unless the DBA set a timeout of their own.
        let settings = client.query_one(
            "SELECT current_setting('synchronous_commit'), current_setting('lock_timeout')",
            &[],
        )?;
        let (synchronous, lock_timeout): (String, String) =
            (settings.try_get(0)?, settings.try_get(1)?);
        if synchronous == "off" {
            client.batch_execute("SET synchronous_commit = on")?;
        }
        if lock_timeout == "0" {
            client.batch_execute(&format!("SET lock_timeout = {}", DEFAULT_LOCK_TIMEOUT_MS))?;
        }
        // Types given, not inferred, so every statement is exactly what the SQL above says.
        const T: Type = Type::TEXT;
        const I: Type = Type::INT8;
        Ok(Session {
            get: client.prepare_typed(GET, &[T])?,
            scan_from: client.prepare_typed(SCAN_FROM, &[T, I])?,
            scan_after: client.prepare_typed(SCAN_AFTER, &[T, I])?,
            scan_from_below: client.prepare_typed(SCAN_FROM_BELOW, &[T, T, I])?,
            scan_after_below: client.prepare_typed(SCAN_AFTER_BELOW, &[T, T, I])?,
            insert: client.prepare_typed(INSERT, &[T, T])?,
            update: client.prepare_typed(UPDATE, &[T, T, I, I])?,
            delete_version: client.prepare_typed(DELETE_VERSION, &[T, I])?,
            delete_key: client.prepare_typed(DELETE_KEY, &[T])?,
            session_get: client.prepare_typed(SESSION_GET, &[T, I])?,
            session_sweep: client.prepare_typed(SESSION_SWEEP, &[I])?,
            session_insert: client
                .prepare_typed(SESSION_INSERT, &[T, T, I, Type::BOOL, T, I, I])?,
            session_delete: client.prepare_typed(SESSION_DELETE, &[T])?,
            client,
        })
    }

    /// Applies one write inside the open transaction; `Ok(false)` when its expectation does
    /// not hold (the statement matched no row).
    fn apply(&mut self, write: &Write) -> Result<bool, CallError> {
        let key = &write.key;
        let client = &mut self.client;
        let changed = match (&write.value, write.expect) {
            (Some(value), Expect::Absent) => client.execute(&self.insert, &[key, value]),
            (Some(value), Expect::Version(v)) => {
                // A version beyond bigint cannot be stored, so the key cannot be at it.
                let Ok(expected) = i64::try_from(v) else {
                    return Ok(false);
                };
                let Some(next) = expected.checked_add(1) else {
                    return Err(CallError::Other("postgres: version overflow".into()));
                };
                client.execute(&self.update, &[key, value, &expected, &next])
            }
            (None, Expect::Version(v)) => {
                let Ok(expected) = i64::try_from(v) else {
                    return Ok(false);
                };
                client.execute(&self.delete_version, &[key, &expected])
            }
            (None, Expect::Absent) => {
                // Claim the key as an insert would, so that no concurrent commit can create it
                // before this one ends, then take the placeholder out again.
                let placeholder = "";
                match client.execute(&self.insert, &[key, &placeholder]) {
                    Ok(1) => client.execute(&self.delete_key, &[key]),
                    other => other,
                }
            }
        };
        match changed {
            Ok(1) => Ok(true),
            Ok(_) => Ok(false),
            Err(e) if is_retryable_by_engine(&e) => Err(CallError::Conflict),
            Err(e) => Err(CallError::Aborted(e)),
        }
    }

    /// One attempt at a whole batch, `sorted` by key.
    fn commit(&mut self, sorted: &[&Write]) -> Result<(), CallError> {
        let xid = begin(&mut self.client)?;
        for write in sorted {
            let outcome = self.apply(write);
            if !matches!(outcome, Ok(true)) {
                // Best effort: if ROLLBACK cannot be sent the connection is gone, and the
                // server rolls back a transaction whose connection closed.
                let _ = self.client.batch_execute("ROLLBACK");
                return match outcome {
                    Ok(_) => Err(CallError::Conflict),
                    Err(e) => Err(e),
                };
            }
        }
        match self.client.batch_execute("COMMIT") {
            Ok(()) => Ok(()),
            // The server answered: the transaction is over and did not commit.
            Err(e) if is_retryable_by_engine(&e) => Err(CallError::Conflict),
            Err(e) if e.as_db_error().is_some() => Err(CallError::Aborted(e)),
            Err(error) => Err(CallError::InDoubt { xid, error }),
        }
    }
}

/// Opens the transaction and returns its id.
fn begin(client: &mut Client) -> Result<String, CallError> {
    let messages = client.simple_query(BEGIN).map_err(CallError::Unapplied)?;
    let xid = messages.iter().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
        _ => None,
    });
    match xid {
        Some(xid) => Ok(xid),
        None => {
            let _ = client.batch_execute("ROLLBACK");
            Err(CallError::Other(
                "postgres: BEGIN returned no transaction id".into(),
            ))
        }
    }
}

impl Storage for PostgresStorage {
    fn get(&self, key: &str) -> Result<Option<Versioned>, HostError> {
        check_text(key)?;
        self.call(|session| {
            let row = session
                .client
                .query_opt(&session.get, &[&key])
                .map_err(CallError::Unapplied)?;
            row.map(|row| versioned(&row, 0)).transpose()
        })
        .map_err(Failure::into_host)
    }

    fn scan(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<Entry>, HostError> {
        check_text(prefix)?;
        if let Some(after) = after {
            check_text(after)?;
        }
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Start at the prefix, or just past `after` when that is further on.
        let (lower, exclusive) = match after {
            Some(after) if after >= prefix => (after, true),
            _ => (prefix, false),
        };
        let upper = prefix_upper_bound(prefix);
        let limit = i64::from(limit);
        self.call(|session| {
            let rows = match (&upper, exclusive) {
                (Some(upper), false) => session
                    .client
                    .query(&session.scan_from_below, &[&lower, upper, &limit]),
                (Some(upper), true) => session
                    .client
                    .query(&session.scan_after_below, &[&lower, upper, &limit]),
                (None, false) => session.client.query(&session.scan_from, &[&lower, &limit]),
                (None, true) => session.client.query(&session.scan_after, &[&lower, &limit]),
            }
            .map_err(CallError::Unapplied)?;
            rows.iter()
                .map(|row| {
                    Ok(Entry {
                        key: row
                            .try_get(0)
                            .map_err(|e| CallError::Other(format!("postgres: {}", describe(&e))))?,
                        value: versioned(row, 1)?,
                    })
                })
                .collect()
        })
        .map_err(Failure::into_host)
    }

    fn commit(&self, writes: &[Write]) -> Result<(), HostError> {
        if writes.is_empty() {
            return Ok(());
        }
        for write in writes {
            check_text(&write.key)?;
            if let Some(value) = &write.value {
                check_text(value)?;
            }
        }
        // Key order everywhere, so two commits that share keys lock them in the same order
        // and one waits for the other instead of deadlocking.
        let mut sorted: Vec<&Write> = writes.iter().collect();
        sorted.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        if sorted
            .windows(2)
            .any(|pair| matches!(pair, [a, b] if a.key == b.key))
        {
            return Err(HostError::Failed(
                "postgres: the batch names a key twice".into(),
            ));
        }
        match self.call(|session| session.commit(&sorted)) {
            Ok(()) => Ok(()),
            Err(Failure::Host(e)) => Err(e),
            Err(Failure::InDoubt { xid, reason }) => self.settle(&xid, &reason),
        }
    }
}

impl PostgresStorage {
    /// Runs statements of the server's own on this store's connection. Reads may be re-run
    /// once on a new connection when the old one turns out dead; writes are not.
    fn run<T>(
        &self,
        read: bool,
        mut f: impl FnMut(&mut Session) -> Result<T, postgres::Error>,
    ) -> Result<T, String> {
        self.call(|session| {
            f(session).map_err(|e| {
                if read {
                    CallError::Unapplied(e)
                } else {
                    CallError::Aborted(e)
                }
            })
        })
        .map_err(|e| match e.into_host() {
            HostError::Failed(message) => message,
            HostError::Conflict => "postgres: the server gave up on the statement".into(),
        })
    }
}

impl SessionTable for PostgresStorage {
    fn session(&self, id_hash: &str, now: i64) -> Result<Option<SessionRow>, String> {
        let row = self.run(true, |s| {
            s.client.query_opt(&s.session_get, &[&id_hash, &now])
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let read = || -> Result<SessionRow, postgres::Error> {
            let epoch: i64 = row.try_get(1)?;
            Ok(SessionRow {
                user_id: row.try_get(0)?,
                epoch: u64::try_from(epoch).unwrap_or(0),
                remember: row.try_get(2)?,
                pending_hash: row.try_get(3)?,
                created_at: row.try_get(4)?,
                expires_at: row.try_get(5)?,
            })
        };
        read()
            .map(Some)
            .map_err(|e| format!("postgres: {}", describe(&e)))
    }

    fn insert_session(&self, id_hash: &str, row: &SessionRow, now: i64) -> Result<(), String> {
        let epoch = i64::try_from(row.epoch).unwrap_or(i64::MAX);
        self.run(false, |s| {
            s.client.execute(&s.session_sweep, &[&now])?;
            s.client.execute(
                &s.session_insert,
                &[
                    &id_hash,
                    &row.user_id,
                    &epoch,
                    &row.remember,
                    &row.pending_hash,
                    &row.created_at,
                    &row.expires_at,
                ],
            )
        })
        .map(drop)
    }

    fn delete_session(&self, id_hash: &str) -> Result<(), String> {
        self.run(false, |s| s.client.execute(&s.session_delete, &[&id_hash]))
            .map(drop)
    }
}

impl Backend for PostgresStorage {
    fn clear(&self) -> Result<(), String> {
        self.run(false, |s| s.client.batch_execute("TRUNCATE kv, sessions"))
    }
}

/// The least string above every string that starts with `prefix` (in byte order, which for
/// UTF-8 is code point order), or `None` when there is none: the prefix with its last
/// character replaced by the next one, dropping trailing U+10FFFF. Incrementing the last
/// *byte* would not do: it can produce invalid UTF-8 (`ÿ` is C3 BF), which PostgreSQL refuses.
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            // Surrogates are not characters: no string holds one, so skip them.
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// PostgreSQL's `text` cannot hold NUL; say so instead of sending what the server refuses.
fn check_text(text: &str) -> Result<(), HostError> {
    if text.contains('\0') {
        return Err(HostError::Failed(
            "postgres: keys and values cannot contain NUL characters".into(),
        ));
    }
    Ok(())
}

/// Reads (value, version) from columns `at` and `at + 1`.
fn versioned(row: &postgres::Row, at: usize) -> Result<Versioned, CallError> {
    let bad = |e: postgres::Error| CallError::Other(format!("postgres: {}", describe(&e)));
    let value: String = row.try_get(at).map_err(bad)?;
    let version: i64 = row.try_get(at + 1).map_err(bad)?;
    let version = u64::try_from(version)
        .map_err(|_| CallError::Other(format!("postgres: stored version {version} is negative")))?;
    Ok(Versioned { value, version })
}

/// 40001 (serialization failure) and 40P01 (deadlock): the server rolled the transaction back
/// and running it again may succeed, which is what `Conflict` asks the engine to do.
fn is_retryable_by_engine(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// Whether `e` means the connection is unusable: the client saw it close, an I/O error, or the
/// server said it is ending the session (class 08, connection exception; class 57P, the
/// server shutting down or the backend being terminated).
fn connection_lost(client: &Client, e: &postgres::Error) -> bool {
    if client.is_closed() || e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => code.code().starts_with("08") || code.code().starts_with("57P"),
        // Not the server's answer: the client could not talk to it.
        None => e.as_db_error().is_none() && source_is_io(e),
    }
}

fn source_is_io(e: &postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

fn host_error(e: &postgres::Error) -> HostError {
    if is_retryable_by_engine(e) {
        HostError::Conflict
    } else {
        HostError::Failed(format!("postgres: {}", describe(e)))
    }
}

/// A message for `e` that names no data and no secret: the server's SQLSTATE and primary
/// message (never its DETAIL, which can quote a key), or the client's error and its cause (an
/// I/O error, a timeout). The client's messages never include the connection string.
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} {}: {}", db.code().code(), db.severity(), db.message());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// host:port/database, for operators' messages.
pub(crate) fn target_of(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(name)) => name.clone(),
        Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let dbname = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("(default)");
    format!("{host}:{port}/{dbname}")
}

/// Creates or migrates the schema in one transaction, serialised with other openers.
fn migrate(client: &mut Client, target: &str) -> Result<(), OpenError> {
    let setup = |e: postgres::Error| OpenError::Setup {
        target: target.to_owned(),
        reason: describe(&e),
    };
    let encoding: String = client
        .query_one("SHOW server_encoding", &[])
        .and_then(|row| row.try_get(0))
        .map_err(setup)?;
    if encoding != "UTF8" {
        return Err(OpenError::Encoding {
            target: target.to_owned(),
            found: encoding,
        });
    }
    let supported = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
    let mut tx = client.transaction().map_err(setup)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .map_err(setup)?;
    tx.batch_execute(SCHEMA_TABLE).map_err(setup)?;
    let found: i32 = match tx
        .query_opt("SELECT version FROM twofold_schema", &[])
        .map_err(setup)?
    {
        Some(row) => row.try_get(0).map_err(setup)?,
        None => 0,
    };
    if found > supported {
        return Err(OpenError::SchemaTooNew {
            target: target.to_owned(),
            found,
            supported,
        });
    }
    let pending = usize::try_from(found).unwrap_or(0);
    for step in MIGRATIONS.iter().skip(pending) {
        tx.batch_execute(step).map_err(setup)?;
    }
    if found < supported {
        tx.execute(
            "INSERT INTO twofold_schema (version) VALUES ($1)
             ON CONFLICT (singleton) DO UPDATE SET version = excluded.version",
            &[&supported],
        )
        .map_err(setup)?;
    }
    // A kv table made by hand (or by an older tool) without COLLATE "C" would scan in the
    // wrong order; refuse it rather than answer wrongly.
    let collation: Option<String> = tx
        .query_opt(
            "SELECT collation_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = 'kv' AND column_name = 'key'",
            &[],
        )
        .map_err(setup)?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(setup)?
        .flatten();
    if collation.as_deref() != Some("C") {
        return Err(OpenError::Collation {
            target: target.to_owned(),
            found: collation,
        });
    }
    tx.commit().map_err(setup)
}

#[cfg(test)]
mod tests {
    use super::*;
    use twofold_storage_testkit::test_database;

    fn rows(client: &mut Client, sql: &str) -> Vec<String> {
        client
            .query(sql, &[])
            .expect(sql)
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    #[test]
    fn scans_are_primary_key_range_scans_even_in_generic_plans() {
        let db = test_database().expect("a test database");
        drop(PostgresStorage::open(&db.url()).expect("open"));
        let mut client = Client::connect(&db.url(), NoTls).expect("connect");
        client
            .batch_execute(
                "INSERT INTO kv SELECT 'k' || g, 'v', 1 FROM generate_series(1, 5000) g;
                 ANALYZE kv;
                 SET plan_cache_mode = force_generic_plan;",
            )
            .expect("fill");
        // Prepared with parameters, as the store does: the plan may not rely on the values.
        let cases = [
            ("g", GET, "'k1'", "Index Cond: (key = $1)"),
            (
                "fb",
                SCAN_FROM_BELOW,
                "'k1', 'k2', 20",
                "Index Cond: ((key >= $1) AND (key < $2))",
            ),
            (
                "ab",
                SCAN_AFTER_BELOW,
                "'k1', 'k2', 20",
                "Index Cond: ((key > $1) AND (key < $2))",
            ),
            ("f", SCAN_FROM, "'k1', 20", "Index Cond: (key >= $1)"),
            ("a", SCAN_AFTER, "'k1', 20", "Index Cond: (key > $1)"),
        ];
        for (name, sql, args, condition) in cases {
            client
                .batch_execute(&format!("PREPARE {name} AS {sql}"))
                .expect("prepare");
            let plan = rows(&mut client, &format!("EXPLAIN EXECUTE {name}({args})")).join("\n");
            assert!(plan.contains("Index Scan using kv_pkey"), "{sql}:\n{plan}");
            assert!(plan.contains(condition), "{sql}:\n{plan}");
            assert!(!plan.contains("Filter"), "{sql}:\n{plan}");
        }
    }

    #[test]
    fn an_in_doubt_commit_is_settled_by_its_transaction_id() {
        let db = test_database().expect("a test database");
        let store = PostgresStorage::open(&db.url()).expect("open");
        let mut client = Client::connect(&db.url(), NoTls).expect("connect");
        let mut xid_of = |end: &str| {
            let Ok(xid) = begin(&mut client) else {
                panic!("BEGIN failed")
            };
            client
                .batch_execute(&format!("INSERT INTO kv VALUES ('k{xid}', 'v', 1); {end}"))
                .expect(end);
            xid
        };
        let committed = xid_of("COMMIT");
        let aborted = xid_of("ROLLBACK");
        assert_eq!(store.settle(&committed, "test"), Ok(()));
        match store.settle(&aborted, "test") {
            Err(HostError::Failed(message)) => {
                assert!(message.contains("not applied"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn upper_bound_is_the_next_string_after_the_prefix() {
        assert_eq!(prefix_upper_bound("user/"), Some("user0".into()));
        assert_eq!(prefix_upper_bound("a"), Some("b".into()));
        assert_eq!(prefix_upper_bound("z/ÿ"), Some("z/Ā".into()));
        assert_eq!(prefix_upper_bound("\u{D7FF}"), Some("\u{E000}".into()));
        assert_eq!(prefix_upper_bound("a\u{10FFFF}"), Some("b".into()));
        assert_eq!(prefix_upper_bound("\u{10FFFF}\u{10FFFF}"), None);
        assert_eq!(prefix_upper_bound(""), None);
    }
}
