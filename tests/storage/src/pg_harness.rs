//! A real, throwaway PostgreSQL server for tests: its own data directory, port and socket,
//! started with the machine's PostgreSQL programs and stopped (and deleted) afterwards.
//!
//! Tests in one process share one server ([`shared`], started on first use) and each takes a
//! database of its own ([`test_database`]), so they stay independent while paying for one
//! `initdb`. A test that stops or restarts its server starts a private one ([`PgServer::start`]).
//!
//! Cleanup does not depend on destructors alone: statics are never dropped, and a test binary
//! can die by a signal, so every server also has a small watcher process that stops the
//! server and deletes its directory once the test process is gone.
//!
//! Each test database's default collation is ICU `en-US` (when the server has ICU), where
//! `B` sorts between `a` and `c`: a store that leant on the default collation instead of
//! declaring byte order would fail the contract's order checks here.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The PostgreSQL role the server is created with (and tests connect as).
pub const USER: &str = "twofold";

/// How long a start may take before the harness gives up. Generous: on a busy 2-core machine
/// a cold start with fsync on can take several seconds.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the harness could not give a test its database.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The PostgreSQL server programs are not on this machine.
    #[error(
        "PostgreSQL's server programs (initdb, pg_ctl) were not found; run tests/setup.sh \
         (it installs Debian's postgresql package), or set TWOFOLD_PG_BINDIR ({0})"
    )]
    NotInstalled(String),
    /// A command failed.
    #[error("{what} failed: {detail}")]
    Command {
        /// What was being run.
        what: String,
        /// Its status and output.
        detail: String,
    },
    /// The server did not come up.
    #[error("PostgreSQL did not start: {reason}\n--- server log ---\n{log}")]
    Start {
        /// What went wrong.
        reason: String,
        /// The server's log.
        log: String,
    },
    /// A statement against the server failed.
    #[error("{0}")]
    Sql(String),
}

/// Who runs the server: PostgreSQL refuses to run as root, so a root test process runs the
/// server programs as the `postgres` user instead.
#[derive(Clone, Debug)]
enum RunAs {
    CurrentUser,
    Other(String),
}

/// A running PostgreSQL server. Dropping it stops the server and deletes its directory.
#[derive(Debug)]
pub struct PgServer {
    bindir: PathBuf,
    dir: PathBuf,
    port: u16,
    run_as: RunAs,
    /// Stops the server if this process ends without dropping the guard.
    watcher: Mutex<Option<Child>>,
    /// Whether CREATE DATABASE may ask for an ICU default collation.
    icu: bool,
}

static SHARED: OnceLock<Result<PgServer, String>> = OnceLock::new();
static DATABASES: AtomicU64 = AtomicU64::new(0);

/// The server shared by every test of this process, started on first use.
pub fn shared() -> Result<&'static PgServer, HarnessError> {
    SHARED
        .get_or_init(|| PgServer::start().map_err(|e| e.to_string()))
        .as_ref()
        // The first caller saw the full error; later ones get the same text.
        .map_err(|e| HarnessError::Sql(format!("the shared PostgreSQL server failed: {e}")))
}

/// A new, empty database on the shared server.
pub fn test_database() -> Result<TestDatabase<'static>, HarnessError> {
    shared()?.create_database()
}

