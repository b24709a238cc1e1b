//! Several `twofold-server` processes on one database, as a team that outgrows one machine runs
//! them: D1 and D2 across processes on a real PostgreSQL (started by the test harness, one
//! server for this test binary, a database per test), and SIGKILL under HTTP load on
//! PostgreSQL and on SQLite.
//!
//! - A session made by one process is honoured by every other.
//! - The races of one backup code, one pending sign-in and one registration response, spread
//!   over three processes: one winner each.
//! - Complete two-step sign-ins spread over three processes: no errors.
//! - One of three processes killed 25 times under load: the other two keep answering, nothing
//!   acknowledged is lost (accounts, sessions, passkeys), the stored-state rules of
//!   `twofold_reliability::invariants` hold on what PostgreSQL holds after each kill, and the
//!   killed process restarts and serves. The same for a single server on SQLite.
//!
//! Knobs: `TWOFOLD_CLUSTER_KILLS` (default 25), `TWOFOLD_CLUSTER_SIGNINS` (60),
//! `TWOFOLD_RACE_ROUNDS` (2), `TWOFOLD_CRASH_SEED` (replays a kill run).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::client::{Answer, Client, PASSWORD, ok, pending, sign_in, user_with_passkey};
use common::process::ServerProcess;
use serde_json::{Value, json};
use twofold_reliability::rng::Rng;
use twofold_reliability::{Snapshot, invariants};
use twofold_server::proto::Versioned;
use twofold_testkit::ORIGIN;
use twofold_testkit::authenticator::{Authenticator, Tweaks};

/// These tests measure several server processes on two cores, so they take turns.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// `n` servers over `db`, each trusting 127.0.0.1 as a proxy (so each test client can name
/// itself in X-Forwarded-For).
fn cluster(dir: &Path, db: &str, n: usize) -> Vec<ServerProcess> {
    (0..n)
        .map(|i| {
            ServerProcess::start(
                dir,
                &format!("server-{i}"),
                db,
                &["--workers", "2", "--trusted-proxy", "127.0.0.1"],
            )
        })
        .collect()
}

/// The `kv` table of a PostgreSQL database, read in one statement (one consistent snapshot,
/// whatever the servers are doing meanwhile).
fn pg_snapshot(url: &str) -> Snapshot {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    client
        .query("SELECT key, value, version FROM kv", &[])
        .expect("read kv")
        .iter()
        .map(|row| {
            let version: i64 = row.get(2);
            (
                row.get::<_, String>(0),
                Versioned {
                    value: row.get(1),
                    version: u64::try_from(version).expect("a positive version"),
                },
            )
        })
        .collect::<BTreeMap<_, _>>()
}

/// Sends one request from each client at one moment; the answers, in client order.
fn race(clients: &mut [Client], path: &str, bodies: Vec<Value>) -> Vec<Answer> {
    for client in clients.iter_mut() {
        // Connected and warm before the start.
        let answer = client.send("GET", "/api/me", None).expect("warm-up");
        assert!(matches!(answer.status, 200 | 401), "{answer:?}");
    }
    let barrier = Barrier::new(clients.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .iter_mut()
            .zip(bodies)
            .map(|(client, body)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    client
                        .send("POST", path, Some(&body))
                        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a racer"))
            .collect()
    })
}

/// Exactly one 200; every other answer one of `losers`.
fn exactly_one_success(what: &str, answers: &[Answer], losers: &[&str]) {
    let summary: Vec<String> = answers
        .iter()
        .map(|a| format!("{} {}", a.status, a.code()))
        .collect();
    assert_eq!(
        answers.iter().filter(|a| a.status == 200).count(),
        1,
        "{what}: {summary:?}"
    );
    for a in answers.iter().filter(|a| a.status != 200) {
        assert!(losers.contains(&a.code()), "{what}: {summary:?}");
    }
}

/// `n` clients, spread round-robin over the servers, each its own client for the engine.
fn clients(servers: &[SocketAddr], n: usize, cookie: Option<&str>) -> Vec<Client> {
    (0..n)
        .map(|i| {
            let mut c = Client::new(servers[i % servers.len()], &format!("10.9.0.{}", i + 1));
            c.cookie = cookie.map(str::to_owned);
            c
        })
        .collect()
}

