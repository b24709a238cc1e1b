//! D2 over HTTP: concurrent clients of `twofold-server` (loopback only, bounded in count and
//! time) racing for one backup code, one pending sign-in and one registration response get
//! exactly one success each; and a load run of complete two-step sign-ins with zero errors.
//!
//! The server runs as its own process with its real SQLite database and the SPEC's argon2
//! costs; the testkit's software authenticator plays the browser (origin
//! `http://localhost:PORT`, RP ID `localhost`). Each race starts its clients connected and
//! releases them at once from a barrier.
//!
//! Knobs for longer runs: `TWOFOLD_RACE_ROUNDS` (default 3), `TWOFOLD_RACE_CLIENTS` (8),
//! `TWOFOLD_LOAD_SIGNINS` (200), `TWOFOLD_LOAD_CONNECTIONS` (16).

use std::sync::{Barrier, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use twofold_reliability::hosts;
use twofold_reliability::http::{Client, Response};
use twofold_reliability::server::Server;
use twofold_reliability::world::PASSWORD;
use twofold_testkit::authenticator::{Authenticator, Tweaks};

/// The races and the load run measure the server, so they take turns.
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

fn server(name: &str) -> Option<Server> {
    if !hosts::available(name, &hosts::server_needs()) {
        return None;
    }
    Some(Server::start(&hosts::scratch_dir(name), 8))
}

/// A server for one race test, with the rounds and clients per round asked for.
fn race_server(name: &str) -> Option<(Server, usize, usize)> {
    let rounds = knob("TWOFOLD_RACE_ROUNDS", 3);
    Some((server(name)?, rounds, knob("TWOFOLD_RACE_CLIENTS", 8)))
}

fn ok(client: &mut Client, method: &str, path: &str, body: Option<Value>) -> Value {
    let response = client
        .send(method, path, body.as_ref())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    assert_eq!(
        response.status,
        200,
        "{method} {path}: {}",
        String::from_utf8_lossy(&response.body)
    );
    response.json()
}

/// Signs up `email` (the client is then signed in) and registers a passkey on `auth`; answers
/// the backup codes.
fn user_with_passkey(
    s: &Server,
    client: &mut Client,
    email: &str,
    auth: &mut Authenticator,
) -> Vec<String> {
    ok(
        client,
        "POST",
        "/api/signup",
        Some(json!({ "email": email, "password": PASSWORD })),
    );
    let options = ok(
        client,
        "POST",
        "/api/passkeys/registration/start",
        Some(json!({ "name": "Laptop", "password": PASSWORD })),
    )["options"]
        .clone();
    let credential = auth
        .register(&options, &s.origin, &Tweaks::default())
        .expect("the authenticator registers");
    let registered = ok(
        client,
        "POST",
        "/api/passkeys/registration/finish",
        Some(json!({ "credential": credential })),
    );
    serde_json::from_value(registered["backup_codes"].clone()).expect("the first passkey's codes")
}

/// Step one: a new pending sign-in on `client`; answers the request options.
fn pending(client: &mut Client, email: &str) -> Value {
    client.cookie = None;
    let answer = ok(
        client,
        "POST",
        "/api/signin",
        Some(json!({ "email": email, "password": PASSWORD, "remember_me": false })),
    );
    assert_eq!(answer["status"], "second_factor_required", "{answer}");
    answer["options"].clone()
}

/// A complete sign-in with the passkey (resets the account's failure count).
fn sign_in(s: &Server, client: &mut Client, email: &str, auth: &mut Authenticator) {
    let options = pending(client, email);
    let assertion = auth
        .authenticate(&options, &s.origin, &Tweaks::default())
        .expect("the authenticator signs");
    ok(
        client,
        "POST",
        "/api/signin/passkey",
        Some(json!({ "credential": assertion })),
    );
}

/// Opens each client's connection with an answered request, so that a race starts with every
/// connection open and served.
fn warm_up(clients: &mut [Client]) {
    for client in clients.iter_mut() {
        let r = client
            .send("GET", "/api/me", None)
            .expect("a warm-up request");
        assert!(r.status == 200 || r.status == 401, "warm-up: {}", r.status);
    }
}

/// Clients on `n` devices of their own (distinct client addresses, named in `round`): the
/// losers of a race then each count one failure for their own client, as on a real site, and
/// the throttling (S6) stays out of a test of atomicity.
fn devices(s: &Server, round: usize, n: usize) -> Vec<Client> {
    (0..n)
        .map(|i| {
            let mut c = s.client();
            c.forwarded_for = Some(format!("10.0.{round}.{}", i + 1));
            c
        })
        .collect()
}

/// Sends one request from each client at the same moment; answers the responses in client
/// order.
fn race(clients: &mut [Client], path: &str, bodies: Vec<Value>) -> Vec<Response> {
    warm_up(clients);
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
            .map(|h| h.join().expect("a client thread"))
            .collect()
    })
}

