//! The wasmtime embedding of the twofold component: compile it once, link WASI and the storage
//! import, keep an [`InstancePre`], and call the engine's methods with the `twofold-proto`
//! types themselves (feature `wasmtime` derives their lowering and lifting, so nothing is
//! converted).
//!
//! Why typed functions rather than `bindgen!`: wasmtime 48's `bindgen!` can remap whole
//! *imported* interfaces with `with`, but never single types, and it always generates its own
//! types for *exported* interfaces (`types` and `engine` are exports here). Its bindings would
//! therefore be a second copy of every request and answer, converted by hand on each call. The
//! typed functions below take the proto types as they are, and one generic [`Instance::call`]
//! covers every operation of `twofold_proto::for_each_op!`. Export indices are looked up once
//! per component; each instance type-checks a method once, on its first call, and calls it
//! without further checks afterwards (what `bindgen!`'s own generated code does).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use twofold_proto::{Config, Context, EngineError, Op, Operation, Storage, WIT_PACKAGE, Write};
use wasmtime::component::{
    Component, ComponentExportIndex, Func, InstancePre, Lift, Linker, Lower, ResourceAny,
    ResourceTable, TypedFunc,
};
use wasmtime::{Engine, Store, StoreContextMut};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::cache;

/// The data of each instance's store: WASI state plus the host's storage.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    storage: Box<dyn Storage + Send>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// How [`ComponentEngine::load`] prepares the component.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Keep the compiled machine code in this directory and reuse it while the component and
    /// the wasmtime configuration stay the same: compiling takes about a second in a release
    /// build of the host and over ten in a debug build, loading the cached code milliseconds.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Trap any call that runs longer than this (wasmtime epoch interruption), so a guest that
    /// never returns cannot hold a thread forever. `None`: no limit.
    pub call_timeout: Option<Duration>,
}

/// How long loading took and where the machine code came from.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Time spent compiling or loading the cached code, and linking.
    pub took: Duration,
    /// Whether the compiled code came from the cache.
    pub from_cache: bool,
    /// Why the cache could not be used or written, if it could not.
    pub cache_problem: Option<String>,
}

/// How often the epoch advances when calls have a deadline.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// `twofold:engine/<interface>@<version>`.
fn interface(name: &str) -> String {
    let (package, version) = WIT_PACKAGE.split_once('@').unwrap_or((WIT_PACKAGE, ""));
    format!("{package}/{name}@{version}")
}

/// Where the engine resource's constructor and methods are, found once per component.
struct Exports {
    constructor: ComponentExportIndex,
    /// In the order of [`Op::ALL`].
    methods: Vec<ComponentExportIndex>,
}

impl Exports {
    fn find(component: &Component) -> wasmtime::Result<Exports> {
        let name = interface("engine");
        let engine = component
            .get_export_index(None, &name)
            .ok_or_else(|| wasmtime::format_err!("the component does not export {name}"))?;
        let find = |item: String| {
            component
                .get_export_index(Some(&engine), &item)
                .ok_or_else(|| wasmtime::format_err!("{name} has no {item}"))
        };
        Ok(Exports {
            constructor: find("[constructor]engine".into())?,
            methods: Op::ALL
                .iter()
                .map(|op| find(format!("[method]engine.{}", op.wit_name())))
                .collect::<wasmtime::Result<_>>()?,
        })
    }
}

/// The component, compiled once and linked against WASI and the storage import, ready to
/// instantiate cheaply (tens of microseconds) as often as needed. Clones share everything.
#[derive(Clone)]
pub struct ComponentEngine {
    pre: InstancePre<HostState>,
    exports: Arc<Exports>,
    /// Epoch ticks a call may run, when calls have a deadline.
    deadline_ticks: Option<u64>,
}

