//! Driver mode: protocol lines in, protocol lines out. The answers must have exactly the
//! shape the in-process core's `twofold_core::api::call` gives (the conformance runner diffs
//! the two), the test-only ops must drive the component's WASI clock and randomness, and bad
//! lines must be typed errors that leave the driver running.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use std::sync::Arc;
use twofold_core::api::{self, Op};
use twofold_server::driver::{self, Driver, RESET_CLOCK_MS};

use twofold_server::store::sqlite::SqliteStorage;
use twofold_testkit::authenticator::{Authenticator, Tweaks};
use twofold_testkit::{ORIGIN, TestHost};

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery staple";

/// The configuration both sides run with, as `configure` takes it.
fn config_json() -> Value {
    json!({
        "rp_id": "localhost",
        "rp_name": "twofold test",
        "origins": [ORIGIN],
        "password_hash": {"m_kib": 64, "t": 1, "p": 1},
        "backup_code_hash": {"m_kib": 32, "t": 1, "p": 1},
    })
}

fn driver() -> Driver {
    Driver::new(
        common::loader().clone(),
        Arc::new(SqliteStorage::open_in_memory().expect("in-memory SQLite")),
        driver::default_config(),
    )
}

/// The driver's answer to one line, parsed.
fn answer(d: &mut Driver, line: &str) -> Value {
    let text = d.answer(line.as_bytes());
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Something that answers protocol requests: `Ok(ok)` or `Err(error)`.
trait Side {
    fn call(&mut self, op: &str, args: Value) -> Result<Value, Value>;
}

struct DriverSide {
    driver: Driver,
    next_id: u64,
}

impl Side for DriverSide {
    fn call(&mut self, op: &str, args: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let line = json!({
            "id": self.next_id,
            "op": op,
            "args": args,
            "context": {"ip": "198.51.100.4", "user_agent": "conformance"},
        });
        let answer = answer(&mut self.driver, &line.to_string());
        assert_eq!(answer["id"], self.next_id, "{answer}");
        match (answer.get("ok"), answer.get("error")) {
            (Some(ok), None) => Ok(ok.clone()),
            (None, Some(error)) => Err(error.clone()),
            _ => panic!("neither ok nor error: {answer}"),
        }
    }
}

/// The in-process core through its JSON boundary, with the testkit's deterministic host.
struct CoreSide {
    engine: twofold_core::Engine,
    host: TestHost,
}

impl Side for CoreSide {
    fn call(&mut self, op: &str, args: Value) -> Result<Value, Value> {
        match op {
            "advance_clock" => {
                let ms = args["ms"].as_u64().expect("ms");
                self.host.clock.set_ms(self.host.clock.now_ms() + ms);
                return Ok(json!({}));
            }
            "configure" => {
                let mut config = api::config_from_json(args.to_string().as_bytes())
                    .expect("a valid configuration");
                // Driver mode's default audit key, which `configure` keeps when not given.
                if config.audit_keys.is_empty() {
                    config.audit_keys = vec![twofold_testkit::test_audit_key()];
                }
                self.engine = twofold_core::Engine::new(config).expect("an engine");
                return Ok(json!({}));
            }
            _ => {}
        }
        let ctx = twofold_core::Context::new("198.51.100.4", "conformance");
        let op = Op::parse(op).expect("a known op");
        match api::call(
            &self.engine,
            &self.host,
            &ctx,
            op,
            args.to_string().as_bytes(),
        ) {
            Ok(text) => Ok(serde_json::from_str(&text).expect("JSON")),
            Err(e) => Err(api::error_json(&e)),
        }
    }
}

/// The lifecycle, recording every answer.
fn scenario(side: &mut dyn Side) -> Vec<(String, Result<Value, Value>)> {
    let mut log = Vec::new();
    let mut authenticator = Authenticator::new(11);
    let mut run = |side: &mut dyn Side, op: &str, args: Value| {
        let answer = side.call(op, args);
        log.push((op.to_owned(), answer.clone()));
        answer
    };
    let ok = |answer: Result<Value, Value>| answer.unwrap_or_else(|e| panic!("error {e}"));

    ok(run(side, "configure", config_json()));
    let user = ok(run(
        side,
        "create_account",
        json!({"email": EMAIL, "password": PASSWORD}),
    ))["user_id"]
        .clone();
    ok(run(
        side,
        "sign_in",
        json!({"email": EMAIL, "password": PASSWORD, "remember_me": true}),
    ));
    let _ = run(
        side,
        "sign_in",
        json!({"email": EMAIL, "password": "wrong password", "remember_me": true}),
    );
    ok(run(side, "list_passkeys", json!({"user_id": user})));
    let started = ok(run(
        side,
        "start_passkey_registration",
        json!({"user_id": user, "name": "Laptop", "password": PASSWORD}),
    ));
    let credential = authenticator
        .register(&started["options"], ORIGIN, &Tweaks::default())
        .expect("registration");
    let registered = ok(run(
        side,
        "finish_passkey_registration",
        json!({"user_id": user, "credential": credential}),
    ));
    let codes = registered["backup_codes"].clone();
    let passkey_id = registered["passkey"]["id"].clone();
    ok(run(side, "status", json!({"user_id": user})));

    let step_one = ok(run(
        side,
        "sign_in",
        json!({"email": EMAIL, "password": PASSWORD, "remember_me": true}),
    ));
    let assertion = authenticator
        .authenticate(&step_one["options"], ORIGIN, &Tweaks::default())
        .expect("assertion");
    // The credential as JSON text this time (the protocol takes both forms).
    ok(run(
        side,
        "sign_in_passkey",
        json!({"pending_token": step_one["pending_token"], "credential": assertion.to_string()}),
    ));
    ok(run(side, "list_passkeys", json!({"user_id": user})));

    let step_one = ok(run(
        side,
        "sign_in",
        json!({"email": EMAIL, "password": PASSWORD, "remember_me": false}),
    ));
    ok(run(
        side,
        "sign_in_backup_code",
        json!({"pending_token": step_one["pending_token"], "code": codes[0]}),
    ));
    let step_one = ok(run(
        side,
        "sign_in",
        json!({"email": EMAIL, "password": PASSWORD, "remember_me": false}),
    ));
    let _ = run(
        side,
        "sign_in_backup_code",
        json!({"pending_token": step_one["pending_token"], "code": codes[0]}),
    );
    ok(run(side, "advance_clock", json!({"ms": 301_000})));
    let _ = run(
        side,
        "sign_in_backup_code",
        json!({"pending_token": step_one["pending_token"], "code": codes[1]}),
    );

    ok(run(
        side,
        "rename_passkey",
        json!({"user_id": user, "passkey_id": passkey_id, "name": "Work laptop"}),
    ));
    let _ = run(
        side,
        "enable_two_factor",
        json!({"user_id": user, "password": PASSWORD}),
    );
    ok(run(
        side,
        "regenerate_backup_codes",
        json!({"user_id": user, "password": PASSWORD}),
    ));
    ok(run(
        side,
        "disable_two_factor",
        json!({"user_id": user, "password": PASSWORD}),
    ));
    ok(run(
        side,
        "enable_two_factor",
        json!({"user_id": user, "password": PASSWORD}),
    ));
    ok(run(
        side,
        "remove_passkey",
        json!({"user_id": user, "passkey_id": passkey_id, "password": PASSWORD}),
    ));
    ok(run(
        side,
        "audit_events",
        json!({"user_id": user, "limit": 5}),
    ));
    ok(run(
        side,
        "audit_events",
        json!({"user_id": user, "before": 3, "limit": 200}),
    ));
    ok(run(side, "verify_audit_chain", json!({"user_id": user})));
    let _ = run(side, "status", json!({"user_id": "no-such-user"}));
    let _ = run(
        side,
        "create_account",
        json!({"email": EMAIL, "password": PASSWORD, "extra": true}),
    );
    let _ = run(
        side,
        "sign_in_passkey",
        json!({"pending_token": "x", "credential": 7}),
    );
    log
}

/// A value with every string replaced by a placeholder (ids, tokens, challenges, hashes and
/// codes are random on each side); numbers, booleans, nulls, members and lengths are kept.
/// Errors keep only their code: messages are for people.
fn shape(v: &Value) -> Value {
    match v {
        Value::String(_) => json!("<string>"),
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        other => other.clone(),
    }
}

fn outcome_shape(answer: &Result<Value, Value>) -> Value {
    match answer {
        Ok(ok) => json!({ "ok": shape(ok) }),
        Err(e) => json!({ "error": {
            "code": e["code"],
            "retry_after_secs": e.get("retry_after_secs").is_some(),
        }}),
    }
}

#[test]
fn answers_have_exactly_the_cores_shape() {
    let mut core = CoreSide {
        engine: twofold_core::Engine::new(twofold_testkit::fast_config()).expect("an engine"),
        host: TestHost::new(0),
    };
    let mut ours = DriverSide {
        driver: driver(),
        next_id: 0,
    };
    let theirs = scenario(&mut core);
    let mine = scenario(&mut ours);
    assert_eq!(theirs.len(), mine.len());
    for ((op, expected), (_, got)) in theirs.iter().zip(&mine) {
        assert_eq!(
            outcome_shape(got),
            outcome_shape(expected),
            "{op}:\n driver {got:?}\n core   {expected:?}"
        );
    }

    // A few values the shape comparison leaves out, spelled out.
    let registered = mine
        .iter()
        .find(|(op, _)| op == "finish_passkey_registration")
        .and_then(|(_, a)| a.as_ref().ok())
        .expect("a registration");
    assert_eq!(registered["passkey"]["last_used_at"], Value::Null);
    assert_eq!(
        registered["backup_codes"].as_array().map(Vec::len),
        Some(10)
    );
    let sign_in = mine[2].1.as_ref().expect("signed in");
    assert_eq!(sign_in["status"], "signed_in");
    assert_eq!(sign_in["remember_me"], true);
    assert!(sign_in.get("backup_codes_remaining").is_none());
    let events = mine
        .iter()
        .rev()
        .find(|(op, _)| op == "audit_events")
        .and_then(|(_, a)| a.as_ref().ok())
        .expect("events");
    assert!(events["events"][0]["details"].is_object());
    assert_eq!(events["events"][0]["at"], RESET_CLOCK_MS);
    assert!(events.get("next_before").is_none(), "the last page");
}

#[test]
fn bad_lines_are_typed_errors_and_the_driver_keeps_going() {
    let mut d = driver();
    let cases = [
        ("not json", Value::Null),
        ("[1, 2]", Value::Null),
        (r#"{"op": "status"}"#, Value::Null),
        (r#"{"id": "one", "op": "status"}"#, Value::Null),
        (r#"{"id": 3}"#, json!(3)),
        (r#"{"id": 4, "op": 12}"#, json!(4)),
        (r#"{"id": 5, "op": "no_such_op", "args": {}}"#, json!(5)),
        (r#"{"id": 6, "op": "status", "args": []}"#, json!(6)),
        (
            r#"{"id": 7, "op": "status", "args": {"user_id": 1}}"#,
            json!(7),
        ),
        (
            r#"{"id": 8, "op": "status", "args": {"user_id": "u"}, "context": {"ip": 1}}"#,
            json!(8),
        ),
        (
            r#"{"id": 9, "op": "set_clock", "args": {"now_ms": -1}}"#,
            json!(9),
        ),
    ];
    for (line, id) in cases {
        let answer = answer(&mut d, line);
        assert_eq!(answer["id"], id, "{line}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_input", "{line}: {answer}");
        assert!(answer["error"]["message"].is_string());
        assert!(answer.get("ok").is_none());
    }
    let big = json!({"id": 10, "op": "create_account",
                     "args": {"email": EMAIL, "password": "x".repeat(70 * 1024)}});
    assert_eq!(
        answer(&mut d, &big.to_string())["error"]["code"],
        "invalid_input"
    );
    // Still working.
    let status = answer(
        &mut d,
        r#"{"id": 11, "op": "status", "args": {"user_id": "nobody"}}"#,
    );
    assert_eq!(status["error"]["code"], "not_found", "{status}");
}

#[test]
fn run_answers_every_line_even_when_it_is_not_utf8() {
    let mut input = Vec::new();
    input
        .extend_from_slice(b"{\"id\": 1, \"op\": \"status\", \"args\": {\"user_id\": \"\xff\"}}\n");
    input.extend_from_slice(b"{\"id\": 2, \"op\": \"reset\"}\r\n");
    input.extend_from_slice(b"{\"id\": 3, \"op\": \"seed\", \"args\": {\"seed\": 1}}");
    let mut output = Vec::new();
    driver().run(&input[..], &mut output).expect("run");
    let answers: Vec<Value> = String::from_utf8(output)
        .expect("UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0]["id"], Value::Null);
    assert_eq!(answers[0]["error"]["code"], "invalid_input");
    assert_eq!(answers[1], json!({"id": 2, "ok": {}}));
    assert_eq!(answers[2], json!({"id": 3, "ok": {"seeded": true}}));
}

#[test]
fn test_ops_drive_the_components_clock_and_randomness() {
    let run = |d: &mut Driver, lines: &[Value]| -> Vec<Value> {
        lines.iter().map(|l| answer(d, &l.to_string())).collect()
    };
    let script = [
        json!({"id": 1, "op": "reset", "args": {}}),
        json!({"id": 2, "op": "seed", "args": {"seed": 42}}),
        json!({"id": 3, "op": "configure", "args": config_json()}),
        json!({"id": 4, "op": "set_clock", "args": {"now_ms": 1_800_000_000_000u64}}),
        json!({"id": 5, "op": "create_account", "args": {"email": EMAIL, "password": PASSWORD}}),
        json!({"id": 6, "op": "advance_clock", "args": {"ms": 1234}}),
        json!({"id": 7, "op": "sign_in", "args": {"email": EMAIL, "password": PASSWORD}}),
    ];
    let mut d = driver();
    let first = run(&mut d, &script);
    assert_eq!(first[0], json!({"id": 1, "ok": {}}));
    assert_eq!(first[1], json!({"id": 2, "ok": {"seeded": true}}));
    assert_eq!(first[2], json!({"id": 3, "ok": {}}));
    assert_eq!(first[3], json!({"id": 4, "ok": {}}));
    let user = first[4]["ok"]["user_id"].clone();
    assert!(user.is_string(), "{}", first[4]);
    assert_eq!(first[6]["ok"]["status"], "signed_in", "{}", first[6]);
    assert_eq!(first[6]["ok"]["user_id"], user);
    assert_eq!(first[6]["ok"]["remember_me"], false);
    let events = answer(
        &mut d,
        &json!({"id": 8, "op": "audit_events", "args": {"user_id": user}}).to_string(),
    );
    let times: Vec<u64> = events["ok"]["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["at"].as_u64().expect("at"))
        .collect();
    assert_eq!(
        times,
        [1_800_000_001_234, 1_800_000_000_000],
        "newest first"
    );

    // The same script on a fresh driver draws the same random ids.
    let again = run(&mut driver(), &script);
    assert_eq!(again[4]["ok"]["user_id"], user);
    // Storage persists until `reset`, which empties it and restores the defaults.
    let reset = run(&mut d, &[json!({"id": 9, "op": "reset", "args": {}})]);
    assert_eq!(reset[0], json!({"id": 9, "ok": {}}));
    let gone = answer(
        &mut d,
        &json!({"id": 10, "op": "status", "args": {"user_id": user}}).to_string(),
    );
    assert_eq!(gone["error"]["code"], "not_found");

    // A refused configuration keeps the engine that was there.
    let refused = answer(
        &mut d,
        r#"{"id": 11, "op": "configure", "args": {"rp_id": ""}}"#,
    );
    assert_eq!(refused["error"]["code"], "invalid_input", "{refused}");
    let unknown = answer(
        &mut d,
        r#"{"id": 12, "op": "configure", "args": {"colour": "blue"}}"#,
    );
    assert_eq!(unknown["error"]["code"], "invalid_input", "{unknown}");
    let created = answer(
        &mut d,
        &json!({"id": 13, "op": "create_account", "args": {"email": EMAIL, "password": PASSWORD}})
            .to_string(),
    );
    // Without an audit key the engine refuses to start; the old one stays.
    let keyless = answer(
        &mut d,
        r#"{"id": 14, "op": "configure", "args": {"audit_keys": []}}"#,
    );
    assert_eq!(keyless["error"]["code"], "invalid_input", "{keyless}");
    assert!(created["ok"]["user_id"].is_string(), "{created}");
}

#[test]
fn the_binary_speaks_the_protocol_on_stdin_and_stdout() {
    let dir = common::scratch_dir("driver-binary");
    let db = dir.join("driver.db");
    // The shared loader has written the compiled-code cache the binary will use.
    common::loader();
    let mut child = Command::new(env!("CARGO_BIN_EXE_twofold-server"))
        .arg("--driver")
        .arg("--db")
        .arg(&db)
        .arg("--component")
        .arg(twofold_server::default_component_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary starts");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        let lines = [
            json!({"id": 1, "op": "reset", "args": {}}),
            json!({"id": 2, "op": "configure", "args": config_json()}),
            json!({"id": 3, "op": "create_account", "args": {"email": EMAIL, "password": PASSWORD}}),
            json!({"id": 4, "op": "create_account", "args": {"email": EMAIL, "password": PASSWORD}}),
        ];
        for line in lines {
            writeln!(stdin, "{line}").expect("write");
        }
        writeln!(stdin, "garbage").expect("write");
    }
    let output = child.wait_with_output().expect("the binary ends");
    assert!(output.status.success(), "{:?}", output.status);
    let answers: Vec<Value> = String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON document a line"))
        .collect();
    assert_eq!(answers.len(), 5, "{answers:?}");
    assert_eq!(answers[0], json!({"id": 1, "ok": {}}));
    assert_eq!(answers[2]["ok"]["email"], EMAIL);
    assert_eq!(answers[3]["error"]["code"], "already_exists");
    assert_eq!(answers[4]["id"], Value::Null);
    assert_eq!(answers[4]["error"]["code"], "invalid_input");
    // The account is in the SQLite file.
    assert!(std::fs::metadata(&db).map(|m| m.len() > 0).unwrap_or(false));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn driver_mode_signs_the_audit_log_with_the_testkits_key() {
    assert_eq!(
        driver::DRIVER_AUDIT_KEY_HEX,
        twofold_testkit::TEST_AUDIT_KEY_HEX
    );
    assert_eq!(
        driver::default_config().audit_keys,
        vec![twofold_testkit::test_audit_key()]
    );
}
