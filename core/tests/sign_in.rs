//! Accounts, passwords and sign-in: rules A1-A3 and S1-S6.

mod common;

use std::time::Duration;

use common::*;
use twofold_core::*;
use twofold_testkit::authenticator::Tweaks;

#[test]
fn a1_email_is_trimmed_and_compared_case_insensitively() {
    let w = world();
    let created = w
        .engine
        .create_account(
            &w.host,
            &w.ctx,
            CreateAccount {
                email: "  Ada@Example.com ".into(),
                password: PASSWORD.into(),
            },
        )
        .unwrap();
    assert_eq!(created.email, "Ada@Example.com");
    let again = w.engine.create_account(
        &w.host,
        &w.ctx,
        CreateAccount {
            email: "ada@EXAMPLE.com".into(),
            password: PASSWORD.into(),
        },
    );
    assert_eq!(code_of(again), ErrorCode::AlreadyExists);
    assert!(matches!(
        w.sign_in("ADA@example.COM", PASSWORD, false).unwrap(),
        SignInOutcome::SignedIn(_)
    ));
}

#[test]
fn a1_password_is_8_to_1024_bytes_without_composition_rules() {
    let w = world();
    let create = |email: &str, password: String| {
        w.engine.create_account(
            &w.host,
            &w.ctx,
            CreateAccount {
                email: email.into(),
                password,
            },
        )
    };
    assert_eq!(
        code_of(create("a@x.io", "1234567".into())),
        ErrorCode::InvalidInput
    );
    assert!(
        create("b@x.io", "aaaaaaaa".into()).is_ok(),
        "no composition rules"
    );
    assert!(
        create("c@x.io", "é".repeat(512)).is_ok(),
        "1024 bytes of UTF-8"
    );
    assert_eq!(
        code_of(create("d@x.io", "a".repeat(1025))),
        ErrorCode::InvalidInput
    );
    assert_eq!(
        code_of(create("not-an-email", PASSWORD.into())),
        ErrorCode::InvalidInput
    );
}

#[test]
fn a2_passwords_are_stored_only_as_argon2id_phc_with_owasp_defaults() {
    let w = world_with(Config::new(
        "localhost",
        "t",
        "http://localhost:8080",
        twofold_testkit::test_audit_key(),
    ));
    w.signup("ada@example.com");
    let text = w.storage_text();
    assert!(text.contains("$argon2id$v=19$m=19456,t=2,p=1$"), "{text}");
    assert!(
        !text.contains(PASSWORD),
        "the password is stored in plaintext"
    );
}

#[test]
fn a2_sign_in_rehashes_a_password_stored_with_older_parameters() {
    let mut w = world();
    w.signup("ada@example.com");
    let mut newer = twofold_testkit::fast_config();
    newer.password_hash = Some(Argon2Params {
        m_kib: 128,
        t: 2,
        p: 1,
    });
    w.engine = Engine::new(newer).unwrap();
    assert!(w.storage_text().contains("m=64,t=1,p=1"));
    w.sign_in("ada@example.com", PASSWORD, false).unwrap();
    let text = w.storage_text();
    assert!(text.contains("$argon2id$v=19$m=128,t=2,p=1$") && !text.contains("m=64,t=1,p=1"));
    assert!(matches!(
        w.sign_in("ada@example.com", PASSWORD, false).unwrap(),
        SignInOutcome::SignedIn(_)
    ));
}

#[test]
fn a3_unknown_email_and_wrong_password_get_the_same_error_and_cost() {
    let w = world();
    w.signup("ada@example.com");
    let before = w.engine.slow_hash_count();
    let unknown = w.sign_in("nobody@example.com", PASSWORD, false);
    let after_unknown = w.engine.slow_hash_count();
    let wrong = w.sign_in("ada@example.com", "wrong password", false);
    let after_wrong = w.engine.slow_hash_count();
    let (unknown, wrong) = (unknown.unwrap_err(), wrong.unwrap_err());
    assert_eq!(unknown.code(), ErrorCode::InvalidCredentials);
    assert_eq!(wrong.code(), ErrorCode::InvalidCredentials);
    assert_eq!(unknown.to_string(), wrong.to_string());
    assert_eq!(
        after_unknown - before,
        1,
        "an unknown email costs one slow hash"
    );
    assert_eq!(
        after_wrong - after_unknown,
        1,
        "a wrong password costs one slow hash"
    );
}

