//! Crash safety: each host program runs a scripted lifecycle through its driver
//! (`--driver --db FILE`) and is killed with SIGKILL at random moments, a request in flight,
//! then restarted on the same database. After every kill:
//!
//! - the database itself (read with SQLite, as the next start would) satisfies every
//!   stored-state rule (`invariants::check`): every account has its email index, every audit
//!   chain is contiguous and ends at its account's head, passkeys and their owner records come
//!   in pairs, 2FA is on exactly when there is a passkey and a code set, and replaying each
//!   audit log gives the stored passkeys, 2FA state and unused codes: no operation is half
//!   applied; `PRAGMA integrity_check` says ok;
//! - through the protocol, for every account in the database: `status` answers,
//!   `verify_audit_chain` finds the chain intact, 2FA on means a passkey, 2FA off means no
//!   codes;
//! - nothing acknowledged is lost: every account, passkey, 2FA state and code count the script
//!   saw answered is still there (only the account the request in flight touched may differ);
//! - and the script goes on working on the restarted host.
//!
//! `TWOFOLD_CRASH_KILLS` (default 25 per host) and `TWOFOLD_CRASH_SEED` (replays a run).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use twofold_reliability::driver::{Answer, DriverProcess};
use twofold_reliability::rng::Rng;
use twofold_reliability::world::PASSWORD;
use twofold_reliability::{hosts, invariants, sqlite};
use twofold_testkit::authenticator::{Authenticator, Tweaks};
use twofold_testkit::{ORIGIN, fast_config};

/// One account as the script knows it from answers it received.
struct User {
    email: String,
    id: String,
    /// One authenticator per passkey registered (an authenticator refuses to make a second
    /// credential for an account that lists its first in `excludeCredentials`).
    auths: Vec<Authenticator>,
    /// Passkey ids, as registered.
    passkeys: BTreeSet<String>,
    two_factor: bool,
    /// Unused codes known to the script (empty when unknown, e.g. after a crash mid-regenerate).
    codes: Vec<String>,
    /// Unused codes the host counts, when known.
    codes_remaining: Option<u64>,
    /// Consecutive failed attempts the script caused.
    failures: u32,
}

impl User {
    /// A new account: no passkey, 2FA off, an authenticator seeded with `seed`.
    fn new(email: String, id: String, seed: u64) -> User {
        User {
            email,
            id,
            auths: vec![Authenticator::new(seed)],
            passkeys: BTreeSet::new(),
            two_factor: false,
            codes: Vec::new(),
            codes_remaining: Some(0),
            failures: 0,
        }
    }
}

/// The request that was in flight when the host was killed.
#[derive(Debug)]
struct Killed {
    op: String,
    /// The account it concerned (its email), if any.
    email: Option<String>,
    /// Its answer, when the host wrote one before dying.
    answer: Option<Answer>,
    /// The account's audit events just before it was sent.
    events_before: Option<u64>,
}

struct Run {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    db: PathBuf,
    dir: PathBuf,
    host: Option<DriverProcess>,
    rng: Rng,
    users: Vec<User>,
    next_email: u32,
    /// Requests left before the next kill (`None`: no more kills).
    kill_in: Option<u32>,
    kills_left: u32,
    /// Observed time per op, to aim kills inside operations.
    latency: BTreeMap<String, Duration>,
    stats: Stats,
}

#[derive(Default, Debug)]
struct Stats {
    requests: u64,
    kills: u32,
    /// Kills after the answer was written.
    answered_before_death: u32,
    /// Kills after the operation's commit, before its answer.
    committed_unanswered: u32,
    /// Kills before the operation's commit (or of an operation that writes nothing).
    not_committed: u32,
    restarts: u32,
    checks: u32,
}

impl Run {
    fn start(&mut self) {
        let log = self.dir.join(format!("{}.log", self.name));
        let mut host = DriverProcess::spawn(&self.program, &self.args, &log);
        let config = serde_json::to_value(fast_config()).expect("JSON");
        host.request("configure", config).ok("configure");
        // The server's driver seeds its randomness with 0 at every start: move it on, so ids
        // and tokens do not repeat those of the run before the crash.
        let seed = self.rng.next_u64() >> 12;
        host.request("seed", json!({ "seed": seed })).ok("seed");
        self.host = Some(host);
    }

