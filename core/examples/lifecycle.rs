//! Walks the whole two-factor lifecycle in the terminal, against an in-memory host and a
//! software authenticator: what the web demo does, step by step, without a browser.
//!
//!     cargo run -p twofold-core --example lifecycle

use twofold_core::*;
use twofold_testkit::authenticator::{Authenticator, Tweaks};
use twofold_testkit::{ORIGIN, TestHost};

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::new(Config::new(
        "localhost",
        "twofold demo",
        ORIGIN,
        twofold_testkit::test_audit_key(),
    ))?;
    let host = TestHost::new(1);
    let ctx = Context::new("127.0.0.1", "lifecycle-example");
    let mut laptop = Authenticator::new(2);
    let (email, password) = ("ada@example.com", "correct horse battery staple");

    let account = engine.create_account(
        &host,
        &ctx,
        CreateAccount {
            email: email.into(),
            password: password.into(),
        },
    )?;
    println!("1. signed up {email} (user {})", account.user_id);
    let user_id = account.user_id;

    let options = engine
        .start_passkey_registration(
            &host,
            &ctx,
            StartRegistration {
                user_id: user_id.clone(),
                name: "Laptop".into(),
                password: password.into(),
            },
        )?
        .options;
    let credential = laptop.register(&options.parse()?, ORIGIN, &Tweaks::default())?;
    let registered = engine.finish_passkey_registration(
        &host,
        &ctx,
        FinishRegistration {
            user_id: user_id.clone(),
            credential: credential.to_string(),
        },
    )?;
    let codes = registered.backup_codes.unwrap_or_default();
    println!(
        "2. registered passkey {:?}: 2FA is {}, {} backup codes (shown once):",
        registered.passkey.name,
        on_off(registered.two_factor_enabled),
        codes.len()
    );
    for code in &codes {
        println!("     {code}");
    }

    let sign_in = |remember_me| {
        engine.sign_in(
            &host,
            &ctx,
            SignIn {
                email: email.into(),
                password: password.into(),
                remember_me,
            },
        )
    };
    let SignInOutcome::SecondFactorRequired(pending) = sign_in(true)? else {
        return Err("2FA should be on".into());
    };
    println!("3. password accepted with remember-me ticked: a second factor is required");
    let assertion = laptop.authenticate(&pending.options.parse()?, ORIGIN, &Tweaks::default())?;
    let signed = engine.sign_in_with_passkey(
        &host,
        &ctx,
        PasskeySignIn {
            pending_token: pending.pending_token,
            credential: assertion.to_string(),
        },
    )?;
    println!(
        "4. passkey verified: signed in, remember-me {} (ignored for 2FA sign-ins)",
        signed.remember_me
    );

    let SignInOutcome::SecondFactorRequired(pending) = sign_in(false)? else {
        return Err("2FA should be on".into());
    };
    let code = codes.first().cloned().unwrap_or_default();
    let signed = engine.sign_in_with_backup_code(
        &host,
        &ctx,
        BackupCodeSignIn {
            pending_token: pending.pending_token,
            code: code.clone(),
        },
    )?;
    println!(
        "5. signed in with backup code {code}: {} left",
        signed.backup_codes_remaining.unwrap_or(0)
    );
    let SignInOutcome::SecondFactorRequired(pending) = sign_in(false)? else {
        return Err("2FA should be on".into());
    };
    let again = engine.sign_in_with_backup_code(
        &host,
        &ctx,
        BackupCodeSignIn {
            pending_token: pending.pending_token,
            code,
        },
    );
    println!(
        "6. the same code again: {}",
        again
            .err()
            .map(|e| e.code().to_string())
            .unwrap_or_default()
    );

    let fresh = engine.regenerate_backup_codes(
        &host,
        &ctx,
        PasswordConfirmed {
            user_id: user_id.clone(),
            password: password.into(),
        },
    )?;
    println!(
        "7. regenerated backup codes: {} new codes, the old ones are void",
        fresh.codes.len()
    );

    let passkey_id = engine
        .status(
            &host,
            &ctx,
            UserRef {
                user_id: user_id.clone(),
            },
        )?
        .passkeys[0]
        .id
        .clone();
    let status = engine.remove_passkey(
        &host,
        &ctx,
        RemovePasskey {
            user_id: user_id.clone(),
            passkey_id,
            password: password.into(),
        },
    )?;
    println!(
        "8. removed the last passkey: 2FA is {}",
        on_off(status.two_factor_enabled)
    );
    if let SignInOutcome::SignedIn(s) = sign_in(true)? {
        println!(
            "9. sign-in needs only the password again (remember-me {})",
            s.remember_me
        );
    }

    let events = engine.audit_events(
        &host,
        &ctx,
        AuditQuery {
            user_id: user_id.clone(),
            before: None,
            limit: Some(50),
        },
    )?;
    println!("10. audit log (oldest first):");
    for e in events.events.iter().rev() {
        println!(
            "     #{:<2} {:?}{}",
            e.seq,
            e.kind,
            if e.notify { "  (notify the user)" } else { "" }
        );
    }
    let chain = engine.verify_audit_chain(
        &host,
        &ctx,
        VerifyAudit {
            user_id,
            anchor: None,
        },
    )?;
    println!(
        "11. audit chain intact: {} ({} events)",
        chain.intact, chain.events_checked
    );
    Ok(())
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}
