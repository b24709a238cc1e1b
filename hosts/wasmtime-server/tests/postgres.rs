//! PostgresStorage against a real PostgreSQL 15 (started by the harness, one server for this
//! test binary, a database per test): the contract suite, then what is PostgreSQL's own
//! (schema, reconnecting, outages, secrets in messages), and the server's session table in the
//! same database.

use std::sync::Barrier;

use twofold_server::proto::{Expect, HostError, Storage, Write};
use twofold_server::store::postgres::{OpenError, PostgresStorage};
use twofold_server::store::{Backend, Database, SessionRow, SessionTable};
use twofold_storage_testkit::contract::{delete, put};
use twofold_storage_testkit::pg_harness::db_message;
use twofold_storage_testkit::{
    PgServer, check_failure_is_failed, check_storage_contract, test_database,
};

fn open(url: &str) -> PostgresStorage {
    PostgresStorage::open(url).unwrap_or_else(|e| panic!("open: {e}"))
}

fn admin_client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("admin connection")
}

#[test]
fn the_contract_holds() {
    let db = test_database().expect("a test database");
    let url = db.url();
    check_storage_contract(&|| Box::new(open(&url)));
}

#[test]
fn the_schema_is_created_once_and_versioned() {
    let db = test_database().expect("a test database");
    let url = db.url();
    // Several workers opening a new database at once: the advisory lock lets one create the
    // tables while the others wait, instead of colliding in the catalog.
    let barrier = Barrier::new(4);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                barrier.wait();
                open(&url)
            });
        }
    });
    let store = open(&url);
    store
        .commit(&[put("k", "v", Expect::Absent)])
        .expect("a commit");
    let mut client = admin_client(&url);
    let version: i32 = client
        .query_one("SELECT version FROM twofold_schema", &[])
        .and_then(|row| row.try_get(0))
        .expect("the schema row");
    assert_eq!(version, 2, "kv, then sessions");
    let rows: i64 = client
        .query_one("SELECT count(*) FROM twofold_schema", &[])
        .and_then(|row| row.try_get(0))
        .expect("count");
    assert_eq!(rows, 1, "one schema row");
    let collation: String = client
        .query_one(
            "SELECT collation_name::text FROM information_schema.columns \
             WHERE table_name = 'kv' AND column_name = 'key'",
            &[],
        )
        .and_then(|row| row.try_get(0))
        .expect("collation");
    assert_eq!(collation, "C");
}

