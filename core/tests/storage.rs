//! Storage, atomicity, concurrency and bad input: rules D1-D3 and E1.

mod common;

use std::sync::Mutex;

use common::*;
use serde_json::{Value, json};
use twofold_core::api::{self, Op};
use twofold_core::*;
use twofold_testkit::authenticator::{Authenticator, Tweaks};
use twofold_testkit::{Call, Fault, ORIGIN};

/// A world in which every operation has something to work on.
struct Fixture {
    user: String,
    codes: Vec<String>,
    pending: SecondFactorRequired,
    assertion: Value,
    registration: Value,
    passkey_id: String,
    /// A user with a passkey and 2FA off.
    off: String,
}

fn setup() -> (World, Fixture) {
    let mut w = world();
    let (user, codes) = w.user_with_2fa("ada@example.com");
    let passkey_id = w.status(&user).passkeys[0].id.clone();
    let pending = w.pending("ada@example.com");
    let assertion = w.assertion(&pending, &Tweaks::default());
    let options = w.start_registration(&user, "Phone");
    let registration = Authenticator::new(42)
        .register(&options, ORIGIN, &Tweaks::default())
        .unwrap();
    let off = w.signup("bob@example.com");
    w.register_other(&off, "Key", 43);
    w.engine
        .disable_two_factor(&w.host, &w.ctx, w.confirm(&off))
        .unwrap();
    (
        w,
        Fixture {
            user,
            codes,
            pending,
            assertion,
            registration,
            passkey_id,
            off,
        },
    )
}

type Step = fn(&World, &Fixture) -> Result<()>;

fn steps() -> Vec<(&'static str, Step)> {
    fn ok<T>(r: Result<T>) -> Result<()> {
        r.map(|_| ())
    }
    vec![
        ("create_account", |w, _| {
            ok(w.engine.create_account(
                &w.host,
                &w.ctx,
                CreateAccount {
                    email: "cy@example.com".into(),
                    password: PASSWORD.into(),
                },
            ))
        }),
        ("sign_in", |w, _| {
            ok(w.sign_in("ada@example.com", PASSWORD, true))
        }),
        ("sign_in wrong password", |w, _| {
            ok(w.sign_in("ada@example.com", "wrong password", true))
        }),
        ("sign_in_with_passkey", |w, f| {
            ok(w.passkey_step(&f.pending.pending_token, &f.assertion))
        }),
        ("sign_in_with_backup_code", |w, f| {
            ok(w.code_step(&f.pending.pending_token, &f.codes[0]))
        }),
        ("sign_in_with_backup_code wrong", |w, f| {
            ok(w.code_step(&f.pending.pending_token, "2222-2222-2222"))
        }),
        ("start_passkey_registration", |w, f| {
            ok(w.engine.start_passkey_registration(
                &w.host,
                &w.ctx,
                StartRegistration {
                    user_id: f.user.clone(),
                    name: "Tablet".into(),
                    password: PASSWORD.into(),
                },
            ))
        }),
        ("finish_passkey_registration", |w, f| {
            ok(w.finish_registration(&f.user, &f.registration))
        }),
        ("rename_passkey", |w, f| {
            ok(w.engine.rename_passkey(
                &w.host,
                &w.ctx,
                RenamePasskey {
                    user_id: f.user.clone(),
                    passkey_id: f.passkey_id.clone(),
                    name: "Desk".into(),
                },
            ))
        }),
        ("remove_passkey", |w, f| {
            ok(w.engine.remove_passkey(
                &w.host,
                &w.ctx,
                RemovePasskey {
                    user_id: f.user.clone(),
                    passkey_id: f.passkey_id.clone(),
                    password: PASSWORD.into(),
                },
            ))
        }),
        ("enable_two_factor", |w, f| {
            ok(w.engine
                .enable_two_factor(&w.host, &w.ctx, w.confirm(&f.off)))
        }),
        ("disable_two_factor", |w, f| {
            ok(w.engine
                .disable_two_factor(&w.host, &w.ctx, w.confirm(&f.user)))
        }),
        ("regenerate_backup_codes", |w, f| {
            ok(w.engine
                .regenerate_backup_codes(&w.host, &w.ctx, w.confirm(&f.user)))
        }),
        ("status", |w, f| {
            ok(w.engine.status(
                &w.host,
                &w.ctx,
                UserRef {
                    user_id: f.user.clone(),
                },
            ))
        }),
        ("audit_events", |w, f| {
            ok(w.engine.audit_events(
                &w.host,
                &w.ctx,
                AuditQuery {
                    user_id: f.user.clone(),
                    before: None,
                    limit: None,
                },
            ))
        }),
        ("verify_audit_chain", |w, f| {
            ok(w.engine.verify_audit_chain(
                &w.host,
                &w.ctx,
                VerifyAudit {
                    user_id: f.user.clone(),
                    anchor: None,
                },
            ))
        }),
    ]
}

