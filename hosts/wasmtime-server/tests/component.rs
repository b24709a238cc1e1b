//! Loads the built WASI component in wasmtime and drives it through its WIT interface with
//! the proto types: the two-factor lifecycle, typed errors for failing and conflicting storage
//! (a conflict answered by `get` or `scan` is a `storage` failure; by `commit`, a `conflict`),
//! bad input, and the component's imports.
//!
//! The component must be built first: `wasm-component/build.sh` (or set `TWOFOLD_COMPONENT`
//! to a built `.wasm`).

mod common;

use std::sync::Arc;

use serde_json::Value;
use twofold_server::Instance;
use twofold_server::proto::ops::op;
use twofold_server::proto::*;
use twofold_testkit::authenticator::{Authenticator, Tweaks};
use twofold_testkit::{Call, Fault, MemoryStorage, ORIGIN, fast_config};

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery staple";

fn instance(storage: &Arc<MemoryStorage>) -> Instance {
    common::loader()
        .instantiate(Arc::clone(storage), &fast_config())
        .expect("no trap")
        .expect("a valid configuration")
}

fn ctx() -> Context {
    Context::new("203.0.113.7", "component-test")
}

/// The answer of a call that must succeed (and must not trap).
fn ok<T>(answer: wasmtime::Result<Result<T, EngineError>>) -> T {
    match answer {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => panic!("unexpected error {e}"),
        Err(trap) => panic!("the component trapped: {trap:?}"),
    }
}

