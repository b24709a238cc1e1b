//! Backup codes: rules B1-B6.

mod common;

use std::collections::HashSet;

use common::*;
use twofold_core::*;

#[test]
fn b1_a_set_is_ten_distinct_codes_for_people_and_input_is_normalised() {
    let mut w = world();
    let (_, codes) = w.user_with_2fa("ada@example.com");
    assert_eq!(codes.len(), 10);
    assert_eq!(codes.iter().collect::<HashSet<_>>().len(), 10);
    for code in &codes {
        let groups: Vec<&str> = code.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [4, 4, 4],
            "{code}"
        );
        assert!(
            code.chars()
                .all(|c| c == '-' || "23456789abcdefghjkmnpqrstuvwxyz".contains(c)),
            "no look-alikes: {code}"
        );
    }
    // 12 characters of 31 = 59 bits, over the 50 the rule asks for.
    assert!(12.0 * 31f64.log2() >= 50.0);
    let typed = format!(" {} ", codes[0].to_uppercase().replace('-', " "));
    let pending = w.pending("ada@example.com");
    assert!(
        w.code_step(&pending.pending_token, &typed).is_ok(),
        "case, spaces and hyphens do not matter"
    );
    let pending = w.pending("ada@example.com");
    assert!(
        w.code_step(&pending.pending_token, &codes[1].replace('-', ""))
            .is_ok()
    );
}

#[test]
fn b2_codes_are_stored_only_salted_and_hashed_and_shown_once() {
    let mut w = world();
    let (user, codes) = w.user_with_2fa("ada@example.com");
    let other = w.signup("bob@example.com");
    let _ = other;
    let text = w.storage_text();
    for code in &codes {
        assert!(
            !text.contains(code.as_str()) && !text.contains(&code.replace('-', "")),
            "plaintext code stored"
        );
    }
    let status = format!("{:?}{:?}", w.status(&user), w.events(&user));
    for code in &codes {
        assert!(
            !status.contains(&code.replace('-', "")) && !status.contains(code.as_str()),
            "a code can be read again"
        );
    }
    // Two users' sets are salted apart: the same code would hash differently.
    assert!(text.contains("\"salt\""));
}

#[test]
fn b3_each_code_works_once() {
    let mut w = world();
    let (_, codes) = w.user_with_2fa("ada@example.com");
    let pending = w.pending("ada@example.com");
    w.code_step(&pending.pending_token, &codes[3]).unwrap();
    let pending = w.pending("ada@example.com");
    assert_eq!(
        code_of(w.code_step(&pending.pending_token, &codes[3])),
        ErrorCode::InvalidBackupCode
    );
}

#[test]
fn b4_regenerating_needs_the_password_and_2fa_and_voids_the_old_set() {
    let mut w = world();
    let user = w.signup("ada@example.com");
    assert_eq!(
        code_of(
            w.engine
                .regenerate_backup_codes(&w.host, &w.ctx, w.confirm(&user))
        ),
        ErrorCode::NotEnabled
    );
    let old = w.register(&user, "Laptop").backup_codes.unwrap();
    let wrong = PasswordConfirmed {
        user_id: user.clone(),
        password: "wrong password".into(),
    };
    assert_eq!(
        code_of(w.engine.regenerate_backup_codes(&w.host, &w.ctx, wrong)),
        ErrorCode::InvalidCredentials
    );
    let commits_before = w
        .host
        .storage
        .call_log()
        .iter()
        .filter(|c| **c == twofold_testkit::Call::Commit)
        .count();
    let new = w
        .engine
        .regenerate_backup_codes(&w.host, &w.ctx, w.confirm(&user))
        .unwrap()
        .codes;
    let commits_after = w
        .host
        .storage
        .call_log()
        .iter()
        .filter(|c| **c == twofold_testkit::Call::Commit)
        .count();
    assert_eq!(
        commits_after - commits_before,
        1,
        "the new set replaces the old in one atomic write"
    );
    assert!(old.iter().all(|c| !new.contains(c)));
    let pending = w.pending("ada@example.com");
    assert_eq!(
        code_of(w.code_step(&pending.pending_token, &old[0])),
        ErrorCode::InvalidBackupCode
    );
    assert!(w.code_step(&pending.pending_token, &new[0]).is_ok());
}

#[test]
fn b5_checking_a_code_costs_one_slow_hash_however_many_codes_there_are() {
    let mut config = twofold_testkit::fast_config();
    config.backup_code_count = Some(40);
    let mut w = world_with(config);
    let (_, codes) = w.user_with_2fa("ada@example.com");
    for candidate in ["2222-2222-2222", codes[39].as_str(), "not a code at all"] {
        let pending = w.pending("ada@example.com");
        let before = w.engine.slow_hash_count();
        let _ = w.code_step(&pending.pending_token, candidate);
        assert!(w.engine.slow_hash_count() - before <= 1, "{candidate}");
    }
}

#[test]
fn b6_answers_that_count_codes_flag_running_low_at_three() {
    let mut w = world();
    let (user, codes) = w.user_with_2fa("ada@example.com");
    let mut lows = Vec::new();
    for code in &codes[..8] {
        let pending = w.pending("ada@example.com");
        let signed = w.code_step(&pending.pending_token, code).unwrap();
        lows.push((
            signed.backup_codes_remaining.unwrap(),
            signed.backup_codes_running_low.unwrap(),
        ));
    }
    assert_eq!(lows[6], (3, true));
    assert_eq!(lows[5], (4, false));
    let status = w.status(&user);
    assert_eq!(
        (
            status.backup_codes_remaining,
            status.backup_codes_running_low
        ),
        (2, true)
    );
}