impl ComponentEngine {
    /// Reads and compiles the component at `path` (about a second) with a default wasmtime
    /// engine and no call deadline.
    pub fn from_file(path: &Path) -> wasmtime::Result<ComponentEngine> {
        let engine = Engine::default();
        let component = Component::from_file(&engine, path)
            .map_err(|e| e.context(format!("cannot load the component {}", path.display())))?;
        ComponentEngine::new(component)
    }

    /// Reads the component at `path` and compiles it, or loads its compiled code from
    /// `options.cache_dir`, for an engine configured by `options`.
    pub fn load(
        path: &Path,
        options: &LoadOptions,
    ) -> wasmtime::Result<(ComponentEngine, LoadReport)> {
        let started = std::time::Instant::now();
        let mut config = wasmtime::Config::new();
        // Always on, so that every configuration shares one cached artifact; without a
        // timeout the deadline is simply never reached.
        config.epoch_interruption(true);
        let engine = Engine::new(&config)?;
        let bytes = std::fs::read(path).map_err(|e| {
            wasmtime::format_err!("cannot read the component {}: {e}", path.display())
        })?;
        let (component, from_cache, cache_problem) = match &options.cache_dir {
            Some(dir) => cache::load_or_compile(&engine, &bytes, path, dir)?,
            None => (Component::new(&engine, &bytes)?, false, None),
        };
        let deadline_ticks = match options.call_timeout {
            Some(timeout) => {
                spawn_epoch_ticker(&engine)?;
                let ticks = timeout.as_millis().div_ceil(EPOCH_TICK.as_millis()).max(1);
                u64::try_from(ticks).unwrap_or(u64::MAX)
            }
            // Never reached, and far from overflowing wasmtime's `current + ticks`.
            None => u64::MAX / 2,
        };
        let mut loaded = ComponentEngine::new(component)
            .map_err(|e| e.context(format!("cannot link the component {}", path.display())))?;
        loaded.deadline_ticks = Some(deadline_ticks);
        let report = LoadReport {
            took: started.elapsed(),
            from_cache,
            cache_problem,
        };
        Ok((loaded, report))
    }

    /// Links a compiled component: WASI p2 first (the component's std needs it), then the
    /// storage import. Fails if the component's imports or exports do not match the world.
    pub fn new(component: Component) -> wasmtime::Result<ComponentEngine> {
        let mut linker = Linker::<HostState>::new(component.engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        link_storage(&mut linker)?;
        let exports = Arc::new(Exports::find(&component)?);
        Ok(ComponentEngine {
            pre: linker.instantiate_pre(&component)?,
            exports,
            deadline_ticks: None,
        })
    }

    /// The compiled component, e.g. to list its imports.
    pub fn component(&self) -> &Component {
        self.pre.component()
    }

    /// The wasmtime engine the component was compiled with.
    pub fn engine(&self) -> &Engine {
        self.pre.engine()
    }

    /// A new instance over `storage` with a default WASI context (system clock, OS
    /// randomness, no files, no environment, no stdio), and its engine built from `config`.
    /// The inner error is the engine refusing `config`.
    pub fn instantiate(
        &self,
        storage: impl Storage + Send + 'static,
        config: &Config,
    ) -> wasmtime::Result<Result<Instance, EngineError>> {
        self.instantiate_with(storage, WasiCtx::builder().build(), config)
    }

    /// Like [`ComponentEngine::instantiate`] with a WASI context of the caller's, for instance
    /// one with a manual wall clock.
    pub fn instantiate_with(
        &self,
        storage: impl Storage + Send + 'static,
        wasi: WasiCtx,
        config: &Config,
    ) -> wasmtime::Result<Result<Instance, EngineError>> {
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            storage: Box::new(storage),
        };
        let mut store = Store::new(self.pre.engine(), state);
        if let Some(ticks) = self.deadline_ticks {
            store.set_epoch_deadline(ticks);
        }
        let instance = self.pre.instantiate(&mut store)?;
        let constructor = instance
            .get_typed_func::<(&Config,), (Result<ResourceAny, EngineError>,)>(
                &mut store,
                &self.exports.constructor,
            )?;
        let (created,) = constructor.call(&mut store, (config,))?;
        Ok(created.map(|engine| Instance {
            store,
            instance,
            engine,
            exports: Arc::clone(&self.exports),
            checked: vec![None; Op::ALL.len()],
            deadline_ticks: self.deadline_ticks,
        }))
    }
}

