//! The engine workers: a fixed pool of threads, each with its own database connection and its
//! own instance of the component, fed by a bounded queue of requests whose bodies have been
//! read completely. The engine's slow work (argon2, signature checks) therefore never runs on
//! the HTTP threads, and no worker ever waits for a client's bytes. A full queue is refused at
//! once (503 with Retry-After) rather than letting requests pile up.
//!
//! A worker reuses its instance and connection from request to request and replaces them
//! after a trap or a panic (their state is then unknown), so one bad request costs a 500 and a
//! log line, never the server.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;
use twofold_proto::{Config, Context, Operation, Storage};
use wasmtime::component::{Lift, Lower};

use crate::http::reply::{ApiError, Reply};
use crate::http::routes::{self, Request, Site};
use crate::store::{Backend, Database};
use crate::{ComponentEngine, Instance};

/// Wraps each worker's storage before the component gets it, e.g. to observe calls or inject
/// faults in tests.
pub type StorageLayer =
    Arc<dyn Fn(Box<dyn Storage + Send>) -> Box<dyn Storage + Send> + Send + Sync>;

/// What a worker needs to make its connection and instance.
#[derive(Clone)]
pub(crate) struct WorkerSetup {
    pub(crate) loader: ComponentEngine,
    pub(crate) config: Config,
    pub(crate) db: Database,
    pub(crate) layer: Option<StorageLayer>,
}

pub(crate) struct Worker {
    setup: WorkerSetup,
    backend: Option<Arc<dyn Backend>>,
    instance: Option<Instance>,
}

impl Worker {
    pub(crate) fn new(setup: WorkerSetup) -> Worker {
        Worker {
            setup,
            backend: None,
            instance: None,
        }
    }

    /// The worker's database connection, opened if needed.
    pub(crate) fn backend(&mut self) -> Result<Arc<dyn Backend>, ApiError> {
        if let Some(backend) = &self.backend {
            return Ok(Arc::clone(backend));
        }
        let backend = self.setup.db.open().map_err(ApiError::storage)?;
        self.backend = Some(Arc::clone(&backend));
        Ok(backend)
    }

    /// The worker's instance, made if needed. Its error is the engine refusing the
    /// configuration, or the component failing to instantiate.
    pub(crate) fn instance(&mut self) -> Result<&mut Instance, ApiError> {
        if self.instance.is_none() {
            let storage: Box<dyn Storage + Send> = Box::new(self.backend()?);
            let storage = match &self.setup.layer {
                Some(layer) => layer(storage),
                None => storage,
            };
            let instance = match self.setup.loader.instantiate(storage, &self.setup.config) {
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
    fn reset(&mut self) {
        self.instance = None;
        self.backend = None;
    }
}

/// A request for a worker, and where its answer goes.
pub(crate) struct Job {
    pub(crate) request: Request,
    pub(crate) reply: oneshot::Sender<Reply>,
}

/// The worker threads and the queue in front of them.
pub(crate) struct Pool {
    queue: SyncSender<Job>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `workers` threads behind a queue of `capacity` requests.
    pub(crate) fn start(
        setup: &WorkerSetup,
        workers: usize,
        capacity: usize,
        site: Arc<Site>,
    ) -> wasmtime::Result<Pool> {
        let (queue, jobs) = std::sync::mpsc::sync_channel::<Job>(capacity);
        let jobs = Arc::new(Mutex::new(jobs));
        let mut threads = Vec::with_capacity(workers);
        for n in 0..workers {
            let worker = Worker::new(setup.clone());
            let jobs = Arc::clone(&jobs);
            let site = Arc::clone(&site);
            let thread = std::thread::Builder::new()
                .name(format!("twofold-engine-{n}"))
                .spawn(move || work(worker, &jobs, &site))
                .map_err(|e| wasmtime::format_err!("cannot start a worker thread: {e}"))?;
            threads.push(thread);
        }
        Ok(Pool { queue, threads })
    }

    /// Where requests go; clones share the queue.
    pub(crate) fn queue(&self) -> Queue {
        Queue(self.queue.clone())
    }

    /// Lets the workers finish what is queued, then waits for them. They stop once every
    /// [`Queue`] is gone too.
    pub(crate) fn finish(self) {
        drop(self.queue);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// The queue in front of the workers.
#[derive(Clone)]
pub(crate) struct Queue(SyncSender<Job>);

impl Queue {
    /// Queues a request; `false` when the queue is full (or the workers are gone).
    pub(crate) fn submit(&self, job: Job) -> bool {
        match self.0.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

fn work(mut worker: Worker, jobs: &Mutex<Receiver<Job>>, site: &Site) {
    loop {
        let job = {
            let jobs = jobs.lock().unwrap_or_else(|p| p.into_inner());
            jobs.recv()
        };
        let Ok(job) = job else {
            return;
        };
        if job.reply.is_closed() {
            // The client has gone; nobody would read the answer.
            continue;
        }
        let reply = match catch_unwind(AssertUnwindSafe(|| {
            routes::api(&mut worker, site, &job.request)
        })) {
            Ok(reply) => reply,
            Err(panic) => {
                worker.reset();
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                ApiError::internal(format!(
                    "{} {} panicked: {what}",
                    job.request.method, job.request.path
                ))
                .reply()
            }
        };
        let _ = job.reply.send(reply);
    }
}