impl PgServer {
    /// Creates a cluster in a new temporary directory and starts it on a free loopback port.
    pub fn start() -> Result<PgServer, HarnessError> {
        let bindir = find_bindir()?;
        let run_as = if current_user_is_root()? {
            RunAs::Other("postgres".into())
        } else {
            RunAs::CurrentUser
        };
        // mktemp as the server's user, so the directory is theirs and private (0700), as
        // initdb and the server require.
        let template = std::env::temp_dir().join("twofold-pg-XXXXXX");
        let made = run(
            as_user(&run_as, Path::new("mktemp"))
                .arg("-d")
                .arg(&template),
            "mktemp",
        )?;
        let dir = PathBuf::from(String::from_utf8_lossy(&made.stdout).trim());
        let mut server = PgServer {
            bindir,
            dir,
            port: 0,
            run_as,
            watcher: Mutex::new(None),
            icu: false,
        };
        // From here on, dropping `server` cleans up whatever was made.
        run(
            server
                .tool("initdb")
                .arg("-D")
                .arg(server.data_dir())
                .args(["-A", "trust", "-U", USER, "-E", "UTF8", "--locale=C"])
                // Tests never survive a crash, so skip initdb's own fsync (the server itself
                // still fsyncs, so commit timings are real).
                .args(["--no-sync", "--no-instructions"]),
            "initdb",
        )?;
        server.watch()?;
        // A port found free can be taken before the server binds it; try a few.
        let mut last = None;
        for _ in 0..3 {
            server.port = free_port()?;
            match server.start_on_port() {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        server.icu = server.probe_icu();
        Ok(server)
    }

    /// `postgres://twofold@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of database `name` on this server.
    pub fn url_for(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's data directory (also its socket directory, and `log` inside it).
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log"))
            .unwrap_or_else(|e| format!("(no server log: {e})"))
    }

    /// Stops the server (fast: open sessions are ended), keeping its data.
    pub fn stop(&self) -> Result<(), HarnessError> {
        run(
            self.tool("pg_ctl")
                .arg("-D")
                .arg(&self.dir)
                .args(["-m", "fast", "-w", "-t", "60", "stop"]),
            "pg_ctl stop",
        )
        .map(drop)
    }

    /// Starts a stopped server again, on the same port.
    pub fn restart(&self) -> Result<(), HarnessError> {
        self.start_on_port()
    }

    /// Creates an empty database with a fresh name and returns a guard that drops it.
    pub fn create_database(&self) -> Result<TestDatabase<'_>, HarnessError> {
        let name = format!(
            "t_{}_{}",
            DATABASES.fetch_add(1, Ordering::Relaxed),
            random_suffix()
        );
        let sql = if self.icu {
            format!(
                "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C' \
                 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
            )
        } else {
            format!("CREATE DATABASE {name}")
        };
        self.admin(&sql)?;
        Ok(TestDatabase { server: self, name })
    }

    /// Runs one statement as the superuser, in the `postgres` database.
    pub fn admin(&self, sql: &str) -> Result<(), HarnessError> {
        let mut client = postgres::Client::connect(&self.url(), postgres::NoTls)
            .map_err(|e| HarnessError::Sql(format!("connect to {}: {e}", self.url())))?;
        client
            .batch_execute(sql)
            .map_err(|e| HarnessError::Sql(format!("{sql}: {}", db_message(&e))))
    }

    /// A program from the server's bin directory, run as the server's user.
    fn tool(&self, name: &str) -> Command {
        as_user(&self.run_as, &self.bindir.join(name))
    }

    fn start_on_port(&self) -> Result<(), HarnessError> {
        let dir = self.dir.display();
        let options = format!(
            "-p {} -k '{dir}' -c listen_addresses=127.0.0.1 -c fsync=on",
            self.port
        );
        let started = run(
            self.tool("pg_ctl")
                .arg("-D")
                .arg(&self.dir)
                .arg("-o")
                .arg(options)
                .arg("-l")
                .arg(self.dir.join("log"))
                .args(["-w", "-t", "60", "start"]),
            "pg_ctl start",
        );
        if let Err(e) = started {
            return Err(HarnessError::Start {
                reason: e.to_string(),
                log: self.log(),
            });
        }
        // pg_ctl -w waits for the postmaster; also wait until it takes our connections, so the
        // first test never races the end of recovery.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match postgres::Client::connect(&self.url(), postgres::NoTls) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(HarnessError::Start {
                        reason: format!("no connection after {START_TIMEOUT:?}: {e}"),
                        log: self.log(),
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Starts the watcher: a shell that polls this process and, once it has exited, stops the
    /// server and deletes the directory. In its own process group, so a Ctrl-C aimed at the
    /// tests does not kill it before it has cleaned up.
    fn watch(&self) -> Result<(), HarnessError> {
        use std::os::unix::process::CommandExt;
        let pg_ctl = self.bindir.join("pg_ctl");
        let stop = match &self.run_as {
            RunAs::CurrentUser => r#""$3" -D "$2" -m fast stop"#.to_owned(),
            RunAs::Other(user) => format!(r#"runuser -u {user} -- "$3" -D "$2" -m fast stop"#),
        };
        let script =
            format!(r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; {stop}; rm -rf "$2""#);
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("twofold-pg-watcher")
            .arg(std::process::id().to_string())
            .arg(&self.dir)
            .arg(pg_ctl)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| HarnessError::Command {
                what: "sh (watcher)".into(),
                detail: e.to_string(),
            })?;
        *self
            .watcher
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(child);
        Ok(())
    }

    /// Whether this server can create databases with an ICU default collation (Debian's
    /// builds can; a build without ICU cannot, and the tests then run on C).
    fn probe_icu(&self) -> bool {
        let name = format!("t_icu_probe_{}", random_suffix());
        let made = self.admin(&format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C' \
             LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
        ));
        if made.is_ok() {
            let _ = self.admin(&format!("DROP DATABASE {name}"));
        }
        made.is_ok()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let watcher = self
            .watcher
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(mut watcher) = watcher {
            let _ = watcher.kill();
            let _ = watcher.wait();
        }
        if self.port != 0
            && self.dir.join("postmaster.pid").exists()
            && let Err(e) = self.stop()
        {
            eprintln!("pg_harness: {e}");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("pg_harness: cannot remove {}: {e}", self.dir.display());
        }
    }
}

/// A database of its own for one test; dropped (with its sessions ended) when the guard is.
#[derive(Debug)]
pub struct TestDatabase<'a> {
    server: &'a PgServer,
    name: String,
}

impl TestDatabase<'_> {
    /// Its URL.
    pub fn url(&self) -> String {
        self.server.url_for(&self.name)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server it lives on.
    pub fn server(&self) -> &PgServer {
        self.server
    }
}

impl Drop for TestDatabase<'_> {
    fn drop(&mut self) {
        // FORCE ends sessions a test left open (PostgreSQL 13 and later).
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = self.server.admin(&sql) {
            eprintln!("pg_harness: {e}");
        }
    }
}

