//! The HTTP server of `twofold-server`: the JSON API of issue 5 and the embedded web UI, on a
//! fixed pool of worker threads.
//!
//! Each worker owns an SQLite connection and one instance of the component, reused from
//! request to request and replaced after a trap or a panic, so one bad request costs a 500
//! and a log line, never the server. The server holds no policy: every decision is the
//! engine's, and the server maps the engine's answers to HTTP. What the server does itself is
//! HTTP's part: sessions in an HttpOnly, SameSite=Strict cookie, a CSRF check on the `Origin`
//! of every state-changing request, a 64 KiB body limit, and the client's IP and user agent
//! passed to each call.

use std::io::Read;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tiny_http::{Header, Method, Response};

use crate::json::{self, Credential, MAX_JSON_BYTES};
use crate::sessions::{REMEMBERED, Session, Sessions};
use crate::sqlite::SqliteStorage;
use crate::{ComponentEngine, Instance, Storage, wit};

/// Wraps each worker's storage before the component gets it, e.g. to observe calls or inject
/// faults in tests.
pub type StorageLayer = Arc<dyn Fn(SqliteStorage) -> Box<dyn Storage> + Send + Sync>;

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
    pub engine: wit::Config,
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
    let mut probe = Worker::new(loader.clone(), &config);
    if let Err(e) = probe.instance() {
        wasmtime::bail!("cannot start the engine: {}", e.message);
    }
    drop(probe);

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
    let shared = Arc::new(Shared {
        secure: config.origin.starts_with("https://"),
        origin: config.origin.clone(),
    });
    let mut handles = Vec::with_capacity(workers);
    for n in 0..workers {
        let mut worker = Worker::new(loader.clone(), &config);
        let stopper = stopper.clone();
        let shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name(format!("twofold-http-{n}"))
            .spawn(move || {
                loop {
                    match stopper.server.recv() {
                        Ok(request) => serve(&mut worker, &shared, request),
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

/// What every worker reads.
struct Shared {
    origin: String,
    secure: bool,
}

/// One worker's database connection and instance, made on first use and after failures.
struct Worker {
    loader: ComponentEngine,
    engine: wit::Config,
    db_path: PathBuf,
    layer: Option<StorageLayer>,
    db: Option<SqliteStorage>,
    instance: Option<Instance>,
}

impl Worker {
    fn new(loader: ComponentEngine, config: &ServerConfig) -> Worker {
        Worker {
            loader,
            engine: config.engine.clone(),
            db_path: config.db.clone(),
            layer: config.storage_layer.clone(),
            db: None,
            instance: None,
        }
    }

    fn db(&mut self) -> Result<SqliteStorage, ApiError> {
        if let Some(db) = &self.db {
            return Ok(db.clone());
        }
        match SqliteStorage::open(&self.db_path) {
            Ok(db) => {
                self.db = Some(db.clone());
                Ok(db)
            }
            Err(e) => {
                eprintln!("twofold-server: {e:#}");
                Err(ApiError::new(
                    503,
                    "storage",
                    "the database is not available; try again later",
                ))
            }
        }
    }

    fn sessions(&mut self) -> Result<Sessions, ApiError> {
        Ok(Sessions::new(self.db()?))
    }

    fn instance(&mut self) -> Result<&mut Instance, ApiError> {
        if self.instance.is_none() {
            let db = self.db()?;
            let storage: Box<dyn Storage> = match &self.layer {
                Some(layer) => layer(db),
                None => Box::new(db),
            };
            match self.loader.instantiate(storage, &self.engine) {
                Ok(Ok(instance)) => self.instance = Some(instance),
                Ok(Err(e)) => {
                    eprintln!(
                        "twofold-server: the engine refused its configuration: {}",
                        e.message
                    );
                    return Err(ApiError::engine(&e));
                }
                Err(trap) => {
                    eprintln!("twofold-server: cannot instantiate the component: {trap:#}");
                    return Err(ApiError::internal());
                }
            }
        }
        self.instance.as_mut().ok_or_else(ApiError::internal)
    }

    /// One engine call. A trap drops the instance (its state is unknown) and answers 500.
    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut Instance) -> wasmtime::Result<Result<T, wit::Error>>,
    ) -> Result<T, ApiError> {
        match f(self.instance()?) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(ApiError::engine(&e)),
            Err(trap) => {
                self.instance = None;
                eprintln!("twofold-server: the component trapped; instance replaced: {trap:#}");
                Err(ApiError::internal())
            }
        }
    }

    /// Forgets everything a panic may have left half-done.
    fn reset(&mut self) {
        self.instance = None;
        self.db = None;
    }
}

// ------------------------------------------------------------------ replies and errors

/// An error answer: `{"error": {"code", "message"}}` with an HTTP status.
#[derive(Debug)]
struct ApiError {
    status: u16,
    code: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    fn engine(e: &wit::Error) -> ApiError {
        ApiError {
            status: status_of(e.code),
            code: json::code_name(e.code),
            message: e.message.clone(),
            retry_after_secs: e.retry_after_secs,
        }
    }

    fn internal() -> ApiError {
        ApiError::new(
            500,
            "internal",
            "the server failed on this request; try again",
        )
    }

    fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "invalid_input", message)
    }

    /// No session, or not a signed-in one. The code is `expired` (the session is over or
    /// never was), not `invalid_credentials`, which means a wrong password.
    fn not_signed_in() -> ApiError {
        ApiError::new(401, "expired", "not signed in, or the session has ended")
    }

    fn reply(self) -> Reply {
        let mut error = json!({ "code": self.code, "message": self.message });
        let mut reply = Reply::json(self.status, Value::Null);
        if let Some(secs) = self.retry_after_secs {
            if let Some(map) = error.as_object_mut() {
                map.insert("retry_after_secs".into(), secs.into());
            }
            reply.headers.push(("Retry-After".into(), secs.to_string()));
        }
        reply.body = json!({ "error": error }).to_string().into_bytes();
        reply
    }
}

