//! What the test binaries share beyond the library: the component, loaded once per binary.

#![allow(dead_code)]

pub mod component {
    //! The WASI component in wasmtime through `twofold-server`'s embedding: loaded through the
    //! compiled-code cache beside it, configured with the test configuration, and driven with
    //! the JSON arguments of `twofold_core::api` (deserialised into the proto request the typed
    //! call takes, the answer serialised back: the operations table, expanded).

    use std::path::PathBuf;
    use std::sync::OnceLock;

    use std::sync::Arc;

    use serde_json::Value;
    use twofold_core::{Context, EngineError, ErrorCode, Op, Storage};
    use twofold_reliability::world::World;
    use twofold_reliability::{Snapshot, hosts};
    use twofold_server::{ComponentEngine, Instance, LoadOptions};
    use twofold_testkit::{MemoryStorage, fast_config};

    /// The component, compiled (or loaded from the cache) once per test binary.
    pub fn loader() -> ComponentEngine {
        static LOADER: OnceLock<ComponentEngine> = OnceLock::new();
        let load = || {
            let path = hosts::component_path();
            let options = LoadOptions {
                cache_dir: path.parent().map(PathBuf::from),
                call_timeout: None,
            };
            let loaded = ComponentEngine::load(&path, &options);
            loaded.unwrap_or_else(|e| panic!("cannot load {}: {e:?}", path.display()))
        };
        LOADER.get_or_init(|| load().0).clone()
    }

    /// An instance over `storage` with the test configuration.
    pub fn instance(storage: impl Storage + Send + 'static) -> Instance {
        match loader().instantiate(storage, &fast_config()) {
            Ok(Ok(instance)) => instance,
            Ok(Err(e)) => panic!("configuration refused: {}", e.message),
            Err(trap) => panic!("cannot instantiate: {trap:?}"),
        }
    }

    /// The world, built through the component (its own ids, tokens and challenges), and the
    /// storage it left.
    pub fn world() -> (World, Snapshot) {
        let storage = Arc::new(MemoryStorage::new());
        let mut tf = instance(Arc::clone(&storage));
        let world = World::build(&mut |op, args| match call(&mut tf, op, &args) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("{}: {}", e.code, e.message)),
            Err(trap) => panic!("trap while building the world: {trap}"),
        });
        (world, storage.snapshot())
    }

    /// One operation with JSON arguments: `Ok(answer)` (the answer as JSON, or the typed
    /// error; arguments of the wrong shape are `invalid_input`, as the JSON API answers them),
    /// or `Err(trap)`.
    pub fn call(
        tf: &mut Instance,
        op: Op,
        args: &Value,
    ) -> Result<Result<Value, EngineError>, String> {
        let ctx = Context::new("203.0.113.7", "twofold-reliability");
        macro_rules! dispatch {
            ($($(#[doc = $doc:literal])+ $variant:ident, $method:ident, $name:literal,
               $wit:literal, $req:path => $answer:path;)+) => {
                match op {
                    $(Op::$variant => {
                        let req: $req = match serde_json::from_value(args.clone()) {
                            Ok(req) => req,
                            Err(e) => {
                                let message = format!("arguments: {e}");
                                return Ok(Err(EngineError::new(ErrorCode::InvalidInput, message)));
                            }
                        };
                        tf.call::<twofold_core::op::$variant>(&ctx, &req)
                            .map(|answer| answer.map(|a| serde_json::to_value(a)))
                    })+
                }
            };
        }
        match twofold_core::for_each_op!(dispatch) {
            Ok(Ok(Ok(value))) => Ok(Ok(value)),
            Ok(Ok(Err(e))) => Err(format!("the answer does not serialise: {e}")),
            Ok(Err(e)) => Ok(Err(e)),
            Err(trap) => Err(format!("{trap:?}")),
        }
    }
}
