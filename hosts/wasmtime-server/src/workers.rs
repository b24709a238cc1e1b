//! An engine worker: one database connection and one instance of the component, made on
//! first use, reused from request to request, and replaced after a trap or a panic (their
//! state is then unknown). A worker serves one request at a time on its own thread.

use std::path::PathBuf;
use std::sync::Arc;

use twofold_proto::{Config, Context, Operation, Storage};
use wasmtime::component::{Lift, Lower};

use crate::http::reply::ApiError;
use crate::sessions::Sessions;
use crate::sqlite::SqliteStorage;
use crate::{ComponentEngine, Instance};

/// Wraps each worker's storage before the component gets it, e.g. to observe calls or inject
/// faults in tests.
pub type StorageLayer = Arc<dyn Fn(SqliteStorage) -> Box<dyn Storage + Send> + Send + Sync>;

pub(crate) struct Worker {
    loader: ComponentEngine,
    config: Config,
    db_path: PathBuf,
    layer: Option<StorageLayer>,
    db: Option<SqliteStorage>,
    instance: Option<Instance>,
}

impl Worker {
    pub(crate) fn new(
        loader: ComponentEngine,
        config: Config,
        db_path: PathBuf,
        layer: Option<StorageLayer>,
    ) -> Worker {
        Worker {
            loader,
            config,
            db_path,
            layer,
            db: None,
            instance: None,
        }
    }

    fn db(&mut self) -> Result<SqliteStorage, ApiError> {
        if let Some(db) = &self.db {
            return Ok(db.clone());
        }
        let db =
            SqliteStorage::open(&self.db_path).map_err(|e| ApiError::storage(format!("{e:#}")))?;
        self.db = Some(db.clone());
        Ok(db)
    }

    pub(crate) fn sessions(&mut self) -> Result<Sessions, ApiError> {
        Ok(Sessions::new(self.db()?))
    }

    /// The worker's instance, made if needed. Its error is the engine refusing the
    /// configuration, or the component failing to instantiate.
    pub(crate) fn instance(&mut self) -> Result<&mut Instance, ApiError> {
        if self.instance.is_none() {
            let db = self.db()?;
            let storage: Box<dyn Storage + Send> = match &self.layer {
                Some(layer) => layer(db),
                None => Box::new(db),
            };
            let instance = match self.loader.instantiate(storage, &self.config) {
                Ok(Ok(instance)) => instance,
                Ok(Err(e)) => {
                    eprintln!("twofold-server: the engine refused its configuration: {e}");
                    return Err(e.into());
                }
                Err(trap) => {
                    return Err(ApiError::internal(format!(
                        "cannot instantiate the component: {trap:#}"
                    )));
                }
            };
            self.instance = Some(instance);
        }
        self.instance
            .as_mut()
            .ok_or_else(|| ApiError::internal("no instance"))
    }

    /// One engine call. A trap drops the instance and answers 500.
    pub(crate) fn call<O>(&mut self, ctx: &Context, req: &O::Request) -> Result<O::Answer, ApiError>
    where
        O: Operation,
        O::Request: Lower,
        O::Answer: Lift,
    {
        match self.instance()?.call::<O>(ctx, req) {
            Ok(answer) => Ok(answer?),
            Err(trap) => {
                self.instance = None;
                Err(ApiError::internal(format!(
                    "the component trapped; instance replaced: {trap:#}"
                )))
            }
        }
    }

    /// Forgets everything a panic may have left half-done.
    pub(crate) fn reset(&mut self) {
        self.instance = None;
        self.db = None;
    }
}