/// The HTTP status for an engine error code.
fn status_of(code: wit::ErrorCode) -> u16 {
    use wit::ErrorCode as C;
    match code {
        C::InvalidInput => 400,
        C::InvalidCredentials
        | C::SecondFactorRequired
        | C::InvalidPasskey
        | C::InvalidBackupCode => 401,
        C::Expired => 410,
        C::NotFound => 404,
        C::AlreadyExists | C::AlreadyEnabled | C::NotEnabled | C::NoPasskey | C::Conflict => 409,
        C::RateLimited => 429,
        C::Storage => 503,
        C::Internal => 500,
    }
}

struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: body.to_string().into_bytes(),
            headers: vec![("Cache-Control".into(), "no-store".into())],
        }
    }

    fn ok(body: Value) -> Reply {
        Reply::json(200, body)
    }

    fn with_cookie(mut self, cookie: String) -> Reply {
        self.headers.push(("Set-Cookie".into(), cookie));
        self
    }

    fn into_response(self) -> Response<std::io::Cursor<Vec<u8>>> {
        // Always a Content-Length, never chunked: every body is in memory anyway.
        let mut response = Response::from_data(self.body)
            .with_status_code(self.status)
            .with_chunked_threshold(usize::MAX);
        let mut headers = vec![
            ("Content-Type".to_owned(), self.content_type.to_owned()),
            ("X-Content-Type-Options".into(), "nosniff".into()),
            ("Referrer-Policy".into(), "no-referrer".into()),
            ("X-Frame-Options".into(), "DENY".into()),
            ("Cross-Origin-Opener-Policy".into(), "same-origin".into()),
        ];
        headers.extend(self.headers);
        for (name, value) in headers {
            if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                response.add_header(header);
            }
        }
        response
    }
}

/// Scripts and styles only from the site itself; inline scripts refused.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

// ------------------------------------------------------------------ one request

fn serve(worker: &mut Worker, shared: &Shared, mut request: tiny_http::Request) {
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
    let reply = match catch_unwind(AssertUnwindSafe(|| handle(worker, shared, &mut request))) {
        Ok(reply) => reply,
        Err(panic) => {
            worker.reset();
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            eprintln!("twofold-server: {method} {path} panicked: {what}");
            ApiError::internal().reply()
        }
    };
    let status = reply.status;
    let _ = request.respond(reply.into_response());
    eprintln!(
        "{method} {path} {status} {}ms",
        started.elapsed().as_millis()
    );
}

