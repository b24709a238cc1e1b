//! Runs the twofold WASI component (`wasm-component/`, WIT `twofold:engine/twofold`) in
//! wasmtime: compile it once, keep an [`InstancePre`], and give each instance its own store
//! whose data holds the WASI context and the host's storage.
//!
//! ```no_run
//! use twofold_server::{ComponentEngine, MemoryStorage, wit};
//! # fn demo() -> wasmtime::Result<()> {
//! let loader = ComponentEngine::from_file(&twofold_server::default_component_path())?;
//! let config = wit::Config {
//!     rp_id: "example.com".into(),
//!     rp_name: "Example".into(),
//!     origins: vec!["https://example.com".into()],
//!     ..twofold_server::default_config()
//! };
//! let mut instance = match loader.instantiate(MemoryStorage::new(), &config)? {
//!     Ok(instance) => instance,
//!     Err(e) => panic!("bad configuration: {}", e.message),
//! };
//! let ctx = wit::Context { ip: "203.0.113.7".into(), user_agent: "demo".into() };
//! let created = instance.create_account(&ctx, &wit::CreateAccount {
//!     email: "ada@example.com".into(),
//!     password: "correct horse battery".into(),
//! })?;
//! # let _ = created; Ok(()) }
//! ```
//!
//! Every operation answers `wasmtime::Result<Result<T, wit::Error>>`: the outer error is a
//! trap (a bug in the component, or a call past its deadline; never bad input or a storage
//! failure), the inner one the engine's typed error.
//!
//! On top of the embedding: [`sqlite`] (the storage import over an SQLite file), [`http`]
//! (the JSON API and web UI of the `twofold-server` binary) and [`driver`] (the conformance
//! protocol on stdin and stdout).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)
)]

pub mod bindings;
pub mod driver;
pub mod http;
pub mod json;
pub mod memory;
pub mod sqlite;

mod cache;
mod sessions;

use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker, ResourceAny, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::twofold::engine::storage;
use crate::bindings::{Twofold, TwofoldPre};

pub use crate::bindings::exports::twofold::engine::types as wit;
pub use crate::memory::{Fault, MemoryStorage};

/// The storage an instance reaches through the imported `twofold:engine/storage` interface.
/// Implement the generated trait for a real database; [`MemoryStorage`] is the test one.
pub trait Storage: storage::Host + Send + 'static {}

impl<T: storage::Host + Send + 'static> Storage for T {}

/// A boxed storage is a storage, so hosts can pick or wrap one at run time.
impl<T: storage::Host + ?Sized> storage::Host for Box<T> {
    fn get(&mut self, key: String) -> Result<Option<storage::Versioned>, storage::StorageError> {
        (**self).get(key)
    }

    fn scan(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<storage::Entry>, storage::StorageError> {
        (**self).scan(prefix, after, limit)
    }

    fn commit(&mut self, writes: Vec<storage::Write>) -> Result<(), storage::StorageError> {
        (**self).commit(writes)
    }
}

/// Where `wasm-component/build.sh` leaves the component:
/// `$TWOFOLD_COMPONENT` if set, else `<target dir>/wasm32-wasip2/release/twofold_component.wasm`
/// with the target dir `$CARGO_TARGET_DIR` or the workspace's `target/`.
pub fn default_component_path() -> PathBuf {
    if let Some(path) = std::env::var_os("TWOFOLD_COMPONENT") {
        return PathBuf::from(path);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    target.join("wasm32-wasip2/release/twofold_component.wasm")
}

/// A configuration with SPEC defaults for everything but the relying party, which names
/// `localhost` until the host sets it.
pub fn default_config() -> wit::Config {
    wit::Config {
        rp_id: "localhost".into(),
        rp_name: "twofold".into(),
        origins: vec!["http://localhost:8080".into()],
        password_hash: None,
        backup_code_hash: None,
        user_verification: None,
        pending_sign_in_ttl_secs: None,
        registration_ttl_secs: None,
        max_second_factor_attempts: None,
        lockout_threshold: None,
        lockout_secs: None,
        backup_code_count: None,
        backup_code_low_watermark: None,
        max_conflict_retries: None,
    }
}

/// The data of each instance's store: WASI state plus the host's storage.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    storage: Box<dyn Storage>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl storage::Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<storage::Versioned>, storage::StorageError> {
        self.storage.get(key)
    }

