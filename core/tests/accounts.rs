//! Accounts: email normalisation (A1), changing (A4) and resetting (A5) the password, and the
//! security epoch (A6).

mod common;

use common::*;
use twofold_core::*;

fn create(w: &World, email: &str) -> Result<AccountCreated> {
    w.engine.create_account(
        &w.host,
        &w.ctx,
        CreateAccount {
            email: email.into(),
            password: PASSWORD.into(),
        },
    )
}

fn change(w: &World, user: &str, current: &str, new: &str) -> Result<PasswordChanged> {
    w.engine.change_password(
        &w.host,
        &w.ctx,
        ChangePassword {
            user_id: user.into(),
            current_password: current.into(),
            new_password: new.into(),
        },
    )
}

fn reset(w: &World, email: &str, new: &str) -> Result<PasswordChanged> {
    w.engine.reset_password(
        &w.host,
        &w.ctx,
        ResetPassword {
            email: email.into(),
            new_password: new.into(),
        },
    )
}

#[test]
fn a1_nfc_and_nfd_forms_of_one_email_are_one_account_and_case_is_kept() {
    let w = world();
    let created = create(&w, "Jörg@Example.com").unwrap();
    assert_eq!(created.email, "Jörg@Example.com");
    assert_eq!(
        code_of(create(&w, "jo\u{308}rg@example.com")),
        ErrorCode::AlreadyExists
    );
    assert!(matches!(
        w.sign_in("JO\u{308}RG@EXAMPLE.COM", PASSWORD, false)
            .unwrap(),
        SignInOutcome::SignedIn(_)
    ));
    assert_eq!(w.status(&created.user_id).email, "Jörg@Example.com");
}

#[test]
fn a1_look_alike_and_invisible_characters_are_refused() {
    let w = world();
    for email in [
        "ada@example.com\u{200b}",
        "ada@exa\u{202e}mple.com",
        "a\u{feff}da@example.com",
        "ada@exam\u{0000}ple.com",
        "ada example@example.com",
        "ada@example@com",
        "adaexample.com",
    ] {
        assert_eq!(
            code_of(create(&w, email)),
            ErrorCode::InvalidInput,
            "{email:?}"
        );
        assert_eq!(
            code_of(w.sign_in(email, PASSWORD, false)),
            ErrorCode::InvalidInput,
            "{email:?}"
        );
    }
    assert!(w.host.storage.snapshot().is_empty(), "nothing written");
    let longest = format!("{}@example.com", "a".repeat(242));
    assert!(create(&w, &longest).is_ok());
    assert_eq!(
        code_of(create(&w, &format!("a{longest}"))),
        ErrorCode::InvalidInput,
        "255 bytes"
    );
}

#[test]
fn a4_changing_the_password_needs_the_current_one_and_grows_the_epoch() {
    let w = world();
    let user = w.signup("ada@example.com");
    let epoch = w.status(&user).security_epoch;
    assert_eq!(
        code_of(change(&w, &user, "not the password", "a new passphrase")),
        ErrorCode::InvalidCredentials
    );
    assert_eq!(
        code_of(change(&w, &user, PASSWORD, "short")),
        ErrorCode::InvalidInput,
        "the new one follows A1"
    );
    let changed = change(&w, &user, PASSWORD, "a new passphrase").unwrap();
    assert_eq!(changed.user_id, user);
    assert_eq!(changed.security_epoch, epoch + 1);
    assert_eq!(w.status(&user).security_epoch, epoch + 1);
    assert_eq!(
        code_of(w.sign_in("ada@example.com", PASSWORD, false)),
        ErrorCode::InvalidCredentials
    );
    assert!(
        w.sign_in("ada@example.com", "a new passphrase", false)
            .is_ok()
    );
    let events = w.events(&user);
    let event = events
        .iter()
        .find(|e| e.kind == EventKind::PasswordChanged)
        .unwrap();
    assert!(event.notify);
    assert!(!w.storage_text().contains("a new passphrase"));
}

