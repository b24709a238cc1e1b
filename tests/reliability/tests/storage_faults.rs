//! D2 and E1 through both boundaries: a storage that fails (or reports a conflict) at the Nth
//! callback, for every N of every operation, leaves storage exactly as it was, answers a typed
//! error, and the next operation works.
//!
//! - Through the C library: the test-support `twofold_host` table (written in Rust as C would
//!   write it) answers `TWOFOLD_STORAGE` or `TWOFOLD_CONFLICT` at the Nth callback, counting
//!   `get`, `scan`, `commit` and also `now_ms` and `fill_random`, which a C host can fail too.
//! - Through the component: the testkit's `MemoryStorage` behind the storage import fails or
//!   reports a conflict at its Nth call.
//!
//! Through both, a conflict reported by `get` or `scan` is a `storage` failure (only a commit
//! can meet a conflict), and a refused commit is retried.
//!
//! The operations are every one of the table (`World::steps`). Each case runs on a fresh copy
//! of one world, built through the boundary under test.

mod common;

use std::sync::Arc;

use serde_json::Value;
use twofold_core::{EngineError, ErrorCode};
use twofold_reliability::world::World;
use twofold_reliability::{Snapshot, hosts, invariants};
use twofold_testkit::{Call, Fault, MemoryStorage, TestHost, fast_config};
use twofold_testsupport::{Answer, CEngine, Callback, Fault as CFault, Misbehave};

/// The answer's error code, `None` for a success.
fn c_outcome(r: &Answer) -> Option<ErrorCode> {
    r.as_ref().err().map(|(code, _)| *code)
}

#[test]
fn c_host_failing_at_every_callback_of_every_operation() {
    let config = serde_json::to_string(&fast_config()).expect("JSON");
    let engine = |snapshot: &Snapshot, seed| {
        let host = Arc::new(TestHost::with_data(snapshot.clone(), seed));
        CEngine::new(host, &config).expect("an engine")
    };
    let base = engine(&Snapshot::new(), 7);
    let world = World::build(&mut |op, args| {
        base.call(op, args.to_string().as_bytes())
            .map(|text| serde_json::from_str(&text).expect("JSON"))
            .map_err(|(code, message)| format!("{code}: {message}"))
    });
    let snapshot = base.host().storage.snapshot();
    invariants::check(&snapshot).assert_ok("the world built through the C library");

    let mut injected = 0;
    let mut retried = 0;
    for (name, op, args) in world.steps() {
        let args = args.to_string();
        let probe = engine(&snapshot, 99);
        let clean = c_outcome(&probe.call(op, args.as_bytes()));
        let log = probe.callbacks().log();
        assert!(!log.is_empty(), "{name} made no callback");
        for (n, kind) in (1..).zip(log) {
            for code in [ErrorCode::Storage, ErrorCode::Conflict] {
                let e = engine(&snapshot, 99);
                let how = Misbehave::Status(code.number());
                e.callbacks().set_fault(CFault {
                    how,
                    from: n,
                    once: true,
                });
                injected += 1;
                let r = e.call(op, args.as_bytes());
                let what = format!("{name}: {code} at callback {n} ({kind:?})");
                match c_outcome(&r) {
                    Some(ErrorCode::Storage) | Some(ErrorCode::Conflict) => {
                        assert!(
                            e.host().storage.snapshot() == snapshot,
                            "{what}: answered {r:?} but wrote to storage"
                        );
                        if code == ErrorCode::Storage || kind != Callback::Commit {
                            assert_eq!(
                                c_outcome(&r),
                                Some(ErrorCode::Storage),
                                "{what}: a failed callback is a storage error"
                            );
                        }
                    }
                    other => {
                        // Only a refused commit is retried: it ends as a clean run does.
                        assert!(
                            code == ErrorCode::Conflict && kind == Callback::Commit,
                            "{what}: the failure was ignored ({other:?})"
                        );
                        assert_eq!(other, clean, "{what}: after the retry");
                        retried += 1;
                        continue;
                    }
                }
                e.callbacks().clear_fault();
                let again = e.call(op, args.as_bytes());
                assert_eq!(c_outcome(&again), clean, "{what}: the next call");
                if again.is_ok() {
                    invariants::check(&e.host().storage.snapshot()).assert_ok(&what);
                }
            }
        }
    }
    eprintln!(
        "C host: {injected} faults injected over {} operations ({retried} refused commits retried)",
        world.steps().len()
    );
}

#[test]
fn component_storage_failing_at_every_call_of_every_operation() {
    if !hosts::available("component storage faults", &hosts::component_needs()) {
        return;
    }
    use common::component::{call, instance};

    let (world, snapshot) = common::component::world();
    invariants::check(&snapshot).assert_ok("the world built through the component");
    let fork = || Arc::new(MemoryStorage::with_data(snapshot.clone()));
    let outcome = |r: Result<Result<Value, EngineError>, String>, what: &str| match r {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.code),
        Err(trap) => panic!("{what}: the component trapped: {trap}"),
    };

    let mut injected = 0;
    for (name, op, args) in world.steps() {
        let probe = fork();
        let clean = outcome(call(&mut instance(Arc::clone(&probe)), op, &args), name);
        let log = probe.call_log();
        assert!(!log.is_empty(), "{name} made no storage call");
        for (n, kind) in (1..).zip(log) {
            for fault in [Fault::Fail, Fault::Conflict] {
                let fork = fork();
                let mut tf = instance(Arc::clone(&fork));
                fork.inject(n, fault);
                injected += 1;
                let what = format!("{name}: {fault:?} at storage call {n} ({kind:?})");
                match outcome(call(&mut tf, op, &args), &what) {
                    Some(code @ (ErrorCode::Storage | ErrorCode::Conflict)) => {
                        assert!(
                            fork.snapshot() == snapshot,
                            "{what}: a typed error, but storage changed"
                        );
                        // As through C: only a commit can meet a conflict.
                        if fault == Fault::Fail || kind != Call::Commit {
                            assert_eq!(code, ErrorCode::Storage, "{what}");
                        }
                    }
                    other => {
                        assert!(
                            fault == Fault::Conflict,
                            "{what}: the failure was ignored ({other:?})"
                        );
                        assert_eq!(other, clean, "{what}: after the retry");
                        continue;
                    }
                }
                fork.clear_faults();
                let again = outcome(call(&mut tf, op, &args), &what);
                assert_eq!(again, clean, "{what}: the next call on the same instance");
                if again.is_none() {
                    invariants::check(&fork.snapshot()).assert_ok(&what);
                }
            }
        }
    }
    eprintln!(
        "component: {injected} faults injected over {} operations",
        world.steps().len()
    );
}
