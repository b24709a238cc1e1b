//! The audit log: rules L1-L5.

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
    assert_eq!(details(disabled)["reason"], "last_passkey_removed");
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
    let wrong = |w: &World, user: &str| {
        w.engine.start_passkey_registration(
            &w.host,
            &w.ctx,
            StartRegistration {
                user_id: user.into(),
                name: "Laptop".into(),
                password: "wrong password".into(),
            },
        )
    };
    // A dry run counts the storage calls up to the commit of the failure and its event.
    let dry = world();
    let user = dry.signup("ada@example.com");
    let from = dry.host.storage.calls();
    let _ = wrong(&dry, &user);
    let commit_at = dry.host.storage.calls() - from;
    assert_eq!(
        dry.host.storage.call_log().last(),
        Some(&twofold_testkit::Call::Commit)
    );
    let w = world();
    let user = w.signup("ada@example.com");
    let before = w.host.storage.snapshot();
    w.host
        .storage
        .inject(commit_at, twofold_testkit::Fault::Fail);
    assert_eq!(code_of(wrong(&w, &user)), ErrorCode::Storage);
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
    w.engine
        .change_password(
            &w.host,
            &w.ctx,
            ChangePassword {
                user_id: user.clone(),
                current_password: PASSWORD.into(),
                new_password: "another passphrase".into(),
            },
        )
        .unwrap_err();
    w.host.clock.advance(std::time::Duration::from_secs(3600));
    w.engine
        .reset_password(
            &w.host,
            &w.ctx,
            ResetPassword {
                email: "ada@example.com".into(),
                new_password: "another passphrase".into(),
            },
        )
        .unwrap();
    let events = w.events(&user);
    assert!(events.iter().any(|e| e.kind == EventKind::Throttled));
    assert!(events.iter().any(|e| e.kind == EventKind::PasswordReset));
    for e in events {
        use EventKind::*;
        let expected = match e.kind {
            TwoFactorDisabled | PasskeyRegistered | PasskeyRemoved | BackupCodeOk | Throttled
            | PasswordChanged | PasswordReset => true,
            BackupCodesGenerated => details(&e)["reason"] == "regenerated",
            _ => false,
        };
        assert_eq!(e.notify, expected, "{:?} {:?}", e.kind, e.details);
    }
}

fn verify(w: &World, user: &str, anchor: Option<&AuditAnchor>) -> Result<ChainReport> {
    w.engine.verify_audit_chain(
        &w.host,
        &w.ctx,
        VerifyAudit {
            user_id: user.into(),
            anchor: anchor.cloned(),
        },
    )
}

fn anchor(w: &World, user: &str) -> AuditAnchor {
    w.engine
        .audit_anchor(
            &w.host,
            &w.ctx,
            UserRef {
                user_id: user.into(),
            },
        )
        .unwrap()
}

fn problems(report: &ChainReport) -> Vec<(u64, ChainProblemKind)> {
    report.problems.iter().map(|p| (p.seq, p.problem)).collect()
}

/// Rewrites a stored document as a database writer would: `edit` changes its JSON.
fn rewrite(w: &World, key: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut doc: serde_json::Value =
        serde_json::from_str(&w.host.storage.snapshot()[key].value).unwrap();
    edit(&mut doc);
    w.host.storage.tamper(key, doc.to_string());
}