/// Everything about the request a handler needs.
struct Call<'a> {
    ctx: wit::Context,
    cookie: Option<String>,
    body: Vec<u8>,
    query: &'a str,
    shared: &'a Shared,
}

fn handle(worker: &mut Worker, shared: &Shared, request: &mut tiny_http::Request) -> Reply {
    let method = request.method().clone();
    let url = request.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));

    let changes_state = matches!(
        method,
        Method::Post | Method::Put | Method::Patch | Method::Delete
    );
    if changes_state && header(request, "Origin") != Some(shared.origin.as_str()) {
        return ApiError::new(403, "invalid_input", "cross-site request refused").reply();
    }

    if !path.starts_with("/api/") {
        return static_file(&method, path);
    }

    let body = match read_body(request) {
        Ok(body) => body,
        Err(e) => return e.reply(),
    };
    let call = Call {
        ctx: context(request),
        cookie: session_cookie(request, shared),
        body,
        query,
        shared,
    };
    match route(worker, &method, path, &call) {
        Ok(reply) => reply,
        Err(e) => e.reply(),
    }
}

fn header<'r>(request: &'r tiny_http::Request, name: &str) -> Option<&'r str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// The body, refused with 413 beyond 64 KiB.
fn read_body(request: &mut tiny_http::Request) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            413,
            "invalid_input",
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
    Ok(body)
}

/// The caller as the engine's audit log records it: the peer's IP and the User-Agent.
fn context(request: &tiny_http::Request) -> wit::Context {
    let ip = request
        .remote_addr()
        .map(|addr| addr.ip().to_string())
        .unwrap_or_default();
    let mut user_agent = header(request, "User-Agent").unwrap_or("").to_owned();
    if user_agent.len() > 512 {
        let mut end = 512;
        while !user_agent.is_char_boundary(end) {
            end -= 1;
        }
        user_agent.truncate(end);
    }
    wit::Context { ip, user_agent }
}

fn cookie_name(shared: &Shared) -> &'static str {
    // `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
    if shared.secure {
        "__Host-twofold"
    } else {
        "twofold_session"
    }
}

fn session_cookie(request: &tiny_http::Request, shared: &Shared) -> Option<String> {
    let name = cookie_name(shared);
    request
        .headers()
        .iter()
        .filter(|h| h.field.equiv("Cookie"))
        .flat_map(|h| h.value.as_str().split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, v)| *n == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

/// `Set-Cookie` for a new session: persistent for 30 days when remembered, else a browser
/// session cookie.
fn set_cookie(shared: &Shared, id: &str, remember_me: bool) -> String {
    let mut cookie = format!(
        "{}={id}; Path=/; HttpOnly; SameSite=Strict",
        cookie_name(shared)
    );
    if remember_me {
        cookie.push_str(&format!("; Max-Age={}", REMEMBERED.as_secs()));
    }
    if shared.secure {
        cookie.push_str("; Secure");
    }
    cookie
}

fn clear_cookie(shared: &Shared) -> String {
    let mut cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        cookie_name(shared)
    );
    if shared.secure {
        cookie.push_str("; Secure");
    }
    cookie
}

fn storage_error(e: String) -> ApiError {
    eprintln!("twofold-server: {e}");
    ApiError::new(
        503,
        "storage",
        "the session store is not available; try again",
    )
}

