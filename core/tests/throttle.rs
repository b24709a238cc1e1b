//! Throttling without lockout: rule S6 (with A3).

mod common;

use std::time::Duration;

use common::*;
use twofold_core::*;
use twofold_testkit::authenticator::Tweaks;

const WRONG: &str = "wrong password";

fn signed_in(outcome: SignInOutcome) -> SignedIn {
    match outcome {
        SignInOutcome::SignedIn(s) => s,
        other => panic!("expected signed in, got {other:?}"),
    }
}

#[test]
fn s6_five_failures_then_a_wait_that_doubles_from_one_second_to_fifteen_minutes() {
    let w = world();
    w.signup("ada@example.com");
    for _ in 0..5 {
        assert_eq!(
            code_of(w.sign_in("ada@example.com", WRONG, false)),
            ErrorCode::InvalidCredentials
        );
    }
    let mut waits = Vec::new();
    for _ in 0..14 {
        let refused = w.sign_in("ada@example.com", PASSWORD, false).unwrap_err();
        assert_eq!(refused.code(), ErrorCode::RateLimited);
        let wait = refused.retry_after_secs().unwrap();
        waits.push(wait);
        w.host.clock.advance(Duration::from_secs(wait));
        assert_eq!(
            code_of(w.sign_in("ada@example.com", WRONG, false)),
            ErrorCode::InvalidCredentials
        );
    }
    assert_eq!(
        waits,
        [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900, 900]
    );
    // A success resets the pair: five more free failures.
    w.host.clock.advance(Duration::from_secs(900));
    w.sign_in("ada@example.com", PASSWORD, false).unwrap();
    for _ in 0..5 {
        assert_eq!(
            code_of(w.sign_in("ada@example.com", WRONG, false)),
            ErrorCode::InvalidCredentials
        );
    }
    assert_eq!(
        code_of(w.sign_in("ada@example.com", WRONG, false)),
        ErrorCode::RateLimited
    );
}

#[test]
fn s6_a_refused_attempt_costs_no_slow_hash_and_does_not_reveal_the_password() {
    let w = world();
    w.signup("ada@example.com");
    for _ in 0..5 {
        let _ = w.sign_in("ada@example.com", WRONG, false);
    }
    let hashes = w.engine.slow_hash_count();
    let before = w.host.storage.snapshot();
    let right = w.sign_in("ada@example.com", PASSWORD, false).unwrap_err();
    let wrong = w.sign_in("ada@example.com", WRONG, false).unwrap_err();
    assert_eq!(right, wrong);
    assert_eq!(w.engine.slow_hash_count(), hashes, "not even checked");
    assert_eq!(w.host.storage.snapshot(), before, "and nothing written");
}

#[test]
fn s6_other_clients_are_not_slowed_by_one_clients_failures() {
    let w = world();
    w.signup("ada@example.com");
    let attacker = client("203.0.113.9", None);
    for _ in 0..5 {
        let _ = w.sign_in_as(&attacker, "ada@example.com", WRONG, false);
    }
    assert_eq!(
        code_of(w.sign_in_as(&attacker, "ada@example.com", PASSWORD, false)),
        ErrorCode::RateLimited
    );
    let owner = client("198.51.100.20", None);
    assert!(
        w.sign_in_as(&owner, "ada@example.com", PASSWORD, false)
            .is_ok()
    );
}

