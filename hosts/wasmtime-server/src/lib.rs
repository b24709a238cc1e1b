//! Runs the twofold WASI component (`wasm-component/`, WIT `twofold:engine/twofold`) in
//! wasmtime, with the `twofold-proto` types as the only request and answer types.
//!
//! ```no_run
//! use twofold_server::proto::ops::op;
//! use twofold_server::proto::{AuditKey, Config, Context, CreateAccount};
//! use twofold_server::{ComponentEngine, store::sqlite::SqliteStorage};
//! # fn demo() -> wasmtime::Result<()> {
//! let loader = ComponentEngine::from_file(&twofold_server::default_component_path())?;
//! // The audit key comes from the host's secret store, never from the database.
//! let key = AuditKey::new("k1", std::env::var("AUDIT_KEY_HEX")?);
//! let config = Config::new("example.com", "Example", "https://example.com", key);
//! let storage = SqliteStorage::open(std::path::Path::new("app.db"))?;
//! let mut instance = match loader.instantiate(storage, &config)? {
//!     Ok(instance) => instance,
//!     Err(e) => panic!("bad configuration: {e}"),
//! };
//! let ctx = Context::new("203.0.113.7", "demo");
//! let created = instance.call::<op::CreateAccount>(&ctx, &CreateAccount {
//!     email: "ada@example.com".into(),
//!     password: "correct horse battery".into(),
//! })?;
//! # let _ = created; Ok(()) }
//! ```
//!
//! Every call answers `wasmtime::Result<Result<Answer, EngineError>>`: the outer error is a
//! trap (a bug in the component, or a call past its deadline; never bad input or a storage
//! failure), the inner one the engine's typed error. Storage is any
//! [`twofold_proto::Storage`]: [`store::sqlite::SqliteStorage`] and
//! [`store::postgres::PostgresStorage`] here, the testkit's `MemoryStorage` (with fault
//! injection) in tests.
//!
//! On top of the embedding: [`store`] (storage and sessions over SQLite or PostgreSQL),
//! [`http`] (the JSON API and web UI of the `twofold-server` binary) and [`driver`] (the
//! conformance protocol on stdin and stdout).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)
)]

pub mod driver;
pub mod http;
pub mod store;

mod cache;
mod component;
mod sessions;
mod workers;

use std::path::{Path, PathBuf};

pub use component::{ComponentEngine, HostState, Instance, LoadOptions, LoadReport};
pub use twofold_proto as proto;

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