impl Call<'_> {
    fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let text = std::str::from_utf8(&self.body)
            .map_err(|_| ApiError::invalid("the request body is not UTF-8"))?;
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ApiError::invalid(format!("the request body is not JSON: {e}")))?;
        if !value.is_object() {
            return Err(ApiError::invalid("the request body must be a JSON object"));
        }
        serde_json::from_value(value).map_err(|e| ApiError::invalid(format!("request body: {e}")))
    }

    fn session(&self, worker: &mut Worker) -> Result<Option<Session>, ApiError> {
        match &self.cookie {
            Some(id) => worker.sessions()?.get(id).map_err(storage_error),
            None => Ok(None),
        }
    }

    /// The signed-in user, or 401.
    fn user(&self, worker: &mut Worker) -> Result<String, ApiError> {
        match self.session(worker)? {
            Some(Session::SignedIn { user_id }) => Ok(user_id),
            _ => Err(ApiError::not_signed_in()),
        }
    }

    /// Replaces whatever session the request had with `session`, and answers its cookie.
    fn start_session(
        &self,
        worker: &mut Worker,
        session: &Session,
        remember_me: bool,
    ) -> Result<String, ApiError> {
        let sessions = worker.sessions()?;
        if let Some(old) = &self.cookie {
            sessions.delete(old).map_err(storage_error)?;
        }
        let id = sessions
            .create(session, remember_me)
            .map_err(storage_error)?;
        Ok(set_cookie(self.shared, &id, remember_me))
    }

    fn end_session(&self, worker: &mut Worker) -> Result<String, ApiError> {
        if let Some(old) = &self.cookie {
            worker.sessions()?.delete(old).map_err(storage_error)?;
        }
        Ok(clear_cookie(self.shared))
    }
}

// ------------------------------------------------------------------ routes

#[derive(Deserialize)]
struct SignupBody {
    email: String,
    password: String,
}

#[derive(Deserialize)]
struct SigninBody {
    email: String,
    password: String,
    #[serde(default)]
    remember_me: bool,
}

#[derive(Deserialize)]
struct CredentialBody {
    credential: Credential,
}

#[derive(Deserialize)]
struct CodeBody {
    code: String,
}

#[derive(Deserialize)]
struct StartRegistrationBody {
    name: String,
    password: String,
}

#[derive(Deserialize)]
struct NameBody {
    name: String,
}

#[derive(Deserialize)]
struct PasswordBody {
    password: String,
}

fn route(worker: &mut Worker, method: &Method, path: &str, call: &Call) -> Result<Reply, ApiError> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let allow = |methods: &str| {
        let mut reply = ApiError::new(405, "invalid_input", "method not allowed here").reply();
        reply.headers.push(("Allow".into(), methods.into()));
        Ok(reply)
    };
    match (segments.as_slice(), method) {
        (["api", "signup"], Method::Post) => signup(worker, call),
        (["api", "signin"], Method::Post) => signin(worker, call),
        (["api", "signin", "passkey"], Method::Post) => signin_passkey(worker, call),
        (["api", "signin", "backup-code"], Method::Post) => signin_backup_code(worker, call),
        (["api", "signout"], Method::Post) => signout(worker, call),
        (["api", "me"], Method::Get) => me(worker, call),
        (["api", "passkeys"], Method::Get) => list_passkeys(worker, call),
        (["api", "passkeys", "registration", "start"], Method::Post) => {
            registration_start(worker, call)
        }
        (["api", "passkeys", "registration", "finish"], Method::Post) => {
            registration_finish(worker, call)
        }
        (["api", "passkeys", id], Method::Patch) => rename_passkey(worker, call, id),
        (["api", "passkeys", id], Method::Delete) => remove_passkey(worker, call, id),
        (["api", "two-factor", "enable"], Method::Post) => enable_two_factor(worker, call),
        (["api", "two-factor", "disable"], Method::Post) => disable_two_factor(worker, call),
        (["api", "backup-codes", "regenerate"], Method::Post) => regenerate(worker, call),
        (["api", "audit"], Method::Get) => audit(worker, call),
        (["api", "audit", "verify"], Method::Get) => audit_verify(worker, call),

        (
            [
                "api",
                "signup" | "signin" | "signout" | "two-factor" | "backup-codes",
                ..,
            ],
            _,
        )
        | (["api", "passkeys", "registration", _], _) => allow("POST"),
        (["api", "me"] | ["api", "audit"] | ["api", "audit", "verify"], _) => allow("GET"),
        (["api", "passkeys"], _) => allow("GET"),
        (["api", "passkeys", _], _) => allow("PATCH, DELETE"),
        _ => Err(ApiError::new(404, "not_found", "no such endpoint")),
    }
}

