//! Full WebAuthn ceremonies through the exported C functions, which C alone cannot drive (it
//! has no authenticator). The storage is the testkit's, reached through the test-support
//! `twofold_host` callback table, so every byte crosses the C interface both ways as it would
//! from C.

use std::sync::{Arc, Barrier};

use serde_json::{Value, json};
use twofold_core::{AuditPage, ErrorCode, EventKind, Op};
use twofold_testkit::authenticator::{Authenticator, Tweaks};
use twofold_testkit::{ORIGIN, TestHost, fast_config};
use twofold_testsupport::CEngine;

/// An engine over a fresh testkit host, called by operation name with JSON values.
struct Fixture(CEngine<TestHost>);

impl Fixture {
    fn new(seed: u64) -> Fixture {
        let config = serde_json::to_string(&fast_config()).unwrap();
        let engine = CEngine::new(Arc::new(TestHost::new(seed)), &config).unwrap();
        Fixture(engine)
    }

    /// Runs an operation through its own export (`twofold_engine_<op>`).
    fn call(&self, op: &str, args: Value) -> Result<Value, (ErrorCode, String)> {
        let op = Op::parse(op).unwrap();
        let text = self.0.call(op, args.to_string().as_bytes())?;
        Ok(serde_json::from_str(&text).unwrap())
    }

    /// Runs an operation by name through `twofold_engine_call`.
    fn call_by_name(&self, op: &str, args: Value) -> Result<Value, (ErrorCode, String)> {
        let text = self
            .0
            .call_by_name(op.as_bytes(), args.to_string().as_bytes())?;
        Ok(serde_json::from_str(&text).unwrap())
    }

    fn ok(&self, op: &str, args: Value) -> Value {
        self.call(op, args)
            .unwrap_or_else(|(code, message)| panic!("{op}: {code}: {message}"))
    }

    fn fails(&self, op: &str, args: Value) -> ErrorCode {
        match self.call(op, args) {
            Ok(v) => panic!("{op} succeeded: {v}"),
            Err((code, _)) => code,
        }
    }
}

const PASSWORD: &str = "correct horse battery";

/// An account with a registered passkey (so 2FA on) and its backup codes.
fn enrolled(fx: &Fixture, email: &str, authenticator: &mut Authenticator) -> (String, Vec<String>) {
    let account = fx.ok(
        "create_account",
        json!({"email": email, "password": PASSWORD}),
    );
    let user_id = account["user_id"].as_str().unwrap().to_owned();
    let started = fx.ok(
        "start_passkey_registration",
        json!({"user_id": user_id, "name": "Laptop", "password": PASSWORD}),
    );
    let credential = authenticator
        .register(&started["options"], ORIGIN, &Tweaks::default())
        .unwrap();
    let finished = fx.ok(
        "finish_passkey_registration",
        json!({"user_id": user_id, "credential": credential}),
    );
    assert_eq!(finished["two_factor_enabled"], true);
    assert_eq!(finished["passkey"]["name"], "Laptop");
    let codes: Vec<String> = serde_json::from_value(finished["backup_codes"].clone()).unwrap();
    assert_eq!(codes.len(), 10);
    assert_eq!(finished["backup_codes_remaining"], 10);
    (user_id, codes)
}

fn pending(fx: &Fixture, email: &str) -> Value {
    let step_one = fx.ok(
        "sign_in",
        json!({"email": email, "password": PASSWORD, "remember_me": true}),
    );
    assert_eq!(step_one["status"], "second_factor_required");
    step_one
}

