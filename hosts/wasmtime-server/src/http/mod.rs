//! The HTTP server of `twofold-server`: the JSON API and the embedded web UI.
//!
//! [`server`] is the transport (connections, limits, the pool of engine workers), [`routes`]
//! the API, [`reply`] the answers and their statuses, [`cookies`] the session cookie,
//! [`assets`] the UI's files.

mod assets;
mod cookies;
pub(crate) mod reply;
mod routes;
mod server;

pub use crate::workers::StorageLayer;
pub use server::{RunningServer, ServerConfig, Stopper, start};