/// The `storage` import: a thin adapter over the store's [`Storage`].
fn link_storage(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    type Cx<'a> = StoreContextMut<'a, HostState>;
    let mut storage = linker.instance(&interface("storage"))?;
    storage.func_wrap("get", |cx: Cx<'_>, (key,): (String,)| {
        Ok((cx.data().storage.get(&key),))
    })?;
    storage.func_wrap(
        "scan",
        |cx: Cx<'_>, (prefix, after, limit): (String, Option<String>, u32)| {
            Ok((cx.data().storage.scan(&prefix, after.as_deref(), limit),))
        },
    )?;
    storage.func_wrap("commit", |cx: Cx<'_>, (writes,): (Vec<Write>,)| {
        Ok((cx.data().storage.commit(&writes),))
    })?;
    Ok(())
}

/// Advances `engine`'s epoch every [`EPOCH_TICK`] for as long as the engine lives.
fn spawn_epoch_ticker(engine: &Engine) -> wasmtime::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("twofold-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map_err(|e| wasmtime::format_err!("cannot start the epoch thread: {e}"))?;
    Ok(())
}

/// One instance of the component with its configured `engine` resource.
///
/// Calls need `&mut self`: an instance serves one call at a time. Keep one per worker, or
/// instantiate per request; both are cheap. After a trap the instance must be dropped.
pub struct Instance {
    store: Store<HostState>,
    instance: wasmtime::component::Instance,
    engine: ResourceAny,
    exports: Arc<Exports>,
    /// Each method once type-checked by this instance, by [`Op`] index.
    checked: Vec<Option<Func>>,
    deadline_ticks: Option<u64>,
}

/// The typed form of an engine method: `func(self: borrow<engine>, ctx, req) -> result<..>`.
type Method<'a, O> = TypedFunc<
    (ResourceAny, &'a Context, &'a <O as Operation>::Request),
    (Result<<O as Operation>::Answer, EngineError>,),
>;

impl Instance {
    /// Runs operation `O`, e.g. `instance.call::<op::SignIn>(&ctx, &req)`.
    ///
    /// The outer error is a trap (a bug in the component, or a call past its deadline; never
    /// bad input or a storage failure): drop the instance then. The inner one is the engine's
    /// typed error.
    pub fn call<O>(
        &mut self,
        ctx: &Context,
        req: &O::Request,
    ) -> wasmtime::Result<Result<O::Answer, EngineError>>
    where
        O: Operation,
        O::Request: Lower,
        O::Answer: Lift,
    {
        let slot = O::OP as usize;
        let method: Method<'_, O> = match self.checked.get(slot).copied().flatten() {
            // SAFETY: `func` was stored below only after `get_typed_func` type-checked it, in
            // this store, against `Method<O>` for this same `O::OP`; the operations table
            // fixes `O::Request` and `O::Answer` for each `Op`, so the signature is the one
            // that was checked (bindgen's generated code calls its methods the same way).
            Some(func) => unsafe { TypedFunc::new_unchecked(func) },
            None => {
                let index =
                    self.exports.methods.get(slot).ok_or_else(|| {
                        wasmtime::format_err!("no export for {}", O::OP.wit_name())
                    })?;
                let method: Method<'_, O> = self.instance.get_typed_func(&mut self.store, index)?;
                if let Some(entry) = self.checked.get_mut(slot) {
                    *entry = Some(*method.func());
                }
                method
            }
        };
        if let Some(ticks) = self.deadline_ticks {
            self.store.set_epoch_deadline(ticks);
        }
        let (answer,) = method.call(&mut self.store, (self.engine, ctx, req))?;
        Ok(answer)
    }
}