#[test]
fn sessions_made_by_one_process_are_honoured_by_all_on_postgresql() {
    let _turn = one_at_a_time();
    let db = twofold_storage_testkit::test_database().expect("a PostgreSQL database");
    let dir = common::scratch_dir("cluster-sessions");
    let servers = cluster(&dir, &db.url(), 3);
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let mut on = clients(&addrs, 3, None);
    let mut auth = Authenticator::new(31);
    user_with_passkey(&mut on[0], "shared@example.com", &mut auth);
    let cookie = on[0].cookie.clone().expect("a session");
    for client in &mut on {
        client.cookie = Some(cookie.clone());
        let me = ok(client, "GET", "/api/me", None);
        assert_eq!(me["email"], "shared@example.com");
        assert_eq!(me["two_factor"]["enabled"], true);
    }
    // Step one on one process, step two on another: the pending sign-in is shared too.
    let options = pending(&mut on[1], "shared@example.com");
    on[2].cookie = on[1].cookie.clone();
    let assertion = auth
        .authenticate(&options, ORIGIN, &Tweaks::default())
        .expect("the authenticator signs");
    ok(
        &mut on[2],
        "POST",
        "/api/signin/passkey",
        Some(json!({ "credential": assertion })),
    );
    // Signing out on one process ends the session on all.
    let signed_in = on[2].cookie.clone();
    ok(&mut on[2], "POST", "/api/signout", None);
    on[0].cookie = signed_in;
    let gone = on[0].send("GET", "/api/me", None).expect("an answer");
    assert_eq!((gone.status, gone.code()), (401, "expired"));
}

#[test]
fn d2_races_spread_over_three_processes_on_postgresql_have_one_winner_each() {
    let _turn = one_at_a_time();
    let db = twofold_storage_testkit::test_database().expect("a PostgreSQL database");
    let dir = common::scratch_dir("cluster-races");
    let servers = cluster(&dir, &db.url(), 3);
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let rounds = knob("TWOFOLD_RACE_ROUNDS", 2);
    // At most five losers a race: the engine's per-client backoff starts after five failures.
    let n = 6;

    // One backup code, from six pending sign-ins on three processes.
    let mut owner = Client::new(addrs[0], "10.9.1.1");
    let mut auth = Authenticator::new(41);
    let email = "race-code@example.com";
    let codes = user_with_passkey(&mut owner, email, &mut auth);
    let mut racers = clients(&addrs, n, None);
    for (round, code) in codes.iter().enumerate().take(rounds) {
        for racer in &mut racers {
            pending(racer, email);
        }
        let answers = race(
            &mut racers,
            "/api/signin/backup-code",
            vec![json!({ "code": code }); n],
        );
        exactly_one_success(
            &format!("backup code, round {round}"),
            &answers,
            &["invalid_backup_code"],
        );
        let winner = answers.iter().find(|a| a.status == 200).expect("a winner");
        assert_eq!(winner.body["backup_codes_remaining"], 9 - round);
        sign_in(&mut owner, email, &mut auth);
    }

    // One pending sign-in, six different valid assertions on three processes.
    let email = "race-pending@example.com";
    let mut owner = Client::new(addrs[1], "10.9.1.2");
    let mut auth = Authenticator::new(42);
    user_with_passkey(&mut owner, email, &mut auth);
    for round in 0..rounds {
        let mut first = Client::new(addrs[2], "10.9.1.3");
        let options = pending(&mut first, email);
        let mut racers = clients(&addrs, n, first.cookie.as_deref());
        let bodies = (0..n)
            .map(|_| {
                let assertion = auth
                    .authenticate(&options, ORIGIN, &Tweaks::default())
                    .expect("the authenticator signs");
                json!({ "credential": assertion })
            })
            .collect();
        let answers = race(&mut racers, "/api/signin/passkey", bodies);
        exactly_one_success(
            &format!("pending sign-in, round {round}"),
            &answers,
            &["expired", "invalid_passkey"],
        );
        sign_in(&mut owner, email, &mut auth);
    }

    // One registration response, six times on three processes.
    let mut owner = Client::new(addrs[0], "10.9.1.4");
    ok(
        &mut owner,
        "POST",
        "/api/signup",
        Some(json!({ "email": "race-reg@example.com", "password": PASSWORD })),
    );
    let cookie = owner.cookie.clone().expect("a session");
    for round in 0..rounds {
        let options = ok(
            &mut owner,
            "POST",
            "/api/passkeys/registration/start",
            Some(json!({ "name": format!("Key {round}"), "password": PASSWORD })),
        )["options"]
            .clone();
        let credential = Authenticator::new(140 + round as u64)
            .register(&options, ORIGIN, &Tweaks::default())
            .expect("the authenticator registers");
        let mut racers = clients(&addrs, n, Some(&cookie));
        let answers = race(
            &mut racers,
            "/api/passkeys/registration/finish",
            vec![json!({ "credential": credential }); n],
        );
        exactly_one_success(
            &format!("registration, round {round}"),
            &answers,
            &["expired", "already_exists"],
        );
        let listed = ok(&mut owner, "GET", "/api/passkeys", None);
        assert_eq!(listed["passkeys"].as_array().map(Vec::len), Some(round + 1));
    }
    invariants::check(&pg_snapshot(&db.url())).assert_ok("after the races");
}

