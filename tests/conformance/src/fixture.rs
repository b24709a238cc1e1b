//! Fixtures: what a target's driver processes share for one run of the suite, set up before
//! the first scenario and torn down after the last. `fixture = "postgres"` in `targets.toml`
//! starts a throwaway PostgreSQL server (the workspace's harness, `twofold-storage-testkit`)
//! and puts its URL in the command (`{postgres_url}`), so several server processes can work on
//! one database.

use std::path::{Path, PathBuf};

use twofold_storage_testkit::PgServer;
use twofold_storage_testkit::pg_harness::HarnessError;

/// What a target asks to be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixtureKind {
    /// A fresh PostgreSQL server; `{postgres_url}` in the command is its URL.
    Postgres,
}

/// Why a fixture is not there.
#[derive(Debug)]
pub enum FixtureError {
    /// This machine cannot have it (PostgreSQL is not installed): the target is skipped unless
    /// it is required.
    Unavailable(String),
    /// Setting it up failed.
    Failed(String),
}

impl FixtureKind {
    /// The kind named in `targets.toml`.
    pub fn parse(name: &str) -> Result<FixtureKind, String> {
        match name {
            "postgres" => Ok(FixtureKind::Postgres),
            other => Err(format!("unknown fixture {other:?} (known: postgres)")),
        }
    }

    /// Sets the fixture up; its log goes to `log_dir` when it is torn down.
    pub fn start(self, log_dir: &Path) -> Result<Fixture, FixtureError> {
        match self {
            FixtureKind::Postgres => {
                let server = PgServer::start().map_err(|e| match e {
                    HarnessError::NotInstalled(_) => FixtureError::Unavailable(e.to_string()),
                    other => FixtureError::Failed(other.to_string()),
                })?;
                Ok(Fixture {
                    substitutions: vec![("{postgres_url}".into(), server.url())],
                    postgres: Some(server),
                    keep_log: log_dir.join("postgres.log"),
                })
            }
        }
    }
}

/// A fixture that is up; dropping it tears it down.
pub struct Fixture {
    /// Placeholder -> value, for the target's command.
    pub substitutions: Vec<(String, String)>,
    postgres: Option<PgServer>,
    /// Where the server's log is kept after the run.
    keep_log: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(server) = self.postgres.take() {
            // Best effort: the log only helps to read a failure.
            let _ = std::fs::write(&self.keep_log, server.log());
            // Dropping the server stops it and deletes its directory.
            drop(server);
        }
    }
}
