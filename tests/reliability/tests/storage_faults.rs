//! D2 and E1 through both boundaries: a storage that fails (or reports a conflict) at the Nth
//! callback, for every N of every operation, leaves storage exactly as it was, answers a typed
//! error, and the next operation works.
//!
//! - Through the C library: the `twofold_host` callback table (here in Rust, as C would write
//!   it) answers `TWOFOLD_STORAGE` or `TWOFOLD_CONFLICT` at the Nth callback, counting `get`,
//!   `scan`, `commit` and also `now_ms` and `fill_random`, which a C host can fail too.
//! - Through the component: the wasmtime host's `MemoryStorage` with `fail_nth_call`.
//!
//! The operations are those of `core/tests/storage.rs` (which does the same natively), plus
//! `list_passkeys`. Each case runs on a fresh copy of one world, built through the boundary
//! under test.

mod common;

use serde_json::Value;
use twofold_core::{ErrorCode, Record};
use twofold_reliability::chost::CEngine;
use twofold_reliability::store::{Callback, Fault, MapHost, Snapshot};
use twofold_reliability::world::World;
use twofold_reliability::{hosts, invariants};
use twofold_testkit::fast_config;

fn config_json() -> String {
    serde_json::to_string(&fast_config()).expect("JSON")
}

/// The answer's error code, `None` for a success.
fn c_outcome(r: &Result<String, (twofold::twofold_status, String)>) -> Option<ErrorCode> {
    r.as_ref()
        .err()
        .map(|(status, _)| ErrorCode::from_number(*status as i32).expect("a SPEC status"))
}

#[test]
fn c_host_failing_at_every_callback_of_every_operation() {
    let config = config_json();
    let base = CEngine::new(MapHost::new(Snapshot::new(), 7), &config).expect("an engine");
    let world = World::build(&mut |op, args| {
        base.call(op, args.to_string().as_bytes())
            .map(|text| serde_json::from_str(&text).expect("JSON"))
            .map_err(|(status, message)| format!("{status:?}: {message}"))
    });
    let snapshot = base.host().snapshot();
    invariants::check(&snapshot).assert_ok("the world built through the C library");
    let fresh = || {
        CEngine::new(
            MapHost::new(snapshot.clone(), 99).counting_environment(),
            &config,
        )
        .expect("an engine")
    };

    let mut injected = 0;
    let mut retried = 0;
    for (name, op, args) in world.steps() {
        let args = args.to_string();
        let probe = fresh();
        let clean = c_outcome(&probe.call(op, args.as_bytes()));
        let log = probe.host().log();
        assert!(!log.is_empty(), "{name} made no callback");
        for n in 1..=log.len() as u64 {
            let kind = log[n as usize - 1];
            for fault in [Fault::Fail, Fault::Conflict] {
                let e = fresh();
                e.host().fail_at(n, fault);
                injected += 1;
                let r = e.call(op, args.as_bytes());
                let what = format!("{name}: {fault:?} at callback {n} ({kind:?})");
                match c_outcome(&r) {
                    Some(ErrorCode::Storage) | Some(ErrorCode::Conflict) => {
                        assert!(
                            e.host().snapshot() == snapshot,
                            "{what}: answered {r:?} but wrote to storage"
                        );
                        if fault == Fault::Fail || kind != Callback::Commit {
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
                            fault == Fault::Conflict && kind == Callback::Commit,
                            "{what}: the failure was ignored ({other:?})"
                        );
                        assert_eq!(other, clean, "{what}: after the retry");
                        retried += 1;
                        continue;
                    }
                }
                e.host().clear_fault();
                let again = e.call(op, args.as_bytes());
                assert_eq!(c_outcome(&again), clean, "{what}: the next call");
                if again.is_ok() {
                    invariants::check(&e.host().snapshot()).assert_ok(&what);
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
    if !hosts::available(
        "component storage faults",
        &[(
            "the component",
            hosts::component_path(),
            "wasm-component/build.sh",
        )],
    ) {
        return;
    }
    use common::component::{call, code, config, loader};
    use twofold_server::{Fault as WitFault, MemoryStorage};

    let loader = loader();
    let storage = MemoryStorage::new();
    let instance = |storage: &MemoryStorage| match loader.instantiate(storage.clone(), &config()) {
        Ok(Ok(tf)) => tf,
        Ok(Err(e)) => panic!("configuration refused: {}", e.message),
        Err(trap) => panic!("cannot instantiate: {trap:?}"),
    };
    let mut tf = instance(&storage);
    let world = World::build(&mut |op, args| match call(&mut tf, op, &args) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{}: {}", code(&e), e.message)),
        Err(trap) => panic!("trap: {trap}"),
    });
    drop(tf);
    let as_snapshot = |s: &MemoryStorage| -> Snapshot {
        s.snapshot()
            .into_iter()
            .map(|(k, (value, version))| (k, Record { value, version }))
            .collect()
    };
    let snapshot = as_snapshot(&storage);
    invariants::check(&snapshot).assert_ok("the world built through the component");
    let outcome = |r: Result<Result<Value, twofold_server::wit::Error>, String>, what: &str| match r
    {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(code(&e)),
        Err(trap) => panic!("{what}: the component trapped: {trap}"),
    };

    let mut injected = 0;
    for (name, op, args) in world.steps() {
        let probe = storage.fork();
        let clean = outcome(call(&mut instance(&probe), op, &args), name);
        let calls = probe.calls();
        assert!(calls > 0, "{name} made no storage call");
        for n in 1..=calls {
            for fault in [
                WitFault::Failed(format!("disk unplugged at call {n}")),
                WitFault::Conflict,
            ] {
                let fork = storage.fork();
                let mut tf = instance(&fork);
                fork.fail_nth_call(n, fault.clone());
                injected += 1;
                let what = format!("{name}: {fault:?} at storage call {n}");
                match outcome(call(&mut tf, op, &args), &what) {
                    Some("storage" | "conflict") => {
                        assert!(
                            as_snapshot(&fork) == snapshot,
                            "{what}: a typed error, but storage changed"
                        );
                    }
                    other => {
                        assert!(
                            fault == WitFault::Conflict,
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
                    invariants::check(&as_snapshot(&fork)).assert_ok(&what);
                }
            }
        }
    }
    eprintln!(
        "component: {injected} faults injected over {} operations",
        world.steps().len()
    );
}