#[test]
fn load_spread_over_three_processes_on_postgresql_has_no_errors() {
    let _turn = one_at_a_time();
    let db = twofold_storage_testkit::test_database().expect("a PostgreSQL database");
    let dir = common::scratch_dir("cluster-load");
    let servers = cluster(&dir, &db.url(), 3);
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let total = knob("TWOFOLD_CLUSTER_SIGNINS", 60);
    let connections = 6;
    let mut users: Vec<(String, Authenticator, Client)> = clients(&addrs, connections, None)
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            (
                format!("load{i}@example.com"),
                Authenticator::new(600 + i as u64),
                c,
            )
        })
        .collect();
    for (email, auth, client) in &mut users {
        user_with_passkey(client, email, auth);
    }
    let started = Instant::now();
    let latencies = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for (i, (email, auth, client)) in users.iter_mut().enumerate() {
            let share = total / connections + usize::from(i < total % connections);
            let latencies = &latencies;
            scope.spawn(move || {
                for _ in 0..share {
                    let t = Instant::now();
                    sign_in(client, email, auth);
                    latencies.lock().expect("lock").push(t.elapsed());
                }
            });
        }
    });
    let took = started.elapsed();
    let mut latencies = latencies.into_inner().expect("lock");
    latencies.sort();
    assert_eq!(latencies.len(), total);
    eprintln!(
        "load over 3 processes on PostgreSQL: {total} two-step sign-ins in {:.1} s ({:.1}/s), \
         p50 {} ms, p99 {} ms",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64(),
        latencies[total / 2].as_millis(),
        latencies[(total * 99).div_ceil(100) - 1].as_millis()
    );
    invariants::check(&pg_snapshot(&db.url())).assert_ok("after the load");
}

// ------------------------------------------------------------------ SIGKILL under load

/// What one client of the kill runs knows for certain about its account.
struct Known {
    created: bool,
    /// Passkeys the account has: between `low` and `high` while a change is unanswered.
    low: usize,
    high: usize,
    /// The cookie of the last sign-in the server acknowledged: it must stay valid.
    session: Option<String>,
}

/// The state shared between the clients and the killer.
struct Kills {
    /// Set while a server is down, from just before its kill until it serves again.
    down: Vec<AtomicBool>,
    /// Kills so far, per server.
    generation: Vec<AtomicU64>,
    stop: AtomicBool,
    problems: Mutex<Vec<String>>,
    acknowledged: AtomicU64,
    lost_in_flight: AtomicU64,
}

impl Kills {
    fn problem(&self, what: String) {
        self.problems.lock().expect("lock").push(what);
    }
}