/// The typed error of a call that must fail (and must not trap).
fn err<T: std::fmt::Debug>(answer: wasmtime::Result<Result<T, EngineError>>) -> EngineError {
    match answer {
        Ok(Err(e)) => e,
        Ok(Ok(value)) => panic!("expected an error, got {value:?}"),
        Err(trap) => panic!("the component trapped: {trap:?}"),
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("the component returns JSON text")
}

fn sign_in(instance: &mut Instance, remember_me: bool) -> SignInOutcome {
    ok(instance.call::<op::SignIn>(
        &ctx(),
        &SignIn {
            email: EMAIL.into(),
            password: PASSWORD.into(),
            remember_me,
        },
    ))
}

/// Step one of a sign-in that must ask for a second factor: the pending token and options.
fn second_factor_required(instance: &mut Instance) -> (String, Value) {
    match sign_in(instance, true) {
        SignInOutcome::SecondFactorRequired(s) => (s.pending_token.clone(), json(&s.options)),
        other => panic!("expected second-factor-required, got {other:?}"),
    }
}

fn create(email: &str) -> CreateAccount {
    CreateAccount {
        email: email.into(),
        password: PASSWORD.into(),
    }
}

#[test]
fn lifecycle_account_passkey_backup_codes_and_removal() {
    let storage = Arc::new(MemoryStorage::new());
    let mut tf = instance(&storage);
    let mut authenticator = Authenticator::new(7);

    // An account; with 2FA off, step one signs in and honours remember-me.
    let account = ok(tf.call::<op::CreateAccount>(
        &ctx(),
        &CreateAccount {
            email: format!("  {}  ", EMAIL.to_uppercase()),
            password: PASSWORD.into(),
        },
    ));
    let user = account.user_id.clone();
    match sign_in(&mut tf, true) {
        SignInOutcome::SignedIn(s) => {
            assert_eq!(s.user_id, user);
            assert!(s.remember_me);
        }
        other => panic!("2FA is off, yet: {other:?}"),
    }

    // The first passkey turns 2FA on and comes with ten backup codes.
    let started = ok(tf.call::<op::StartPasskeyRegistration>(
        &ctx(),
        &StartRegistration {
            user_id: user.clone(),
            name: "Laptop".into(),
            password: PASSWORD.into(),
        },
    ));
    let credential = authenticator
        .register(&json(&started.options), ORIGIN, &Tweaks::default())
        .expect("the authenticator accepts the creation options");
    let registered = ok(tf.call::<op::FinishPasskeyRegistration>(
        &ctx(),
        &FinishRegistration {
            user_id: user.clone(),
            credential: credential.to_string(),
        },
    ));
    assert!(registered.two_factor_enabled);
    let codes = registered
        .backup_codes
        .expect("the first passkey brings codes");
    assert_eq!(codes.len(), 10);
    assert_eq!(registered.backup_codes_remaining, 10);
    assert!(!registered.backup_codes_running_low);
    assert_eq!(registered.passkey.name, "Laptop");
    let passkey_id = registered.passkey.id.clone();

    let status = ok(tf.call::<op::Status>(
        &ctx(),
        &UserRef {
            user_id: user.clone(),
        },
    ));
    assert!(status.two_factor_enabled);
    assert_eq!(status.passkeys.len(), 1);
    assert_eq!(status.backup_codes_remaining, 10);

    // A passkey sign-in: remember-me was asked for, and is refused after a second factor.
    let (token, options) = second_factor_required(&mut tf);
    let allowed = options["allowCredentials"]
        .as_array()
        .expect("allowCredentials");
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0]["id"], passkey_id.as_str());
    let assertion = authenticator
        .authenticate(&options, ORIGIN, &Tweaks::default())
        .expect("the authenticator signs");
    let signed_in = ok(tf.call::<op::SignInPasskey>(
        &ctx(),
        &PasskeySignIn {
            pending_token: token.clone(),
            credential: assertion.to_string(),
        },
    ));
    assert_eq!(signed_in.user_id, user);
    assert!(!signed_in.remember_me);
    // The token was consumed.
    let replay = err(tf.call::<op::SignInPasskey>(
        &ctx(),
        &PasskeySignIn {
            pending_token: token,
            credential: assertion.to_string(),
        },
    ));
    assert_eq!(replay.code, ErrorCode::Expired);

    // A backup-code sign-in consumes the code and says how many are left.
    let (token, _) = second_factor_required(&mut tf);
    let typed = codes[0].to_lowercase().replace('-', " ");
    let signed_in = ok(tf.call::<op::SignInBackupCode>(
        &ctx(),
        &BackupCodeSignIn {
            pending_token: token,
            code: typed,
        },
    ));
    assert_eq!(signed_in.user_id, user);
    assert!(!signed_in.remember_me);
    assert_eq!(signed_in.backup_codes_remaining, Some(9));
    assert_eq!(signed_in.backup_codes_running_low, Some(false));

    // The same code again is refused.
    let (token, _) = second_factor_required(&mut tf);
    let reused = err(tf.call::<op::SignInBackupCode>(
        &ctx(),
        &BackupCodeSignIn {
            pending_token: token,
            code: codes[0].clone(),
        },
    ));
    assert_eq!(reused.code, ErrorCode::InvalidBackupCode);
    assert_eq!(reused.retry_after_secs, None);

    // Removing the last passkey turns 2FA off and voids the codes.
    let after = ok(tf.call::<op::RemovePasskey>(
        &ctx(),
        &RemovePasskey {
            user_id: user.clone(),
            passkey_id,
            password: PASSWORD.into(),
        },
    ));
    assert!(!after.two_factor_enabled);
    assert!(after.passkeys.is_empty());
    assert_eq!(after.backup_codes_remaining, 0);
    match sign_in(&mut tf, true) {
        SignInOutcome::SignedIn(s) => assert!(s.remember_me),
        other => panic!("2FA is off again, yet: {other:?}"),
    }

    // The audit trail came through typed, with JSON details, and its chain holds.
    let page = ok(tf.call::<op::AuditEvents>(
        &ctx(),
        &AuditQuery {
            user_id: user.clone(),
            before: None,
            limit: Some(200),
        },
    ));
    assert!(
        page.events.windows(2).all(|w| w[0].seq > w[1].seq),
        "newest first"
    );
    let disabled = page
        .events
        .iter()
        .find(|e| e.kind == EventKind::TwoFactorDisabled)
        .expect("a two-factor-disabled event");
    assert!(disabled.notify);
    assert_eq!(json(&disabled.details)["reason"], "last_passkey_removed");
    assert!(page.events.iter().all(|e| e.ip == "203.0.113.7"));
    for kind in [
        EventKind::AccountCreated,
        EventKind::PasskeyRegistered,
        EventKind::TwoFactorEnabled,
        EventKind::PasskeyOk,
        EventKind::BackupCodeOk,
        EventKind::BackupCodeFailed,
        EventKind::PasskeyRemoved,
    ] {
        assert!(
            page.events.iter().any(|e| e.kind == kind),
            "no {kind:?} event"
        );
    }
    let report = ok(tf.call::<op::VerifyAuditChain>(
        &ctx(),
        &VerifyAudit {
            user_id: user,
            anchor: None,
        },
    ));
    assert!(report.intact, "{:?}", report.problems);
    assert_eq!(report.events_checked, page.events.len() as u64);
}

