//! The transport: a fixed pool of worker threads, each with its own engine [`Worker`], taking
//! requests from tiny_http, catching panics so that one bad request costs a 500 and a log
//! line, never the server.

use std::io::Read;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tiny_http::{Header, Response};
use twofold_proto::{Config, Context, MAX_JSON_BYTES};

use crate::ComponentEngine;
use crate::http::cookies;
use crate::http::reply::{ApiError, COMMON_HEADERS, Reply};
use crate::http::routes::{self, Request, Site};
use crate::workers::{StorageLayer, Worker};

/// What [`start`] needs.
#[derive(Clone)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free one (see [`RunningServer::addr`]).
    pub listen: SocketAddr,
    /// The site's origin, e.g. `http://localhost:8080`: the only `Origin` state-changing
    /// requests may come from. The engine configuration's `origins` should name it.
    pub origin: String,
    /// The SQLite database file.
    pub db: PathBuf,
    /// The engine configuration.
    pub engine: Config,
    /// Worker threads, each with its own database connection and instance.
    pub workers: usize,
    /// See [`StorageLayer`]. `None` in production.
    pub storage_layer: Option<StorageLayer>,
}

/// A server that is running. Dropping it does not stop it; call [`RunningServer::shutdown`]
/// or [`Stopper::stop`] and then [`RunningServer::wait`].
pub struct RunningServer {
    addr: SocketAddr,
    stopper: Stopper,
    workers: Vec<JoinHandle<()>>,
}

/// Stops a running server from any thread: it stops taking requests, lets every worker
/// finish the requests it has, and [`RunningServer::wait`] returns.
#[derive(Clone)]
pub struct Stopper {
    server: Arc<tiny_http::Server>,
    stopping: Arc<AtomicBool>,
    failure: Arc<Mutex<Option<String>>>,
    workers: usize,
}

impl Stopper {
    /// Asks the server to stop; harmless when already stopping.
    pub fn stop(&self) {
        if !self.stopping.swap(true, Ordering::SeqCst) {
            // One wake-up per worker, queued behind the requests already received, so those
            // are answered first.
            for _ in 0..self.workers {
                self.server.unblock();
            }
        }
    }

    fn fail(&self, why: String) {
        let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        failure.get_or_insert(why);
        drop(failure);
        self.stop();
    }
}