fn signup(worker: &mut Worker, call: &Call) -> Result<Reply, ApiError> {
    let body: SignupBody = call.json()?;
    let created = worker.call(|tf| {
        tf.create_account(
            &call.ctx,
            &wit::CreateAccount {
                email: body.email,
                password: body.password,
            },
        )
    })?;
    let cookie = call.start_session(
        worker,
        &Session::SignedIn {
            user_id: created.user_id,
        },
        false,
    )?;
    Ok(Reply::ok(json!({
        "status": "signed_in",
        "remember_me": false,
        "email": created.email,
    }))
    .with_cookie(cookie))
}

fn signin(worker: &mut Worker, call: &Call) -> Result<Reply, ApiError> {
    let body: SigninBody = call.json()?;
    let outcome = worker.call(|tf| {
        tf.sign_in(
            &call.ctx,
            &wit::SignIn {
                email: body.email,
                password: body.password,
                remember_me: body.remember_me,
            },
        )
    })?;
    match outcome {
        wit::SignInOutcome::SignedIn(s) => {
            let cookie = call.start_session(
                worker,
                &Session::SignedIn { user_id: s.user_id },
                s.remember_me,
            )?;
            Ok(
                Reply::ok(json!({ "status": "signed_in", "remember_me": s.remember_me }))
                    .with_cookie(cookie),
            )
        }
        wit::SignInOutcome::SecondFactorRequired(s) => {
            let options =
                json::embedded("request options", &s.options).map_err(|e| ApiError::engine(&e))?;
            let cookie = call.start_session(
                worker,
                &Session::Pending {
                    pending_token: s.pending_token,
                },
                false,
            )?;
            Ok(Reply::ok(json!({
                "status": "second_factor_required",
                "options": options,
            }))
            .with_cookie(cookie))
        }
    }
}

/// The pending sign-in's token, or `expired` when there is none.
fn pending_token(worker: &mut Worker, call: &Call) -> Result<String, ApiError> {
    match call.session(worker)? {
        Some(Session::Pending { pending_token }) => Ok(pending_token),
        _ => Err(ApiError::new(
            410,
            "expired",
            "no sign-in is waiting for a second factor; sign in again",
        )),
    }
}

/// Finishes step two: a signed-in session replaces the pending one. When the engine says the
/// pending sign-in is over, the pending session goes too.
fn second_step(
    worker: &mut Worker,
    call: &Call,
    outcome: Result<wit::SignedIn, ApiError>,
) -> Result<Reply, ApiError> {
    match outcome {
        Ok(s) => {
            let cookie = call.start_session(
                worker,
                &Session::SignedIn {
                    user_id: s.user_id.clone(),
                },
                s.remember_me,
            )?;
            let mut answer = json::signed_in(&s);
            if let Some(map) = answer.as_object_mut() {
                map.remove("user_id");
                map.insert("status".into(), "signed_in".into());
            }
            Ok(Reply::ok(answer).with_cookie(cookie))
        }
        Err(e) if e.code == "expired" => {
            let cookie = call.end_session(worker)?;
            Ok(e.reply().with_cookie(cookie))
        }
        Err(e) => Err(e),
    }
}

fn signin_passkey(worker: &mut Worker, call: &Call) -> Result<Reply, ApiError> {
    let body: CredentialBody = call.json()?;
    let pending_token = pending_token(worker, call)?;
    let outcome = worker.call(|tf| {
        tf.sign_in_with_passkey(
            &call.ctx,
            &wit::PasskeySignIn {
                pending_token,
                credential: body.credential.into_text(),
            },
        )
    });
    second_step(worker, call, outcome)
}

fn signin_backup_code(worker: &mut Worker, call: &Call) -> Result<Reply, ApiError> {
    let body: CodeBody = call.json()?;
    let pending_token = pending_token(worker, call)?;
    let outcome = worker.call(|tf| {
        tf.sign_in_with_backup_code(
            &call.ctx,
            &wit::BackupCodeSignIn {
                pending_token,
                code: body.code,
            },
        )
    });
    second_step(worker, call, outcome)
}

