//! The transport: HTTP/1.1 (hyper) on a small tokio runtime, in front of the engine workers.
//!
//! Each connection is a task, not a thread, so idle and slow connections cost memory, not
//! workers; connections that arrive together are all accepted and served at once. Past the
//! connection limit a new connection is answered 503 and closed, so those already accepted
//! keep their service. A request is read completely ([`limits`]) before it is queued for a
//! worker; files of the UI and refused origins are answered here without a worker. On
//! [`Stopper::stop`] the server stops accepting, lets every connection finish the request it
//! is on (up to [`SHUTDOWN_GRACE`]), then lets the workers finish their queue.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use twofold_proto::{Config, Context, ErrorCode};

use crate::ComponentEngine;
use crate::http::cookies;
use crate::http::limits::{self, Clock, MAX_HEADER_BYTES, TimedIo, Timeouts};
use crate::http::reply::{ApiError, COMMON_HEADERS, Reply};
use crate::http::routes::{self, Request, Site};
use crate::store::Database;
use crate::workers::{Job, Pool, Queue, StorageLayer, Worker, WorkerSetup};

/// How long a stopping server waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// What [`start`] needs. [`ServerConfig::new`] fills in the defaults.
#[derive(Clone)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free one (see [`RunningServer::addr`]).
    pub listen: SocketAddr,
    /// The site's origin, e.g. `http://localhost:8080`: the only `Origin` state-changing
    /// requests may come from. The engine configuration's `origins` should name it.
    pub origin: String,
    /// The database: the engine's keys and the sessions.
    pub db: Database,
    /// The engine configuration.
    pub engine: Config,
    /// Engine worker threads, each with its own database connection and instance (default 4).
    pub workers: usize,
    /// Requests that may wait for a worker; more are answered 503 (default 64).
    pub queue: usize,
    /// Open connections; more are answered 503 and closed (default 512).
    pub max_connections: usize,
    /// How long requests may take to arrive and connections may idle.
    pub timeouts: Timeouts,
    /// Peers whose `X-Forwarded-For` names the client (reverse proxies the operator runs).
    pub trusted_proxies: Vec<IpAddr>,
    /// See [`StorageLayer`]. `None` in production.
    pub storage_layer: Option<StorageLayer>,
}

impl ServerConfig {
    /// A configuration with the defaults above.
    pub fn new(listen: SocketAddr, origin: String, db: Database, engine: Config) -> ServerConfig {
        ServerConfig {
            listen,
            origin,
            db,
            engine,
            workers: 4,
            queue: 64,
            max_connections: 512,
            timeouts: Timeouts::default(),
            trusted_proxies: Vec::new(),
            storage_layer: None,
        }
    }
}

/// A server that is running. Dropping it does not stop it; call [`RunningServer::shutdown`]
/// or [`Stopper::stop`] and then [`RunningServer::wait`].
pub struct RunningServer {
    addr: SocketAddr,
    stopper: Stopper,
    thread: JoinHandle<()>,
}

/// Stops a running server from any thread (a signal handler's, say).
#[derive(Clone)]
pub struct Stopper(Arc<watch::Sender<bool>>);

impl Stopper {
    /// Asks the server to stop; harmless when already stopping.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl RunningServer {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops the server.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Waits until the server has stopped: no connection left, every worker done.
    pub fn wait(self) -> Result<(), String> {
        self.thread
            .join()
            .map_err(|_| "the server thread panicked".to_owned())
    }

    /// Stops the server and waits for it.
    pub fn shutdown(self) -> Result<(), String> {
        self.stopper.stop();
        self.wait()
    }
}

/// What every connection shares.
struct Shared {
    site: Site,
    queue: Queue,
    timeouts: Timeouts,
    trusted_proxies: Vec<IpAddr>,
    max_connections: usize,
    open: AtomicUsize,
}