/// One client's run: its own account on server `at`, a loop of sign-ins, reads, passkey
/// registrations and removals, each answer checked against what it knows.
fn client_run(i: usize, addr: SocketAddr, at: usize, kills: &Kills) -> (Known, Client) {
    let email = format!("kill{i}@example.com");
    // An authenticator holds one passkey per site (it refuses to make a second), so each new
    // passkey is another authenticator, as a user's second device would be.
    let mut devices: Vec<Authenticator> = Vec::new();
    let mut client = Client::new(addr, &format!("10.8.0.{}", i + 1));
    let mut known = Known {
        created: false,
        low: 0,
        high: 0,
        session: None,
    };
    // A request: its answer, or `None` when it was lost to a kill of this client's server
    // (after which this waits until that server serves again). A request lost any other way
    // is a problem: the other servers must keep answering.
    let send = |client: &mut Client, method: &str, path: &str, body: Option<Value>| {
        let generation = kills.generation[at].load(Ordering::SeqCst);
        match client.send(method, path, body.as_ref()) {
            Ok(answer) => {
                kills.acknowledged.fetch_add(1, Ordering::SeqCst);
                Some(answer)
            }
            Err(e) => {
                let killed = kills.down[at].load(Ordering::SeqCst)
                    || kills.generation[at].load(Ordering::SeqCst) != generation;
                if !killed {
                    kills.problem(format!("client {i}: {method} {path} failed: {e}"));
                }
                kills.lost_in_flight.fetch_add(1, Ordering::SeqCst);
                while kills.down[at].load(Ordering::SeqCst) && !kills.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                None
            }
        }
    };
    let unexpected = |what: &str, answer: &Answer| {
        kills.problem(format!(
            "client {i}: {what} answered {} {}",
            answer.status, answer.body
        ));
    };
    while !kills.stop.load(Ordering::SeqCst) {
        if !known.created {
            let body = json!({ "email": email, "password": PASSWORD });
            match send(&mut client, "POST", "/api/signup", Some(body)) {
                Some(a) if a.status == 200 => {
                    known.created = true;
                    known.session = client.cookie.clone();
                }
                // An earlier sign-up was applied, though its answer was lost.
                Some(a) if a.code() == "already_exists" => known.created = true,
                Some(a) => unexpected("sign-up", &a),
                None => {}
            }
            continue;
        }
        // The acknowledged session still holds, whatever was killed since.
        if let Some(cookie) = &known.session {
            client.cookie = Some(cookie.clone());
            match send(&mut client, "GET", "/api/me", None) {
                Some(a) if a.status == 200 => {
                    let count = a.body["two_factor"]["passkeys"]
                        .as_array()
                        .map_or(0, Vec::len);
                    if count < known.low || count > known.high {
                        kills.problem(format!(
                            "client {i}: {count} passkeys, acknowledged {}..={}",
                            known.low, known.high
                        ));
                    }
                    (known.low, known.high) = (count, count);
                }
                Some(a) => unexpected("an acknowledged session's /api/me", &a),
                None => continue,
            }
        }
        // A two-step sign-in (one step while 2FA is off).
        client.cookie = None;
        let body = json!({ "email": email, "password": PASSWORD });
        let Some(step_one) = send(&mut client, "POST", "/api/signin", Some(body)) else {
            continue;
        };
        if step_one.status != 200 {
            unexpected("sign-in", &step_one);
            continue;
        }
        if step_one.body["status"] == "second_factor_required" {
            let options = &step_one.body["options"];
            let Some(assertion) = devices
                .iter_mut()
                .find_map(|d| d.authenticate(options, ORIGIN, &Tweaks::default()).ok())
            else {
                unexpected("step one (no device holds an allowed passkey)", &step_one);
                continue;
            };
            let body = json!({ "credential": assertion });
            match send(&mut client, "POST", "/api/signin/passkey", Some(body)) {
                Some(a) if a.status == 200 => {}
                Some(a) => {
                    unexpected("step two", &a);
                    continue;
                }
                None => continue,
            }
        }
        known.session = client.cookie.clone();
        if known.high < 3 {
            let body = json!({ "name": "Key", "password": PASSWORD });
            let started = match send(
                &mut client,
                "POST",
                "/api/passkeys/registration/start",
                Some(body),
            ) {
                Some(a) if a.status == 200 => a,
                Some(a) => {
                    unexpected("registration start", &a);
                    continue;
                }
                None => continue,
            };
            let mut device = Authenticator::new(((i as u64) << 16) + devices.len() as u64);
            let credential = device
                .register(&started.body["options"], ORIGIN, &Tweaks::default())
                .expect("the authenticator registers");
            devices.push(device);
            let body = json!({ "credential": credential });
            match send(
                &mut client,
                "POST",
                "/api/passkeys/registration/finish",
                Some(body),
            ) {
                Some(a) if a.status == 200 => {
                    known.low += 1;
                    known.high += 1;
                }
                Some(a) => unexpected("registration finish", &a),
                None => known.high += 1,
            }
        } else {
            let Some(me) = send(&mut client, "GET", "/api/me", None) else {
                continue;
            };
            let Some(id) = me.body["two_factor"]["passkeys"]
                .as_array()
                .and_then(|p| p.last())
                .and_then(|p| p["id"].as_str())
                .map(str::to_owned)
            else {
                unexpected("the passkey list", &me);
                continue;
            };
            let body = json!({ "password": PASSWORD });
            match send(
                &mut client,
                "DELETE",
                &format!("/api/passkeys/{id}"),
                Some(body),
            ) {
                Some(a) if a.status == 200 => {
                    known.low -= 1;
                    known.high -= 1;
                }
                Some(a) => unexpected("passkey removal", &a),
                None => known.low = known.low.saturating_sub(1),
            }
        }
    }
    (known, client)
}