    fn host(&mut self) -> &mut DriverProcess {
        self.host.as_mut().expect("a running host")
    }

    /// Sends one request; the planned kill lands on it, at a random moment inside it.
    fn req(&mut self, op: &str, args: Value, email: Option<&str>) -> Result<Answer, Killed> {
        self.stats.requests += 1;
        let kill_now = match self.kill_in.as_mut() {
            Some(0) => true,
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        };
        let events_before = match (kill_now, email) {
            (true, Some(email)) => match self.users.iter().find(|u| u.email == email) {
                Some(u) => {
                    let args = json!({ "user_id": u.id });
                    let chain = self.host().request("verify_audit_chain", args);
                    chain.ok("verify_audit_chain")["events_checked"].as_u64()
                }
                None => None,
            },
            _ => None,
        };
        let started = Instant::now();
        let Some(id) = self.host().send_request(op, args) else {
            panic!("{}: the host stopped reading before {op}", self.name);
        };
        if kill_now {
            let typical = self
                .latency
                .get(op)
                .copied()
                .unwrap_or(Duration::from_millis(5));
            let micros = typical.as_micros() as u64 + 1;
            std::thread::sleep(Duration::from_micros(self.rng.below(micros)));
            let host = self.host();
            host.kill();
            let answer = match host.read_answer(id, op) {
                Answer::Gone => None,
                answer => Some(answer),
            };
            self.host = None;
            self.stats.kills += 1;
            self.stats.answered_before_death += u32::from(answer.is_some());
            self.kills_left -= 1;
            self.kill_in = (self.kills_left > 0).then(|| 5 + self.rng.below(25) as u32);
            return Err(Killed {
                op: op.to_owned(),
                email: email.map(str::to_owned),
                answer,
                events_before,
            });
        }
        let answer = self.host().read_answer(id, op);
        let took = started.elapsed();
        let avg = self.latency.entry(op.to_owned()).or_insert(took);
        *avg = (*avg * 3 + took) / 4;
        if let Answer::Gone = answer {
            panic!("{}: the host died on {op}; see its log", self.name);
        }
        Ok(answer)
    }

    fn user_mut(&mut self, email: &str) -> &mut User {
        self.users
            .iter_mut()
            .find(|u| u.email == email)
            .expect("a known user")
    }

    // -------------------------------------------------------------- the script's steps

    fn step(&mut self) -> Result<(), Killed> {
        if self.users.is_empty() || self.rng.chance(12) {
            return self.create_account();
        }
        let email = self.users[self.rng.below(self.users.len() as u64) as usize]
            .email
            .clone();
        let u = self.user_mut(&email);
        let (two_factor, has_passkey, failures) =
            (u.two_factor, !u.passkeys.is_empty(), u.failures);
        match self.rng.below(100) {
            0..=24 => self.sign_in(&email),
            25..=29 if failures < 3 => self.wrong_password(&email),
            30..=47 if self.user_mut(&email).passkeys.len() < 4 => self.register(&email),
            48..=53 if has_passkey => self.rename(&email),
            54..=62 if has_passkey => self.remove(&email),
            63..=68 if !two_factor && has_passkey => self.enable(&email),
            69..=73 if two_factor => self.disable(&email),
            74..=79 if two_factor => self.regenerate(&email),
            _ => self.read(&email),
        }
    }

    fn create_account(&mut self) -> Result<(), Killed> {
        self.next_email += 1;
        let email = format!("user{}@example.com", self.next_email);
        let args = json!({ "email": email, "password": PASSWORD });
        let answer = self.req("create_account", args, Some(&email))?;
        let id = answer.ok("create_account")["user_id"]
            .as_str()
            .expect("a user id")
            .to_owned();
        let seed = self.rng.next_u64();
        self.users.push(User::new(email, id, seed));
        Ok(())
    }