#[test]
fn a4_a_password_change_voids_pending_sign_ins() {
    let mut w = world();
    let (user, codes) = w.user_with_2fa("ada@example.com");
    let pending = w.pending("ada@example.com");
    change(&w, &user, PASSWORD, "a new passphrase").unwrap();
    assert_eq!(
        code_of(w.code_step(&pending.pending_token, &codes[0])),
        ErrorCode::Expired,
        "started with the old password"
    );
}

#[test]
fn a5_a_reset_sets_a_new_password_and_leaves_2fa_on() {
    let mut w = world();
    let (user, codes) = w.user_with_2fa("ada@example.com");
    let epoch = w.status(&user).security_epoch;
    let reset = reset(&w, "ADA@example.com", "chosen after a reset link").unwrap();
    assert_eq!(reset.user_id, user);
    assert_eq!(reset.security_epoch, epoch + 1);
    let status = w.status(&user);
    assert!(status.two_factor_enabled, "a reset never touches 2FA");
    assert_eq!(status.backup_codes_remaining, 10);
    assert_eq!(
        code_of(w.sign_in("ada@example.com", PASSWORD, false)),
        ErrorCode::InvalidCredentials
    );
    match w
        .sign_in("ada@example.com", "chosen after a reset link", false)
        .unwrap()
    {
        SignInOutcome::SecondFactorRequired(p) => {
            w.code_step(&p.pending_token, &codes[0]).unwrap();
        }
        other => panic!("the next sign-in asks for the second factor: {other:?}"),
    }
    let event = w
        .events(&user)
        .into_iter()
        .find(|e| e.kind == EventKind::PasswordReset)
        .unwrap();
    assert!(event.notify);
    assert_eq!(
        code_of(reset_unknown(&w)),
        ErrorCode::NotFound,
        "the host asked about an email with no account"
    );
}

fn reset_unknown(w: &World) -> Result<PasswordChanged> {
    reset(w, "nobody@example.com", "whatever it is")
}

#[test]
fn a6_the_epoch_grows_when_protection_changes_and_only_then() {
    let mut w = world();
    let user = w.signup("ada@example.com");
    let epoch = |w: &World| w.status(&user).security_epoch;
    assert_eq!(epoch(&w), 1);
    // Adding protection or signing in leaves it.
    let registered = w.register(&user, "Laptop");
    let (_, _) = w.register_other(&user, "Phone", 42);
    assert_eq!(epoch(&w), 1);
    let pending = w.pending("ada@example.com");
    let signed = w
        .code_step(
            &pending.pending_token,
            &registered.backup_codes.clone().unwrap()[0],
        )
        .unwrap();
    assert_eq!(
        signed.security_epoch, 1,
        "every signed-in answer carries it"
    );
    // Each protection change grows it by one.
    let regenerated = w
        .engine
        .regenerate_backup_codes(&w.host, &w.ctx, w.confirm(&user))
        .unwrap();
    assert_eq!(regenerated.security_epoch, 2);
    let removed = w
        .engine
        .remove_passkey(
            &w.host,
            &w.ctx,
            RemovePasskey {
                user_id: user.clone(),
                passkey_id: registered.passkey.id.clone(),
                password: PASSWORD.into(),
            },
        )
        .unwrap();
    assert_eq!(removed.security_epoch, 3);
    let disabled = w
        .engine
        .disable_two_factor(&w.host, &w.ctx, w.confirm(&user))
        .unwrap();
    assert_eq!(disabled.security_epoch, 4);
    change(&w, &user, PASSWORD, "a new passphrase").unwrap();
    reset(&w, "ada@example.com", PASSWORD).unwrap();
    assert_eq!(epoch(&w), 6);
    let enabled = w
        .engine
        .enable_two_factor(&w.host, &w.ctx, w.confirm(&user))
        .unwrap();
    assert_eq!(enabled.security_epoch, 6, "turning 2FA on adds protection");
}