/// Where initdb and pg_ctl are: `TWOFOLD_PG_BINDIR`, Debian's PostgreSQL 15 directory (or the
/// newest other version there), `pg_config --bindir`, or the files of package postgresql-15.
fn find_bindir() -> Result<PathBuf, HarnessError> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let mut tried = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("TWOFOLD_PG_BINDIR") {
        candidates.push(dir.into());
    }
    candidates.push("/usr/lib/postgresql/15/bin".into());
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse().ok()?;
                Some((version, e.path().join("bin")))
            })
            .collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev().map(|(_, dir)| dir));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        candidates.push(String::from_utf8_lossy(&out.stdout).trim().into());
    }
    if let Ok(out) = Command::new("dpkg").args(["-L", "postgresql-15"]).output() {
        let listing = String::from_utf8_lossy(&out.stdout);
        if let Some(dir) = listing
            .lines()
            .find(|l| l.ends_with("/bin/initdb"))
            .and_then(|initdb| Path::new(initdb).parent())
        {
            candidates.push(dir.to_owned());
        }
    }
    for dir in candidates {
        if has_tools(&dir) {
            return Ok(dir);
        }
        tried.push(dir.display().to_string());
    }
    Err(HarnessError::NotInstalled(format!(
        "looked in {}",
        tried.join(", ")
    )))
}

fn current_user_is_root() -> Result<bool, HarnessError> {
    let out = run(Command::new("id").arg("-u"), "id -u")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn as_user(run_as: &RunAs, program: &Path) -> Command {
    match run_as {
        RunAs::CurrentUser => Command::new(program),
        RunAs::Other(user) => {
            let mut command = Command::new("runuser");
            command.args(["-u", user, "--"]).arg(program);
            command
        }
    }
}

/// Runs a command to completion; an error carries its status and output.
fn run(command: &mut Command, what: &str) -> Result<Output, HarnessError> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError::Command {
            what: what.into(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(out);
    }
    Err(HarnessError::Command {
        what: what.into(),
        detail: format!(
            "{}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

/// A loopback port nothing listens on right now.
fn free_port() -> Result<u16, HarnessError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| HarnessError::Command {
            what: "finding a free port".into(),
            detail: e.to_string(),
        })
}

/// Eight hex digits that differ between processes and calls (names only, not secrets).
fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:08x}", hasher.finish() as u32)
}

/// The server's message for `e` when there is one (the client's Display says only "db error").
pub fn db_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}