fn signout(worker: &mut Worker, call: &Call) -> Result<Reply, ApiError> {
    let cookie = call.end_session(worker)?;
    Ok(Reply::ok(json!({ "status": "signed_out" })).with_cookie(cookie))
}

fn me(worker: &mut Worker, call: &Call) -> Result<Reply, ApiError> {
    let user_id = call.user(worker)?;
    let status = worker.call(|tf| tf.status(&call.ctx, &wit::UserRef { user_id }));
    let status = match status {
        Ok(status) => status,
        Err(e) if e.code == "not_found" => {
            // The account is gone: so is the session.
            let cookie = call.end_session(worker)?;
            return Ok(ApiError::not_signed_in().reply().with_cookie(cookie));
        }
        Err(e) => return Err(e),
    };
    Ok(Reply::ok(json!({
        "user_id": status.user_id,
        "email": status.email,
        "two_factor": two_factor(&status),
    })))
}

/// The `two_factor` member of `/api/me`, and the answer of changes that return a status.
fn two_factor(status: &wit::Status) -> Value {
    json!({
        "enabled": status.two_factor_enabled,
        "passkeys": json::passkeys(&status.passkeys),
        "backup_codes_remaining": status.backup_codes_remaining,
        "backup_codes_running_low": status.backup_codes_running_low,
    })
}

/// What `DELETE /api/passkeys/{id}` and `/api/two-factor/disable` answer.
fn status_answer(status: &wit::Status) -> Value {
    json!({
        "two_factor_enabled": status.two_factor_enabled,
        "passkeys": json::passkeys(&status.passkeys),
        "backup_codes_remaining": status.backup_codes_remaining,
        "backup_codes_running_low": status.backup_codes_running_low,
    })
}

fn list_passkeys(worker: &mut Worker, call: &Call) -> Result<Reply, ApiError> {
    let user_id = call.user(worker)?;
    let list = worker.call(|tf| tf.list_passkeys(&call.ctx, &wit::UserRef { user_id }))?;
    Ok(Reply::ok(json::passkey_list(&list)))
}

fn registration_start(worker: &mut Worker, call: &Call) -> Result<Reply, ApiError> {
    let user_id = call.user(worker)?;
    let body: StartRegistrationBody = call.json()?;
    let started = worker.call(|tf| {
        tf.start_passkey_registration(
            &call.ctx,
            &wit::StartRegistration {
                user_id,
                name: body.name,
                password: body.password,
            },
        )
    })?;
    Ok(Reply::ok(
        json::registration_started(&started).map_err(|e| ApiError::engine(&e))?,
    ))
}

fn registration_finish(worker: &mut Worker, call: &Call) -> Result<Reply, ApiError> {
    let user_id = call.user(worker)?;
    let body: CredentialBody = call.json()?;
    let registered = worker
        .call(|tf| {
            tf.finish_passkey_registration(
                &call.ctx,
                &wit::FinishRegistration {
                    user_id,
                    credential: body.credential.into_text(),
                },
            )
        })
        .map_err(|mut e| {
            // A credential that does not verify is a bad request here, not a failed
            // authentication: the user is signed in.
            if e.code == "invalid_passkey" {
                e.status = 400;
            }
            e
        })?;
    Ok(Reply::ok(json::passkey_registered(&registered)))
}

/// A passkey id from the path, percent-decoded.
fn passkey_id(segment: &str) -> Result<String, ApiError> {
    percent_decode(segment).ok_or_else(|| ApiError::invalid("the passkey id is not valid"))
}

fn rename_passkey(worker: &mut Worker, call: &Call, id: &str) -> Result<Reply, ApiError> {
    let user_id = call.user(worker)?;
    let body: NameBody = call.json()?;
    let passkey_id = passkey_id(id)?;
    let passkey = worker.call(|tf| {
        tf.rename_passkey(
            &call.ctx,
            &wit::RenamePasskey {
                user_id,
                passkey_id,
                name: body.name,
            },
        )
    })?;
    Ok(Reply::ok(json!({ "passkey": json::passkey(&passkey) })))
}