#[test]
fn passkey_and_backup_code_ceremonies_through_the_c_interface() {
    let fx = Fixture::new(1);
    let mut authenticator = Authenticator::new(7);
    let (user_id, codes) = enrolled(&fx, "ada@example.com", &mut authenticator);

    // Sign in with the passkey: the credential as JSON text this time.
    let step_one = pending(&fx, "ada@example.com");
    let token = step_one["pending_token"].as_str().unwrap();
    let assertion = authenticator
        .authenticate(&step_one["options"], ORIGIN, &Tweaks::default())
        .unwrap();
    let signed_in = fx.ok(
        "sign_in_passkey",
        json!({"pending_token": token, "credential": assertion.to_string()}),
    );
    assert_eq!(signed_in["user_id"], user_id.as_str());
    assert_eq!(signed_in["remember_me"], false);
    // The token is spent.
    let again = json!({"pending_token": token, "credential": assertion});
    assert_eq!(fx.fails("sign_in_passkey", again), ErrorCode::Expired);

    // A corrupted signature is refused.
    let step_one = pending(&fx, "ada@example.com");
    let tweaks = Tweaks {
        corrupt_signature: true,
        ..Tweaks::default()
    };
    let forged = authenticator
        .authenticate(&step_one["options"], ORIGIN, &tweaks)
        .unwrap();
    let args = json!({"pending_token": step_one["pending_token"], "credential": forged});
    assert_eq!(fx.fails("sign_in_passkey", args), ErrorCode::InvalidPasskey);

    // A backup code, typed sloppily, works once.
    let sloppy = codes[0].to_uppercase().replace('-', " ");
    let args = json!({"pending_token": step_one["pending_token"], "code": sloppy});
    let signed_in = fx.ok("sign_in_backup_code", args);
    assert_eq!(signed_in["user_id"], user_id.as_str());
    assert_eq!(signed_in["backup_codes_remaining"], 9);
    assert_eq!(signed_in["backup_codes_running_low"], false);
    let step_one = pending(&fx, "ada@example.com");
    let args = json!({"pending_token": step_one["pending_token"], "code": codes[0]});
    assert_eq!(
        fx.fails("sign_in_backup_code", args),
        ErrorCode::InvalidBackupCode
    );

    // Passkey management and the two-factor switches.
    let listed = fx.ok("list_passkeys", json!({"user_id": user_id}));
    let passkey_id = listed["passkeys"][0]["id"].as_str().unwrap().to_owned();
    assert!(listed["passkeys"][0]["last_used_at"].is_u64());
    let renamed = fx.ok(
        "rename_passkey",
        json!({"user_id": user_id, "passkey_id": passkey_id, "name": "  Phone "}),
    );
    assert_eq!(renamed["name"], "Phone");
    let confirm = json!({"user_id": user_id, "password": PASSWORD});
    let fresh = fx.ok("regenerate_backup_codes", confirm.clone());
    assert_eq!(fresh["codes"].as_array().unwrap().len(), 10);
    assert_eq!(
        fx.fails("enable_two_factor", confirm.clone()),
        ErrorCode::AlreadyEnabled
    );
    let status = fx.ok("disable_two_factor", confirm.clone());
    assert_eq!(status["two_factor_enabled"], false);
    assert_eq!(status["passkeys"].as_array().unwrap().len(), 1);
    let codes = fx.ok("enable_two_factor", confirm.clone());
    assert_eq!(codes["codes"].as_array().unwrap().len(), 10);
    let status = fx.ok(
        "remove_passkey",
        json!({"user_id": user_id, "passkey_id": passkey_id, "password": PASSWORD}),
    );
    assert_eq!(status["two_factor_enabled"], false);
    assert_eq!(status["backup_codes_remaining"], 0);

    // Every step is in the audit chain, and the chain is intact.
    let events = fx.ok("audit_events", json!({"user_id": user_id, "limit": 200}));
    let page: AuditPage = serde_json::from_value(events.clone()).unwrap();
    let kinds: Vec<EventKind> = page.events.iter().map(|e| e.kind).collect();
    for kind in [
        EventKind::PasskeyRegistered,
        EventKind::PasskeyOk,
        EventKind::PasskeyFailed,
        EventKind::BackupCodeOk,
        EventKind::BackupCodeFailed,
        EventKind::PasskeyRenamed,
        EventKind::TwoFactorDisabled,
        EventKind::PasskeyRemoved,
    ] {
        assert!(kinds.contains(&kind), "no {kind:?} event in {kinds:?}");
    }
    assert_eq!(events["events"][0]["ip"], "198.51.100.4");
    let chain = fx.ok("verify_audit_chain", json!({"user_id": user_id}));
    assert_eq!(chain["intact"], true, "{chain}");

    // The generic entry point answers exactly as the operation's own export.
    let by_name = fx.call_by_name("status", json!({"user_id": user_id}));
    assert_eq!(
        by_name.unwrap(),
        fx.ok("status", json!({"user_id": user_id}))
    );
}