    fn sign_in(&mut self, email: &str) -> Result<(), Killed> {
        let args = json!({ "email": email, "password": PASSWORD, "remember_me": true });
        let answer = self.req("sign_in", args, Some(email))?.ok("sign_in");
        let u = self.user_mut(email);
        if !u.two_factor {
            assert_eq!(answer["status"], "signed_in", "{email}: 2FA off: {answer}");
            u.failures = 0;
            return Ok(());
        }
        assert_eq!(
            answer["status"], "second_factor_required",
            "{email}: {answer}"
        );
        let token = answer["pending_token"]
            .as_str()
            .expect("a token")
            .to_owned();
        let choice = self.rng.below(10);
        if choice == 0 {
            let args = json!({ "pending_token": token, "code": "2222-2222-2222" });
            let refused = self.req("sign_in_backup_code", args, Some(email))?;
            assert_eq!(refused.code(), Some("invalid_backup_code"), "{email}");
            self.user_mut(email).failures += 1;
        }
        let u = self.user_mut(email);
        if choice < 4 && !u.codes.is_empty() {
            let code = u.codes.remove(0);
            let args = json!({ "pending_token": token, "code": code });
            let signed = self
                .req("sign_in_backup_code", args, Some(email))?
                .ok("backup code");
            let u = self.user_mut(email);
            u.codes_remaining = u.codes_remaining.map(|n| n - 1);
            assert_eq!(
                signed["backup_codes_remaining"].as_u64(),
                u.codes_remaining,
                "{email}: codes left"
            );
            u.failures = 0;
            return Ok(());
        }
        let assertion = u
            .auths
            .iter_mut()
            .find_map(|a| {
                a.authenticate(&answer["options"], ORIGIN, &Tweaks::default())
                    .ok()
            })
            .expect("an authenticator holds an allowed credential");
        let args = json!({ "pending_token": token, "credential": assertion });
        self.req("sign_in_passkey", args, Some(email))?
            .ok("passkey");
        self.user_mut(email).failures = 0;
        Ok(())
    }

    fn wrong_password(&mut self, email: &str) -> Result<(), Killed> {
        let args = json!({ "email": email, "password": "not the password" });
        let refused = self.req("sign_in", args, Some(email))?;
        assert_eq!(refused.code(), Some("invalid_credentials"), "{email}");
        self.user_mut(email).failures += 1;
        Ok(())
    }

    fn register(&mut self, email: &str) -> Result<(), Killed> {
        let id = self.user_mut(email).id.clone();
        let name = format!("Key {}", self.rng.below(1000));
        let args = json!({ "user_id": id, "name": name, "password": PASSWORD });
        let options = self.req("start_passkey_registration", args, Some(email))?;
        let options = options.ok("start registration")["options"].clone();
        let seed = self.rng.next_u64();
        let mut auth = Authenticator::new(seed);
        let credential = auth
            .register(&options, ORIGIN, &Tweaks::default())
            .expect("the authenticator registers");
        self.user_mut(email).auths.push(auth);
        let args = json!({ "user_id": id, "credential": credential });
        let done = self.req("finish_passkey_registration", args, Some(email))?;
        let done = done.ok("finish registration");
        let u = self.user_mut(email);
        let first = u.passkeys.is_empty() && !u.two_factor;
        u.passkeys
            .insert(done["passkey"]["id"].as_str().expect("an id").to_owned());
        if first {
            u.two_factor = true;
            u.codes = serde_json::from_value(done["backup_codes"].clone()).expect("codes");
            u.codes_remaining = Some(u.codes.len() as u64);
        }
        assert_eq!(done["two_factor_enabled"], u.two_factor, "{email}: {done}");
        Ok(())
    }

    fn pick_passkey(&mut self, email: &str) -> String {
        let keys: Vec<String> = self.user_mut(email).passkeys.iter().cloned().collect();
        keys[self.rng.below(keys.len() as u64) as usize].clone()
    }