fn remove_passkey(worker: &mut Worker, call: &Call, id: &str) -> Result<Reply, ApiError> {
    let user_id = call.user(worker)?;
    let body: PasswordBody = call.json()?;
    let passkey_id = passkey_id(id)?;
    let status = worker.call(|tf| {
        tf.remove_passkey(
            &call.ctx,
            &wit::RemovePasskey {
                user_id,
                passkey_id,
                password: body.password,
            },
        )
    })?;
    Ok(Reply::ok(status_answer(&status)))
}

fn password_confirmed(
    worker: &mut Worker,
    call: &Call,
) -> Result<wit::PasswordConfirmed, ApiError> {
    let user_id = call.user(worker)?;
    let body: PasswordBody = call.json()?;
    Ok(wit::PasswordConfirmed {
        user_id,
        password: body.password,
    })
}

fn enable_two_factor(worker: &mut Worker, call: &Call) -> Result<Reply, ApiError> {
    let req = password_confirmed(worker, call)?;
    let codes = worker.call(|tf| tf.enable_two_factor(&call.ctx, &req))?;
    Ok(Reply::ok(json!({ "backup_codes": codes.codes })))
}

fn disable_two_factor(worker: &mut Worker, call: &Call) -> Result<Reply, ApiError> {
    let req = password_confirmed(worker, call)?;
    let status = worker.call(|tf| tf.disable_two_factor(&call.ctx, &req))?;
    Ok(Reply::ok(status_answer(&status)))
}

fn regenerate(worker: &mut Worker, call: &Call) -> Result<Reply, ApiError> {
    let req = password_confirmed(worker, call)?;
    let codes = worker.call(|tf| tf.regenerate_backup_codes(&call.ctx, &req))?;
    Ok(Reply::ok(json!({ "backup_codes": codes.codes })))
}

fn audit(worker: &mut Worker, call: &Call) -> Result<Reply, ApiError> {
    let user_id = call.user(worker)?;
    let mut before = None;
    let mut limit = None;
    for pair in call.query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| ApiError::invalid(format!("{name} must be a whole number")))
        };
        match name {
            "before" => before = Some(number()?),
            "limit" => {
                limit = Some(
                    u32::try_from(number()?)
                        .map_err(|_| ApiError::invalid("limit is out of range"))?,
                )
            }
            _ => {}
        }
    }
    let page = worker.call(|tf| {
        tf.audit_events(
            &call.ctx,
            &wit::AuditQuery {
                user_id,
                before,
                limit,
            },
        )
    })?;
    Ok(Reply::ok(
        json::audit_page(&page).map_err(|e| ApiError::engine(&e))?,
    ))
}

fn audit_verify(worker: &mut Worker, call: &Call) -> Result<Reply, ApiError> {
    let user_id = call.user(worker)?;
    let report = worker.call(|tf| tf.verify_audit_chain(&call.ctx, &wit::UserRef { user_id }))?;
    Ok(Reply::ok(json::chain_report(&report)))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

// ------------------------------------------------------------------ the web UI

/// Every file under `web/`, embedded at build time: (URL path, bytes).
static ASSETS: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn static_file(method: &Method, path: &str) -> Reply {
    if !matches!(method, Method::Get | Method::Head) {
        let mut reply = ApiError::new(405, "invalid_input", "method not allowed here").reply();
        reply.headers.push(("Allow".into(), "GET, HEAD".into()));
        return reply;
    }
    let path = if path == "/" { "/index.html" } else { path };
    match ASSETS.iter().find(|(p, _)| *p == path) {
        Some((p, bytes)) => Reply {
            status: 200,
            content_type: content_type(p),
            body: bytes.to_vec(),
            headers: vec![
                ("Cache-Control".into(), "no-cache".into()),
                (
                    "Content-Security-Policy".into(),
                    CONTENT_SECURITY_POLICY.into(),
                ),
            ],
        },
        None => Reply {
            status: 404,
            content_type: "text/plain; charset=utf-8",
            body: b"not found\n".to_vec(),
            headers: Vec::new(),
        },
    }
}