#[test]
fn s1_without_2fa_the_password_signs_in_and_remember_me_is_honoured() {
    let w = world();
    let user = w.signup("ada@example.com");
    for remember in [true, false] {
        match w.sign_in("ada@example.com", PASSWORD, remember).unwrap() {
            SignInOutcome::SignedIn(s) => {
                assert_eq!(s.user_id, user);
                assert_eq!(s.remember_me, remember);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn s2_with_2fa_step_one_returns_a_hashed_pending_token_and_request_options() {
    let mut w = world();
    let (_, _) = w.user_with_2fa("ada@example.com");
    let credential_ids: Vec<String> = w.auth.credential_ids().iter().map(|id| b64(id)).collect();
    let first = w.pending("ada@example.com");
    let second = w.pending("ada@example.com");
    assert!(
        first.pending_token.len() >= 22,
        "at least 128 bits, base64url"
    );
    assert_ne!(first.pending_token, second.pending_token);
    let first_options = request_options(&first);
    let allowed: Vec<&str> = first_options["allowCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(allowed, credential_ids);
    assert_ne!(
        request_options(&first)["challenge"],
        request_options(&second)["challenge"],
        "a fresh challenge each time"
    );
    assert_eq!(request_options(&first)["rpId"], "localhost");
    assert!(
        !w.storage_text().contains(&first.pending_token),
        "the token is stored only as a hash"
    );
}

#[test]
fn s3_passkey_sign_in_ignores_remember_me_and_consumes_the_token() {
    let mut w = world();
    let (user, _) = w.user_with_2fa("ada@example.com");
    let pending = w.pending("ada@example.com");
    let assertion = w.assertion(&pending, &Tweaks::default());
    let signed = w.passkey_step(&pending.pending_token, &assertion).unwrap();
    assert_eq!(signed.user_id, user);
    assert!(
        !signed.remember_me,
        "remember-me is ignored for 2FA sign-ins"
    );
    assert_eq!(
        code_of(w.passkey_step(&pending.pending_token, &assertion)),
        ErrorCode::Expired
    );
}

/// Each tampered assertion is refused as `invalid_passkey`, and the same token still works
/// with an honest one afterwards (fewer than five failures).
#[test]
fn s3_assertions_that_do_not_verify_are_refused() {
    let mut w = world();
    w.user_with_2fa("ada@example.com");
    let cases: Vec<(&str, Tweaks)> = vec![
        (
            "wrong origin",
            Tweaks {
                origin: Some("https://evil.example".into()),
                ..Tweaks::default()
            },
        ),
        (
            "wrong rp id hash",
            Tweaks {
                rp_id: Some("evil.example".into()),
                ..Tweaks::default()
            },
        ),
        (
            "bad signature",
            Tweaks {
                corrupt_signature: true,
                ..Tweaks::default()
            },
        ),
        (
            "tampered clientDataJSON",
            Tweaks {
                alter_client_data_after_signing: true,
                ..Tweaks::default()
            },
        ),
        (
            "other challenge",
            Tweaks {
                challenge: Some(vec![7; 32]),
                ..Tweaks::default()
            },
        ),
        (
            "wrong type",
            Tweaks {
                client_data_type: Some("webauthn.create".into()),
                ..Tweaks::default()
            },
        ),
        (
            "user not present",
            Tweaks {
                user_present: Some(false),
                ..Tweaks::default()
            },
        ),
    ];
    for (what, tweaks) in cases {
        let pending = w.pending("ada@example.com");
        let bad = w.assertion(&pending, &tweaks);
        assert_eq!(
            code_of(w.passkey_step(&pending.pending_token, &bad)),
            ErrorCode::InvalidPasskey,
            "{what}"
        );
        let good = w.assertion(&pending, &Tweaks::default());
        assert!(
            w.passkey_step(&pending.pending_token, &good).is_ok(),
            "{what}: honest retry"
        );
    }
}

#[test]
fn s3_user_verification_is_enforced_when_policy_requires_it() {
    let mut config = twofold_testkit::fast_config();
    config.user_verification = Some(UserVerification::Required);
    let mut w = world_with(config);
    w.user_with_2fa("ada@example.com");
    let pending = w.pending("ada@example.com");
    assert_eq!(request_options(&pending)["userVerification"], "required");
    let unverified = w.assertion(
        &pending,
        &Tweaks {
            user_verified: Some(false),
            ..Tweaks::default()
        },
    );
    assert_eq!(
        code_of(w.passkey_step(&pending.pending_token, &unverified)),
        ErrorCode::InvalidPasskey
    );
}

#[test]
fn s3_another_users_passkey_is_refused() {
    let mut w = world();
    w.user_with_2fa("ada@example.com");
    let mut other = twofold_testkit::authenticator::Authenticator::new(99);
    let bob = w.signup("bob@example.com");
    let options = w.start_registration(&bob, "Bob's key");
    let credential = other
        .register(&options, twofold_testkit::ORIGIN, &Tweaks::default())
        .unwrap();
    w.finish_registration(&bob, &credential).unwrap();
    let pending = w.pending("ada@example.com");
    let bob_id = other.credential_ids()[0].clone();
    let mut request = request_options(&pending);
    request["allowCredentials"] = serde_json::json!([{ "type": "public-key", "id": b64(&bob_id) }]);
    let assertion = other
        .authenticate(&request, twofold_testkit::ORIGIN, &Tweaks::default())
        .unwrap();
    assert_eq!(
        code_of(w.passkey_step(&pending.pending_token, &assertion)),
        ErrorCode::InvalidPasskey
    );
}

#[test]
fn s4_backup_code_signs_in_with_remember_me_false_and_says_what_is_left() {
    let mut w = world();
    let (user, codes) = w.user_with_2fa("ada@example.com");
    let pending = w.pending("ada@example.com");
    let signed = w.code_step(&pending.pending_token, &codes[0]).unwrap();
    assert_eq!(signed.user_id, user);
    assert!(!signed.remember_me);
    assert_eq!(signed.backup_codes_remaining, Some(9));
    assert_eq!(signed.backup_codes_running_low, Some(false));
    assert_eq!(
        code_of(w.code_step(&pending.pending_token, &codes[1])),
        ErrorCode::Expired,
        "token consumed"
    );
}

#[test]
fn s5_pending_token_is_void_after_five_failed_attempts() {
    let mut w = world();
    let (_, codes) = w.user_with_2fa("ada@example.com");
    let pending = w.pending("ada@example.com");
    for _ in 0..5 {
        assert_eq!(
            code_of(w.code_step(&pending.pending_token, "2222-2222-2222")),
            ErrorCode::InvalidBackupCode
        );
    }
    assert_eq!(
        code_of(w.code_step(&pending.pending_token, &codes[0])),
        ErrorCode::Expired,
        "sixth attempt"
    );
    let assertion = w.assertion(&pending, &Tweaks::default());
    assert_eq!(
        code_of(w.passkey_step(&pending.pending_token, &assertion)),
        ErrorCode::Expired
    );
}

#[test]
fn s5_pending_token_expires_after_five_minutes() {
    let mut w = world();
    w.user_with_2fa("ada@example.com");
    let pending = w.pending("ada@example.com");
    let assertion = w.assertion(&pending, &Tweaks::default());
    w.host.clock.advance(Duration::from_secs(300));
    assert_eq!(
        code_of(w.passkey_step(&pending.pending_token, &assertion)),
        ErrorCode::Expired
    );
    let fresh = w.pending("ada@example.com");
    w.host.clock.advance(Duration::from_secs(299));
    let assertion = w.assertion(&fresh, &Tweaks::default());
    assert!(
        w.passkey_step(&fresh.pending_token, &assertion).is_ok(),
        "valid until the fifth minute ends"
    );
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn s2_abandoned_pending_sign_ins_do_not_pile_up() {
    let mut w = world();
    w.user_with_2fa("ada@example.com");
    let pending_keys = |w: &World| {
        w.host
            .storage
            .snapshot()
            .keys()
            .filter(|k| k.starts_with("pending/"))
            .count()
    };
    let first = w.pending("ada@example.com");
    for _ in 0..20 {
        w.pending("ada@example.com");
    }
    assert_eq!(
        pending_keys(&w),
        16,
        "at most 16 live pending sign-ins per user"
    );
    let assertion = w.assertion(&first, &Tweaks::default());
    assert_eq!(
        code_of(w.passkey_step(&first.pending_token, &assertion)),
        ErrorCode::Expired,
        "the oldest was dropped"
    );
    w.host.clock.advance(Duration::from_secs(301));
    let fresh = w.pending("ada@example.com");
    assert_eq!(
        pending_keys(&w),
        1,
        "expired ones are swept at the next step one"
    );
    let assertion = w.assertion(&fresh, &Tweaks::default());
    assert!(w.passkey_step(&fresh.pending_token, &assertion).is_ok());
    assert_eq!(pending_keys(&w), 0);
    assert_eq!(
        code_of(w.passkey_step("garbage", &assertion)),
        ErrorCode::InvalidInput
    );
}

#[test]
fn s3_an_assertion_made_in_a_cross_origin_frame_is_refused_unless_its_top_origin_is_named() {
    let mut w = world();
    let (user, _) = w.user_with_2fa("ada@example.com");
    for tweaks in [
        Tweaks {
            cross_origin: true,
            top_origin: Some("https://evil.example".into()),
            ..Tweaks::default()
        },
        Tweaks {
            cross_origin: true,
            ..Tweaks::default()
        },
        Tweaks {
            top_origin: Some("https://evil.example".into()),
            ..Tweaks::default()
        },
    ] {
        let pending = w.pending("ada@example.com");
        let assertion = w.assertion(&pending, &tweaks);
        assert_eq!(
            code_of(w.passkey_step(&pending.pending_token, &assertion)),
            ErrorCode::InvalidPasskey
        );
        w.host.clock.advance(Duration::from_secs(2));
    }
    let failed = w.events(&user);
    assert!(
        failed
            .iter()
            .filter(|e| e.kind == EventKind::PasskeyFailed)
            .all(|e| details(e)["reason"] == "cross_origin")
    );
    // A framing origin the configuration names is allowed.
    let framed = Engine::new(Config {
        top_origins: vec!["https://portal.example".into()],
        ..twofold_testkit::fast_config()
    })
    .unwrap();
    w.engine = framed;
    let pending = w.pending("ada@example.com");
    let assertion = w.assertion(
        &pending,
        &Tweaks {
            cross_origin: true,
            top_origin: Some("https://portal.example".into()),
            ..Tweaks::default()
        },
    );
    assert!(w.passkey_step(&pending.pending_token, &assertion).is_ok());
}