    fn rename(&mut self, email: &str) -> Result<(), Killed> {
        let passkey = self.pick_passkey(email);
        let id = self.user_mut(email).id.clone();
        let args = json!({ "user_id": id, "passkey_id": passkey, "name": "Renamed" });
        self.req("rename_passkey", args, Some(email))?.ok("rename");
        Ok(())
    }

    fn remove(&mut self, email: &str) -> Result<(), Killed> {
        let passkey = self.pick_passkey(email);
        let id = self.user_mut(email).id.clone();
        let args = json!({ "user_id": id, "passkey_id": passkey, "password": PASSWORD });
        let status = self.req("remove_passkey", args, Some(email))?.ok("remove");
        let u = self.user_mut(email);
        u.passkeys.remove(&passkey);
        if u.passkeys.is_empty() {
            u.two_factor = false;
            u.codes.clear();
            u.codes_remaining = Some(0);
        }
        assert_eq!(
            status["two_factor_enabled"], u.two_factor,
            "{email}: {status}"
        );
        Ok(())
    }

    /// An operation that needs only the user and the password; its answer.
    fn confirmed(&mut self, email: &str, op: &str) -> Result<Value, Killed> {
        let id = self.user_mut(email).id.clone();
        let args = json!({ "user_id": id, "password": PASSWORD });
        Ok(self.req(op, args, Some(email))?.ok(op))
    }

    /// Keeps the code set an answer showed.
    fn new_codes(&mut self, email: &str, answer: &Value) {
        let u = self.user_mut(email);
        u.codes = serde_json::from_value(answer["codes"].clone()).expect("codes");
        u.codes_remaining = Some(u.codes.len() as u64);
    }

    fn enable(&mut self, email: &str) -> Result<(), Killed> {
        let answer = self.confirmed(email, "enable_two_factor")?;
        self.user_mut(email).two_factor = true;
        self.new_codes(email, &answer);
        Ok(())
    }

    fn disable(&mut self, email: &str) -> Result<(), Killed> {
        self.confirmed(email, "disable_two_factor")?;
        let u = self.user_mut(email);
        u.two_factor = false;
        u.codes.clear();
        u.codes_remaining = Some(0);
        Ok(())
    }

    fn regenerate(&mut self, email: &str) -> Result<(), Killed> {
        let answer = self.confirmed(email, "regenerate_backup_codes")?;
        self.new_codes(email, &answer);
        Ok(())
    }

    fn read(&mut self, email: &str) -> Result<(), Killed> {
        let id = self.user_mut(email).id.clone();
        let op = [
            "status",
            "audit_events",
            "verify_audit_chain",
            "list_passkeys",
        ][self.rng.below(4) as usize];
        let answer = self.req(op, json!({ "user_id": id }), Some(email))?.ok(op);
        if op == "verify_audit_chain" {
            assert_eq!(answer["intact"], true, "{email}: {answer}");
        }
        Ok(())
    }

    // -------------------------------------------------------------- after a kill

    /// The database as the killed host left it satisfies every rule.
    fn check_database(&mut self, when: &str) -> BTreeSet<String> {
        sqlite::integrity_ok(&self.db).unwrap_or_else(|e| panic!("{}: {when}: {e}", self.name));
        let snapshot = sqlite::read_kv(&self.db).unwrap_or_else(|e| panic!("{when}: {e}"));
        let report = invariants::check(&snapshot);
        report.assert_ok(&format!("{}: {when}", self.name));
        self.stats.checks += 1;
        report.users.into_iter().collect()
    }

    /// Through the protocol: every stored account answers `status` sensibly and its chain is
    /// intact.
    fn check_through_protocol(&mut self, stored: &BTreeSet<String>, when: &str) {
        for id in stored {
            let args = json!({ "user_id": id });
            let status = self.host().request("status", args.clone()).ok("status");
            let on = status["two_factor_enabled"] == true;
            let passkeys = status["passkeys"].as_array().map_or(0, Vec::len);
            let codes = status["backup_codes_remaining"]
                .as_u64()
                .unwrap_or(u64::MAX);
            assert!(
                !on || passkeys > 0,
                "{when}: {id}: 2FA on without a passkey"
            );
            assert!(on || codes == 0, "{when}: {id}: codes left with 2FA off");
            let chain = self.host().request("verify_audit_chain", args).ok("chain");
            assert_eq!(chain["intact"], true, "{when}: {id}: {chain}");
        }
    }