    fn scan(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<storage::Entry>, storage::StorageError> {
        self.storage.scan(prefix, after, limit)
    }

    fn commit(&mut self, writes: Vec<storage::Write>) -> Result<(), storage::StorageError> {
        self.storage.commit(writes)
    }
}

/// How [`ComponentEngine::load`] prepares the component.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Keep the compiled machine code in this directory and reuse it while the component and
    /// the wasmtime configuration stay the same: compiling takes about a second in a release
    /// build of the host and over ten in a debug build, loading the cached code milliseconds.
    pub cache_dir: Option<PathBuf>,
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

/// The component, compiled once and linked against WASI and the storage import, ready to
/// instantiate cheaply (tens of microseconds) as often as needed.
#[derive(Clone)]
pub struct ComponentEngine {
    pre: TwofoldPre<HostState>,
    /// Epoch ticks a call may run, when calls have a deadline.
    deadline_ticks: Option<u64>,
}

impl ComponentEngine {
    /// Reads and compiles the component at `path` (about a second) with a default wasmtime
    /// engine.
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
        Twofold::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)?;
        let pre = TwofoldPre::new(linker.instantiate_pre(&component)?)?;
        Ok(ComponentEngine {
            pre,
            deadline_ticks: None,
        })
    }

    /// The compiled component, e.g. to list its imports.
    pub fn component(&self) -> &Component {
        self.pre.instance_pre().component()
    }

    /// The wasmtime engine the component was compiled with.
    pub fn engine(&self) -> &Engine {
        self.pre.engine()
    }

    /// A new instance over `storage` with a default WASI context (system clock, OS
    /// randomness, no files, no environment, no stdio), and its engine built from `config`.
    pub fn instantiate(
        &self,
        storage: impl Storage,
        config: &wit::Config,
    ) -> wasmtime::Result<Result<Instance, wit::Error>> {
        self.instantiate_with(storage, WasiCtx::builder().build(), config)
    }

    /// Like [`ComponentEngine::instantiate`] with a WASI context of the caller's, for instance
    /// one with a manual wall clock.
    pub fn instantiate_with(
        &self,
        storage: impl Storage,
        wasi: WasiCtx,
        config: &wit::Config,
    ) -> wasmtime::Result<Result<Instance, wit::Error>> {
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            storage: Box::new(storage),
        };
        let mut store = Store::new(self.pre.engine(), state);
        if let Some(ticks) = self.deadline_ticks {
            store.set_epoch_deadline(ticks);
        }
        let bindings = self.pre.instantiate(&mut store)?;
        let created = bindings
            .twofold_engine_engine()
            .engine()
            .call_constructor(&mut store, config)?;
        Ok(created.map(|engine| Instance {
            store,
            bindings,
            engine,
            deadline_ticks: self.deadline_ticks,
        }))
    }
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
    bindings: Twofold,
    engine: ResourceAny,
    deadline_ticks: Option<u64>,
}

macro_rules! operations {
    ($($(#[$doc:meta])* $name:ident => $call:ident($req:ty) -> $ret:ty;)*) => {
        impl Instance {
            $(
                $(#[$doc])*
                pub fn $name(
                    &mut self,
                    ctx: &wit::Context,
                    req: &$req,
                ) -> wasmtime::Result<Result<$ret, wit::Error>> {
                    if let Some(ticks) = self.deadline_ticks {
                        self.store.set_epoch_deadline(ticks);
                    }
                    self.bindings
                        .twofold_engine_engine()
                        .engine()
                        .$call(&mut self.store, self.engine, ctx, req)
                }
            )*
        }
    };
}

operations! {
    /// Creates an account.
    create_account => call_create_account(wit::CreateAccount) -> wit::AccountCreated;
    /// Sign-in step one.
    sign_in => call_sign_in(wit::SignIn) -> wit::SignInOutcome;
    /// Sign-in step two with a passkey.
    sign_in_with_passkey => call_sign_in_with_passkey(wit::PasskeySignIn) -> wit::SignedIn;
    /// Sign-in step two with a backup code.
    sign_in_with_backup_code =>
        call_sign_in_with_backup_code(wit::BackupCodeSignIn) -> wit::SignedIn;
    /// Starts a passkey registration.
    start_passkey_registration =>
        call_start_passkey_registration(wit::StartRegistration) -> wit::RegistrationStarted;
    /// Finishes a passkey registration.
    finish_passkey_registration =>
        call_finish_passkey_registration(wit::FinishRegistration) -> wit::PasskeyRegistered;
    /// Lists a user's passkeys.
    list_passkeys => call_list_passkeys(wit::UserRef) -> Vec<wit::Passkey>;
    /// Renames a passkey.
    rename_passkey => call_rename_passkey(wit::RenamePasskey) -> wit::Passkey;
    /// Removes a passkey.
    remove_passkey => call_remove_passkey(wit::RemovePasskey) -> wit::Status;
    /// Turns 2FA on.
    enable_two_factor => call_enable_two_factor(wit::PasswordConfirmed) -> wit::BackupCodes;
    /// Turns 2FA off.
    disable_two_factor => call_disable_two_factor(wit::PasswordConfirmed) -> wit::Status;
    /// Replaces the backup-code set.
    regenerate_backup_codes =>
        call_regenerate_backup_codes(wit::PasswordConfirmed) -> wit::BackupCodes;
    /// A user's two-factor state.
    status => call_status(wit::UserRef) -> wit::Status;
    /// A page of a user's audit events.
    audit_events => call_audit_events(wit::AuditQuery) -> wit::AuditPage;
    /// Verifies a user's audit chain.
    verify_audit_chain => call_verify_audit_chain(wit::UserRef) -> wit::ChainReport;
}