fn outcome_code(r: &Result<()>) -> Option<ErrorCode> {
    r.as_ref().err().map(Error::code)
}

#[test]
fn d1_every_write_is_conditional_and_reaches_storage_only_through_the_host() {
    for (name, step) in steps() {
        let (w, f) = setup();
        let before = w.host.storage.calls();
        let _ = step(&w, &f);
        let log = w.host.storage.call_log();
        let calls = &log[usize::try_from(before).unwrap()..];
        assert!(
            !calls.is_empty() || name.is_empty(),
            "{name} touched storage only through the host"
        );
    }
    // The storage double implements the contract: all or nothing, versions expected + 1.
    let s = twofold_testkit::MemoryStorage::new();
    use twofold_core::Storage as _;
    let put = |key: &str, expect| Write {
        key: key.into(),
        value: Some("x".to_string()),
        expect,
    };
    s.commit(&[put("a", Expect::Absent)]).unwrap();
    assert_eq!(s.get("a").unwrap().unwrap().version, 1);
    let refused = s.commit(&[put("b", Expect::Absent), put("a", Expect::Version(7))]);
    assert_eq!(refused, Err(HostError::Conflict));
    assert!(
        s.get("b").unwrap().is_none(),
        "nothing of a refused batch applies"
    );
    s.commit(&[put("a", Expect::Version(1))]).unwrap();
    assert_eq!(s.get("a").unwrap().unwrap().version, 2);
}

#[test]
fn d2_each_operation_makes_at_most_one_commit() {
    for (name, step) in steps() {
        let (w, f) = setup();
        let before = w.host.storage.call_log().len();
        let _ = step(&w, &f);
        let commits = w.host.storage.call_log()[before..]
            .iter()
            .filter(|c| **c == Call::Commit)
            .count();
        assert!(commits <= 1, "{name} made {commits} commits");
    }
}

#[test]
fn d2_a_failure_at_every_storage_call_of_every_operation_leaves_storage_unchanged() {
    for (name, step) in steps() {
        let (w, f) = setup();
        let first = w.host.storage.calls();
        let clean = step(&w, &f);
        let calls = w.host.storage.calls() - first;
        for n in 1..=calls {
            for fault in [Fault::Fail, Fault::Conflict] {
                let (w, f) = setup();
                let before = w.host.storage.snapshot();
                w.host.storage.inject(n, fault);
                let r = step(&w, &f);
                match outcome_code(&r) {
                    Some(ErrorCode::Storage | ErrorCode::Conflict) => {
                        assert_eq!(
                            w.host.storage.snapshot(),
                            before,
                            "{name}: {fault:?} at call {n} wrote something"
                        );
                    }
                    // A refused commit is re-run from a fresh read and ends as a clean run does.
                    other => {
                        assert_eq!(
                            fault,
                            Fault::Conflict,
                            "{name}: a failure at call {n} was ignored"
                        );
                        assert_eq!(other, outcome_code(&clean), "{name}: conflict at call {n}");
                        continue;
                    }
                }
                w.host.storage.clear_faults();
                let again = step(&w, &f);
                assert_eq!(
                    outcome_code(&again),
                    outcome_code(&clean),
                    "{name}: the next run after a {fault:?} at {n}"
                );
            }
        }
    }
}