impl RunningServer {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops the server (from a signal handler thread, say).
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Waits until the server has stopped and every worker has finished. `Err` when it
    /// stopped because it could no longer accept connections.
    pub fn wait(self) -> Result<(), String> {
        for worker in self.workers {
            let _ = worker.join();
        }
        let failure = self
            .stopper
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match failure.clone() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// Stops the server and waits for it.
    pub fn shutdown(self) -> Result<(), String> {
        self.stopper.stop();
        self.wait()
    }
}

/// Starts serving: checks the configuration and the database by building one instance, then
/// listens and starts the workers.
pub fn start(loader: ComponentEngine, config: ServerConfig) -> wasmtime::Result<RunningServer> {
    let worker = || {
        Worker::new(
            loader.clone(),
            config.engine.clone(),
            config.db.clone(),
            config.storage_layer.clone(),
        )
    };
    if let Err(e) = worker().instance() {
        wasmtime::bail!("cannot start the engine: {}", e.error.message);
    }

    let server = tiny_http::Server::http(config.listen)
        .map_err(|e| wasmtime::format_err!("cannot listen on {}: {e}", config.listen))?;
    let addr = match server.server_addr() {
        tiny_http::ListenAddr::IP(addr) => addr,
        #[allow(unreachable_patterns)]
        _ => config.listen,
    };
    let workers = config.workers.max(1);
    let stopper = Stopper {
        server: Arc::new(server),
        stopping: Arc::new(AtomicBool::new(false)),
        failure: Arc::new(Mutex::new(None)),
        workers,
    };
    let site = Arc::new(Site {
        secure: config.origin.starts_with("https://"),
        origin: config.origin.clone(),
    });
    let mut handles = Vec::with_capacity(workers);
    for n in 0..workers {
        let mut worker = worker();
        let stopper = stopper.clone();
        let site = Arc::clone(&site);
        let handle = std::thread::Builder::new()
            .name(format!("twofold-http-{n}"))
            .spawn(move || {
                loop {
                    match stopper.server.recv() {
                        Ok(request) => serve(&mut worker, &site, request),
                        Err(_) if stopper.stopping.load(Ordering::SeqCst) => break,
                        Err(e) => {
                            // tiny_http's accept loop has ended: nothing more will arrive.
                            stopper.fail(format!("cannot accept connections: {e}"));
                            break;
                        }
                    }
                }
            })
            .map_err(|e| wasmtime::format_err!("cannot start a worker thread: {e}"))?;
        handles.push(handle);
    }
    Ok(RunningServer {
        addr,
        stopper,
        workers: handles,
    })
}

fn serve(worker: &mut Worker, site: &Site, mut request: tiny_http::Request) {
    let started = Instant::now();
    let method = request.method().to_string();
    let path: String = request
        .url()
        .split('?')
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    let reply = match read(site, &mut request) {
        Err(e) => e.reply(),
        Ok(req) => match catch_unwind(AssertUnwindSafe(|| routes::handle(worker, site, &req))) {
            Ok(reply) => reply,
            Err(panic) => {
                worker.reset();
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                ApiError::internal(format!("{method} {path} panicked: {what}")).reply()
            }
        },
    };
    let status = reply.status;
    let _ = request.respond(response(reply));
    eprintln!(
        "{method} {path} {status} {}ms",
        started.elapsed().as_millis()
    );
}

fn header<'r>(request: &'r tiny_http::Request, name: &str) -> Option<&'r str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// The request as the routes see it; the body refused with 413 beyond 64 KiB.
fn read(site: &Site, request: &mut tiny_http::Request) -> Result<Request, ApiError> {
    let too_large = || {
        ApiError::with_status(
            413,
            twofold_proto::ErrorCode::InvalidInput,
            "the request body is larger than 64 KiB",
        )
    };
    if request.body_length().is_some_and(|n| n > MAX_JSON_BYTES) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let limit = u64::try_from(MAX_JSON_BYTES).unwrap_or(u64::MAX) + 1;
    request
        .as_reader()
        .take(limit)
        .read_to_end(&mut body)
        .map_err(|_| ApiError::invalid("the request body could not be read"))?;
    if body.len() > MAX_JSON_BYTES {
        return Err(too_large());
    }
    let url = request.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let ip = request
        .remote_addr()
        .map(|addr| addr.ip().to_string())
        .unwrap_or_default();
    let user_agent = truncate(header(request, "User-Agent").unwrap_or(""), 512);
    let cookie_headers = request
        .headers()
        .iter()
        .filter(|h| h.field.equiv("Cookie"))
        .map(|h| h.value.as_str());
    Ok(Request {
        method: request.method().to_string(),
        path: path.to_owned(),
        query: query.to_owned(),
        origin: header(request, "Origin").map(str::to_owned),
        session: cookies::find(cookie_headers, cookies::name(site.secure)),
        ctx: Context::new(ip, user_agent),
        body,
    })
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn response(reply: Reply) -> Response<std::io::Cursor<Vec<u8>>> {
    // Always a Content-Length, never chunked: every body is in memory anyway.
    let mut response = Response::from_data(reply.body)
        .with_status_code(reply.status)
        .with_chunked_threshold(usize::MAX);
    let content_type = [("Content-Type", reply.content_type)];
    let headers = content_type
        .iter()
        .chain(COMMON_HEADERS.iter())
        .map(|(n, v)| (*n, *v))
        .chain(reply.headers.iter().map(|(n, v)| (*n, v.as_str())));
    for (name, value) in headers {
        if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
    response
}
