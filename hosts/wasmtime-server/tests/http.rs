//! The HTTP server end to end on 127.0.0.1 with an ephemeral port, with the testkit's
//! software authenticator as the browser: the whole two-factor lifecycle through the JSON
//! API, cookies, CSRF refusals, error shapes and statuses, the embedded UI, and that a trap
//! or a panic inside one request costs that request only.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use twofold_server::http::{self, RunningServer, ServerConfig, StorageLayer};
use twofold_server::proto::{Entry, HostError, Storage, Versioned, Write as StorageWrite};
use twofold_server::store::Database;
use twofold_testkit::ORIGIN;
use twofold_testkit::authenticator::{Authenticator, Tweaks};

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery staple";

fn start(name: &str, layer: Option<StorageLayer>) -> RunningServer {
    let dir = common::scratch_dir(name);
    http::start(
        common::loader().clone(),
        ServerConfig {
            workers: 2,
            storage_layer: layer,
            ..ServerConfig::new(
                "127.0.0.1:0".parse().expect("an address"),
                ORIGIN.into(),
                Database::Sqlite(dir.join("twofold.db")),
                twofold_testkit::fast_config(),
            )
        },
    )
    .expect("the server starts")
}

/// An answer: status, headers (names lower-cased) and the body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn headers(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The error code of an error answer, after checking the error shape.
    fn error_code(&self) -> String {
        let body = self.json();
        let error = body["error"]
            .as_object()
            .unwrap_or_else(|| panic!("{body}"));
        assert!(error["message"].is_string(), "{body}");
        assert_eq!(body.as_object().map(|m| m.len()), Some(1), "{body}");
        error["code"].as_str().expect("a code").to_owned()
    }
}

/// A browser with a cookie jar that sends `Origin` like a same-origin `fetch`.
struct Browser {
    addr: SocketAddr,
    origin: Option<String>,
    cookie: Option<String>,
    user_agent: &'static str,
}

impl Browser {
    fn new(server: &RunningServer) -> Browser {
        Browser {
            addr: server.addr(),
            origin: Some(ORIGIN.into()),
            cookie: None,
            user_agent: "http-test/1.0",
        }
    }