#[test]
fn s6_two_hundred_failures_from_many_clients_do_not_lock_out_the_owners_device() {
    let mut w = world();
    let (user, _) = w.user_with_2fa("ada@example.com");
    // The owner signs in once from their laptop and keeps the device token.
    let laptop = client("198.51.100.20", None);
    let pending = match w
        .sign_in_as(&laptop, "ada@example.com", PASSWORD, true)
        .unwrap()
    {
        SignInOutcome::SecondFactorRequired(p) => p,
        other => panic!("{other:?}"),
    };
    let assertion = w.assertion(&pending, &Tweaks::default());
    let done = w
        .engine
        .sign_in_with_passkey(
            &w.host,
            &laptop,
            PasskeySignIn {
                pending_token: pending.pending_token,
                credential: assertion.to_string(),
            },
        )
        .unwrap();
    let token = done.device_token;
    assert!(token.starts_with(&format!("{user}.")) && token.len() == user.len() + 44);
    assert!(
        !w.storage_text().contains(&token),
        "the device token is stored only as a hash"
    );
    // 200 wrong passwords from 40 client ids.
    let mut refused = 0;
    for i in 0..200 {
        let attacker = client(&format!("203.0.113.{}", i % 40), None);
        match w.sign_in_as(&attacker, "ada@example.com", WRONG, false) {
            Err(e) if e.code() == ErrorCode::RateLimited => refused += 1,
            Err(e) => assert_eq!(e.code(), ErrorCode::InvalidCredentials),
            Ok(o) => panic!("{o:?}"),
        }
        w.host.clock.advance(Duration::from_millis(100));
    }
    assert!(
        refused >= 100,
        "past the ceiling, clients are refused: {refused}"
    );
    // A new client with the right password is refused: the account-wide ceiling.
    let stranger = client("192.0.2.77", None);
    let answer = w.sign_in_as(&stranger, "ada@example.com", PASSWORD, false);
    assert_eq!(code_of(answer), ErrorCode::RateLimited);
    // The owner's device token passes, from any address, and the password leads to the
    // second factor as always.
    let anywhere = client("192.0.2.78", Some(&token));
    let pending = match w
        .sign_in_as(&anywhere, "ada@example.com", PASSWORD, true)
        .unwrap()
    {
        SignInOutcome::SecondFactorRequired(p) => p,
        other => panic!("{other:?}"),
    };
    let assertion = w.assertion(&pending, &Tweaks::default());
    let done = w
        .engine
        .sign_in_with_passkey(
            &w.host,
            &anywhere,
            PasskeySignIn {
                pending_token: pending.pending_token,
                credential: assertion.to_string(),
            },
        )
        .unwrap();
    assert_ne!(
        done.device_token, token,
        "a fresh token replaces the old one"
    );
    // The success resets the ceiling for everyone.
    assert!(
        w.sign_in_as(&stranger, "ada@example.com", PASSWORD, false)
            .is_ok()
    );
    // The old token was retired: it no longer passes a full ceiling; the new one does.
    fill_ceiling(&w, "ada@example.com", 60);
    let old = client("192.0.2.79", Some(&token));
    assert_eq!(
        code_of(w.sign_in_as(&old, "ada@example.com", PASSWORD, false)),
        ErrorCode::RateLimited
    );
    let new = client("192.0.2.79", Some(&done.device_token));
    assert!(
        w.sign_in_as(&new, "ada@example.com", PASSWORD, false)
            .is_ok()
    );
}

/// 100 wrong passwords on `email`, five from each of 20 clients of network `net`.
fn fill_ceiling(w: &World, email: &str, net: u32) {
    for i in 0..20 {
        let c = client(&format!("10.{net}.0.{i}"), None);
        for _ in 0..5 {
            assert_eq!(
                code_of(w.sign_in_as(&c, email, WRONG, false)),
                ErrorCode::InvalidCredentials
            );
        }
    }
}

#[test]
fn s6_a_device_token_only_counts_for_its_own_account_and_until_it_expires() {
    let w = world();
    w.signup("ada@example.com");
    w.signup("bob@example.com");
    let bob_token = signed_in(w.sign_in("bob@example.com", PASSWORD, false).unwrap()).device_token;
    let ada_token = signed_in(w.sign_in("ada@example.com", PASSWORD, false).unwrap()).device_token;
    let with = |token: &str| client("192.0.2.1", Some(token));
    fill_ceiling(&w, "ada@example.com", 1);
    for other in [
        bob_token.as_str(),
        "garbage",
        "x.yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy",
    ] {
        assert_eq!(
            code_of(w.sign_in_as(&with(other), "ada@example.com", PASSWORD, false)),
            ErrorCode::RateLimited,
            "{other} is not ada's token"
        );
    }
    let fresh = signed_in(
        w.sign_in_as(&with(&ada_token), "ada@example.com", PASSWORD, false)
            .unwrap(),
    )
    .device_token;
    // Valid until its 90 days are over.
    w.host.clock.advance(Duration::from_secs(90 * 86_400 - 60));
    fill_ceiling(&w, "ada@example.com", 2);
    let fresh = signed_in(
        w.sign_in_as(&with(&fresh), "ada@example.com", PASSWORD, false)
            .unwrap(),
    )
    .device_token;
    w.host.clock.advance(Duration::from_secs(90 * 86_400));
    fill_ceiling(&w, "ada@example.com", 3);
    assert_eq!(
        code_of(w.sign_in_as(&with(&fresh), "ada@example.com", PASSWORD, false)),
        ErrorCode::RateLimited,
        "expired"
    );
}

#[test]
fn s6_a3_unknown_and_known_emails_give_identical_answers_for_120_attempts() {
    let run = |email: &str| {
        let w = world();
        w.signup("ada@example.com");
        let mut answers = Vec::new();
        for i in 0..120u64 {
            let c = client(&format!("203.0.113.{}", i % 7), None);
            answers.push(answer_of(&w.sign_in_as(&c, email, WRONG, false)));
            w.host.clock.advance(Duration::from_millis(700 * (i % 5)));
        }
        (answers, w.engine.slow_hash_count())
    };
    let (known, known_hashes) = run("ada@example.com");
    let (unknown, unknown_hashes) = run("nobody@example.com");
    assert_eq!(known, unknown);
    assert_eq!(known_hashes, unknown_hashes, "the same slow hashes");
    assert!(known.iter().any(|(c, _)| c == "rate_limited"));
    assert!(known.iter().any(|(c, _)| c == "invalid_credentials"));
}

