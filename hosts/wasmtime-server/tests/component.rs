//! Loads the built WASI component in wasmtime and drives it through its WIT interface: the
//! two-factor lifecycle, typed errors for failing storage and bad input, and the component's
//! imports.
//!
//! The component must be built first: `wasm-component/build.sh` (or set `TWOFOLD_COMPONENT`
//! to a built `.wasm`).

use std::sync::OnceLock;

use serde_json::Value;
use twofold_server::{ComponentEngine, Fault, Instance, MemoryStorage, wit};
use twofold_testkit::authenticator::{Authenticator, Tweaks};
use twofold_testkit::{ORIGIN, RP_ID};

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery staple";

/// The component, compiled once for every test of this binary.
fn loader() -> &'static ComponentEngine {
    static LOADER: OnceLock<ComponentEngine> = OnceLock::new();
    LOADER.get_or_init(|| {
        let path = twofold_server::default_component_path();
        assert!(
            path.exists(),
            "the component {} is missing: build it with `wasm-component/build.sh` \
             (or point TWOFOLD_COMPONENT at a built twofold_component.wasm)",
            path.display()
        );
        // Through the compiled-code cache beside the component: a debug build of wasmtime
        // takes over ten seconds to compile it.
        let options = twofold_server::LoadOptions {
            cache_dir: path.parent().map(std::path::PathBuf::from),
            call_timeout: None,
        };
        match ComponentEngine::load(&path, &options) {
            Ok((loader, _)) => loader,
            Err(e) => panic!("cannot load {}: {e:?}", path.display()),
        }
    })
}

/// SPEC defaults, with argon2 cheap enough for tests.
fn config() -> wit::Config {
    wit::Config {
        rp_id: RP_ID.into(),
        rp_name: "twofold test".into(),
        origins: vec![ORIGIN.into()],
        password_hash: Some(wit::Argon2Params {
            m_kib: 64,
            t: 1,
            p: 1,
        }),
        backup_code_hash: Some(wit::Argon2Params {
            m_kib: 32,
            t: 1,
            p: 1,
        }),
        ..twofold_server::default_config()
    }
}

fn instance(storage: &MemoryStorage) -> Instance {
    loader()
        .instantiate(storage.clone(), &config())
        .expect("no trap")
        .expect("a valid configuration")
}

fn ctx() -> wit::Context {
    wit::Context {
        ip: "203.0.113.7".into(),
        user_agent: "component-test".into(),
    }
}

/// The answer of a call that must succeed (and must not trap).
fn ok<T>(answer: wasmtime::Result<Result<T, wit::Error>>) -> T {
    match answer {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => panic!("unexpected error {:?}: {}", e.code, e.message),
        Err(trap) => panic!("the component trapped: {trap:?}"),
    }
}

