//! The HTTP server of `twofold-server`: the JSON API and the embedded web UI.
//!
//! [`server`] is the transport (connections, the pool of engine workers, shutdown), [`limits`]
//! what one client may cost (SPEC H3), [`routes`] the API, [`reply`] the answers and their
//! statuses, [`cookies`] the session cookie, [`assets`] the UI's files.

mod assets;
mod cookies;
pub mod limits;
pub(crate) mod reply;
pub(crate) mod routes;
mod server;

pub use crate::workers::StorageLayer;
pub use limits::Timeouts;
pub use server::{RunningServer, SHUTDOWN_GRACE, ServerConfig, Stopper, start};