    /// Nothing acknowledged is lost; the account the request in flight touched is read back.
    fn check_durability(&mut self, killed: &Killed, stored: &BTreeSet<String>, when: &str) {
        let answered = killed.answer.is_some();
        if killed.op == "create_account" {
            let email = killed.email.clone().expect("an email");
            let args = json!({ "email": email, "password": PASSWORD });
            match self.host().request("sign_in", args) {
                Answer::Ok(signed) => {
                    if !answered {
                        self.stats.committed_unanswered += 1;
                    }
                    let id = signed["user_id"].as_str().expect("an id").to_owned();
                    if let Some(Answer::Ok(created)) = &killed.answer {
                        assert_eq!(created["user_id"], id, "{when}");
                    }
                    let seed = self.rng.next_u64();
                    self.users.push(User::new(email, id, seed));
                }
                refused => {
                    self.stats.not_committed += 1;
                    assert_eq!(refused.code(), Some("invalid_credentials"), "{when}");
                    assert!(
                        !matches!(killed.answer, Some(Answer::Ok(_))),
                        "{when}: an acknowledged account is gone"
                    );
                }
            }
        }
        let touched = killed.email.clone();
        let ids: Vec<(String, String)> = self
            .users
            .iter()
            .map(|u| (u.email.clone(), u.id.clone()))
            .collect();
        for (email, id) in ids {
            assert!(
                stored.contains(&id) || killed.op == "create_account",
                "{when}: {email} lost"
            );
            let status = self
                .host()
                .request("status", json!({ "user_id": id }))
                .ok("status");
            let stored_keys: BTreeSet<String> = status["passkeys"]
                .as_array()
                .expect("passkeys")
                .iter()
                .map(|p| p["id"].as_str().unwrap_or_default().to_owned())
                .collect();
            let on = status["two_factor_enabled"] == true;
            let left = status["backup_codes_remaining"].as_u64();
            if let (true, false, Some(before)) = (
                touched.as_deref() == Some(email.as_str()),
                answered,
                killed.events_before,
            ) {
                let chain = self
                    .host()
                    .request("verify_audit_chain", json!({ "user_id": id }));
                let after = chain.ok("verify_audit_chain")["events_checked"].as_u64();
                if after > Some(before) {
                    self.stats.committed_unanswered += 1;
                } else {
                    self.stats.not_committed += 1;
                }
            }
            let u = self.user_mut(&email);
            if touched.as_deref() == Some(email.as_str()) {
                // The request in flight may or may not have applied: read back what did. Its
                // codes are unknown now (a regenerated set looks like the old one from here).
                u.codes.clear();
                u.passkeys = stored_keys;
                u.two_factor = on;
                u.codes_remaining = left;
                // A refused attempt may have counted: stay well below the lock.
                u.failures = 3;
            } else {
                assert_eq!(stored_keys, u.passkeys, "{when}: {email}'s passkeys");
                assert_eq!(on, u.two_factor, "{when}: {email}'s 2FA");
                assert_eq!(left, u.codes_remaining, "{when}: {email}'s unused codes");
            }
        }
    }
}