/// The typed error of a call that must fail (and must not trap).
fn err<T: std::fmt::Debug>(answer: wasmtime::Result<Result<T, wit::Error>>) -> wit::Error {
    match answer {
        Ok(Err(e)) => e,
        Ok(Ok(value)) => panic!("expected an error, got {value:?}"),
        Err(trap) => panic!("the component trapped: {trap:?}"),
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("the component returns JSON text")
}

fn sign_in(instance: &mut Instance, remember_me: bool) -> wit::SignInOutcome {
    ok(instance.sign_in(
        &ctx(),
        &wit::SignIn {
            email: EMAIL.into(),
            password: PASSWORD.into(),
            remember_me,
        },
    ))
}

/// Step one of a sign-in that must ask for a second factor: the pending token and options.
fn second_factor_required(instance: &mut Instance) -> (String, Value) {
    match sign_in(instance, true) {
        wit::SignInOutcome::SecondFactorRequired(s) => (s.pending_token, json(&s.options)),
        other => panic!("expected second-factor-required, got {other:?}"),
    }
}

#[test]
fn lifecycle_account_passkey_backup_codes_and_removal() {
    let storage = MemoryStorage::new();
    let mut tf = instance(&storage);
    let mut authenticator = Authenticator::new(7);

    // An account; with 2FA off, step one signs in and honours remember-me.
    let account = ok(tf.create_account(
        &ctx(),
        &wit::CreateAccount {
            email: format!("  {}  ", EMAIL.to_uppercase()),
            password: PASSWORD.into(),
        },
    ));
    let user = account.user_id.clone();
    match sign_in(&mut tf, true) {
        wit::SignInOutcome::SignedIn(s) => {
            assert_eq!(s.user_id, user);
            assert!(s.remember_me);
        }
        other => panic!("2FA is off, yet: {other:?}"),
    }

    // The first passkey turns 2FA on and comes with ten backup codes.
    let started = ok(tf.start_passkey_registration(
        &ctx(),
        &wit::StartRegistration {
            user_id: user.clone(),
            name: "Laptop".into(),
            password: PASSWORD.into(),
        },
    ));
    let credential = authenticator
        .register(&json(&started.options), ORIGIN, &Tweaks::default())
        .expect("the authenticator accepts the creation options");
    let registered = ok(tf.finish_passkey_registration(
        &ctx(),
        &wit::FinishRegistration {
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

    let status = ok(tf.status(
        &ctx(),
        &wit::UserRef {
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
    let signed_in = ok(tf.sign_in_with_passkey(
        &ctx(),
        &wit::PasskeySignIn {
            pending_token: token.clone(),
            credential: assertion.to_string(),
        },
    ));
    assert_eq!(signed_in.user_id, user);
    assert!(!signed_in.remember_me);
    // The token was consumed.
    let replay = err(tf.sign_in_with_passkey(
        &ctx(),
        &wit::PasskeySignIn {
            pending_token: token,
            credential: assertion.to_string(),
        },
    ));
    assert_eq!(replay.code, wit::ErrorCode::Expired);

    // A backup-code sign-in consumes the code and says how many are left.
    let (token, _) = second_factor_required(&mut tf);
    let typed = codes[0].to_lowercase().replace('-', " ");
    let signed_in = ok(tf.sign_in_with_backup_code(
        &ctx(),
        &wit::BackupCodeSignIn {
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
    let reused = err(tf.sign_in_with_backup_code(
        &ctx(),
        &wit::BackupCodeSignIn {
            pending_token: token,
            code: codes[0].clone(),
        },
    ));
    assert_eq!(reused.code, wit::ErrorCode::InvalidBackupCode);
    assert_eq!(reused.retry_after_secs, None);

    // Removing the last passkey turns 2FA off and voids the codes.
    let after = ok(tf.remove_passkey(
        &ctx(),
        &wit::RemovePasskey {
            user_id: user.clone(),
            passkey_id,
            password: PASSWORD.into(),
        },
    ));
    assert!(!after.two_factor_enabled);
    assert!(after.passkeys.is_empty());
    assert_eq!(after.backup_codes_remaining, 0);
    match sign_in(&mut tf, true) {
        wit::SignInOutcome::SignedIn(s) => assert!(s.remember_me),
        other => panic!("2FA is off again, yet: {other:?}"),
    }

    // The audit trail came through typed, with JSON details, and its chain holds.
    let page = ok(tf.audit_events(
        &ctx(),
        &wit::AuditQuery {
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
        .find(|e| e.kind == wit::EventKind::TwoFactorDisabled)
        .expect("a two-factor-disabled event");
    assert!(disabled.notify);
    assert_eq!(json(&disabled.details)["reason"], "last_passkey_removed");
    assert!(page.events.iter().all(|e| e.ip == "203.0.113.7"));
    for kind in [
        wit::EventKind::AccountCreated,
        wit::EventKind::PasskeyRegistered,
        wit::EventKind::TwoFactorEnabled,
        wit::EventKind::PasskeyOk,
        wit::EventKind::BackupCodeOk,
        wit::EventKind::BackupCodeFailed,
        wit::EventKind::PasskeyRemoved,
    ] {
        assert!(
            page.events.iter().any(|e| e.kind == kind),
            "no {kind:?} event"
        );
    }
    let report = ok(tf.verify_audit_chain(&ctx(), &wit::UserRef { user_id: user }));
    assert!(report.intact, "{:?}", report.problems);
    assert_eq!(report.events_checked, page.events.len() as u64);
}

#[test]
fn a_failing_storage_call_is_a_typed_error_and_writes_nothing() {
    let storage = MemoryStorage::new();
    let mut tf = instance(&storage);
    let create = wit::CreateAccount {
        email: EMAIL.into(),
        password: PASSWORD.into(),
    };

    // Count the calls one account creation makes, on a copy.
    let probe = storage.fork();
    ok(instance(&probe).create_account(&ctx(), &create));
    let calls = probe.calls();
    assert!(calls >= 2, "a read and a commit at least");

    // Whichever call fails, the answer is `storage` with the host's message, nothing is
    // written, and the instance keeps working.
    for n in 1..=calls {
        storage.fail_nth_call(n, Fault::Failed(format!("disk unplugged at call {n}")));
        let e = err(tf.create_account(&ctx(), &create));
        assert_eq!(e.code, wit::ErrorCode::Storage, "call {n}: {}", e.message);
        assert!(e.message.contains("disk unplugged"), "{}", e.message);
        assert!(storage.snapshot().is_empty(), "call {n} left data behind");
        storage.clear_faults();
    }
    ok(tf.create_account(&ctx(), &create));

    // Commits that keep conflicting end in `conflict`, with nothing written.
    let before = storage.snapshot();
    storage.fail_every_commit(Some(Fault::Conflict));
    let e = err(tf.create_account(
        &ctx(),
        &wit::CreateAccount {
            email: "grace@example.com".into(),
            password: PASSWORD.into(),
        },
    ));
    assert_eq!(e.code, wit::ErrorCode::Conflict);
    assert_eq!(storage.snapshot(), before);
    storage.fail_every_commit(None);

    // A failing read during sign-in is typed too.
    storage.fail_nth_call(1, Fault::Failed("connection reset".into()));
    let e = err(tf.sign_in(
        &ctx(),
        &wit::SignIn {
            email: EMAIL.into(),
            password: PASSWORD.into(),
            remember_me: false,
        },
    ));
    assert_eq!(e.code, wit::ErrorCode::Storage);
    assert_eq!(storage.snapshot(), before);
}

#[test]
fn bad_input_and_bad_configuration_are_typed_errors() {
    let bad = wit::Config {
        rp_id: String::new(),
        ..config()
    };
    match loader().instantiate(MemoryStorage::new(), &bad) {
        Ok(Err(e)) => assert_eq!(e.code, wit::ErrorCode::InvalidInput),
        Ok(Ok(_)) => panic!("an empty rp-id was accepted"),
        Err(trap) => panic!("the component trapped: {trap:?}"),
    }

    let storage = MemoryStorage::new();
    let mut tf = instance(&storage);
    let e = err(tf.create_account(
        &ctx(),
        &wit::CreateAccount {
            email: EMAIL.into(),
            password: "short".into(),
        },
    ));
    assert_eq!(e.code, wit::ErrorCode::InvalidInput);

    let user = ok(tf.create_account(
        &ctx(),
        &wit::CreateAccount {
            email: EMAIL.into(),
            password: PASSWORD.into(),
        },
    ))
    .user_id;
    ok(tf.start_passkey_registration(
        &ctx(),
        &wit::StartRegistration {
            user_id: user.clone(),
            name: "Key".into(),
            password: PASSWORD.into(),
        },
    ));
    for credential in ["", "not json", "{}", "[1,2,3]", &"x".repeat(70 * 1024)] {
        let e = err(tf.finish_passkey_registration(
            &ctx(),
            &wit::FinishRegistration {
                user_id: user.clone(),
                credential: credential.into(),
            },
        ));
        assert!(
            matches!(
                e.code,
                wit::ErrorCode::InvalidInput | wit::ErrorCode::InvalidPasskey
            ),
            "{credential:.20}: {:?} {}",
            e.code,
            e.message
        );
    }
    let e = err(tf.status(
        &ctx(),
        &wit::UserRef {
            user_id: "no-such-user".into(),
        },
    ));
    assert_eq!(e.code, wit::ErrorCode::NotFound);
}

#[test]
fn the_component_imports_only_storage_and_wasi() {
    let loader = loader();
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

    assert!(imports.iter().any(|i| i == "twofold:engine/storage@0.1.0"));
    for import in &imports {
        assert!(
            import == "twofold:engine/storage@0.1.0" || import.starts_with("wasi:"),
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
    assert!(exports.iter().any(|e| e == "twofold:engine/engine@0.1.0"));
    assert!(exports.iter().any(|e| e == "twofold:engine/types@0.1.0"));
}
