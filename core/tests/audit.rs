//! The audit log: rules L1-L4.

mod common;

use common::*;
use twofold_core::*;
use twofold_testkit::authenticator::Tweaks;

fn lifecycle(w: &mut World) -> (String, Vec<String>) {
    let (user, codes) = w.user_with_2fa("ada@example.com");
    let _ = w.sign_in("ada@example.com", "wrong password", false);
    let pending = w.pending("ada@example.com");
    let assertion = w.assertion(&pending, &Tweaks::default());
    w.passkey_step(&pending.pending_token, &assertion).unwrap();
    let pending = w.pending("ada@example.com");
    let _ = w.code_step(&pending.pending_token, "2222-2222-2222");
    w.code_step(&pending.pending_token, &codes[0]).unwrap();
    w.engine
        .regenerate_backup_codes(&w.host, &w.ctx, w.confirm(&user))
        .unwrap();
    let id = w.status(&user).passkeys[0].id.clone();
    w.engine
        .rename_passkey(
            &w.host,
            &w.ctx,
            RenamePasskey {
                user_id: user.clone(),
                passkey_id: id.clone(),
                name: "Desk".into(),
            },
        )
        .unwrap();
    w.engine
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
    (user, codes)
}

#[test]
fn l1_every_security_event_is_recorded_with_host_context_and_no_secret() {
    let mut w = world();
    let (user, codes) = lifecycle(&mut w);
    let events = w.events(&user);
    let kinds: Vec<EventKind> = events.iter().rev().map(|e| e.kind).collect();
    use EventKind::*;
    assert_eq!(
        kinds,
        [
            AccountCreated,
            PasswordOk,
            PasskeyRegistered,
            BackupCodesGenerated,
            TwoFactorEnabled,
            PasswordFailed,
            PasswordOk,
            SecondFactorRequired,
            PasskeyOk,
            PasswordOk,
            SecondFactorRequired,
            BackupCodeFailed,
            BackupCodeOk,
            PasswordOk,
            BackupCodesGenerated,
            PasskeyRenamed,
            PasswordOk,
            PasskeyRemoved,
            TwoFactorDisabled,
        ]
    );
    assert!(
        events.iter().all(|e| e.ip == "198.51.100.4"
            && e.user_agent == "test-agent/1.0"
            && e.user_id == user)
    );
    let disabled = &events[0];
    assert_eq!(details(&disabled)["reason"], "last_passkey_removed");
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(PASSWORD) && !text.contains("$argon2"));
    for code in &codes {
        assert!(!text.contains(code.as_str()) && !text.contains(&code.replace('-', "")));
    }
    // Throttling is an event too.
    for _ in 0..10 {
        let _ = w.sign_in("ada@example.com", "wrong password", false);
    }
    assert_eq!(w.events(&user)[0].kind, Throttled);
}

#[test]
fn l1_an_event_is_written_in_the_same_commit_as_its_change() {
    let w = world();
    let user = w.signup("ada@example.com");
    let before = w.host.storage.snapshot();
    // Call 1 reads the user, call 2 is the commit of the failure and its event.
    w.host.storage.inject(2, twofold_testkit::Fault::Fail);
    let r = w.engine.start_passkey_registration(
        &w.host,
        &w.ctx,
        StartRegistration {
            user_id: user.clone(),
            name: "Laptop".into(),
            password: "wrong password".into(),
        },
    );
    assert_eq!(code_of(r), ErrorCode::Storage);
    assert_eq!(
        w.host.storage.call_log().last(),
        Some(&twofold_testkit::Call::Commit)
    );
    assert_eq!(
        w.host.storage.snapshot(),
        before,
        "neither the failure count nor its event"
    );
    assert_eq!(w.events(&user).len(), 1);
}