fn crash_run(name: &'static str, program: PathBuf, dir: &Path, extra: &[&str]) {
    let (rng, seed) = Rng::from_env("TWOFOLD_CRASH_SEED");
    let kills: u32 = std::env::var("TWOFOLD_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let db = dir.join(format!("{name}.db"));
    let mut args = vec![
        "--driver".to_owned(),
        "--db".to_owned(),
        db.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let mut run = Run {
        name,
        program,
        args,
        db,
        dir: dir.to_owned(),
        host: None,
        rng,
        users: Vec::new(),
        next_email: 0,
        kill_in: None,
        kills_left: kills,
        latency: BTreeMap::new(),
        stats: Stats::default(),
    };
    run.kill_in = (kills > 0).then(|| 8 + run.rng.below(20) as u32);
    let started = Instant::now();
    run.start();
    // A few steps after the last kill show the restarted host working.
    let mut steps_after = 15;
    while steps_after > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(240 + 2 * u64::from(kills)),
            "{name}: the run took too long (seed {seed})"
        );
        if run.kill_in.is_none() {
            steps_after -= 1;
        }
        if let Err(killed) = run.step() {
            let when = format!(
                "after kill {} during {} (answered before death: {}; seed {seed})",
                run.stats.kills,
                killed.op,
                killed.answer.is_some()
            );
            let stored = run.check_database(&when);
            run.start();
            run.stats.restarts += 1;
            run.check_through_protocol(&stored, &when);
            run.check_durability(&killed, &stored, &when);
        }
    }
    let host = run.host.take().expect("a running host");
    assert!(host.close(), "{name}: exits cleanly when its input ends");
    let stored = run.check_database("at the end");
    assert_eq!(stored.len(), run.users.len(), "{name}: accounts at the end");
    eprintln!(
        "{name}: {} requests, {} SIGKILLs (before the commit {}, after the commit before the \
         answer {}, after the answer {}), {} restarts, {} database checks, {} accounts, {:.1} s \
         (TWOFOLD_CRASH_SEED={seed})",
        run.stats.requests,
        run.stats.kills,
        run.stats.not_committed,
        run.stats.committed_unanswered,
        run.stats.answered_before_death,
        run.stats.restarts,
        run.stats.checks,
        run.users.len(),
        started.elapsed().as_secs_f64()
    );
}

/// A crash run of one host in a scratch directory, unless the host is not built.
fn crash_host(
    name: &'static str,
    needs: Vec<(&str, PathBuf, &str)>,
    program: PathBuf,
    extra: &[&str],
) {
    if !hosts::available(&format!("crash {name}"), &needs) {
        return;
    }
    let dir = hosts::scratch_dir(&format!("crash-{name}"));
    crash_run(name, program, &dir, extra);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigkill_the_c_host_at_random_points() {
    crash_host(
        "c-sqlite",
        hosts::c_host_needs(),
        hosts::c_host_binary(),
        &[],
    );
}

#[test]
fn sigkill_the_server_at_random_points() {
    let component = hosts::component_path().display().to_string();
    let extra = ["--component", component.as_str()];
    crash_host(
        "wasmtime-server",
        hosts::server_needs(),
        hosts::server_binary(),
        &extra,
    );
}

/// Regression: a driver restarted on the database it kept must go on working. `twofold-server
/// --driver` seeds its randomness with 0 at every start, so after a restart it draws the same
/// user ids, tokens and challenges as the run before; the first new account gets the id of the
/// first old one, and the engine (which keeps the id it drew across its conflict retries)
/// answers `conflict`. (The crash test sends `seed` after each restart to stay clear of this.)
#[test]
fn server_driver_restarted_on_its_database_creates_accounts() {
    if !hosts::available("restart the server driver", &hosts::server_needs()) {
        return;
    }
    let dir = hosts::scratch_dir("restart-server");
    let db = dir.join("twofold.db").display().to_string();
    let component = hosts::component_path().display().to_string();
    let args: Vec<String> = ["--driver", "--db", &db, "--component", &component]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for email in ["first@example.com", "second@example.com"] {
        let mut host = DriverProcess::spawn(&hosts::server_binary(), &args, &dir.join("log"));
        let config = serde_json::to_value(fast_config()).expect("JSON");
        host.request("configure", config).ok("configure");
        let created = host.request(
            "create_account",
            json!({ "email": email, "password": PASSWORD }),
        );
        assert!(matches!(created, Answer::Ok(_)), "{email}: {created:?}");
        assert!(host.close());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