#[test]
fn a_registration_ceremony_is_single_use() {
    let fx = Fixture::new(2);
    let mut authenticator = Authenticator::new(8);
    let account = fx.ok(
        "create_account",
        json!({"email": "bo@example.com", "password": PASSWORD}),
    );
    let user_id = account["user_id"].as_str().unwrap();
    let args = json!({"user_id": user_id, "name": "Key", "password": PASSWORD});
    let started = fx.ok("start_passkey_registration", args);
    let credential = authenticator
        .register(&started["options"], ORIGIN, &Tweaks::default())
        .unwrap();
    let finish = json!({"user_id": user_id, "credential": credential});
    fx.ok("finish_passkey_registration", finish.clone());
    assert_eq!(
        fx.fails("finish_passkey_registration", finish),
        ErrorCode::Expired
    );
}

#[test]
fn one_backup_code_raced_from_many_threads_signs_in_once() {
    const THREADS: usize = 4;
    let fx = Arc::new(Fixture::new(3));
    let mut authenticator = Authenticator::new(9);
    let (_, codes) = enrolled(&fx, "cy@example.com", &mut authenticator);
    let tokens: Vec<Value> = (0..THREADS)
        .map(|_| pending(&fx, "cy@example.com")["pending_token"].clone())
        .collect();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let (fx, barrier, code) = (Arc::clone(&fx), Arc::clone(&barrier), codes[0].clone());
            std::thread::spawn(move || {
                barrier.wait();
                fx.call_by_name(
                    "sign_in_backup_code",
                    json!({"pending_token": token, "code": code}),
                )
                .map_err(|(code, _)| code)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    for result in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(*result, ErrorCode::InvalidBackupCode);
    }
}

/// Every operation once, in an order that lets each do its work; through each operation's own
/// export, or by name through `twofold_engine_call`. Answers and codes, in order.
fn lifecycle(by_name: bool) -> Vec<String> {
    let fx = Fixture::new(4);
    let mut authenticator = Authenticator::new(10);
    let mut transcript = Vec::new();
    let mut run = |op: &str, args: Value| -> Value {
        let answer = if by_name {
            fx.call_by_name(op, args)
        } else {
            fx.call(op, args)
        };
        transcript.push(format!("{op}: {answer:?}"));
        answer.unwrap_or(Value::Null)
    };
    let email = "dee@example.com";
    let user = run(
        "create_account",
        json!({"email": email, "password": PASSWORD}),
    );
    let user_id = user["user_id"].clone();
    let confirm = json!({"user_id": user_id, "password": PASSWORD});
    let started = run(
        "start_passkey_registration",
        json!({"user_id": user_id, "name": "Laptop", "password": PASSWORD}),
    );
    let credential = authenticator
        .register(&started["options"], ORIGIN, &Tweaks::default())
        .unwrap();
    let registered = run(
        "finish_passkey_registration",
        json!({"user_id": user_id, "credential": credential}),
    );
    let passkey_id = registered["passkey"]["id"].clone();
    let sign_in = json!({"email": email, "password": PASSWORD});
    let step_one = run("sign_in", sign_in.clone());
    let assertion = authenticator
        .authenticate(&step_one["options"], ORIGIN, &Tweaks::default())
        .unwrap();
    let token = step_one["pending_token"].clone();
    run(
        "sign_in_passkey",
        json!({"pending_token": token, "credential": assertion}),
    );
    let step_one = run("sign_in", sign_in);
    let code = registered["backup_codes"][0].clone();
    let token = step_one["pending_token"].clone();
    run(
        "sign_in_backup_code",
        json!({"pending_token": token, "code": code}),
    );
    run("list_passkeys", json!({"user_id": user_id}));
    run(
        "rename_passkey",
        json!({"user_id": user_id, "passkey_id": passkey_id, "name": "Phone"}),
    );
    run("regenerate_backup_codes", confirm.clone());
    run("disable_two_factor", confirm.clone());
    run("enable_two_factor", confirm.clone());
    run(
        "change_password",
        json!({"user_id": user_id, "current_password": PASSWORD, "new_password": "a new one!"}),
    );
    run(
        "reset_password",
        json!({"email": email, "new_password": PASSWORD}),
    );
    run(
        "remove_passkey",
        json!({"user_id": user_id, "passkey_id": passkey_id, "password": PASSWORD}),
    );
    run("status", json!({"user_id": user_id}));
    run("audit_events", json!({"user_id": user_id, "limit": 5}));
    let anchor = run("audit_anchor", json!({"user_id": user_id}));
    run(
        "verify_audit_chain",
        json!({"user_id": user_id, "anchor": anchor}),
    );
    run(
        "prune_audit_events",
        json!({"user_id": user_id, "older_than_days": 1}),
    );
    transcript
}

/// Each export runs its own operation: the whole lifecycle through the nineteen exports and
/// through `twofold_engine_call` by name gives one transcript, answer for answer (the host is
/// seeded, so ids, tokens and codes repeat).
#[test]
fn e1_every_export_runs_the_operation_it_is_named_after() {
    let through_exports = lifecycle(false);
    assert_eq!(through_exports.len(), Op::ALL.len() + 1);
    for op in Op::ALL {
        let prefix = format!("{}: ", op.name());
        assert!(
            through_exports.iter().any(|line| line.starts_with(&prefix)),
            "{} is not in the lifecycle",
            op.name()
        );
    }
    for line in &through_exports {
        assert!(line.contains(": Ok("), "{line}");
    }
    assert_eq!(through_exports, lifecycle(true));
}

/// D2 through C: at any callback of a writing operation, a host that answers anything but
/// `TWOFOLD_OK` (a failure, a conflict outside `commit`, a status the contract does not know)
/// fails it with `storage`, and nothing is written; a refused commit is retried.
#[test]
fn d2_any_status_but_ok_from_any_callback_fails_as_storage_with_nothing_written() {
    use twofold_testsupport::{Callback, Fault, Misbehave};
    let args = json!({"email": "eve@example.com", "password": PASSWORD}).to_string();
    let clean = Fixture::new(5);
    clean.0.call(Op::CreateAccount, args.as_bytes()).unwrap();
    let log = clean.0.callbacks().log();
    for kind in [
        Callback::Get,
        Callback::Commit,
        Callback::Now,
        Callback::Random,
    ] {
        assert!(
            log.contains(&kind),
            "create_account made no {kind:?}: {log:?}"
        );
    }
    let statuses = [
        ErrorCode::Storage.number(),
        ErrorCode::Conflict.number(),
        ErrorCode::Internal.number(),
        ErrorCode::InvalidInput.number(),
        99,
        -1,
        i32::MIN,
    ];
    for (n, kind) in (1..).zip(&log) {
        for status in statuses {
            let fx = Fixture::new(5);
            let how = Misbehave::Status(status);
            fx.0.callbacks().set_fault(Fault {
                how,
                from: n,
                once: true,
            });
            let answer = fx.0.call(Op::CreateAccount, args.as_bytes());
            let what = format!("status {status} at callback {n} ({kind:?})");
            if *kind == Callback::Commit && status == ErrorCode::Conflict.number() {
                assert!(answer.is_ok(), "{what}: the refused commit was not retried");
                continue;
            }
            assert_eq!(answer.map_err(|e| e.0), Err(ErrorCode::Storage), "{what}");
            assert!(fx.0.host().storage.snapshot().is_empty(), "{what}: wrote");
        }
    }
}
