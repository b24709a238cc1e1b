//! `twofold-server` as a child process: started with the arguments a test gives, on a free
//! loopback port, with its standard error in a log file; killed when dropped.

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to accept its first connection.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The origin every test server is configured with (the testkit's, so its authenticator's
/// assertions verify).
pub const ORIGIN: &str = twofold_testkit::ORIGIN;

/// A running server process.
pub struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its standard error.
    pub log: PathBuf,
    args: Vec<String>,
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `--audit-key-file` with the testkit's key, written into `dir`.
pub fn test_audit_key_file(dir: &Path) -> PathBuf {
    let path = dir.join("audit-keys");
    std::fs::write(
        &path,
        format!("test:{}\n", twofold_testkit::TEST_AUDIT_KEY_HEX),
    )
    .expect("write the audit key file");
    path
}

impl ServerProcess {
    /// Starts `twofold-server` on a free port over `db` (a file or a URL) with the test audit
    /// key and cheap argon2 unless `extra` says otherwise, and waits until it accepts.
    pub fn start(dir: &Path, name: &str, db: &str, extra: &[&str]) -> ServerProcess {
        super::loader(); // the compiled-code cache the binary will use
        let port = free_port();
        let mut args = vec![
            "--listen".to_owned(),
            format!("127.0.0.1:{port}"),
            "--origin".into(),
            ORIGIN.into(),
            "--db".into(),
            db.into(),
            "--component".into(),
            twofold_server::default_component_path()
                .display()
                .to_string(),
            "--audit-key-file".into(),
            test_audit_key_file(dir).display().to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let log = dir.join(format!("{name}.log"));
        let mut server = ServerProcess {
            child: spawn(&args, &log),
            addr: ([127, 0, 0, 1], port).into(),
            log,
            args,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        while TcpStream::connect(self.addr).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("twofold-server exited ({status}):\n{}", self.log_text());
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "twofold-server did not listen within {START_TIMEOUT:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory (VmRSS), KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and its exit status once it has stopped.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        self.child.wait().expect("the server's exit status")
    }

    /// Starts it again with the same arguments (and port), after [`kill`](Self::kill).
    pub fn restart(&mut self) {
        self.child = spawn(&self.args, &self.log);
        self.wait_ready();
    }

    /// What it has logged.
    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

fn spawn(args: &[String], log: &Path) -> Child {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("a log file");
    Command::new(env!("CARGO_BIN_EXE_twofold-server"))
        .args(args)
        .env_remove("TWOFOLD_AUDIT_KEYS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("twofold-server starts")
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
