//! The SQLite storage against the contract of `twofold_proto::Storage` (the shared suite, each
//! handle its own connection to one file), WAL mode and durability across connections; and
//! the engine over it, where several connections racing never both consume one backup code.

mod common;

use std::sync::{Arc, Barrier};

use twofold_server::proto::ops::op;
use twofold_server::proto::{
    BackupCodeSignIn, Context, CreateAccount, EngineError, ErrorCode, Expect, FinishRegistration,
    HostError, SignIn, SignInOutcome, StartRegistration, Storage, Write,
};
use twofold_server::store::sqlite::SqliteStorage;
use twofold_testkit::ORIGIN;
use twofold_testkit::authenticator::{Authenticator, Tweaks};

fn put(key: &str, value: &str, expect: Expect) -> Write {
    Write {
        key: key.into(),
        value: Some(value.into()),
        expect,
    }
}

fn delete(key: &str, expect: Expect) -> Write {
    Write {
        key: key.into(),
        value: None,
        expect,
    }
}

fn ok<T>(answer: wasmtime::Result<Result<T, EngineError>>) -> T {
    match answer {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => panic!("{:?}: {}", e.code, e.message),
        Err(trap) => panic!("trap: {trap:?}"),
    }
}

fn all(s: &SqliteStorage) -> Vec<(String, String, u64)> {
    s.scan("", None, u32::MAX)
        .expect("scan")
        .into_iter()
        .map(|e| (e.key, e.value.value, e.value.version))
        .collect()
}

#[test]
fn versions_count_from_one_and_commits_are_all_or_nothing() {
    let dir = common::scratch_dir("sqlite-contract");
    let s = SqliteStorage::open(&dir.join("kv.db")).expect("open");

    assert_eq!(s.get("a"), Ok(None));
    s.commit(&[put("a", "1", Expect::Absent)]).expect("insert");
    assert_eq!(s.get("a").expect("get").map(|v| v.version), Some(1));
    s.commit(&[put("a", "2", Expect::Version(1))])
        .expect("update");
    let a = s.get("a").expect("get").expect("present");
    assert_eq!((a.value.as_str(), a.version), ("2", 2));

    // One failed expectation anywhere in the batch: nothing is applied.
    let before = all(&s);
    for batch in [
        vec![
            put("b", "x", Expect::Absent),
            put("a", "3", Expect::Version(1)),
        ],
        vec![put("b", "x", Expect::Absent), put("a", "3", Expect::Absent)],
        vec![
            put("b", "x", Expect::Absent),
            delete("a", Expect::Version(7)),
        ],
        vec![
            put("b", "x", Expect::Absent),
            delete("zz", Expect::Version(1)),
        ],
        vec![put("b", "x", Expect::Version(1))],
    ] {
        assert_eq!(s.commit(&batch), Err(HostError::Conflict));
        assert_eq!(all(&s), before);
    }
    // A batch naming a key twice is refused as a failure, also with nothing applied.
    let twice = s.commit(&[put("c", "1", Expect::Absent), put("c", "2", Expect::Absent)]);
    assert!(matches!(twice, Err(HostError::Failed(_))), "{twice:?}");
    assert_eq!(all(&s), before);

    // Puts and deletes together.
    s.commit(&[
        put("b", "x", Expect::Absent),
        delete("a", Expect::Version(2)),
        put("c", "{\"é\": \"\\u0000\"}", Expect::Absent),
    ])
    .expect("a mixed batch");
    assert_eq!(
        all(&s),
        [
            ("b".to_owned(), "x".to_owned(), 1),
            ("c".to_owned(), "{\"é\": \"\\u0000\"}".to_owned(), 1)
        ]
    );
    // A deleted key starts again at version 1.
    s.commit(&[put("a", "again", Expect::Absent)])
        .expect("re-insert");
    assert_eq!(s.get("a").expect("get").map(|v| v.version), Some(1));
    // An empty batch is a no-op.
    s.commit(&[]).expect("empty batch");

    // Another connection (another process, say) sees every commit: durable and WAL.
    let other = SqliteStorage::open(&dir.join("kv.db")).expect("open again");
    assert_eq!(all(&other), all(&s));
    assert!(dir.join("kv.db-wal").exists(), "WAL mode");
    drop((s, other));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_storage_contract_holds_with_a_connection_per_handle() {
    let dir = common::scratch_dir("sqlite-suite");
    let path = dir.join("kv.db");
    twofold_storage_testkit::check_storage_contract(&|| {
        Box::new(SqliteStorage::open(&path).expect("open"))
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_engine_over_sqlite_never_accepts_one_backup_code_twice() {
    let dir = common::scratch_dir("sqlite-engine");
    let path = dir.join("twofold.d");
    let config = twofold_testkit::fast_config();
    let ctx = Context::new("203.0.113.9", "sqlite-test");
    let instance = || {
        common::loader()
            .instantiate(SqliteStorage::open(&path).expect("open"), &config)
            .expect("no trap")
            .expect("a valid configuration")
    };

    let mut tf = instance();
    let user = ok(tf.call::<op::CreateAccount>(
        &ctx,
        &CreateAccount {
            email: "ada@example.com".into(),
            password: "correct horse battery staple".into(),
        },
    ))
    .user_id;
    let started = ok(tf.call::<op::StartPasskeyRegistration>(
        &ctx,
        &StartRegistration {
            user_id: user.clone(),
            name: "Key".into(),
            password: "correct horse battery staple".into(),
        },
    ));
    let options: serde_json::Value = serde_json::from_str(&started.options).expect("JSON");
    let credential = Authenticator::new(3)
        .register(&options, ORIGIN, &Tweaks::default())
        .expect("registration");
    let codes = ok(tf.call::<op::FinishPasskeyRegistration>(
        &ctx,
        &FinishRegistration {
            user_id: user,
            credential: credential.to_string(),
        },
    ))
    .backup_codes
    .expect("codes");

    // Four connections, four pending sign-ins, one code, all at once: exactly one wins.
    const RACERS: usize = 4;
    let tokens: Vec<String> = (0..RACERS)
        .map(|_| {
            match ok(tf.call::<op::SignIn>(
                &ctx,
                &SignIn {
                    email: "ada@example.com".into(),
                    password: "correct horse battery staple".into(),
                    remember_me: false,
                },
            )) {
                SignInOutcome::SecondFactorRequired(s) => s.pending_token.clone(),
                other => panic!("{other:?}"),
            }
        })
        .collect();
    let barrier = Arc::new(Barrier::new(RACERS));
    let racers: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let mut tf = instance();
            let barrier = Arc::clone(&barrier);
            let code = codes[0].clone();
            let ctx = ctx.clone();
            std::thread::spawn(move || {
                barrier.wait();
                match tf.call::<op::SignInBackupCode>(
                    &ctx,
                    &BackupCodeSignIn {
                        pending_token: token,
                        code,
                    },
                ) {
                    Ok(answer) => answer.map(|_| ()).map_err(|e| e.code),
                    Err(trap) => panic!("trap: {trap:?}"),
                }
            })
        })
        .collect();
    let results: Vec<_> = racers
        .into_iter()
        .map(|r| r.join().expect("racer"))
        .collect();
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|code| *code == ErrorCode::InvalidBackupCode),
        "{results:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