/// A MAC made without the audit key: the attacker's best guess, plain SHA-256.
fn forged_mac(event: &serde_json::Value) -> String {
    use sha2::Digest as _;
    let mut copy = event.clone();
    copy["mac"] = "".into();
    let digest = sha2::Sha256::digest(copy.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn l3_a_database_writer_without_the_key_cannot_rewrite_the_log_unseen() {
    let mut w = world();
    let (user, _) = w.user_with_2fa("ada@example.com");
    for _ in 0..2 {
        let pending = w.pending("ada@example.com");
        let assertion = w.assertion(&pending, &Tweaks::default());
        w.passkey_step(&pending.pending_token, &assertion).unwrap();
    }
    let kept = anchor(&w, &user);
    assert!(verify(&w, &user, Some(&kept)).unwrap().intact);
    let pristine = w.host.storage.snapshot();
    let restore = |w: &World| {
        for key in w.host.storage.snapshot().keys() {
            if !pristine.contains_key(key) {
                w.host.storage.tamper_remove(key);
            }
        }
        for (k, r) in &pristine {
            w.host.storage.tamper(k, r.value.clone());
        }
    };
    let user_key = format!("user/{user}");
    let head = kept.seq;

    // 2FA turned off in the account, no event: the state no longer matches the newest event.
    rewrite(&w, &user_key, |u| u["two_factor"] = false.into());
    assert_eq!(
        problems(&verify(&w, &user, None).unwrap()),
        [(head, ChainProblemKind::StateChanged)]
    );
    restore(&w);

    // An event's IP edited and its MAC recomputed without the key, the chain re-linked after
    // it, and the last two events dropped with the head pointer moved back.
    let k5 = event_key(&user, 5);
    rewrite(&w, &k5, |e| {
        e["ip"] = "10.0.0.1".into();
        e["mac"] = forged_mac(e).into();
    });
    let mut prev = serde_json::from_str::<serde_json::Value>(&w.host.storage.snapshot()[&k5].value)
        .unwrap()["mac"]
        .clone();
    for seq in 6..=head - 2 {
        rewrite(&w, &event_key(&user, seq), |e| {
            e["prev_mac"] = prev.clone();
            e["mac"] = forged_mac(e).into();
            prev = e["mac"].clone();
        });
    }
    w.host.storage.tamper_remove(&event_key(&user, head));
    w.host.storage.tamper_remove(&event_key(&user, head - 1));
    rewrite(&w, &user_key, |u| {
        u["audit_seq"] = (head - 2).into();
        u["audit_mac"] = prev.clone();
    });
    let report = verify(&w, &user, None).unwrap();
    assert!(!report.intact);
    assert!(
        (5..=head - 2).all(|seq| problems(&report).contains(&(seq, ChainProblemKind::Altered))),
        "{report:?}"
    );
    let anchored = verify(&w, &user, Some(&kept)).unwrap();
    assert!(
        problems(&anchored).contains(&(head, ChainProblemKind::Truncated)),
        "{anchored:?}"
    );
    restore(&w);

    // A forged event appended (a fake sign-in), MAC made without the key.
    let mut fake: serde_json::Value =
        serde_json::from_str(&pristine[&event_key(&user, head)].value).unwrap();
    fake["seq"] = (head + 1).into();
    fake["prev_mac"] = kept.mac.clone().into();
    fake["mac"] = forged_mac(&fake).into();
    w.host
        .storage
        .tamper(&event_key(&user, head + 1), fake.to_string());
    rewrite(&w, &user_key, |u| {
        u["audit_seq"] = (head + 1).into();
        u["audit_mac"] = fake["mac"].clone();
    });
    assert!(
        problems(&verify(&w, &user, None).unwrap())
            .contains(&(head + 1, ChainProblemKind::Altered))
    );
    restore(&w);

    // Truncation that left the state as it was: only the anchor sees it.
    w.host.storage.tamper_remove(&event_key(&user, head));
    let prev_mac =
        serde_json::from_str::<serde_json::Value>(&pristine[&event_key(&user, head - 1)].value)
            .unwrap()["mac"]
            .clone();
    rewrite(&w, &user_key, |u| {
        u["audit_seq"] = (head - 1).into();
        u["audit_mac"] = prev_mac.clone();
    });
    assert!(
        verify(&w, &user, None).unwrap().intact,
        "no design sees this without an anchor"
    );
    assert_eq!(
        problems(&verify(&w, &user, Some(&kept)).unwrap()),
        [(head, ChainProblemKind::Truncated)]
    );
    restore(&w);

    // The whole log deleted and the head pointer reset.
    for seq in 1..=head {
        w.host.storage.tamper_remove(&event_key(&user, seq));
    }
    rewrite(&w, &user_key, |u| {
        u["audit_seq"] = 0.into();
        u["audit_mac"] = "".into();
    });
    let report = verify(&w, &user, None).unwrap();
    assert_eq!(report.events_checked, 0);
    assert_eq!(problems(&report), [(0, ChainProblemKind::StateChanged)]);
    assert!(
        problems(&verify(&w, &user, Some(&kept)).unwrap())
            .contains(&(head, ChainProblemKind::Truncated))
    );
    // And the account itself deleted: without an anchor there is nothing to check.
    w.host.storage.tamper_remove(&user_key);
    assert_eq!(code_of(verify(&w, &user, None)), ErrorCode::NotFound);
    assert!(!verify(&w, &user, Some(&kept)).unwrap().intact);
    restore(&w);

    // A passkey slipped in beside the account's own is not the user's, and is reported.
    let passkey_key = pristine
        .keys()
        .find(|k| k.starts_with(&format!("passkey/{user}/")))
        .unwrap()
        .clone();
    let mut injected: serde_json::Value =
        serde_json::from_str(&pristine[&passkey_key].value).unwrap();
    injected["credential"]["cred_id"] = "aW5qZWN0ZWQ".into();
    w.host
        .storage
        .tamper(&format!("passkey/{user}/injected"), injected.to_string());
    assert_eq!(w.status(&user).passkeys.len(), 1, "not listed, not used");
    assert_eq!(
        problems(&verify(&w, &user, None).unwrap()),
        [(head, ChainProblemKind::StateChanged)]
    );
    restore(&w);
    assert!(verify(&w, &user, Some(&kept)).unwrap().intact);
}

#[test]
fn l3_a_state_change_between_events_is_not_laundered_by_the_next_event() {
    let mut w = world();
    let (user, codes) = w.user_with_2fa("ada@example.com");
    // A writer marks every backup code unused again... after one was used.
    let pending = w.pending("ada@example.com");
    w.code_step(&pending.pending_token, &codes[0]).unwrap();
    rewrite(&w, &format!("user/{user}"), |u| {
        for code in u["backup_codes"]["codes"].as_array_mut().unwrap() {
            code["used"] = false.into();
        }
    });
    // ...and the engine then writes an ordinary event on top.
    let _ = w.sign_in("ada@example.com", "wrong password", false);
    let report = verify(&w, &user, None).unwrap();
    let head = anchor(&w, &user).seq;
    assert_eq!(problems(&report), [(head, ChainProblemKind::StateChanged)]);
}

#[test]
fn l3_audit_keys_rotate_and_an_unknown_key_is_named() {
    let mut w = world();
    let (user, _) = w.user_with_2fa("ada@example.com");
    let new_key = AuditKey::new("2027", "5e".repeat(16) + &"a1".repeat(16));
    // Rotate: the new key first, the old one kept for verification.
    let rotated = Engine::new(Config {
        audit_keys: vec![new_key.clone(), twofold_testkit::test_audit_key()],
        ..twofold_testkit::fast_config()
    })
    .unwrap();
    let _ = rotated.sign_in(
        &w.host,
        &w.ctx,
        SignIn {
            email: "ada@example.com".into(),
            password: "wrong password".into(),
            remember_me: false,
        },
    );
    let request = VerifyAudit {
        user_id: user.clone(),
        anchor: None,
    };
    let report = rotated
        .verify_audit_chain(&w.host, &w.ctx, request.clone())
        .unwrap();
    assert!(report.intact, "{report:?}");
    let newest = &w.events(&user)[0];
    assert_eq!(newest.key_id, "2027");
    // Without the old key, the old events cannot be checked, and say so.
    let forgetful = Engine::new(Config {
        audit_keys: vec![new_key],
        ..twofold_testkit::fast_config()
    })
    .unwrap();
    let report = forgetful
        .verify_audit_chain(&w.host, &w.ctx, request)
        .unwrap();
    assert!(
        report
            .problems
            .iter()
            .all(|p| p.problem == ChainProblemKind::UnknownKey)
            && report.problems.len() as u64 == report.events_checked - 1,
        "{report:?}"
    );
}

#[test]
fn l5_pruning_keeps_the_chain_verifiable_from_a_checkpoint() {
    let mut w = world();
    let (user, _) = w.user_with_2fa("ada@example.com");
    let prune = |w: &World, days: Option<u32>| {
        w.engine
            .prune_audit_events(
                &w.host,
                &w.ctx,
                PruneAudit {
                    user_id: user.clone(),
                    older_than_days: days,
                },
            )
            .unwrap()
    };
    let early = w.events(&user).len() as u64;
    // Nothing is older than six years yet.
    assert_eq!(prune(&w, None).pruned, 0);
    w.host
        .clock
        .advance(std::time::Duration::from_secs(10 * 86_400));
    for _ in 0..3 {
        let pending = w.pending("ada@example.com");
        let assertion = w.assertion(&pending, &Tweaks::default());
        w.passkey_step(&pending.pending_token, &assertion).unwrap();
    }
    let pruned = prune(&w, Some(5));
    assert_eq!(pruned.pruned as u64, early);
    assert_eq!(pruned.checkpoint_seq, early);
    assert!(!pruned.more);
    let newest = &w.events(&user)[0];
    assert_eq!(newest.kind, EventKind::AuditPruned);
    assert_eq!(details(newest)["through_seq"], early);
    let report = verify(&w, &user, Some(&anchor(&w, &user))).unwrap();
    assert!(report.intact, "{report:?}");
    assert_eq!(report.checkpoint_seq, early);
    assert!(
        w.events(&user).iter().all(|e| e.seq > early),
        "the old events are gone"
    );
    let pristine = w.host.storage.snapshot();
    let restore = |w: &World| {
        for (k, r) in &pristine {
            w.host.storage.tamper(k, r.value.clone());
        }
    };
    // An event after the checkpoint tampered with: still reported.
    let first_kept = event_key(&user, early + 1);
    rewrite(&w, &first_kept, |e| e["ip"] = "10.9.9.9".into());
    assert_eq!(
        problems(&verify(&w, &user, None).unwrap()),
        [(early + 1, ChainProblemKind::Altered)]
    );
    restore(&w);
    // A checkpoint forged to hide more events: refused, and the chain read from the start.
    let cp_key = format!("audit-checkpoint/{user}");
    rewrite(&w, &cp_key, |cp| cp["seq"] = (early + 2).into());
    let report = verify(&w, &user, None).unwrap();
    assert!(problems(&report).contains(&(early + 2, ChainProblemKind::BadCheckpoint)));
    assert!(problems(&report).contains(&(1, ChainProblemKind::Missing)));
    restore(&w);
    // The checkpoint deleted: the pruned events show as missing.
    w.host.storage.tamper_remove(&cp_key);
    assert!(problems(&verify(&w, &user, None).unwrap()).contains(&(1, ChainProblemKind::Missing)));
    restore(&w);
    assert!(verify(&w, &user, None).unwrap().intact);
}

#[test]
fn l5_pruning_goes_in_batches_of_500() {
    let w = world();
    let user = w.signup("ada@example.com");
    for _ in 0..650 {
        w.sign_in("ada@example.com", PASSWORD, false).unwrap();
    }
    w.host
        .clock
        .advance(std::time::Duration::from_secs(3 * 86_400));
    let prune = || {
        w.engine
            .prune_audit_events(
                &w.host,
                &w.ctx,
                PruneAudit {
                    user_id: user.clone(),
                    older_than_days: Some(1),
                },
            )
            .unwrap()
    };
    let first = prune();
    assert_eq!((first.pruned, first.more), (500, true));
    let second = prune();
    assert!(!second.more);
    assert_eq!(
        second.checkpoint_seq,
        first.checkpoint_seq + u64::from(second.pruned)
    );
    assert!(verify(&w, &user, None).unwrap().intact);
}
