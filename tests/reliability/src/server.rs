//! `twofold-server` as a child process serving HTTP on a free loopback port, with its own
//! database, stopped when dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::hosts;
use crate::http::Client;

/// How long the server may take to answer its first request (it may compile the component).
pub const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A running server.
pub struct Server {
    child: Child,
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    /// Its origin, `http://localhost:PORT`: the WebAuthn origin and the CSRF check's.
    pub origin: String,
    /// Its database file.
    pub db: PathBuf,
    /// Its standard error.
    pub log: PathBuf,
    dir: PathBuf,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("an address").port()
}

impl Server {
    /// Starts the server with `workers` worker threads over `dir/twofold.db` and waits until it
    /// answers.
    pub fn start(dir: &std::path::Path, workers: usize) -> Server {
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let origin = format!("http://localhost:{port}");
        let db = dir.join("twofold.db");
        let log = dir.join(format!("server-{port}.log"));
        let stderr = std::fs::File::create(&log).expect("a log file");
        let child = Command::new(hosts::server_binary())
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--origin")
            .arg(&origin)
            .arg("--rp-id")
            .arg("localhost")
            .arg("--db")
            .arg(&db)
            .arg("--component")
            .arg(hosts::component_path())
            .arg("--workers")
            .arg(workers.to_string())
            // The tests play the proxy: a client's `X-Forwarded-For` names it (H4).
            .arg("--trusted-proxy")
            .arg("127.0.0.1")
            // The test key, so that the stored-state rules can verify what the server wrote.
            .env(
                "TWOFOLD_AUDIT_KEYS",
                format!("test:{}", twofold_testkit::TEST_AUDIT_KEY_HEX),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", hosts::server_binary().display()));
        let mut server = Server {
            child,
            addr,
            origin,
            db,
            log,
            dir: dir.to_owned(),
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            let mut probe = Client::new(self.addr, &self.origin);
            if probe.send("GET", "/api/me", None).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "twofold-server exited ({status}) before serving; see {}",
                    self.log.display()
                );
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "twofold-server did not answer within {START_TIMEOUT:?}; see {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server and removes its directory (a test that fails keeps it, with the log).
    pub fn finish(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// A browser for this server.
    pub fn client(&self) -> Client {
        Client::new(self.addr, &self.origin)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