    fn raw(&mut self, method: &str, path: &str, body: &[u8], extra: &[(&str, &str)]) -> Answer {
        let mut stream = TcpStream::connect(self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             User-Agent: {}\r\nContent-Length: {}\r\n",
            self.user_agent,
            body.len()
        );
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        if let Some(origin) = &self.origin {
            head.push_str(&format!("Origin: {origin}\r\n"));
        }
        if let Some(cookie) = &self.cookie {
            head.push_str(&format!("Cookie: other=1; {cookie}\r\n"));
        }
        for (name, value) in extra {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("write");
        // The server may answer (413) before reading all of a large body.
        let _ = stream.write_all(body);
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read");
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a header block");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let answer = Answer {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        };
        for set in answer.headers("set-cookie") {
            let pair = set.split(';').next().unwrap_or("");
            if let Some(value) = pair.strip_prefix("twofold_session=") {
                self.cookie = (!value.is_empty()).then(|| pair.to_owned());
            }
        }
        answer
    }

    fn send(&mut self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.raw(method, path, &bytes, &[])
    }

    /// A request that must succeed with 200: its JSON.
    fn ok(&mut self, method: &str, path: &str, body: Option<Value>) -> Value {
        let answer = self.send(method, path, body);
        assert_eq!(
            answer.status,
            200,
            "{method} {path}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        answer.json()
    }

    /// A request that must fail with `status` and `code`: the answer.
    fn fails(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
        status: u16,
        code: &str,
    ) -> Answer {
        let answer = self.send(method, path, body);
        assert_eq!(
            (answer.status, answer.error_code().as_str()),
            (status, code),
            "{method} {path}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        answer
    }

    fn sign_in(&mut self, remember_me: bool) -> (Answer, Value) {
        let answer = self.send(
            "POST",
            "/api/signin",
            Some(json!({"email": EMAIL, "password": PASSWORD, "remember_me": remember_me})),
        );
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let body = answer.json();
        (answer, body)
    }

    /// Step one of a sign-in that must ask for a second factor: the request options.
    fn sign_in_second_factor(&mut self, remember_me: bool) -> Value {
        let (_, body) = self.sign_in(remember_me);
        assert_eq!(body["status"], "second_factor_required", "{body}");
        assert!(
            body.get("pending_token").is_none(),
            "the token stays server-side"
        );
        body["options"].clone()
    }
}

fn session_cookie(answer: &Answer) -> String {
    answer
        .headers("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("twofold_session="))
        .unwrap_or_else(|| panic!("no session cookie: {:?}", answer.headers))
        .to_owned()
}

#[test]
fn the_whole_lifecycle_through_the_api() {
    let server = start("lifecycle", None);
    let mut browser = Browser::new(&server);
    let mut authenticator = Authenticator::new(5);

    // Sign up: signed in with a browser-session cookie.
    let signup = browser.send(
        "POST",
        "/api/signup",
        Some(json!({"email": EMAIL, "password": PASSWORD})),
    );
    assert_eq!(signup.status, 200);
    assert_eq!(signup.json()["status"], "signed_in");
    let cookie = session_cookie(&signup);
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Max-Age") && !cookie.contains("Secure"),
        "{cookie}"
    );
    assert!(signup.header("cache-control") == Some("no-store"));
    let me = browser.ok("GET", "/api/me", None);
    assert_eq!(me["email"], EMAIL);
    assert_eq!(
        me["two_factor"],
        json!({"enabled": false, "passkeys": [], "backup_codes_remaining": 0,
               "backup_codes_running_low": false})
    );

    // Register a passkey: 2FA turns on with 10 codes.
    let started = browser.ok(
        "POST",
        "/api/passkeys/registration/start",
        Some(json!({"name": "Laptop", "password": PASSWORD})),
    );
    assert_eq!(started["options"]["rp"]["id"], "localhost");
    let credential = authenticator
        .register(&started["options"], ORIGIN, &Tweaks::default())
        .expect("registration");
    let registered = browser.ok(
        "POST",
        "/api/passkeys/registration/finish",
        Some(json!({"credential": credential})),
    );
    assert_eq!(registered["two_factor_enabled"], true);
    let codes: Vec<String> =
        serde_json::from_value(registered["backup_codes"].clone()).expect("backup codes");
    assert_eq!(codes.len(), 10);
    assert_eq!(registered["passkey"]["name"], "Laptop");
    assert_eq!(registered["passkey"]["last_used_at"], Value::Null);
    let passkey_id = registered["passkey"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let me = browser.ok("GET", "/api/me", None);
    assert_eq!(me["two_factor"]["enabled"], true);
    assert_eq!(me["two_factor"]["backup_codes_remaining"], 10);
    assert_eq!(me["two_factor"]["passkeys"][0]["id"], passkey_id.as_str());

    // Sign out: the cookie is cleared and the session is gone on the server.
    let stale = browser.cookie.clone();
    let out = browser.send("POST", "/api/signout", None);
    assert_eq!(out.status, 200);
    assert!(session_cookie(&out).contains("Max-Age=0"));
    assert_eq!(browser.cookie, None);
    browser.cookie = stale;
    browser.fails("GET", "/api/me", None, 401, "expired");
    browser.cookie = None;

    // Sign in with remember-me: a passkey is needed, and remember-me ends up false.
    let options = browser.sign_in_second_factor(true);
    assert_eq!(options["allowCredentials"][0]["id"], passkey_id.as_str());
    browser.fails("GET", "/api/me", None, 401, "expired");
    let assertion = authenticator
        .authenticate(&options, ORIGIN, &Tweaks::default())
        .expect("assertion");
    let signed_in = browser.send(
        "POST",
        "/api/signin/passkey",
        Some(json!({"credential": assertion})),
    );
    assert_eq!(signed_in.status, 200);
    let body = signed_in.json();
    assert_eq!(body["status"], "signed_in", "{body}");
    assert_eq!(body["remember_me"], false);
    assert!(body.get("user_id").is_none() && body.get("device_token").is_none());
    assert!(!session_cookie(&signed_in).contains("Max-Age"));
    let me = browser.ok("GET", "/api/me", None);
    assert!(me["two_factor"]["passkeys"][0]["last_used_at"].is_u64());
    browser.ok("POST", "/api/signout", None);

    // A backup code signs in once, and says how many are left.
    browser.sign_in_second_factor(true);
    let signed_in = browser.ok(
        "POST",
        "/api/signin/backup-code",
        Some(json!({"code": codes[0].to_lowercase()})),
    );
    assert_eq!(signed_in["status"], "signed_in");
    assert_eq!(signed_in["remember_me"], false);
    assert_eq!(signed_in["backup_codes_remaining"], 9);
    browser.ok("POST", "/api/signout", None);
    browser.sign_in_second_factor(false);
    browser.fails(
        "POST",
        "/api/signin/backup-code",
        Some(json!({"code": codes[0]})),
        401,
        "invalid_backup_code",
    );
    // The pending sign-in survives a wrong code; another code works.
    browser.ok(
        "POST",
        "/api/signin/backup-code",
        Some(json!({"code": codes[1]})),
    );

    // Regenerate: a fresh set of 10; the old codes are void.
    browser.fails(
        "POST",
        "/api/backup-codes/regenerate",
        Some(json!({"password": "not the password"})),
        401,
        "invalid_credentials",
    );
    let fresh = browser.ok(
        "POST",
        "/api/backup-codes/regenerate",
        Some(json!({"password": PASSWORD})),
    );
    assert_eq!(fresh["codes"].as_array().map(Vec::len), Some(10));
    browser.ok("POST", "/api/signout", None);
    browser.sign_in_second_factor(false);
    browser.fails(
        "POST",
        "/api/signin/backup-code",
        Some(json!({"code": codes[2]})),
        401,
        "invalid_backup_code",
    );
    browser.ok(
        "POST",
        "/api/signin/backup-code",
        Some(json!({"code": fresh["codes"][0]})),
    );

    // Rename, then remove the last passkey: 2FA goes off.
    let renamed = browser.ok(
        "PATCH",
        &format!("/api/passkeys/{passkey_id}"),
        Some(json!({"name": "Work laptop"})),
    );
    assert_eq!(renamed["name"], "Work laptop");
    browser.fails(
        "DELETE",
        "/api/passkeys/no-such-passkey",
        Some(json!({"password": PASSWORD})),
        404,
        "not_found",
    );
    let removed = browser.ok(
        "DELETE",
        &format!("/api/passkeys/{passkey_id}"),
        Some(json!({"password": PASSWORD})),
    );
    assert_eq!(removed["two_factor_enabled"], false);
    assert_eq!(removed["passkeys"], json!([]));
    browser.fails(
        "POST",
        "/api/backup-codes/regenerate",
        Some(json!({"password": PASSWORD})),
        409,
        "not_enabled",
    );
    browser.fails(
        "POST",
        "/api/two-factor/enable",
        Some(json!({"password": PASSWORD})),
        409,
        "no_passkey",
    );

    // Sign-in needs only the password now, and remember-me is honoured with a 30-day cookie.
    browser.ok("POST", "/api/signout", None);
    let (answer, body) = browser.sign_in(true);
    assert_eq!(body["status"], "signed_in", "{body}");
    assert_eq!(body["remember_me"], true);
    assert!(session_cookie(&answer).contains("Max-Age=2592000"));

    // The audit log: newest first, with this client's IP and user agent, and intact.
    let page = browser.ok("GET", "/api/audit", None);
    let events = page["events"].as_array().expect("events");
    assert!(
        events
            .windows(2)
            .all(|w| w[0]["seq"].as_u64() > w[1]["seq"].as_u64())
    );
    assert!(events.iter().all(|e| e["ip"] == "127.0.0.1"));
    assert!(events.iter().all(|e| e["user_agent"] == "http-test/1.0"));
    assert!(
        events.iter().any(|e| e["kind"] == "two_factor_disabled"
            && e["details"]["reason"] == "last_passkey_removed")
    );
    let paged = browser.ok("GET", "/api/audit?limit=2", None);
    assert_eq!(paged["events"].as_array().map(Vec::len), Some(2));
    let before = paged["next_before"].as_u64().expect("more pages");
    let next = browser.ok("GET", &format!("/api/audit?before={before}&limit=2"), None);
    assert!(next["events"][0]["seq"].as_u64() < Some(before));
    let report = browser.ok("GET", "/api/audit/verify", None);
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["events_checked"].as_u64(), Some(events.len() as u64));

    server.shutdown().expect("a clean stop");
}

#[test]
fn state_changing_requests_from_elsewhere_are_refused() {
    let server = start("csrf", None);
    let mut browser = Browser::new(&server);
    browser.ok(
        "POST",
        "/api/signup",
        Some(json!({"email": EMAIL, "password": PASSWORD})),
    );
    for origin in [
        None,
        Some("http://evil.example"),
        Some("null"),
        Some("http://localhost:8081"),
    ] {
        browser.origin = origin.map(String::from);
        for (method, path) in [
            ("POST", "/api/signin"),
            ("POST", "/api/signout"),
            ("POST", "/api/two-factor/disable"),
            ("PATCH", "/api/passkeys/x"),
            ("DELETE", "/api/passkeys/x"),
            ("POST", "/"),
        ] {
            let answer = browser.send(
                method,
                path,
                Some(json!({"email": EMAIL, "password": PASSWORD})),
            );
            assert_eq!(answer.status, 403, "{method} {path} from {origin:?}");
            assert_eq!(answer.error_code(), "invalid_input");
            let message = answer.json()["error"]["message"].clone();
            let message = message.as_str().expect("a message");
            assert!(
                message.contains("configured origin")
                    && message.contains(&format!("Open {ORIGIN}/")),
                "{message}"
            );
        }
        // Reading needs no Origin.
        browser.ok("GET", "/api/me", None);
    }
    // The refused sign-out did not sign out.
    browser.origin = Some(ORIGIN.into());
    browser.ok("GET", "/api/me", None);
    server.shutdown().expect("a clean stop");
}

#[test]
fn errors_have_one_shape_and_fitting_statuses() {
    let server = start("errors", None);
    let mut b = Browser::new(&server);

    b.fails("GET", "/api/me", None, 401, "expired");
    b.fails("GET", "/api/audit", None, 401, "expired");
    b.fails(
        "POST",
        "/api/two-factor/enable",
        Some(json!({"password": PASSWORD})),
        401,
        "expired",
    );
    b.fails("GET", "/api/nothing-here", None, 404, "not_found");
    let wrong_method = b.fails("GET", "/api/signin", None, 405, "invalid_input");
    assert_eq!(wrong_method.header("allow"), Some("POST"));
    b.fails(
        "POST",
        "/api/signin/passkey",
        Some(json!({"credential": {}})),
        410,
        "expired",
    );

    for body in [
        &b"not json"[..],
        b"[1,2]",
        b"{\"email\": 7}",
        b"\xff\xfe",
        b"",
    ] {
        let answer = b.raw("POST", "/api/signup", body, &[]);
        assert_eq!(answer.status, 400, "{body:?}");
        assert_eq!(answer.error_code(), "invalid_input");
    }
    let huge = vec![b'x'; 70 * 1024];
    let answer = b.raw("POST", "/api/signup", &huge, &[]);
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (413, "invalid_input")
    );

    b.fails(
        "POST",
        "/api/signup",
        Some(json!({"email": EMAIL, "password": "short"})),
        400,
        "invalid_input",
    );
    b.ok(
        "POST",
        "/api/signup",
        Some(json!({"email": EMAIL, "password": PASSWORD})),
    );
    b.fails(
        "POST",
        "/api/signup",
        Some(json!({"email": EMAIL.to_uppercase(), "password": PASSWORD})),
        409,
        "already_exists",
    );
    b.fails("GET", "/api/audit?limit=abc", None, 400, "invalid_input");
    b.fails("GET", "/api/audit?limit=0", None, 400, "invalid_input");
    b.fails(
        "PATCH",
        "/api/passkeys/nope",
        Some(json!({"name": "x"})),
        404,
        "not_found",
    );
    b.fails(
        "POST",
        "/api/two-factor/disable",
        Some(json!({"password": PASSWORD})),
        409,
        "not_enabled",
    );

    // A wrong password is 401; once the engine throttles, 429 with Retry-After equal to the
    // engine's retry_after_secs.
    b.cookie = None;
    b.fails(
        "POST",
        "/api/signin",
        Some(json!({"email": "nobody@example.com", "password": PASSWORD})),
        401,
        "invalid_credentials",
    );
    let locked = (0..30)
        .map(|_| {
            b.send(
                "POST",
                "/api/signin",
                Some(json!({"email": EMAIL, "password": "wrong password"})),
            )
        })
        .find(|a| a.status != 401)
        .expect("the engine throttles repeated failures");
    assert_eq!(
        (locked.status, locked.error_code().as_str()),
        (429, "rate_limited")
    );
    let secs = locked.json()["error"]["retry_after_secs"]
        .as_u64()
        .expect("retry_after_secs");
    assert!(secs > 0 && secs <= 900);
    assert_eq!(
        locked.header("retry-after"),
        Some(secs.to_string().as_str())
    );
    server.shutdown().expect("a clean stop");
}

#[test]
fn the_web_ui_is_served_with_a_strict_policy() {
    let server = start("static", None);
    let mut b = Browser::new(&server);
    for (path, kind) in [
        ("/", "text/html"),
        ("/index.html", "text/html"),
        ("/js/main.js", "text/javascript"),
        ("/js/screens/verify.js", "text/javascript"),
        ("/style.css", "text/css"),
    ] {
        let answer = b.send("GET", path, None);
        assert_eq!(answer.status, 200, "{path}");
        assert!(
            answer
                .header("content-type")
                .is_some_and(|t| t.starts_with(kind)),
            "{path}: {:?}",
            answer.header("content-type")
        );
        assert!(!answer.body.is_empty());
        let csp = answer.header("content-security-policy").expect("a CSP");
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    }
    let index = b.send("GET", "/", None);
    let on_disk = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/web/index.html"))
        .expect("web/index.html");
    assert_eq!(index.body, on_disk);
    let icon = b.send("GET", "/favicon.ico", None);
    assert_eq!(icon.status, 200);
    assert_eq!(icon.header("content-type"), Some("image/x-icon"));
    assert_eq!(b.send("GET", "/nope.html", None).status, 404);
    assert_eq!(b.send("GET", "/../Cargo.toml", None).status, 404);
    server.shutdown().expect("a clean stop");
}

/// What the fault-injecting storage does on its next call.
const NORMAL: u8 = 0;
const PANIC: u8 = 1;
const HANG: u8 = 2;

/// Storage that panics, or hangs past the call timeout (so the component traps), when told.
struct Sabotage {
    inner: Box<dyn Storage + Send>,
    mode: Arc<AtomicU8>,
}

impl Sabotage {
    fn strike(&self) {
        match self.mode.swap(NORMAL, Ordering::SeqCst) {
            PANIC => panic!("injected storage panic"),
            HANG => std::thread::sleep(common::CALL_TIMEOUT + Duration::from_millis(500)),
            _ => {}
        }
    }
}

impl Storage for Sabotage {
    fn get(&self, key: &str) -> Result<Option<Versioned>, HostError> {
        self.strike();
        self.inner.get(key)
    }

    fn scan(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<Entry>, HostError> {
        self.strike();
        self.inner.scan(prefix, after, limit)
    }

    fn commit(&self, writes: &[StorageWrite]) -> Result<(), HostError> {
        self.strike();
        self.inner.commit(writes)
    }
}

#[test]
fn a_trap_or_a_panic_costs_one_request_only() {
    let mode = Arc::new(AtomicU8::new(NORMAL));
    let shared = Arc::clone(&mode);
    let layer: StorageLayer = Arc::new(move |inner| {
        Box::new(Sabotage {
            inner,
            mode: Arc::clone(&shared),
        })
    });
    let server = start("faults", Some(layer));
    let mut b = Browser::new(&server);
    b.ok(
        "POST",
        "/api/signup",
        Some(json!({"email": EMAIL, "password": PASSWORD})),
    );

    for (fault, what) in [(PANIC, "panic"), (HANG, "trap"), (PANIC, "panic again")] {
        // Both workers meet the fault in turn; every request after a failed one works.
        for _ in 0..2 {
            mode.store(fault, Ordering::SeqCst);
            b.fails("GET", "/api/me", None, 500, "internal");
            let me = b.ok("GET", "/api/me", None);
            assert_eq!(me["email"], EMAIL, "after a {what}");
        }
    }
    // Writes still work and nothing was half-written.
    b.ok("POST", "/api/signout", None);
    let (_, body) = b.sign_in(false);
    assert_eq!(body["status"], "signed_in");
    server.shutdown().expect("a clean stop");
}

#[test]
fn shutdown_finishes_the_request_in_flight() {
    let mode = Arc::new(AtomicU8::new(NORMAL));
    let shared = Arc::clone(&mode);
    let layer: StorageLayer = Arc::new(move |inner| {
        Box::new(Slow {
            inner,
            slow: Arc::clone(&shared),
        })
    });
    let server = start("shutdown", Some(layer));
    let addr = server.addr();
    mode.store(1, Ordering::SeqCst);
    let in_flight = std::thread::spawn(move || {
        let mut b = Browser {
            addr,
            origin: Some(ORIGIN.into()),
            cookie: None,
            user_agent: "in-flight",
        };
        b.send(
            "POST",
            "/api/signup",
            Some(json!({"email": EMAIL, "password": PASSWORD})),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    server.shutdown().expect("a clean stop");
    let answer = in_flight.join().expect("the client thread");
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    // The listener closes right after (tiny_http's accept thread notices on its own).
    let closed = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        TcpStream::connect(addr).is_err()
    });
    assert!(closed, "still accepting");
}

/// Storage whose first read waits a second when told, to keep a request in flight.
struct Slow {
    inner: Box<dyn Storage + Send>,
    slow: Arc<AtomicU8>,
}

impl Storage for Slow {
    fn get(&self, key: &str) -> Result<Option<Versioned>, HostError> {
        if self.slow.swap(0, Ordering::SeqCst) == 1 {
            std::thread::sleep(Duration::from_secs(1));
        }
        self.inner.get(key)
    }

    fn scan(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<Entry>, HostError> {
        self.inner.scan(prefix, after, limit)
    }

    fn commit(&self, writes: &[StorageWrite]) -> Result<(), HostError> {
        self.inner.commit(writes)
    }
}