#[test]
fn s6_a3_an_unknown_email_writes_like_a_wrong_password() {
    let w = world();
    w.signup("ada@example.com");
    let commits = |email: &str| {
        let before = w.host.storage.call_log().len();
        let _ = w.sign_in(email, WRONG, false);
        w.host.storage.call_log()[before..]
            .iter()
            .filter(|c| **c == twofold_testkit::Call::Commit)
            .count()
    };
    assert_eq!(commits("ada@example.com"), 1);
    assert_eq!(commits("nobody@example.com"), 1);
}

#[test]
fn s6_one_client_failing_across_many_emails_is_refused_for_the_rest_of_the_hour() {
    let w = world();
    w.signup("ada@example.com");
    let stuffer = client("203.0.113.66", None);
    for i in 0..50 {
        assert_eq!(
            code_of(w.sign_in_as(&stuffer, &format!("user{i}@example.com"), WRONG, false)),
            ErrorCode::InvalidCredentials
        );
        w.host.clock.advance(Duration::from_secs(10));
    }
    let refused = w
        .sign_in_as(&stuffer, "ada@example.com", PASSWORD, false)
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::RateLimited);
    assert_eq!(refused.retry_after_secs(), Some(3600 - 500));
    assert!(
        w.sign_in("ada@example.com", PASSWORD, false).is_ok(),
        "other clients are not affected"
    );
    w.host.clock.advance(Duration::from_secs(3600 - 500));
    assert!(
        w.sign_in_as(&stuffer, "ada@example.com", PASSWORD, false)
            .is_ok()
    );
}

#[test]
fn s6_account_creation_is_limited_per_client() {
    let w = world();
    let create = |ctx: &Context, email: &str| {
        w.engine.create_account(
            &w.host,
            ctx,
            CreateAccount {
                email: email.into(),
                password: PASSWORD.into(),
            },
        )
    };
    let bot = client("203.0.113.5", None);
    for i in 0..20 {
        create(&bot, &format!("bot{i}@example.com")).unwrap();
    }
    let refused = create(&bot, "bot20@example.com").unwrap_err();
    assert_eq!(refused.code(), ErrorCode::RateLimited);
    assert!(create(&client("198.51.100.1", None), "human@example.com").is_ok());
    w.host.clock.advance(Duration::from_secs(3600));
    assert!(create(&bot, "bot20@example.com").is_ok());
}

#[test]
fn s6_second_factor_failures_count_and_the_password_alone_is_no_success() {
    let mut w = world();
    let (_, codes) = w.user_with_2fa("ada@example.com");
    for _ in 0..4 {
        let _ = w.sign_in("ada@example.com", WRONG, false);
    }
    // The right password with 2FA on does not reset the count...
    let pending = w.pending("ada@example.com");
    // ...so the first wrong code is the fifth failure and starts the wait.
    assert_eq!(
        code_of(w.code_step(&pending.pending_token, "2222-2222-2222")),
        ErrorCode::InvalidBackupCode
    );
    assert_eq!(
        code_of(w.code_step(&pending.pending_token, &codes[0])),
        ErrorCode::RateLimited
    );
    w.host.clock.advance(Duration::from_secs(1));
    // A completed sign-in resets it.
    w.code_step(&pending.pending_token, &codes[0]).unwrap();
    for _ in 0..5 {
        assert_eq!(
            code_of(w.sign_in("ada@example.com", WRONG, false)),
            ErrorCode::InvalidCredentials
        );
    }
}

#[test]
fn s6_settings_password_checks_are_throttled_too() {
    let w = world();
    let user = w.signup("ada@example.com");
    let disable = |password: &str| {
        w.engine.start_passkey_registration(
            &w.host,
            &w.ctx,
            StartRegistration {
                user_id: user.clone(),
                name: "Key".into(),
                password: password.into(),
            },
        )
    };
    for _ in 0..5 {
        assert_eq!(code_of(disable(WRONG)), ErrorCode::InvalidCredentials);
    }
    assert_eq!(code_of(disable(PASSWORD)), ErrorCode::RateLimited);
}

#[test]
fn s6_throttling_records_of_unknown_emails_and_idle_clients_expire() {
    let w = world();
    let throttle_records = |w: &World| {
        w.host
            .storage
            .snapshot()
            .keys()
            .filter(|k| k.starts_with("throttle/"))
            .count()
    };
    for i in 0..100 {
        let c = client(&format!("10.0.{}.{}", i / 250, i % 250), None);
        let _ = w.sign_in_as(&c, &format!("nobody{i}@example.com"), WRONG, false);
    }
    assert_eq!(
        throttle_records(&w),
        300,
        "a pair, an email and a client each"
    );
    w.host.clock.advance(Duration::from_secs(2 * 86_400));
    let c = client("10.9.9.9", None);
    for i in 0..150 {
        let _ = w.sign_in_as(&c, &format!("late{}@example.com", i % 3), WRONG, false);
        w.host.clock.advance(Duration::from_secs(30));
    }
    let left = throttle_records(&w);
    assert!(
        left < 120,
        "expired records are swept as new failures are written: {left} left"
    );
}
