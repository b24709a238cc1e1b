//! Passkeys and the two-factor state: rules P1-P7 and T1-T3.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use twofold_core::*;
use twofold_testkit::ORIGIN;
use twofold_testkit::authenticator::{Authenticator, CounterMode, Tweaks};

fn registration_with_password(
    w: &World,
    user: &str,
    name: &str,
    password: &str,
) -> Result<RegistrationStarted> {
    w.engine.start_passkey_registration(
        &w.host,
        &w.ctx,
        StartRegistration {
            user_id: user.into(),
            name: name.into(),
            password: password.into(),
        },
    )
}

#[test]
fn p1_creation_options_follow_the_rule() {
    let mut w = world();
    let user = w.signup("ada@example.com");
    w.register(&user, "Laptop");
    let options = w.start_registration(&user, "Phone");
    assert_eq!(
        options["rp"],
        json!({ "id": "localhost", "name": "twofold test" })
    );
    let handle = options["user"]["id"].as_str().unwrap();
    assert!(
        handle.len() >= 16 && !handle.contains("ada"),
        "a random handle, never the email"
    );
    assert_eq!(options["user"]["name"], "ada@example.com");
    let excluded: Vec<&str> = options["excludeCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(excluded.len(), 1);
    assert_eq!(
        options["authenticatorSelection"]["residentKey"],
        "preferred"
    );
    assert_eq!(
        options["authenticatorSelection"]["userVerification"],
        "preferred"
    );
    assert_eq!(options["attestation"], "none");
    let algs: Vec<i64> = options["pubKeyCredParams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["alg"].as_i64().unwrap())
        .collect();
    assert_eq!(
        algs,
        vec![-7, -257],
        "ES256 and RS256 only: registration cannot verify EdDSA (-8) yet"
    );
    assert!(
        options["challenge"].as_str().unwrap().len() >= 43,
        "32 random bytes"
    );
    assert!(
        options.to_string().find("null").is_none(),
        "no nulls for parseCreationOptionsFromJSON"
    );
    let again = w.start_registration(&user, "Phone");
    assert_eq!(
        again["user"]["id"], options["user"]["id"],
        "the handle is per user, stable"
    );
    assert_ne!(again["challenge"], options["challenge"]);
}

#[test]
fn p1_registration_needs_the_password_and_a_name_of_1_to_64_characters() {
    let w = world();
    let user = w.signup("ada@example.com");
    assert_eq!(
        code_of(registration_with_password(
            &w,
            &user,
            "Laptop",
            "wrong password"
        )),
        ErrorCode::InvalidCredentials
    );
    assert_eq!(
        code_of(registration_with_password(&w, &user, "   ", PASSWORD)),
        ErrorCode::InvalidInput
    );
    assert_eq!(
        code_of(registration_with_password(
            &w,
            &user,
            &"x".repeat(65),
            PASSWORD
        )),
        ErrorCode::InvalidInput
    );
    assert!(
        registration_with_password(&w, &user, &format!("  {}  ", "é".repeat(64)), PASSWORD).is_ok()
    );
    assert_eq!(
        code_of(registration_with_password(&w, "nobody", "Laptop", PASSWORD)),
        ErrorCode::NotFound
    );
}

#[test]
fn p2_the_ceremony_is_single_use_and_expires_after_five_minutes() {
    let mut w = world();
    let user = w.signup("ada@example.com");
    let options = w.start_registration(&user, "Laptop");
    let credential = w
        .auth
        .register(&options, ORIGIN, &Tweaks::default())
        .unwrap();
    w.finish_registration(&user, &credential).unwrap();
    assert_eq!(
        code_of(w.finish_registration(&user, &credential)),
        ErrorCode::Expired,
        "replayed"
    );

    let options = w.start_registration(&user, "Phone");
    let mut phone = Authenticator::new(5);
    let credential = phone
        .register(&options, ORIGIN, &Tweaks::default())
        .unwrap();
    w.host.clock.advance(Duration::from_secs(300));
    assert_eq!(
        code_of(w.finish_registration(&user, &credential)),
        ErrorCode::Expired
    );
}

#[test]
fn p2_attestation_must_match_challenge_origin_rp_id_and_user() {
    let w = world();
    let user = w.signup("ada@example.com");
    let bob = w.signup("bob@example.com");
    let cases: Vec<(&str, Tweaks)> = vec![
        (
            "wrong origin",
            Tweaks {
                origin: Some("https://evil.example".into()),
                ..Tweaks::default()
            },
        ),
        (
            "wrong rp id",
            Tweaks {
                rp_id: Some("evil.example".into()),
                ..Tweaks::default()
            },
        ),
        (
            "other challenge",
            Tweaks {
                challenge: Some(vec![1; 32]),
                ..Tweaks::default()
            },
        ),
    ];
    for (what, tweaks) in cases {
        let options = w.start_registration(&user, "Laptop");
        let credential = Authenticator::new(3)
            .register(&options, ORIGIN, &tweaks)
            .unwrap();
        assert_eq!(
            code_of(w.finish_registration(&user, &credential)),
            ErrorCode::InvalidPasskey,
            "{what}"
        );
    }
    // Bob's response finishes nothing of Ada's: her ceremony has another challenge.
    let _ = w.start_registration(&user, "Laptop");
    let bob_options = w.start_registration(&bob, "Key");
    let bobs = Authenticator::new(4)
        .register(&bob_options, ORIGIN, &Tweaks::default())
        .unwrap();
    assert_eq!(
        code_of(w.finish_registration(&user, &bobs)),
        ErrorCode::InvalidPasskey
    );
    assert_eq!(w.status(&user).passkeys.len(), 0);
}

#[test]
fn p2_a_credential_id_registered_to_anyone_is_refused() {
    let mut w = world();
    let ada = w.signup("ada@example.com");
    let bob = w.signup("bob@example.com");
    let options = w.start_registration(&ada, "Laptop");
    let credential = w
        .auth
        .register(&options, ORIGIN, &Tweaks::default())
        .unwrap();
    // Bob's ceremony is made to carry Ada's challenge, so only the id check can stop it.
    let ada_ceremony = w.host.storage.snapshot()[&format!("registration/{ada}")]
        .value
        .clone();
    w.start_registration(&bob, "Stolen");
    w.finish_registration(&ada, &credential).unwrap();
    w.host
        .storage
        .tamper(&format!("registration/{bob}"), ada_ceremony);
    let refused = w.finish_registration(&bob, &credential).unwrap_err();
    assert_eq!(refused.code(), ErrorCode::AlreadyExists);
    assert_eq!(w.status(&bob).passkeys.len(), 0);
}

#[test]
fn p3_the_first_passkey_enables_2fa_and_returns_codes_in_that_answer_only() {
    let mut w = world();
    let user = w.signup("ada@example.com");
    let first = w.register(&user, "Laptop");
    assert!(first.two_factor_enabled);
    assert_eq!(first.backup_codes.as_ref().map(Vec::len), Some(10));
    assert_eq!(first.backup_codes_remaining, 10);
    let (second, _) = w.register_other(&user, "Phone", 77);
    assert!(second.two_factor_enabled);
    assert_eq!(second.backup_codes, None, "no new set for a second passkey");
    assert_eq!(second.backup_codes_remaining, 10);
}

#[test]
fn p3_a_new_passkey_leaves_2fa_off_when_the_user_turned_it_off() {
    let mut w = world();
    let (user, _) = w.user_with_2fa("ada@example.com");
    w.engine
        .disable_two_factor(&w.host, &w.ctx, w.confirm(&user))
        .unwrap();
    let (second, _) = w.register_other(&user, "Phone", 77);
    assert!(!second.two_factor_enabled);
    assert_eq!(second.backup_codes, None);
    assert_eq!(second.backup_codes_remaining, 0);
}

#[test]
fn p4_passkeys_can_be_listed_renamed_and_removed_with_the_password() {
    let mut w = world();
    let (user, _) = w.user_with_2fa("ada@example.com");
    w.host.clock.advance(Duration::from_secs(1));
    w.register_other(&user, "Phone", 77);
    let list = w
        .engine
        .list_passkeys(
            &w.host,
            &w.ctx,
            UserRef {
                user_id: user.clone(),
            },
        )
        .unwrap();
    assert_eq!(
        list.passkeys
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["Laptop", "Phone"]
    );
    let laptop = &list.passkeys[0];
    assert_eq!(laptop.transports, ["internal"]);
    assert_eq!(laptop.last_used_at, None);
    assert!(!laptop.backup_eligible && !laptop.backed_up);

    let renamed = w
        .engine
        .rename_passkey(
            &w.host,
            &w.ctx,
            RenamePasskey {
                user_id: user.clone(),
                passkey_id: laptop.id.clone(),
                name: " Work laptop ".into(),
            },
        )
        .unwrap();
    assert_eq!(renamed.name, "Work laptop");
    let rename_unknown = w.engine.rename_passkey(
        &w.host,
        &w.ctx,
        RenamePasskey {
            user_id: user.clone(),
            passkey_id: "nope".into(),
            name: "x".into(),
        },
    );
    assert_eq!(code_of(rename_unknown), ErrorCode::NotFound);
    let rename_empty = w.engine.rename_passkey(
        &w.host,
        &w.ctx,
        RenamePasskey {
            user_id: user.clone(),
            passkey_id: laptop.id.clone(),
            name: "".into(),
        },
    );
    assert_eq!(code_of(rename_empty), ErrorCode::InvalidInput);

    let remove = |password: &str, id: &str| {
        w.engine.remove_passkey(
            &w.host,
            &w.ctx,
            RemovePasskey {
                user_id: user.clone(),
                passkey_id: id.into(),
                password: password.into(),
            },
        )
    };
    assert_eq!(
        code_of(remove("wrong password", &laptop.id)),
        ErrorCode::InvalidCredentials
    );
    assert_eq!(code_of(remove(PASSWORD, "unknown")), ErrorCode::NotFound);
    let status = remove(PASSWORD, &laptop.id).unwrap();
    assert_eq!(status.passkeys.len(), 1);
    assert!(status.two_factor_enabled, "one passkey is left");
    assert_eq!(status.backup_codes_remaining, 10);
}

#[test]
fn p5_removing_the_last_passkey_disables_2fa_and_voids_every_backup_code() {
    let mut w = world();
    let (user, codes) = w.user_with_2fa("ada@example.com");
    let id = w.status(&user).passkeys[0].id.clone();
    let status = w
        .engine
        .remove_passkey(
            &w.host,
            &w.ctx,
            RemovePasskey {
                user_id: user.clone(),
                passkey_id: id,
                password: PASSWORD.into(),
            },
        )
        .unwrap();
    assert!(!status.two_factor_enabled);
    assert_eq!(status.backup_codes_remaining, 0);
    assert!(matches!(
        w.sign_in("ada@example.com", PASSWORD, false).unwrap(),
        SignInOutcome::SignedIn(_)
    ));
    // Turning 2FA back on with a new passkey gives a new set; the old codes stay void.
    let again = w.register(&user, "New laptop");
    let pending = w.pending("ada@example.com");
    assert_eq!(
        code_of(w.code_step(&pending.pending_token, &codes[0])),
        ErrorCode::InvalidBackupCode
    );
    assert!(
        w.code_step(&pending.pending_token, &again.backup_codes.unwrap()[0])
            .is_ok()
    );
}

#[test]
fn p6_a_successful_assertion_updates_counter_and_last_use_and_a_regression_is_refused_and_audited()
{
    let mut w = world();
    let (user, _) = w.user_with_2fa("ada@example.com");
    let clone = w.auth.clone();
    for expected in 1..=2u64 {
        let pending = w.pending("ada@example.com");
        let assertion = w.assertion(&pending, &Tweaks::default());
        w.passkey_step(&pending.pending_token, &assertion).unwrap();
        let last = w
            .events(&user)
            .into_iter()
            .find(|e| e.kind == EventKind::PasskeyOk)
            .unwrap();
        assert_eq!(details(&last)["counter"], expected);
    }
    assert_eq!(
        w.status(&user).passkeys[0].last_used_at,
        Some(w.host.clock.now_ms())
    );
    // A clone of the authenticator replays counter 1: refused and audited.
    let mut clone = clone;
    let pending = w.pending("ada@example.com");
    let cloned = clone
        .authenticate(&request_options(&pending), ORIGIN, &Tweaks::default())
        .unwrap();
    let refused = w.passkey_step(&pending.pending_token, &cloned).unwrap_err();
    assert_eq!(refused.code(), ErrorCode::InvalidPasskey);
    let failed = w
        .events(&user)
        .into_iter()
        .find(|e| e.kind == EventKind::PasskeyFailed)
        .unwrap();
    assert_eq!(details(&failed)["reason"], "possible_cloned_authenticator");
}

#[test]
fn p7_synced_passkeys_with_a_zero_counter_and_changing_backup_flags_keep_working() {
    let mut w = world();
    w.auth = Authenticator::new(21).counter_mode(CounterMode::AlwaysZero);
    let (user, _) = w.user_with_2fa("ada@example.com");
    for (eligible, backed_up) in [
        (false, false),
        (true, false),
        (true, true),
        (true, true),
        (false, false),
    ] {
        let pending = w.pending("ada@example.com");
        let tweaks = Tweaks {
            backup_eligible: Some(eligible),
            backup_state: Some(backed_up),
            ..Tweaks::default()
        };
        let assertion = w.assertion(&pending, &tweaks);
        w.passkey_step(&pending.pending_token, &assertion).unwrap();
        let passkey = &w.status(&user).passkeys[0];
        assert_eq!(
            (passkey.backup_eligible, passkey.backed_up),
            (eligible, backed_up),
            "new flags are stored"
        );
    }
}

#[test]
fn p7_request_options_need_no_round_trip_between_click_and_prompt() {
    // The options come whole from step one: the page can hold them and call
    // navigator.credentials.get straight from the click (Safari's user-gesture rule).
    let mut w = world();
    w.user_with_2fa("ada@example.com");
    let pending = w.pending("ada@example.com");
    for field in [
        "challenge",
        "rpId",
        "allowCredentials",
        "userVerification",
        "timeout",
    ] {
        assert!(request_options(&pending).get(field).is_some(), "{field}");
    }
    assert!(!pending.options.to_string().contains("null"));
}

#[test]
fn t1_enabling_needs_the_password_and_a_passkey_and_is_refused_when_on() {
    let mut w = world();
    let user = w.signup("ada@example.com");
    assert_eq!(
        code_of(
            w.engine
                .enable_two_factor(&w.host, &w.ctx, w.confirm(&user))
        ),
        ErrorCode::NoPasskey
    );
    w.register(&user, "Laptop");
    assert_eq!(
        code_of(
            w.engine
                .enable_two_factor(&w.host, &w.ctx, w.confirm(&user))
        ),
        ErrorCode::AlreadyEnabled
    );
    w.engine
        .disable_two_factor(&w.host, &w.ctx, w.confirm(&user))
        .unwrap();
    let wrong = PasswordConfirmed {
        user_id: user.clone(),
        password: "wrong password".into(),
    };
    assert_eq!(
        code_of(w.engine.enable_two_factor(&w.host, &w.ctx, wrong)),
        ErrorCode::InvalidCredentials
    );
    let codes = w
        .engine
        .enable_two_factor(&w.host, &w.ctx, w.confirm(&user))
        .unwrap();
    assert_eq!(codes.codes.len(), 10);
    assert!(w.status(&user).two_factor_enabled);
}

#[test]
fn t2_disabling_needs_the_password_keeps_passkeys_and_voids_codes() {
    let mut w = world();
    let (user, codes) = w.user_with_2fa("ada@example.com");
    let wrong = PasswordConfirmed {
        user_id: user.clone(),
        password: "wrong password".into(),
    };
    assert_eq!(
        code_of(w.engine.disable_two_factor(&w.host, &w.ctx, wrong)),
        ErrorCode::InvalidCredentials
    );
    let status = w
        .engine
        .disable_two_factor(&w.host, &w.ctx, w.confirm(&user))
        .unwrap();
    assert!(!status.two_factor_enabled);
    assert_eq!(status.passkeys.len(), 1);
    assert_eq!(status.backup_codes_remaining, 0);
    assert_eq!(
        code_of(
            w.engine
                .disable_two_factor(&w.host, &w.ctx, w.confirm(&user))
        ),
        ErrorCode::NotEnabled
    );
    let fresh = w
        .engine
        .enable_two_factor(&w.host, &w.ctx, w.confirm(&user))
        .unwrap();
    let pending = w.pending("ada@example.com");
    assert_eq!(
        code_of(w.code_step(&pending.pending_token, &codes[0])),
        ErrorCode::InvalidBackupCode
    );
    assert!(w.code_step(&pending.pending_token, &fresh.codes[0]).is_ok());
}

#[test]
fn t3_status_answers_state_passkeys_and_codes_left() {
    let mut w = world();
    let user = w.signup("ada@example.com");
    let before = w.status(&user);
    assert_eq!(
        (
            before.two_factor_enabled,
            before.passkeys.len(),
            before.backup_codes_remaining
        ),
        (false, 0, 0)
    );
    w.register(&user, "Laptop");
    let after = w.status(&user);
    assert_eq!(
        (
            after.two_factor_enabled,
            after.passkeys.len(),
            after.backup_codes_remaining
        ),
        (true, 1, 10)
    );
    assert_eq!(after.email, "ada@example.com");
    assert_eq!(
        code_of(w.engine.status(
            &w.host,
            &w.ctx,
            UserRef {
                user_id: "missing".into()
            }
        )),
        ErrorCode::NotFound
    );
}

#[test]
fn p2_a_credential_id_over_1023_bytes_is_refused() {
    let mut w = world();
    let user = w.signup("ada@example.com");
    for (len, ok) in [(1024, false), (1023, true)] {
        let options = w.start_registration(&user, "Key");
        let credential = w
            .auth
            .register(
                &options,
                ORIGIN,
                &Tweaks {
                    credential_id_len: Some(len),
                    ..Tweaks::default()
                },
            )
            .unwrap();
        let result = w.finish_registration(&user, &credential);
        if ok {
            result.unwrap();
        } else {
            assert_eq!(code_of(result), ErrorCode::InvalidPasskey);
        }
    }
}

#[test]
fn p2_a_user_has_at_most_the_configured_number_of_passkeys_and_pending_sign_ins_stay_small() {
    let mut w = world_with(Config {
        max_passkeys: Some(5),
        ..twofold_testkit::fast_config()
    });
    let user = w.signup("ada@example.com");
    for i in 0..5 {
        let options = w.start_registration(&user, &format!("Key {i}"));
        let mut other = Authenticator::new(100 + i);
        let device = if i == 0 { &mut w.auth } else { &mut other };
        let credential = device
            .register(
                &options,
                ORIGIN,
                &Tweaks {
                    credential_id_len: Some(1023),
                    ..Tweaks::default()
                },
            )
            .unwrap();
        w.finish_registration(&user, &credential).unwrap();
    }
    let sixth = w.engine.start_passkey_registration(
        &w.host,
        &w.ctx,
        StartRegistration {
            user_id: user.clone(),
            name: "One too many".into(),
            password: PASSWORD.into(),
        },
    );
    let refused = sixth.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::InvalidInput);
    assert!(
        refused.to_string().contains("at most 5 passkeys"),
        "{refused}"
    );
    // Every pending sign-in copied all credentials before; now it keeps none of them.
    let pending = w.pending("ada@example.com");
    assert_eq!(
        request_options(&pending)["allowCredentials"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let largest = w
        .host
        .storage
        .snapshot()
        .iter()
        .filter(|(k, _)| k.starts_with("pending/"))
        .map(|(_, r)| r.value.len())
        .max()
        .unwrap();
    assert!(largest < 2048, "a pending document is {largest} bytes");
    let assertion = w.assertion(&pending, &Tweaks::default());
    assert!(w.passkey_step(&pending.pending_token, &assertion).is_ok());
}

#[test]
fn p7_a_backup_eligible_flag_that_changes_is_accepted_stored_and_audited() {
    let mut w = world();
    let (user, _) = w.user_with_2fa("ada@example.com");
    let pending = w.pending("ada@example.com");
    let assertion = w.assertion(
        &pending,
        &Tweaks {
            backup_eligible: Some(true),
            backup_state: Some(true),
            ..Tweaks::default()
        },
    );
    w.passkey_step(&pending.pending_token, &assertion).unwrap();
    assert!(w.status(&user).passkeys[0].backup_eligible);
    let ok = w
        .events(&user)
        .into_iter()
        .find(|e| e.kind == EventKind::PasskeyOk)
        .unwrap();
    assert_eq!(
        details(&ok)["backup_eligible_changed"],
        serde_json::json!({"from": false, "to": true})
    );
}

#[test]
fn p1_a_passkey_name_with_invisible_or_bidi_characters_is_refused() {
    let w = world();
    let user = w.signup("ada@example.com");
    for name in ["Lap\u{200b}top", "\u{202e}potpaL", "Key\u{0007}"] {
        let r = w.engine.start_passkey_registration(
            &w.host,
            &w.ctx,
            StartRegistration {
                user_id: user.clone(),
                name: name.into(),
                password: PASSWORD.into(),
            },
        );
        assert_eq!(code_of(r), ErrorCode::InvalidInput, "{name:?}");
    }
}