/// Starts serving: checks the configuration and the database by building one instance, then
/// listens and starts the workers.
pub fn start(loader: ComponentEngine, config: ServerConfig) -> wasmtime::Result<RunningServer> {
    let setup = WorkerSetup {
        loader,
        config: config.engine.clone(),
        db: config.db.clone(),
        layer: config.storage_layer.clone(),
    };
    if let Err(e) = Worker::new(setup.clone()).instance() {
        wasmtime::bail!("cannot start the engine: {}", e.error.message);
    }
    let listener = std::net::TcpListener::bind(config.listen)
        .map_err(|e| wasmtime::format_err!("cannot listen on {}: {e}", config.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("twofold-http")
        .enable_all()
        .build()?;
    let listener = {
        let _entered = runtime.enter();
        TcpListener::from_std(listener)?
    };
    let site = Site {
        secure: config.origin.starts_with("https://"),
        origin: config.origin.clone(),
    };
    let pool = Pool::start(
        &setup,
        config.workers.max(1),
        config.queue.max(1),
        Arc::new(site.clone()),
    )?;
    let shared = Arc::new(Shared {
        site,
        queue: pool.queue(),
        timeouts: config.timeouts,
        trusted_proxies: config.trusted_proxies.clone(),
        max_connections: config.max_connections.max(1),
        open: AtomicUsize::new(0),
    });
    let (stop, stopped) = watch::channel(false);
    let thread = std::thread::Builder::new()
        .name("twofold-server".into())
        .spawn(move || {
            runtime.block_on(serve(listener, Arc::clone(&shared), stopped));
            // Ends what is left (connections past the grace period) and drops their queues.
            drop(runtime);
            drop(shared);
            pool.finish();
        })
        .map_err(|e| wasmtime::format_err!("cannot start the server thread: {e}"))?;
    Ok(RunningServer {
        addr,
        stopper: Stopper(Arc::new(stop)),
        thread,
    })
}

/// Resolves once the server is asked to stop.
async fn stop_requested(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    while let Some(accepted) = limits::unless(listener.accept(), stop_requested(stop.clone())).await
    {
        match accepted {
            Ok((stream, peer)) => admit(stream, peer, &shared, &stop),
            Err(e) => {
                // Out of file descriptors, say: wait for some to close.
                eprintln!("twofold-server: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while shared.open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Counts a connection while it is open.
struct Open(Arc<Shared>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

fn admit(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>, stop: &watch::Receiver<bool>) {
    if shared.open.fetch_add(1, Ordering::SeqCst) >= shared.max_connections {
        shared.open.fetch_sub(1, Ordering::SeqCst);
        // Refused at once, so the connections already open keep their service.
        let _ = stream.try_write(&limits::raw_answer(
            "503 Service Unavailable",
            ErrorCode::Storage,
            "the server has too many connections; try again in a moment",
            "Retry-After: 1\r\n",
        ));
        return;
    }
    let open = Open(Arc::clone(shared));
    let _ = stream.set_nodelay(true);
    tokio::spawn(connection(stream, peer, open, stop.clone()));
}

async fn connection(stream: TcpStream, peer: SocketAddr, open: Open, stop: watch::Receiver<bool>) {
    let shared = Arc::clone(&open.0);
    let clock = Clock::new(shared.timeouts);
    let io = TimedIo::new(stream, Arc::clone(&clock));
    let service_clock = Arc::clone(&clock);
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        let clock = Arc::clone(&service_clock);
        async move { Ok::<_, Infallible>(respond(request, peer, &shared, &clock).await) }
    });
    let mut builder = http1::Builder::new();
    builder.max_buf_size(MAX_HEADER_BYTES).keep_alive(true);
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut stop = std::pin::pin!(stop_requested(stop));
    let mut idle = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    let mut closing = false;
    // The connection; told to finish the request it is on and close when the server stops,
    // and to close when it has idled too long.
    let _ = std::future::poll_fn(|cx| {
        loop {
            if !closing && stop.as_mut().poll(cx).is_ready() {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            if let Poll::Ready(done) = conn.as_mut().poll(cx) {
                return Poll::Ready(done);
            }
            let Some(deadline) = clock.idle_deadline().filter(|_| !closing) else {
                return Poll::Pending;
            };
            if idle.deadline() != deadline {
                idle.as_mut().reset(deadline);
            }
            if idle.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            closing = true;
            conn.as_mut().graceful_shutdown();
        }
    })
    .await;
    drop(open);
}

async fn respond(
    request: hyper::Request<Incoming>,
    peer: SocketAddr,
    shared: &Shared,
    clock: &Clock,
) -> hyper::Response<Full<Bytes>> {
    let started = Instant::now();
    let deadline = clock.begin_request();
    let method = request.method().as_str().to_owned();
    let path: String = request.uri().path().chars().take(200).collect();
    let reply = answer(request, peer, shared, deadline).await;
    clock.answered();
    eprintln!(
        "{method} {path} {} {}ms",
        reply.status,
        started.elapsed().as_millis()
    );
    response(reply)
}

async fn answer(
    request: hyper::Request<Incoming>,
    peer: SocketAddr,
    shared: &Shared,
    deadline: Instant,
) -> Reply {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let method = parts.method.as_str();
    let path = parts.uri.path();
    if let Some(reply) = routes::front(&shared.site, method, path, text(header::ORIGIN).as_deref())
    {
        return reply;
    }
    let declared = text(header::CONTENT_LENGTH).and_then(|n| n.trim().parse::<u64>().ok());
    let body = match limits::read_body(body, declared, deadline, shared.timeouts).await {
        Ok(body) => body,
        Err(e) => return e.reply(),
    };
    let client = client_address(peer.ip(), headers, &shared.trusted_proxies).to_string();
    let user_agent = text(header::USER_AGENT).unwrap_or_default();
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let request = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        session: cookies::find(cookies, cookies::name(shared.site.secure)),
        ctx: Context {
            ip: client.clone(),
            user_agent: truncate(&user_agent, 512),
            client_id: client,
            device_token: None,
        },
        body,
    };
    let (reply, answered) = oneshot::channel();
    if !shared.queue.submit(Job { request, reply }) {
        return ApiError::with_status(
            503,
            ErrorCode::Storage,
            "the server is busy; try again in a moment",
        )
        .reply()
        .with_header("Retry-After", "1");
    }
    answered
        .await
        .unwrap_or_else(|_| ApiError::internal("a worker dropped a request").reply())
}

/// The client the engine counts (S6) and the audit log records (H4): the peer, or, when the
/// peer is a proxy the operator trusts, the address that proxy put in `X-Forwarded-For`
/// (read from the right, past further trusted proxies). A header from any other peer is
/// ignored: anyone can write one.
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in forwarded.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(address) => {
                client = address.to_canonical();
                if !trusted.contains(&client) {
                    break;
                }
            }
            // Not an address a proxy of ours wrote: trust nothing further left.
            Err(_) => break,
        }
    }
    client
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn response(reply: Reply) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = hyper::StatusCode::from_u16(reply.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    let all = [("Content-Type", reply.content_type)]
        .into_iter()
        .chain(COMMON_HEADERS)
        .chain(reply.headers.iter().map(|(n, v)| (*n, v.as_str())));
    for (name, value) in all {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.append(name, value);
        }
    }
    if reply.close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h4_the_client_is_the_peer_unless_a_trusted_proxy_names_it() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            "198.51.100.9, 203.0.113.5".parse().unwrap(),
        );
        headers.append("x-forwarded-for", "192.0.2.7".parse().unwrap());
        let proxy = ip("10.0.0.2");
        // An untrusted peer's header is ignored.
        assert_eq!(
            client_address(ip("192.0.2.1"), &headers, &[proxy]),
            ip("192.0.2.1")
        );
        // The trusted proxy's own entry is the last one.
        assert_eq!(client_address(proxy, &headers, &[proxy]), ip("192.0.2.7"));
        // Through two trusted proxies, the first address neither of them is.
        let inner = ip("192.0.2.7");
        assert_eq!(
            client_address(proxy, &headers, &[proxy, inner]),
            ip("203.0.113.5")
        );
        // Garbage stops the walk; no header at all means the proxy itself.
        let mut bad = HeaderMap::new();
        bad.append(
            "x-forwarded-for",
            "198.51.100.9, not-an-ip".parse().unwrap(),
        );
        assert_eq!(client_address(proxy, &bad, &[proxy]), proxy);
        assert_eq!(client_address(proxy, &HeaderMap::new(), &[proxy]), proxy);
        // IPv4-mapped IPv6 peers are their IPv4 address.
        assert_eq!(
            client_address(ip("::ffff:10.0.0.2"), &headers, &[proxy]),
            ip("192.0.2.7")
        );
    }
}