#[test]
fn a_newer_schema_is_refused() {
    let db = test_database().expect("a test database");
    drop(open(&db.url()));
    admin_client(&db.url())
        .batch_execute("UPDATE twofold_schema SET version = 99")
        .expect("update");
    match PostgresStorage::open(&db.url()) {
        Err(OpenError::SchemaTooNew {
            found, supported, ..
        }) => assert_eq!((found, supported), (99, 2)),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn a_kv_table_without_byte_order_is_refused() {
    let db = test_database().expect("a test database");
    admin_client(&db.url())
        .batch_execute(
            "CREATE TABLE kv (key text PRIMARY KEY, value text NOT NULL, version bigint NOT NULL)",
        )
        .expect("create");
    match PostgresStorage::open(&db.url()) {
        Err(OpenError::Collation { .. }) => {}
        other => panic!("expected a collation error, got {other:?}"),
    }
}

#[test]
fn a_batch_naming_a_key_twice_fails_and_applies_nothing() {
    let db = test_database().expect("a test database");
    let store = open(&db.url());
    let answer = store.commit(&[
        put("a", "1", Expect::Absent),
        put("dup", "1", Expect::Absent),
        delete("dup", Expect::Absent),
    ]);
    assert!(matches!(answer, Err(HostError::Failed(_))), "{answer:?}");
    assert_eq!(store.get("a"), Ok(None));
}

#[test]
fn nul_characters_are_refused_without_a_round_trip() {
    let db = test_database().expect("a test database");
    let store = open(&db.url());
    assert!(matches!(store.get("a\0b"), Err(HostError::Failed(_))));
    assert!(matches!(
        store.scan("a\0", None, 1),
        Err(HostError::Failed(_))
    ));
    let answer = store.commit(&[put("k", "v\0", Expect::Absent)]);
    assert!(matches!(answer, Err(HostError::Failed(_))));
    // The connection is still fine.
    assert_eq!(store.get("k"), Ok(None));
}

/// Ends the store's server session from outside, as a DBA or a failover would.
fn terminate_sessions(url: &str, db: &str) -> i64 {
    admin_client(url)
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name = 'twofold'",
            &[&db],
        )
        .and_then(|row| row.try_get(0))
        .unwrap_or_else(|e| panic!("terminate: {}", db_message(&e)))
}

#[test]
fn a_terminated_session_is_replaced_on_the_next_call() {
    let db = test_database().expect("a test database");
    let store = open(&db.url());
    store
        .commit(&[put("k", "1", Expect::Absent)])
        .expect("a commit");
    assert_eq!(terminate_sessions(&db.server().url(), db.name()), 1);
    // A read is re-run on a new connection within the same call.
    assert_eq!(store.get("k").map(|v| v.map(|v| v.version)), Ok(Some(1)));
    assert_eq!(terminate_sessions(&db.server().url(), db.name()), 1);
    // So is a commit whose BEGIN found the connection dead: nothing had been applied.
    store
        .commit(&[put("k", "2", Expect::Version(1))])
        .expect("a commit after the session was ended");
    assert_eq!(store.get("k").map(|v| v.map(|v| v.version)), Ok(Some(2)));
}

#[test]
fn an_outage_gives_failed_without_secrets_and_recovery_follows() {
    const PASSWORD: &str = "s3cret-Pw";
    let server = PgServer::start().expect("a private server");
    let db = server.create_database().expect("a database");
    // Trust authentication ignores the password, but the URL carries it like a real one.
    let url = db
        .url()
        .replacen("twofold@", &format!("twofold:{PASSWORD}@"), 1);
    let store = open(&url);
    store
        .commit(&[put("k", "1", Expect::Absent)])
        .expect("a commit");
    assert!(
        !format!("{store:?}").contains(PASSWORD),
        "Debug shows the password"
    );

    server.stop().expect("stop");
    for message in check_failure_is_failed(&store) {
        assert!(!message.contains(PASSWORD), "{message}");
        assert!(!message.contains(&url), "{message}");
    }
    // Each call tries to reconnect, and keeps failing cleanly while the server is down.
    assert!(matches!(store.get("k"), Err(HostError::Failed(_))));
    let refused = PostgresStorage::open(&url).expect_err("open while the server is down");
    assert!(matches!(refused, OpenError::Connect { .. }), "{refused:?}");
    assert!(!refused.to_string().contains(PASSWORD), "{refused}");

    server.restart().expect("restart");
    assert_eq!(
        store.get("k").map(|v| v.map(|v| (v.value, v.version))),
        Ok(Some(("1".to_owned(), 1))),
        "the same store works again after the restart"
    );
    store
        .commit(&[put("k", "2", Expect::Version(1))])
        .expect("a commit after the restart");
    // The failed commit during the outage applied nothing.
    assert_eq!(store.get("fail/k"), Ok(None));
}

#[test]
fn a_bad_url_is_refused_without_echoing_it() {
    let answer = PostgresStorage::open("postgres://twofold:hunter2@127.0.0.1:notaport/db");
    match answer {
        Err(e @ OpenError::Url(_)) => assert!(!e.to_string().contains("hunter2"), "{e}"),
        other => panic!("expected a URL error, got {other:?}"),
    }
}

#[test]
fn conflicts_from_the_server_are_conflicts() {
    // Two stores updating the same two keys from opposite ends cannot deadlock (keys are
    // locked in order) and every answer is Ok or Conflict.
    let db = test_database().expect("a test database");
    let url = db.url();
    let seed = open(&url);
    seed.commit(&[put("x", "0", Expect::Absent), put("y", "0", Expect::Absent)])
        .expect("seed");
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        for reversed in [false, true] {
            let (url, barrier) = (&url, &barrier);
            s.spawn(move || {
                let store = open(url);
                for _ in 0..100 {
                    let x = store.get("x").expect("get").expect("x");
                    let y = store.get("y").expect("get").expect("y");
                    let mut batch: Vec<Write> = vec![
                        put("x", "1", Expect::Version(x.version)),
                        put("y", "1", Expect::Version(y.version)),
                    ];
                    if reversed {
                        batch.reverse();
                    }
                    barrier.wait();
                    let answer = store.commit(&batch);
                    assert!(
                        matches!(answer, Ok(()) | Err(HostError::Conflict)),
                        "{answer:?}"
                    );
                }
            });
        }
    });
    let x = seed.get("x").expect("get").expect("x");
    let y = seed.get("y").expect("get").expect("y");
    assert_eq!(x.version, y.version, "x and y always move together");
}