#[test]
fn d2_two_threads_racing_the_same_backup_code_one_wins() {
    let mut w = world();
    let (_, codes) = w.user_with_2fa("ada@example.com");
    let a = w.pending("ada@example.com");
    let b = w.pending("ada@example.com");
    w.host.storage.gate_commits(2);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for token in [&a.pending_token, &b.pending_token] {
            let (w, results, code) = (&w, &results, &codes[0]);
            s.spawn(move || {
                let outcome = outcome_code(&w.code_step(token, code).map(|_| ()));
                results.lock().unwrap().push(outcome);
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|c| c.map(|c| c.number()));
    assert_eq!(results, [None, Some(ErrorCode::InvalidBackupCode)]);
}

#[test]
fn d2_two_threads_racing_the_same_pending_token_one_wins() {
    let mut w = world();
    w.user_with_2fa("ada@example.com");
    let pending = w.pending("ada@example.com");
    let first = w.assertion(&pending, &Tweaks::default());
    let second = w.assertion(&pending, &Tweaks::default());
    w.host.storage.gate_commits(2);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for assertion in [&first, &second] {
            let (w, results, token) = (&w, &results, &pending.pending_token);
            s.spawn(move || {
                let outcome = outcome_code(&w.passkey_step(token, assertion).map(|_| ()));
                results.lock().unwrap().push(outcome);
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|c| c.map(|c| c.number()));
    assert_eq!(results, [None, Some(ErrorCode::Expired)]);
}

#[test]
fn d2_two_threads_racing_the_same_registration_response_one_wins() {
    let mut w = world();
    let user = w.signup("ada@example.com");
    let options = w.start_registration(&user, "Laptop");
    let credential = w
        .auth
        .register(&options, ORIGIN, &Tweaks::default())
        .unwrap();
    w.host.storage.gate_commits(2);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (w, results, user, credential) = (&w, &results, &user, &credential);
            s.spawn(move || {
                let outcome = outcome_code(&w.finish_registration(user, credential).map(|_| ()));
                results.lock().unwrap().push(outcome);
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|c| c.map(|c| c.number()));
    assert_eq!(results, [None, Some(ErrorCode::Expired)]);
    assert_eq!(w.status(&user).passkeys.len(), 1);
}

#[test]
fn d3_stored_documents_carry_a_schema_version() {
    let (w, f) = setup();
    for (key, record) in w.host.storage.snapshot() {
        let doc: Value = serde_json::from_str(&record.value).unwrap();
        assert_eq!(doc["v"], 2, "{key}");
    }
    let key = format!("user/{}", f.user);
    let mut doc: Value = serde_json::from_str(&w.host.storage.snapshot()[&key].value).unwrap();
    doc["v"] = json!(3);
    w.host
        .storage
        .tamper(&key, serde_json::to_string(&doc).unwrap());
    let refused = w
        .engine
        .status(
            &w.host,
            &w.ctx,
            UserRef {
                user_id: f.user.clone(),
            },
        )
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::Internal);
    assert!(
        refused.to_string().contains("schema version 3"),
        "{refused}"
    );
}

#[test]
fn e1_bad_input_gets_a_typed_error_and_writes_nothing() {
    let (w, f) = setup();
    let call =
        |op: Op, args: &[u8]| api::call(&w.engine, &w.host, &w.ctx, op, args).map_err(|e| e.code());
    let before = w.host.storage.snapshot();
    let invalid = Err(ErrorCode::InvalidInput);
    assert_eq!(call(Op::SignIn, b"{not json"), invalid, "malformed");
    assert_eq!(call(Op::SignIn, b"[1,2]"), invalid, "not an object");
    assert_eq!(
        call(Op::SignIn, br#"{"email": 5, "password": "x"}"#),
        invalid,
        "wrong type"
    );
    assert_eq!(
        call(Op::SignIn, br#"{"email": "a@b.c"}"#),
        invalid,
        "missing field"
    );
    assert_eq!(
        call(
            Op::SignIn,
            br#"{"email":"a@b.c","password":"12345678","extra":1}"#
        ),
        invalid,
        "unknown field"
    );
    assert_eq!(
        call(
            Op::SignIn,
            b"{\"email\": \"\xff\xfe\", \"password\": \"12345678\"}"
        ),
        invalid,
        "invalid UTF-8"
    );
    let big = format!(
        r#"{{"email":"a@b.c","password":"{}"}}"#,
        "a".repeat(70 * 1024)
    );
    assert_eq!(call(Op::SignIn, big.as_bytes()), invalid, "over 64 KiB");
    let garbage = json!({ "pending_token": f.pending.pending_token, "credential": { "id": 1 } });
    assert_eq!(
        call(Op::SignInPasskey, garbage.to_string().as_bytes()),
        invalid,
        "not a credential"
    );
    assert_eq!(
        call(
            Op::FinishPasskeyRegistration,
            json!({ "user_id": f.user, "credential": "{" })
                .to_string()
                .as_bytes()
        ),
        invalid
    );
    assert_eq!(
        call(Op::Status, br#"{"user_id": "no/such user"}"#),
        invalid,
        "malformed id"
    );
    assert_eq!(w.host.storage.snapshot(), before, "nothing written");
    assert_eq!(
        call(Op::Status, br#"{"user_id": "AAAAAAAAAAAAAAAAAAAAAA"}"#),
        Err(ErrorCode::NotFound),
        "unknown user"
    );
    let unknown = json!({ "user_id": f.user, "passkey_id": "AAAA", "name": "x" });
    assert_eq!(
        call(Op::RenamePasskey, unknown.to_string().as_bytes()),
        Err(ErrorCode::NotFound),
        "unknown passkey"
    );
    // A well-formed call answers JSON, and the credential may be an object or its text.
    let status: Value = serde_json::from_str(
        &call(
            Op::Status,
            json!({ "user_id": f.user }).to_string().as_bytes(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(status["two_factor_enabled"], true);
    let step = json!({ "pending_token": f.pending.pending_token, "credential": f.assertion });
    let signed: Value =
        serde_json::from_str(&call(Op::SignInPasskey, step.to_string().as_bytes()).unwrap())
            .unwrap();
    assert_eq!(signed["remember_me"], false);
    assert!(Op::ALL.iter().all(|op| Op::parse(op.name()) == Some(*op)));
    assert_eq!(
        api::config_from_json(br#"{"lockout_threshold": 0}"#)
            .unwrap_err()
            .code(),
        ErrorCode::InvalidInput
    );
    assert_eq!(
        api::config_from_json(br#"{"rp_idd": "x"}"#)
            .unwrap_err()
            .code(),
        ErrorCode::InvalidInput
    );
    assert!(
        api::config_from_json(br#"{"rp_id": "example.com", "origins": ["https://example.com"]}"#)
            .is_ok()
    );
}

#[test]
fn e1_error_codes_are_stable() {
    let names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        names,
        [
            "invalid_input",
            "invalid_credentials",
            "rate_limited",
            "second_factor_required",
            "invalid_passkey",
            "invalid_backup_code",
            "expired",
            "not_found",
            "already_exists",
            "already_enabled",
            "not_enabled",
            "no_passkey",
            "conflict",
            "storage",
            "internal",
        ]
    );
    for (i, code) in ErrorCode::ALL.iter().enumerate() {
        assert_eq!(code.number(), i32::try_from(i).unwrap() + 1);
        assert_eq!(ErrorCode::from_number(code.number()), Some(*code));
        assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
    }
}

#[test]
fn engine_is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<Engine>();
}

#[test]
fn e1_a_configuration_must_name_https_origins_under_its_rp_id_and_a_real_audit_key() {
    let base = twofold_testkit::fast_config;
    let refused = |config: Config| Engine::new(config).unwrap_err().code();
    let with_origin = |rp: &str, origin: &str| Config {
        rp_id: rp.into(),
        origins: vec![origin.into()],
        ..base()
    };
    assert!(Engine::new(with_origin("example.com", "https://example.com")).is_ok());
    assert!(Engine::new(with_origin("example.com", "https://login.example.com")).is_ok());
    assert!(Engine::new(with_origin("localhost", "http://localhost:8080")).is_ok());
    for (rp, origin) in [
        ("example.com", "http://example.com"),
        ("example.com", "https://example.org"),
        ("example.com", "https://notexample.com"),
        ("example.com", "https://example.com/login"),
        ("example.com", "https://user@example.com"),
        ("example.com", "not a url"),
    ] {
        assert_eq!(
            refused(with_origin(rp, origin)),
            ErrorCode::InvalidInput,
            "{origin}"
        );
    }
    let with_key = |key: AuditKey| Config {
        audit_keys: vec![key],
        ..base()
    };
    assert_eq!(
        refused(Config {
            audit_keys: vec![],
            ..base()
        }),
        ErrorCode::InvalidInput
    );
    for secret in [
        "00".repeat(32),
        "ab".repeat(15),
        "zz".repeat(32),
        "abc".into(),
    ] {
        assert_eq!(
            refused(with_key(AuditKey::new("k", secret))),
            ErrorCode::InvalidInput
        );
    }
    assert_eq!(
        refused(with_key(AuditKey::new(
            "bad id!",
            "5e".repeat(16) + &"a1".repeat(16)
        ))),
        ErrorCode::InvalidInput
    );
    let e = Engine::new(with_key(AuditKey::new("k", "00".repeat(32)))).unwrap_err();
    assert!(!e.to_string().contains(&"00".repeat(32)), "{e}");
}

#[test]
fn e1_a_secret_of_the_wrong_type_is_refused_by_name_without_its_value() {
    let w = world();
    let e = twofold_core::api::call(
        &w.engine,
        &w.host,
        &w.ctx,
        Op::SignIn,
        br#"{"email":"ada@example.com","password":31415926535}"#,
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    let message = e.to_string();
    assert!(message.contains("password must be a string"), "{message}");
    assert!(!message.contains("31415926535"), "{message}");
}