/// Exactly one 200; every other answer is one of `losers` (error codes).
fn exactly_one_success(what: &str, responses: &[Response], losers: &[&str]) {
    let wins = responses.iter().filter(|r| r.status == 200).count();
    let summary: Vec<String> = responses
        .iter()
        .map(|r| format!("{} {}", r.status, r.code()))
        .collect();
    assert_eq!(wins, 1, "{what}: {summary:?}");
    for r in responses.iter().filter(|r| r.status != 200) {
        assert!(
            losers.contains(&r.code().as_str()),
            "{what}: a loser answered {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
}

#[test]
fn racing_clients_use_one_backup_code_once() {
    let _turn = one_at_a_time();
    let Some((s, rounds, n)) = race_server("race-backup-code") else {
        return;
    };
    let mut owner = s.client();
    let mut auth = Authenticator::new(1);
    let codes = user_with_passkey(&s, &mut owner, "race-code@example.com", &mut auth);
    let mut remaining = codes.len();
    for round in 0..rounds {
        let mut clients = devices(&s, round, n);
        for client in clients.iter_mut() {
            pending(client, "race-code@example.com");
        }
        let code = &codes[round % codes.len()];
        let responses = race(
            &mut clients,
            "/api/signin/backup-code",
            vec![json!({ "code": code }); n],
        );
        exactly_one_success(
            &format!("round {round}: {n} clients, one backup code"),
            &responses,
            &["invalid_backup_code"],
        );
        remaining -= 1;
        let winner = responses
            .iter()
            .find(|r| r.status == 200)
            .expect("a winner");
        assert_eq!(winner.json()["backup_codes_remaining"], remaining);
        // The losers' failures count for the account too (S6); a success resets that count.
        sign_in(&s, &mut owner, "race-code@example.com", &mut auth);
    }
    let me = ok(&mut owner, "GET", "/api/me", None);
    assert_eq!(
        me["two_factor"]["backup_codes_remaining"], remaining,
        "{me}"
    );
    eprintln!("backup code: {rounds} races of {n} clients, one winner each");
    s.finish();
}

#[test]
fn racing_clients_finish_one_pending_sign_in_once() {
    let _turn = one_at_a_time();
    let Some((s, rounds, n)) = race_server("race-pending") else {
        return;
    };
    let mut owner = s.client();
    let mut auth = Authenticator::new(2);
    user_with_passkey(&s, &mut owner, "race-pending@example.com", &mut auth);
    for round in 0..rounds {
        let mut first = s.client();
        let options = pending(&mut first, "race-pending@example.com");
        let cookie = first.cookie.clone().expect("a pending session");
        let mut clients = devices(&s, round, n);
        for c in clients.iter_mut() {
            c.cookie = Some(cookie.clone());
        }
        // Each client signs the same challenge: distinct, valid assertions (counters 1..n).
        let bodies = (0..n)
            .map(|_| {
                let assertion = auth
                    .authenticate(&options, &s.origin, &Tweaks::default())
                    .expect("the authenticator signs");
                json!({ "credential": assertion })
            })
            .collect();
        let responses = race(&mut clients, "/api/signin/passkey", bodies);
        exactly_one_success(
            &format!("round {round}: {n} clients, one pending sign-in"),
            &responses,
            &["expired", "invalid_passkey"],
        );
        let winner = clients
            .iter_mut()
            .zip(&responses)
            .find(|(_, r)| r.status == 200)
            .map(|(c, _)| c)
            .expect("a winner");
        ok(winner, "GET", "/api/me", None);
        // Leave the account unlocked for the next round.
        sign_in(&s, &mut owner, "race-pending@example.com", &mut auth);
    }
    eprintln!("pending sign-in: {rounds} races of {n} clients, one winner each");
    s.finish();
}

#[test]
fn racing_clients_register_one_response_once() {
    let _turn = one_at_a_time();
    let Some((s, rounds, n)) = race_server("race-registration") else {
        return;
    };
    let mut owner = s.client();
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
        let credential = Authenticator::new(100 + round as u64)
            .register(&options, &s.origin, &Tweaks::default())
            .expect("the authenticator registers");
        let mut clients = devices(&s, round, n);
        for c in clients.iter_mut() {
            c.cookie = Some(cookie.clone());
        }
        let responses = race(
            &mut clients,
            "/api/passkeys/registration/finish",
            vec![json!({ "credential": credential }); n],
        );
        exactly_one_success(
            &format!("round {round}: {n} clients, one registration response"),
            &responses,
            &["expired", "already_exists"],
        );
        let listed = ok(&mut owner, "GET", "/api/passkeys", None);
        let count = listed["passkeys"].as_array().map_or(0, Vec::len);
        assert_eq!(count, round + 1, "one passkey per round: {listed}");
        let codes = responses
            .iter()
            .filter(|r| r.json()["backup_codes"].is_array())
            .count();
        assert_eq!(
            codes,
            usize::from(round == 0),
            "codes come with the first passkey only"
        );
    }
    eprintln!("registration: {rounds} races of {n} clients, one winner each");
    s.finish();
}

#[test]
fn load_two_step_sign_ins_over_many_connections() {
    let _turn = one_at_a_time();
    let Some(s) = server("load") else {
        return;
    };
    let total = knob("TWOFOLD_LOAD_SIGNINS", 200);
    let connections = knob("TWOFOLD_LOAD_CONNECTIONS", 16);
    let deadline = Duration::from_secs(knob("TWOFOLD_LOAD_DEADLINE_SECS", 240) as u64);
    // One user (2FA on, one passkey) per connection.
    let mut users: Vec<(String, Authenticator)> = (0..connections)
        .map(|i| {
            (
                format!("load{i}@example.com"),
                Authenticator::new(1000 + i as u64),
            )
        })
        .collect();
    std::thread::scope(|scope| {
        for (email, auth) in users.iter_mut() {
            let s = &s;
            scope.spawn(move || {
                let mut c = s.client();
                user_with_passkey(s, &mut c, email, auth);
            });
        }
    });

    let mut clients: Vec<Client> = (0..connections).map(|_| s.client()).collect();
    warm_up(&mut clients);
    let started = Instant::now();
    let latencies = Mutex::new(Vec::with_capacity(total));
    let errors = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for (i, ((email, auth), client)) in users.iter_mut().zip(clients.iter_mut()).enumerate() {
            let share = total / connections + usize::from(i < total % connections);
            let (s, latencies, errors) = (&s, &latencies, &errors);
            scope.spawn(move || {
                for _ in 0..share {
                    if started.elapsed() > deadline {
                        errors
                            .lock()
                            .expect("lock")
                            .push("deadline passed".to_owned());
                        return;
                    }
                    let t = Instant::now();
                    client.cookie = None;
                    let step1 = client.send(
                        "POST",
                        "/api/signin",
                        Some(&json!({ "email": email, "password": PASSWORD })),
                    );
                    let options = match step1 {
                        Ok(r) if r.status == 200 => r.json()["options"].clone(),
                        other => {
                            errors
                                .lock()
                                .expect("lock")
                                .push(format!("step one: {other:?}"));
                            continue;
                        }
                    };
                    let assertion = auth
                        .authenticate(&options, &s.origin, &Tweaks::default())
                        .expect("the authenticator signs");
                    match client.send(
                        "POST",
                        "/api/signin/passkey",
                        Some(&json!({ "credential": assertion })),
                    ) {
                        Ok(r) if r.status == 200 => {
                            latencies.lock().expect("lock").push(t.elapsed());
                        }
                        other => errors
                            .lock()
                            .expect("lock")
                            .push(format!("step two: {other:?}")),
                    }
                }
            });
        }
    });
    let took = started.elapsed();
    let errors = errors.into_inner().expect("lock");
    let mut latencies = latencies.into_inner().expect("lock");
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() * p).div_ceil(100).max(1) - 1];
    eprintln!(
        "load: {} two-step sign-ins over {connections} connections in {:.1} s ({:.1}/s), \
         {} errors; per sign-in p50 {} ms, p99 {} ms, max {} ms",
        latencies.len(),
        took.as_secs_f64(),
        latencies.len() as f64 / took.as_secs_f64(),
        errors.len(),
        pct(50).as_millis(),
        pct(99).as_millis(),
        latencies.last().map_or(0, Duration::as_millis),
    );
    assert!(errors.is_empty(), "errors under load: {errors:?}");
    assert_eq!(latencies.len(), total);
    s.finish();
}

/// Regression: browsers keep several connections open. Eight connections opened together to a
/// fresh server, each then sending one request: every request must be answered. With tiny_http
/// 0.12 only four were, until other connections closed (its thread pool counted a thread
/// already woken for one connection as idle); the server now serves each connection as a task
/// (hyper on tokio), and this test keeps it so.
#[test]
fn new_connections_arriving_together_are_all_served() {
    let _turn = one_at_a_time();
    for trial in 0..5 {
        let Some(s) = server(&format!("connection-burst-{trial}")) else {
            return;
        };
        let mut clients: Vec<Client> = (0..8).map(|_| s.client()).collect();
        for client in clients.iter_mut() {
            client.connect().expect("connected");
        }
        let barrier = Barrier::new(clients.len());
        let answered: Vec<bool> = std::thread::scope(|scope| {
            let handles: Vec<_> = clients
                .iter_mut()
                .map(|client| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        client.send("GET", "/api/me", None).is_ok()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a thread"))
                .collect()
        });
        assert!(
            answered.iter().all(|a| *a),
            "trial {trial}: answered {answered:?} (unanswered within {:?})",
            twofold_reliability::http::REQUEST_TIMEOUT
        );
        s.finish();
    }
}