/// Runs `clients` clients over `servers` and kills one server at a random moment, `kills`
/// times; after each kill, `check` looks at the stored state (while the server is down) and
/// the server is restarted.
fn kill_under_load(
    servers: &mut [ServerProcess],
    clients: usize,
    kills: usize,
    mut check: impl FnMut(usize),
) {
    let (mut rng, seed) = Rng::from_env("TWOFOLD_CRASH_SEED");
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let state = Kills {
        down: servers.iter().map(|_| AtomicBool::new(false)).collect(),
        generation: servers.iter().map(|_| AtomicU64::new(0)).collect(),
        stop: AtomicBool::new(false),
        problems: Mutex::new(Vec::new()),
        acknowledged: AtomicU64::new(0),
        lost_in_flight: AtomicU64::new(0),
    };
    let started = Instant::now();
    let finals = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let (state, addr, at) = (&state, addrs[i % addrs.len()], i % addrs.len());
                scope.spawn(move || client_run(i, addr, at, state))
            })
            .collect();
        for kill in 0..kills {
            std::thread::sleep(Duration::from_millis(150 + rng.below(500)));
            let victim = rng.below(servers.len() as u64) as usize;
            state.down[victim].store(true, Ordering::SeqCst);
            state.generation[victim].fetch_add(1, Ordering::SeqCst);
            servers[victim].kill();
            check(kill);
            servers[victim].restart();
            state.down[victim].store(false, Ordering::SeqCst);
        }
        // Some more load with everyone up, then stop.
        std::thread::sleep(Duration::from_millis(500));
        state.stop.store(true, Ordering::SeqCst);
        handles
            .into_iter()
            .map(|h| h.join().expect("a client"))
            .collect::<Vec<_>>()
    });
    // After the last restart every acknowledged session and account is still there.
    for (i, (known, mut client)) in finals.into_iter().enumerate() {
        assert!(known.created, "client {i} never got an account");
        client.cookie = known.session.clone();
        let me = client.send("GET", "/api/me", None).expect("an answer");
        assert_eq!(me.status, 200, "client {i}: {}", me.body);
        let count = me.body["two_factor"]["passkeys"]
            .as_array()
            .map_or(0, Vec::len);
        assert!(
            (known.low..=known.high).contains(&count),
            "client {i}: {count} passkeys, acknowledged {}..={}",
            known.low,
            known.high
        );
    }
    let problems = state.problems.into_inner().expect("lock");
    eprintln!(
        "{kills} kills of {} server(s) in {:.1} s: {} answers, {} requests lost in flight \
         (TWOFOLD_CRASH_SEED={seed})",
        servers.len(),
        started.elapsed().as_secs_f64(),
        state.acknowledged.load(Ordering::SeqCst),
        state.lost_in_flight.load(Ordering::SeqCst),
    );
    assert!(problems.is_empty(), "seed {seed}: {problems:#?}");
}

#[test]
fn sigkill_one_of_three_processes_on_postgresql_under_load_loses_nothing() {
    let _turn = one_at_a_time();
    let db = twofold_storage_testkit::test_database().expect("a PostgreSQL database");
    let dir = common::scratch_dir("cluster-kill");
    let mut servers = cluster(&dir, &db.url(), 3);
    let url = db.url();
    kill_under_load(&mut servers, 6, knob("TWOFOLD_CLUSTER_KILLS", 25), |kill| {
        invariants::check(&pg_snapshot(&url)).assert_ok(&format!("PostgreSQL after kill {kill}"))
    });
    invariants::check(&pg_snapshot(&url)).assert_ok("PostgreSQL at the end");
}

#[test]
fn sigkill_of_the_sqlite_server_under_http_load_loses_nothing() {
    let _turn = one_at_a_time();
    let dir = common::scratch_dir("sqlite-kill");
    let file = dir.join("twofold.db");
    let mut servers = vec![ServerProcess::start(
        &dir,
        "server",
        &file.display().to_string(),
        &["--workers", "2", "--trusted-proxy", "127.0.0.1"],
    )];
    let check = |what: &str| {
        // Opening the file replays the log the killed process left, as its restart will.
        twofold_reliability::sqlite::integrity_ok(&file).unwrap_or_else(|e| panic!("{what}: {e}"));
        let snapshot =
            twofold_reliability::sqlite::read_kv(&file).unwrap_or_else(|e| panic!("{what}: {e}"));
        invariants::check(&snapshot).assert_ok(what);
    };
    kill_under_load(&mut servers, 4, knob("TWOFOLD_CLUSTER_KILLS", 25), |kill| {
        check(&format!("SQLite after kill {kill}"))
    });
    check("SQLite at the end");
}