/// The storage calls `f` makes, in order.
fn calls_of(storage: &MemoryStorage, f: impl FnOnce()) -> Vec<Call> {
    let before = storage.call_log().len();
    f();
    storage.call_log()[before..].to_vec()
}

#[test]
fn d2_a_failing_storage_call_is_a_typed_error_and_writes_nothing() {
    let storage = Arc::new(MemoryStorage::new());
    let mut tf = instance(&storage);
    let create = create(EMAIL);

    // Count the calls one account creation makes, on another store.
    let probe = Arc::new(MemoryStorage::new());
    let calls = calls_of(&probe, || {
        ok(instance(&probe).call::<op::CreateAccount>(&ctx(), &create));
    });
    assert!(calls.len() >= 2, "a read and a commit at least: {calls:?}");

    // Whichever call fails, the answer is `storage` with the host's message, nothing is
    // written, and the instance keeps working.
    for n in 1..=calls.len() as u64 {
        storage.inject(n, Fault::Fail);
        let e = err(tf.call::<op::CreateAccount>(&ctx(), &create));
        assert_eq!(e.code, ErrorCode::Storage, "call {n}: {}", e.message);
        assert!(e.message.contains("injected failure"), "{}", e.message);
        assert!(storage.snapshot().is_empty(), "call {n} left data behind");
        storage.clear_faults();
    }
    ok(tf.call::<op::CreateAccount>(&ctx(), &create));

    // A failing read during sign-in is typed too.
    let before = storage.snapshot();
    storage.inject(1, Fault::Fail);
    let e = err(tf.call::<op::SignIn>(
        &ctx(),
        &SignIn {
            email: EMAIL.into(),
            password: PASSWORD.into(),
            remember_me: false,
        },
    ));
    assert_eq!(e.code, ErrorCode::Storage);
    assert_eq!(storage.snapshot(), before);
}

#[test]
fn d2_a_commit_that_keeps_conflicting_is_a_conflict_and_writes_nothing() {
    let storage = Arc::new(MemoryStorage::new());
    let mut tf = instance(&storage);
    let create = create("grace@example.com");
    let probe = Arc::new(MemoryStorage::new());
    let calls = calls_of(&probe, || {
        ok(instance(&probe).call::<op::CreateAccount>(&ctx(), &create));
    });
    // Each attempt reads the same empty store and ends in its one commit, so every
    // `calls.len()`-th call from now is a commit: refuse them all.
    assert_eq!(calls.last(), Some(&Call::Commit), "{calls:?}");
    let per_attempt = calls.len() as u64;
    for attempt in 1..=64 {
        storage.inject(attempt * per_attempt, Fault::Conflict);
    }
    let e = err(tf.call::<op::CreateAccount>(&ctx(), &create));
    assert_eq!(e.code, ErrorCode::Conflict, "{}", e.message);
    assert!(storage.snapshot().is_empty());
    let commits = storage
        .call_log()
        .iter()
        .filter(|c| **c == Call::Commit)
        .count();
    assert!(
        commits > 1,
        "the engine retries a refused commit ({commits} commits)"
    );

    // A single refused commit is retried from a fresh read and succeeds.
    storage.clear_faults();
    storage.inject(per_attempt, Fault::Conflict);
    ok(tf.call::<op::CreateAccount>(&ctx(), &create));
}

