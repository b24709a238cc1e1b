//! Fixtures: what a target's driver processes share for one run of the suite, set up before
//! the first scenario and torn down after the last. `fixture = "postgres"` in `targets.toml`
//! starts a throwaway PostgreSQL server and puts its URL in the command (`{postgres_url}`),
//! so several server processes can work on one database.
//!
//! The PostgreSQL harness here is the least that does the job (initdb into a temporary
//! directory, a free port, `pg_ctl start`, stop and delete after, and a watcher that cleans up
//! if the runner dies). It is meant to give way to the workspace's shared test-support harness
//! once that crate exists.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What a target asks to be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixtureKind {
    /// A fresh PostgreSQL server; `{postgres_url}` in the command is its URL.
    Postgres,
}

impl FixtureKind {
    /// The kind named in `targets.toml`.
    pub fn parse(name: &str) -> Result<FixtureKind, String> {
        match name {
            "postgres" => Ok(FixtureKind::Postgres),
            other => Err(format!("unknown fixture {other:?} (known: postgres)")),
        }
    }

    /// Why the fixture cannot be set up on this machine, if it cannot.
    pub fn unavailable(self) -> Option<String> {
        match self {
            FixtureKind::Postgres => find_bindir().err(),
        }
    }

    /// Sets the fixture up; its logs go to `log_dir` when it is torn down.
    pub fn start(self, log_dir: &Path) -> Result<Fixture, String> {
        match self {
            FixtureKind::Postgres => {
                let mut server = Postgres::start()?;
                server.keep_log = Some(log_dir.join("postgres.log"));
                Ok(Fixture {
                    substitutions: vec![("{postgres_url}".into(), server.url())],
                    _postgres: Some(server),
                })
            }
        }
    }
}

/// A fixture that is up; dropping it tears it down.
pub struct Fixture {
    /// Placeholder -> value, for the target's command.
    pub substitutions: Vec<(String, String)>,
    _postgres: Option<Postgres>,
}

/// The user the PostgreSQL cluster is made for; drivers connect as it, without a password.
const PG_USER: &str = "twofold";

/// A running throwaway PostgreSQL server.
struct Postgres {
    bindir: PathBuf,
    dir: PathBuf,
    port: u16,
    /// The user the server runs as when the runner is root (`postgres`: it refuses root).
    run_as: Option<String>,
    watcher: Option<Child>,
    /// Where the server's log is copied when it stops.
    keep_log: Option<PathBuf>,
}

impl Postgres {
    fn start() -> Result<Postgres, String> {
        let bindir = find_bindir()?;
        let run_as = is_root()?.then(|| "postgres".to_owned());
        // Made by the server's user, so it is theirs and private, as initdb requires.
        let template = std::env::temp_dir().join("twofold-conformance-pg-XXXXXX");
        let made = run(
            as_user(run_as.as_deref(), Path::new("mktemp"))
                .arg("-d")
                .arg(&template),
            "mktemp",
        )?;
        let dir = PathBuf::from(made.trim());
        let mut server = Postgres {
            bindir,
            dir,
            port: 0,
            run_as,
            watcher: None,
            keep_log: None,
        };
        // From here on, dropping `server` cleans up.
        run(
            server
                .tool("initdb")
                .arg("-D")
                .arg(&server.dir)
                .args(["-A", "trust", "-U", PG_USER, "-E", "UTF8", "--locale=C"])
                .args(["--no-sync", "--no-instructions"]),
            "initdb",
        )?;
        server.watcher = Some(server.watch()?);
        let mut last = String::new();
        // A port found free can be taken before the server binds it: try a few.
        for _ in 0..3 {
            server.port = free_port()?;
            // The suite tests behaviour, not durability: skip fsync to keep runs short.
            let options = format!(
                "-p {} -k '{}' -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off",
                server.port,
                server.dir.display()
            );
            let started = run(
                server
                    .tool("pg_ctl")
                    .arg("-D")
                    .arg(&server.dir)
                    .arg("-o")
                    .arg(options)
                    .arg("-l")
                    .arg(server.dir.join("log"))
                    .args(["-w", "-t", "60", "start"]),
                "pg_ctl start",
            );
            match started {
                Ok(_) => return Ok(server),
                Err(e) => last = format!("{e}\n{}", server.log()),
            }
        }
        Err(format!("PostgreSQL did not start: {last}"))
    }

    fn url(&self) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/postgres", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn tool(&self, name: &str) -> Command {
        as_user(self.run_as.as_deref(), &self.bindir.join(name))
    }

    /// A shell that waits for this process to end, then stops the server and deletes its
    /// directory: the cleanup still happens when the runner is killed. In its own process
    /// group, so a Ctrl-C aimed at the runner does not stop it first.
    fn watch(&self) -> Result<Child, String> {
        use std::os::unix::process::CommandExt;
        let stop = match &self.run_as {
            None => r#""$3" -D "$2" -m immediate stop"#.to_owned(),
            Some(user) => format!(r#"runuser -u {user} -- "$3" -D "$2" -m immediate stop"#),
        };
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; {stop}; rm -rf "$2""#
            ))
            .arg("twofold-conformance-pg-watcher")
            .arg(std::process::id().to_string())
            .arg(&self.dir)
            .arg(self.bindir.join("pg_ctl"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start the PostgreSQL watcher: {e}"))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut watcher) = self.watcher.take() {
            let _ = watcher.kill();
            let _ = watcher.wait();
        }
        if self.dir.join("postmaster.pid").exists() {
            let _ = run(
                self.tool("pg_ctl")
                    .arg("-D")
                    .arg(&self.dir)
                    .args(["-m", "fast", "-w", "-t", "30", "stop"]),
                "pg_ctl stop",
            );
        }
        if let Some(path) = &self.keep_log {
            let _ = std::fs::write(path, self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where `initdb` and `pg_ctl` are: `TWOFOLD_PG_BINDIR`, Debian's PostgreSQL 15 directory or
/// the newest other version there, or `pg_config --bindir`.
fn find_bindir() -> Result<PathBuf, String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("TWOFOLD_PG_BINDIR") {
        candidates.push(dir.into());
    }
    candidates.push("/usr/lib/postgresql/15/bin".into());
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
            .collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev().map(|(_, dir)| dir));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        candidates.push(String::from_utf8_lossy(&out.stdout).trim().into());
    }
    candidates
        .iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
        .cloned()
        .ok_or_else(|| {
            "PostgreSQL's server programs (initdb, pg_ctl) are not installed; run \
             tests/setup.sh, or set TWOFOLD_PG_BINDIR"
                .to_owned()
        })
}

fn is_root() -> Result<bool, String> {
    Ok(run(Command::new("id").arg("-u"), "id -u")?.trim() == "0")
}

fn as_user(user: Option<&str>, program: &Path) -> Command {
    match user {
        None => Command::new(program),
        Some(user) => {
            let mut command = Command::new("runuser");
            command.args(["-u", user, "--"]).arg(program);
            command
        }
    }
}

/// Runs a command to completion; answers its standard output, or why it failed.
fn run(command: &mut Command, what: &str) -> Result<String, String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{what}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("finding a free port: {e}"))
}
