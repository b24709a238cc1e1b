//! What the sample server serves (issue 14): `GET /api/me` and complete two-step sign-ins
//! (password, then passkey) per second, with one and with two server processes, on SQLite and
//! on PostgreSQL, side by side in one run, with p50/p99 latencies and each server's resident
//! memory. Run on demand, never in CI; no test asserts a time.
//!
//! ```sh
//! cargo bench -p twofold-server --bench throughput            # about 2 minutes
//! cargo bench -p twofold-server --bench throughput -- --quick # a few seconds per cell
//! ```
//!
//! The servers are the release binary this bench is built with, each with `--workers 2` (the
//! machine's core count), SPEC argon2 costs, and the clients on the same machine (they take
//! CPU too: the numbers are what one 2-core box does end to end). PostgreSQL is a private
//! server started by the test harness (fsync on). Results also go to
//! `target/bench/server-throughput.md`.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::client::{Client, ok, sign_in, user_with_passkey};
use common::process::ServerProcess;
use twofold_testkit::authenticator::Authenticator;

/// One measured cell.
struct Cell {
    ops: usize,
    took: Duration,
    latencies: Vec<Duration>,
    errors: usize,
}

impl Cell {
    fn pct(&self, p: usize) -> String {
        if self.latencies.is_empty() {
            return "-".into();
        }
        let at = (self.latencies.len() * p).div_ceil(100).max(1) - 1;
        let d = self.latencies[at.min(self.latencies.len() - 1)];
        if d < Duration::from_millis(10) {
            format!("{:.2} ms", d.as_secs_f64() * 1000.0)
        } else {
            format!("{} ms", d.as_millis())
        }
    }
}

/// Runs `each` on every client for `secs`, counting successes and their latencies.
fn measure<F>(clients: &mut [(Client, String, Authenticator)], secs: Duration, each: F) -> Cell
where
    F: Fn(&mut Client, &str, &mut Authenticator) -> bool + Sync,
{
    let latencies = Mutex::new(Vec::new());
    let errors = Mutex::new(0usize);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for (client, email, device) in clients.iter_mut() {
            let (latencies, errors, each) = (&latencies, &errors, &each);
            scope.spawn(move || {
                let mut mine = Vec::new();
                while started.elapsed() < secs {
                    let t = Instant::now();
                    if each(client, email, device) {
                        mine.push(t.elapsed());
                    } else {
                        *errors.lock().expect("lock") += 1;
                    }
                }
                latencies.lock().expect("lock").extend(mine);
            });
        }
    });
    let took = started.elapsed();
    let mut latencies = latencies.into_inner().expect("lock");
    latencies.sort();
    Cell {
        ops: latencies.len(),
        took,
        latencies,
        errors: errors.into_inner().expect("lock"),
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let secs = Duration::from_secs(if quick { 3 } else { 15 });
    let connections = 8;
    let pg = twofold_storage_testkit::PgServer::start()
        .expect("a PostgreSQL server (tests/setup.sh installs it)");
    let mut rows = Vec::new();
    for store in ["SQLite", "PostgreSQL"] {
        for processes in [1usize, 2] {
            let dir = common::scratch_dir(&format!("bench-{store}-{processes}"));
            let db_guard;
            let db = if store == "SQLite" {
                dir.join("twofold.db").display().to_string()
            } else {
                db_guard = pg.create_database().expect("a database");
                db_guard.url()
            };
            let servers: Vec<ServerProcess> = (0..processes)
                .map(|i| {
                    ServerProcess::start(
                        &dir,
                        &format!("server-{i}"),
                        &db,
                        &[
                            "--workers",
                            "2",
                            "--trusted-proxy",
                            "127.0.0.1",
                            "--queue",
                            "256",
                        ],
                    )
                })
                .collect();
            // One account with a passkey per connection, the connections spread over the
            // processes, each its own client for the engine.
            let mut clients: Vec<(Client, String, Authenticator)> = (0..connections)
                .map(|i| {
                    let mut client = Client::new(
                        servers[i % processes].addr,
                        &format!("10.7.{}.{}", processes, i + 1),
                    );
                    let email = format!("bench{i}@example.com");
                    let mut device = Authenticator::new(7000 + i as u64);
                    user_with_passkey(&mut client, &email, &mut device);
                    (client, email, device)
                })
                .collect();
            let me = measure(&mut clients, secs, |client, _, _| {
                client
                    .send("GET", "/api/me", None)
                    .is_ok_and(|a| a.status == 200)
            });
            let signins = measure(&mut clients, secs, |client, email, device| {
                let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    sign_in(client, email, device)
                }));
                done.is_ok()
            });
            // Signed in again for nothing else: keeps the sessions of the last run valid.
            ok(&mut clients[0].0, "GET", "/api/me", None);
            let rss: Vec<String> = servers
                .iter()
                .map(|s| format!("{} MiB", s.rss_kib() / 1024))
                .collect();
            rows.push((store, processes, me, signins, rss.join(" + ")));
            drop(servers);
        }
    }

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| store | processes | GET /api/me per s | p50 | p99 | two-step sign-ins per s | p50 | p99 | errors | server RSS |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for (store, processes, me, signins, rss) in &rows {
        let _ = writeln!(
            table,
            "| {store} | {processes} | {:.0} | {} | {} | {:.1} | {} | {} | {} | {rss} |",
            me.ops as f64 / me.took.as_secs_f64(),
            me.pct(50),
            me.pct(99),
            signins.ops as f64 / signins.took.as_secs_f64(),
            signins.pct(50),
            signins.pct(99),
            me.errors + signins.errors,
        );
    }
    let header = format!(
        "{connections} keep-alive connections, {} s per cell, `--workers 2` per process, SPEC argon2, \
         nproc {}\n\n",
        secs.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    print!("{header}{table}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join("server-throughput.md"), format!("{header}{table}"));
}