#[test]
fn d1_a_conflict_answered_by_get_or_scan_is_a_storage_failure() {
    let storage = Arc::new(MemoryStorage::new());
    let mut tf = instance(&storage);
    let user = ok(tf.call::<op::CreateAccount>(&ctx(), &create(EMAIL))).user_id;
    let query = AuditQuery {
        user_id: user.clone(),
        before: None,
        limit: None,
    };
    let user_ref = UserRef { user_id: user };

    // A read-only operation that gets and one that scans: the same calls every time.
    let mut seen = Vec::new();
    for (what, kind) in [("get", Call::Get), ("scan", Call::Scan)] {
        let mut tried = false;
        for name in ["audit_events", "list_passkeys", "status"] {
            let run = |tf: &mut Instance| match name {
                "audit_events" => tf
                    .call::<op::AuditEvents>(&ctx(), &query)
                    .map(|a| a.map(drop)),
                "list_passkeys" => tf
                    .call::<op::ListPasskeys>(&ctx(), &user_ref)
                    .map(|a| a.map(drop)),
                _ => tf
                    .call::<op::Status>(&ctx(), &user_ref)
                    .map(|a| a.map(drop)),
            };
            let calls = calls_of(&storage, || ok(run(&mut tf)));
            let Some(at) = calls.iter().position(|c| *c == kind) else {
                continue;
            };
            let before = storage.snapshot();
            storage.inject(at as u64 + 1, Fault::Conflict);
            let e = err(run(&mut tf));
            assert_eq!(
                e.code,
                ErrorCode::Storage,
                "{name}: a {what} answering conflict"
            );
            assert_eq!(storage.snapshot(), before);
            storage.clear_faults();
            tried = true;
            seen.push(format!("{what} in {name}"));
            break;
        }
        assert!(tried, "no read-only operation makes a {what}");
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[test]
fn bad_input_and_bad_configuration_are_typed_errors() {
    let bad = Config {
        rp_id: String::new(),
        ..fast_config()
    };
    match common::loader().instantiate(MemoryStorage::new(), &bad) {
        Ok(Err(e)) => assert_eq!(e.code, ErrorCode::InvalidInput),
        Ok(Ok(_)) => panic!("an empty rp-id was accepted"),
        Err(trap) => panic!("the component trapped: {trap:?}"),
    }

    let storage = Arc::new(MemoryStorage::new());
    let mut tf = instance(&storage);
    let e = err(tf.call::<op::CreateAccount>(
        &ctx(),
        &CreateAccount {
            email: EMAIL.into(),
            password: "short".into(),
        },
    ));
    assert_eq!(e.code, ErrorCode::InvalidInput);

    let user = ok(tf.call::<op::CreateAccount>(
        &ctx(),
        &CreateAccount {
            email: EMAIL.into(),
            password: PASSWORD.into(),
        },
    ))
    .user_id;
    ok(tf.call::<op::StartPasskeyRegistration>(
        &ctx(),
        &StartRegistration {
            user_id: user.clone(),
            name: "Key".into(),
            password: PASSWORD.into(),
        },
    ));
    for credential in ["", "not json", "{}", "[1,2,3]", &"x".repeat(70 * 1024)] {
        let e = err(tf.call::<op::FinishPasskeyRegistration>(
            &ctx(),
            &FinishRegistration {
                user_id: user.clone(),
                credential: credential.into(),
            },
        ));
        assert!(
            matches!(e.code, ErrorCode::InvalidInput | ErrorCode::InvalidPasskey),
            "{credential:.20}: {:?} {}",
            e.code,
            e.message
        );
    }
    let e = err(tf.call::<op::Status>(
        &ctx(),
        &UserRef {
            user_id: "no-such-user".into(),
        },
    ));
    assert_eq!(e.code, ErrorCode::NotFound);
}

#[test]
fn the_component_imports_only_storage_and_wasi() {
    let loader = common::loader();
    let ty = loader.component().component_type();
    let imports: Vec<String> = ty
        .imports(loader.engine())
        .map(|(name, _)| name.to_owned())
        .collect();
    let exports: Vec<String> = ty
        .exports(loader.engine())
        .map(|(name, _)| name.to_owned())
        .collect();
    println!("imports: {imports:#?}\nexports: {exports:#?}");

    assert!(imports.iter().any(|i| i == "twofold:engine/storage@0.2.0"));
    for import in &imports {
        assert!(
            import == "twofold:engine/storage@0.2.0" || import.starts_with("wasi:"),
            "unexpected import {import}"
        );
    }
    // No file system, sockets or HTTP: the engine reaches the world only through storage.
    for denied in ["wasi:filesystem/", "wasi:sockets/", "wasi:http/"] {
        assert!(
            !imports.iter().any(|i| i.starts_with(denied)),
            "imports {denied}*"
        );
    }
    assert!(exports.iter().any(|e| e == "twofold:engine/engine@0.2.0"));
    assert!(exports.iter().any(|e| e == "twofold:engine/types@0.2.0"));
}