#[test]
fn a_commit_stuck_behind_a_foreign_lock_fails_after_the_lock_timeout() {
    let db = test_database().expect("a test database");
    let store = open(&db.url());
    store
        .commit(&[put("held", "1", Expect::Absent)])
        .expect("a commit");
    let mut other = admin_client(&db.url());
    let mut tx = other.transaction().expect("begin");
    tx.execute("SET LOCAL lock_timeout = 0", &[])
        .expect("no timeout here");
    tx.execute("SELECT 1 FROM kv WHERE key = 'held' FOR UPDATE", &[])
        .expect("lock the row");
    let started = std::time::Instant::now();
    let answer = store.commit(&[put("held", "2", Expect::Version(1))]);
    let waited = started.elapsed();
    assert!(matches!(answer, Err(HostError::Failed(_))), "{answer:?}");
    assert!(waited >= std::time::Duration::from_secs(4), "{waited:?}");
    tx.rollback().expect("rollback");
    // The store's connection survived and the row is free again.
    store
        .commit(&[put("held", "2", Expect::Version(1))])
        .expect("a commit once the lock is gone");
}

#[test]
fn sessions_live_beside_the_keys_and_every_connection_sees_them() {
    let db = test_database().expect("a test database");
    let (one, two) = (open(&db.url()), open(&db.url()));
    let row = SessionRow {
        user_id: "u1".into(),
        epoch: 3,
        remember: true,
        pending_hash: None,
        created_at: 1_000,
        expires_at: 2_000,
    };
    one.insert_session("hash-1", &row, 1_000).expect("insert");
    assert_eq!(two.session("hash-1", 1_500), Ok(Some(row.clone())));
    assert_eq!(two.session("hash-1", 2_000), Ok(None), "expired");
    assert_eq!(two.session("other", 1_500), Ok(None));
    // Creating a session sweeps the expired ones.
    two.insert_session("hash-2", &row, 2_500).expect("insert");
    let left: i64 = admin_client(&db.url())
        .query_one("SELECT count(*) FROM sessions", &[])
        .and_then(|r| r.try_get(0))
        .expect("count");
    assert_eq!(left, 1);
    two.delete_session("hash-2").expect("delete");
    assert_eq!(one.session("hash-2", 2_500), Ok(None));
    // `reset` in driver mode empties both tables.
    one.commit(&[put("k", "v", Expect::Absent)])
        .expect("a commit");
    one.insert_session("hash-3", &row, 1_000).expect("insert");
    two.clear().expect("clear");
    assert_eq!(one.get("k"), Ok(None));
    assert_eq!(one.session("hash-3", 1_000), Ok(None));
}

#[test]
fn the_database_is_named_without_its_password() {
    let db = Database::from_arg("postgres://twofold:hunter2@db.internal:5433/auth");
    let shown = format!("{db} {db:?}");
    assert!(shown.contains("db.internal:5433/auth"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    let refused = match Database::from_arg("postgres://twofold:hunter2@127.0.0.1:1/x").open() {
        Err(e) => e,
        Ok(_) => panic!("nothing listens on port 1"),
    };
    assert!(!refused.contains("hunter2"), "{refused}");
}