#[test]
fn l2_events_are_read_newest_first_in_pages() {
    let mut w = world();
    let (user, _) = lifecycle(&mut w);
    let all = w.events(&user);
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = w
            .engine
            .audit_events(
                &w.host,
                &w.ctx,
                AuditQuery {
                    user_id: user.clone(),
                    before,
                    limit: Some(4),
                },
            )
            .unwrap();
        assert!(page.events.len() <= 4);
        paged.extend(page.events);
        match page.next_before {
            Some(seq) => before = Some(seq),
            None => break,
        }
    }
    assert_eq!(paged, all);
    assert!(
        all.windows(2).all(|p| p[0].seq == p[1].seq + 1),
        "newest first, no gaps"
    );
    let bad = w.engine.audit_events(
        &w.host,
        &w.ctx,
        AuditQuery {
            user_id: user,
            before: None,
            limit: Some(0),
        },
    );
    assert_eq!(code_of(bad), ErrorCode::InvalidInput);
}

fn chain(w: &World, user: &str) -> ChainReport {
    w.engine
        .verify_audit_chain(
            &w.host,
            &w.ctx,
            VerifyAudit {
                user_id: user.into(),
                anchor: None,
            },
        )
        .unwrap()
}

fn event_key(user: &str, seq: u64) -> String {
    format!("audit/{user}/{:020}", u64::MAX - seq)
}

#[test]
fn l3_the_chain_reports_altered_dropped_and_reordered_events() {
    let mut w = world();
    let (user, _) = lifecycle(&mut w);
    let intact = chain(&w, &user);
    assert!(intact.intact && intact.problems.is_empty());
    assert_eq!(intact.events_checked, 19);
    let pristine = w.host.storage.snapshot();
    let restore = |w: &World| {
        for (k, r) in &pristine {
            w.host.storage.tamper(k, r.value.clone());
        }
    };

    // Altered: an event's IP rewritten.
    let k5 = event_key(&user, 5);
    let text = pristine[&k5].value.replace("198.51.100.4", "10.0.0.1");
    w.host.storage.tamper(&k5, text);
    let report = chain(&w, &user);
    assert!(!report.intact);
    assert_eq!(
        report.problems,
        [ChainProblem {
            seq: 5,
            problem: ChainProblemKind::Altered
        }]
    );
    restore(&w);

    // Dropped: one from the middle, and the newest.
    w.host.storage.tamper_remove(&event_key(&user, 7));
    assert_eq!(
        chain(&w, &user)
            .problems
            .iter()
            .map(|p| (p.seq, p.problem))
            .collect::<Vec<_>>(),
        [
            (7, ChainProblemKind::Missing),
            (8, ChainProblemKind::BrokenLink)
        ]
    );
    restore(&w);
    w.host.storage.tamper_remove(&event_key(&user, 19));
    assert_eq!(
        chain(&w, &user).problems,
        [ChainProblem {
            seq: 19,
            problem: ChainProblemKind::Missing
        }]
    );
    restore(&w);

    // Reordered: two events swapped.
    let (a, b) = (event_key(&user, 3), event_key(&user, 4));
    w.host.storage.tamper(&a, pristine[&b].value.clone());
    w.host.storage.tamper(&b, pristine[&a].value.clone());
    let report = chain(&w, &user);
    assert!(!report.intact);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.problem == ChainProblemKind::OutOfOrder),
        "{report:?}"
    );
    restore(&w);
    assert!(chain(&w, &user).intact);
}

#[test]
fn l4_events_a_user_should_hear_about_are_marked_notify() {
    let mut w = world();
    let (user, _) = lifecycle(&mut w);
    for _ in 0..10 {
        let _ = w.sign_in("ada@example.com", "wrong password", false);
    }
    for e in w.events(&user) {
        use EventKind::*;
        let expected = match e.kind {
            TwoFactorDisabled | PasskeyRegistered | PasskeyRemoved | BackupCodeOk | Throttled => {
                true
            }
            BackupCodesGenerated => details(&e)["reason"] == "regenerated",
            _ => false,
        };
        assert_eq!(e.notify, expected, "{:?} {:?}", e.kind, e.details);
    }
}
