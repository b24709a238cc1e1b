//! SPEC H3: the HTTP server keeps serving others whatever a client does. Slow headers and
//! slow bodies hold no worker and delay nobody; oversized headers (431) and bodies (413) are
//! refused without buffering them; a request that does not arrive in time gets 408 and its
//! connection closes; idle connections close; connections that arrive together are all
//! served; past the connection limit new connections are refused while accepted ones keep
//! their service; a full queue answers 503 with Retry-After.
//!
//! Timeouts are shortened where a test waits for one; the limits themselves are the
//! server's defaults.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::process::{ORIGIN, ServerProcess};
use serde_json::json;
use twofold_server::http::{self, RunningServer, ServerConfig, StorageLayer, Timeouts};
use twofold_server::proto::{Entry, HostError, Storage, Versioned, Write as StorageWrite};
use twofold_server::store::Database;

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery staple";

fn start(name: &str, tweak: impl FnOnce(&mut ServerConfig)) -> RunningServer {
    let dir = common::scratch_dir(name);
    let mut config = ServerConfig::new(
        "127.0.0.1:0".parse().expect("an address"),
        ORIGIN.into(),
        Database::Sqlite(dir.join("twofold.db")),
        twofold_testkit::fast_config(),
    );
    config.workers = 2;
    tweak(&mut config);
    http::start(common::loader().clone(), config).expect("the server starts")
}

/// One exchange on `stream`: the status and the body, or `None` if the server closed it.
fn exchange(stream: &mut TcpStream, request: &str) -> Option<(u16, String)> {
    stream.write_all(request.as_bytes()).ok()?;
    read_answer(stream)
}

/// Reads one answer (status line, headers, Content-Length body).
fn read_answer(stream: &mut TcpStream) -> Option<(u16, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).ok()?;
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Whether the server has closed `stream` (a read sees the end, or a reset).
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).expect("a timeout");
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Sends `head` and then `body` for as long as the server reads, with the answer read at the
/// same time (as a browser does), so that the server's closing the connection after answering
/// cannot take the answer with it. The status, and how much of `body` was sent.
fn send_while_reading(
    addr: SocketAddr,
    head: &str,
    body: impl Iterator<Item = Vec<u8>>,
) -> (Option<u16>, usize) {
    let mut stream = connect(addr);
    let mut reader = stream.try_clone().expect("a second handle");
    let answer = std::thread::spawn(move || read_answer(&mut reader).map(|a| a.0));
    let mut sent = 0;
    if stream.write_all(head.as_bytes()).is_ok() {
        for chunk in body {
            if stream.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
    }
    (answer.join().expect("the reader"), sent)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a timeout");
    stream
}

/// Signs up and answers the session cookie.
fn sign_up(addr: SocketAddr) -> String {
    let body = json!({"email": EMAIL, "password": PASSWORD}).to_string();
    let mut stream = connect(addr);
    let request = format!(
        "POST /api/signup HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text.lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

fn me_request(cookie: &str) -> String {
    format!("GET /api/me HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n")
}

#[test]
fn h3_slow_headers_and_slow_bodies_do_not_delay_others() {
    let server = start("h3-slow", |_| {});
    let addr = server.addr();
    let cookie = sign_up(addr);

    // 64 connections that send a body a byte a second, 64 that send headers a byte a second.
    let mut slow: Vec<TcpStream> = Vec::new();
    for n in 0..128 {
        let mut stream = connect(addr);
        let start = if n % 2 == 0 {
            format!(
                "POST /api/signin HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\n\
                 Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n{{"
            )
        } else {
            "GET /api/me HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_owned()
        };
        stream.write_all(start.as_bytes()).expect("write");
        stream.set_nonblocking(true).expect("non-blocking");
        slow.push(stream);
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dribbler = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for stream in &mut slow {
                    let _ = stream.write(b"a");
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            slow
        })
    };

    // Meanwhile another client's answers are right and prompt, on one keep-alive connection
    // and on fresh ones.
    let mut keep_alive = connect(addr);
    let mut slowest = Duration::ZERO;
    for round in 0..6 {
        for fresh in [false, true] {
            let started = Instant::now();
            let mut fresh_stream;
            let stream = if fresh {
                fresh_stream = connect(addr);
                &mut fresh_stream
            } else {
                &mut keep_alive
            };
            let (status, body) = exchange(stream, &me_request(&cookie)).expect("an answer");
            let took = started.elapsed();
            assert_eq!(status, 200, "round {round}: {body}");
            assert!(body.contains(EMAIL), "{body}");
            assert!(took < Duration::from_secs(2), "round {round}: {took:?}");
            slowest = slowest.max(took);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("slowest answer beside 128 slow clients: {slowest:?}");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    drop(dribbler.join().expect("the dribbler"));
    server.shutdown().expect("a clean stop");
}

#[test]
fn h3_a_request_that_arrives_too_slowly_gets_408_and_is_closed() {
    let server = start("h3-408", |c| {
        c.timeouts = Timeouts {
            request: Duration::from_secs(1),
            idle: Duration::from_secs(30),
        }
    });
    let addr = server.addr();
    // Headers that never finish.
    let mut headers = connect(addr);
    headers
        .write_all(b"GET /api/me HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        .expect("write");
    // A body that never finishes.
    let mut body = connect(addr);
    body.write_all(
        format!(
            "POST /api/signin HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\nContent-Length: 100\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .expect("write");
    for (what, stream) in [("headers", &mut headers), ("body", &mut body)] {
        let started = Instant::now();
        let (status, answer) = read_answer(stream).unwrap_or_else(|| panic!("{what}: no 408"));
        assert_eq!(status, 408, "{what}: {answer}");
        assert!(answer.contains("\"code\":\"invalid_input\""), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
        assert!(
            closed_within(stream, Duration::from_secs(5)),
            "{what}: still open"
        );
    }
    server.shutdown().expect("a clean stop");
}

#[test]
fn h3_idle_connections_close_after_the_idle_timeout() {
    let server = start("h3-idle", |c| {
        c.timeouts = Timeouts {
            request: Duration::from_secs(10),
            idle: Duration::from_secs(1),
        }
    });
    let addr = server.addr();
    // A connection that never sends anything.
    let mut silent = connect(addr);
    // A keep-alive connection after an answer, and one used again within the timeout.
    let mut used = connect(addr);
    assert_eq!(
        exchange(&mut used, "GET /api/me HTTP/1.1\r\nHost: x\r\n\r\n").map(|a| a.0),
        Some(401)
    );
    let mut busy = connect(addr);
    for _ in 0..3 {
        assert_eq!(
            exchange(&mut busy, "GET /api/me HTTP/1.1\r\nHost: x\r\n\r\n").map(|a| a.0),
            Some(401),
            "a connection in use stays open"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let started = Instant::now();
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)),
        "the silent one"
    );
    assert!(
        closed_within(&mut used, Duration::from_secs(5)),
        "the idle one"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    server.shutdown().expect("a clean stop");
}

#[test]
fn h3_eight_connections_opened_at_one_moment_are_all_answered() {
    let server = start("h3-together", |_| {});
    let addr = server.addr();
    let cookie = sign_up(addr);
    for round in 0..3 {
        let mut streams: Vec<TcpStream> = (0..8).map(|_| connect(addr)).collect();
        let started = Instant::now();
        for stream in &mut streams {
            stream
                .write_all(me_request(&cookie).as_bytes())
                .expect("write");
        }
        for (n, stream) in streams.iter_mut().enumerate() {
            let (status, _) = read_answer(stream).unwrap_or_else(|| panic!("{n}: no answer"));
            assert_eq!(status, 200, "round {round}, connection {n}");
        }
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "round {round}: {took:?}");
    }
    server.shutdown().expect("a clean stop");
}

#[test]
fn h3_past_the_connection_limit_new_connections_are_refused_not_stalled() {
    let server = start("h3-limit", |c| c.max_connections = 4);
    let addr = server.addr();
    let mut held: Vec<TcpStream> = (0..4).map(|_| connect(addr)).collect();
    // The accepted ones are in; give the server a moment to count them.
    for stream in &mut held {
        assert_eq!(
            exchange(stream, "GET /api/me HTTP/1.1\r\nHost: x\r\n\r\n").map(|a| a.0),
            Some(401)
        );
    }
    let mut refused = connect(addr);
    let (status, body) = read_answer(&mut refused).expect("a 503 before the close");
    assert_eq!(status, 503, "{body}");
    assert!(closed_within(&mut refused, Duration::from_secs(5)));
    // Those already accepted keep their service.
    for stream in &mut held {
        assert_eq!(
            exchange(stream, "GET /api/me HTTP/1.1\r\nHost: x\r\n\r\n").map(|a| a.0),
            Some(401)
        );
    }
    // Once one closes, a new connection is served again.
    drop(held.pop());
    let served = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        let mut stream = connect(addr);
        exchange(&mut stream, "GET /api/me HTTP/1.1\r\nHost: x\r\n\r\n").map(|a| a.0) == Some(401)
    });
    assert!(served, "a freed slot was not reused");
    server.shutdown().expect("a clean stop");
}

/// Storage that makes every call wait while the gate is shut.
struct Gate {
    inner: Box<dyn Storage + Send>,
    shut: Arc<(Mutex<bool>, Condvar)>,
}

impl Gate {
    fn pass(&self) {
        let (lock, opened) = &*self.shut;
        let mut shut = lock.lock().unwrap_or_else(|p| p.into_inner());
        while *shut {
            shut = opened.wait(shut).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Storage for Gate {
    fn get(&self, key: &str) -> Result<Option<Versioned>, HostError> {
        self.pass();
        self.inner.get(key)
    }

    fn scan(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<Entry>, HostError> {
        self.pass();
        self.inner.scan(prefix, after, limit)
    }

    fn commit(&self, writes: &[StorageWrite]) -> Result<(), HostError> {
        self.pass();
        self.inner.commit(writes)
    }
}

#[test]
fn h3_a_full_queue_is_answered_503_with_retry_after() {
    let shut = Arc::new((Mutex::new(false), Condvar::new()));
    let gate = Arc::clone(&shut);
    let layer: StorageLayer = Arc::new(move |inner| {
        Box::new(Gate {
            inner,
            shut: Arc::clone(&gate),
        })
    });
    let server = start("h3-queue", |c| {
        c.workers = 1;
        c.queue = 1;
        c.storage_layer = Some(layer);
    });
    let addr = server.addr();
    let cookie = sign_up(addr);
    *shut.0.lock().expect("the gate") = true;
    // One request holds the worker, one waits in the queue; the next is refused at once.
    let mut waiting: Vec<TcpStream> = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(addr);
        stream
            .write_all(me_request(&cookie).as_bytes())
            .expect("write");
        waiting.push(stream);
        std::thread::sleep(Duration::from_millis(300));
    }
    let started = Instant::now();
    let mut refused = connect(addr);
    stream_write(&mut refused, &me_request(&cookie));
    let mut answer = String::new();
    refused
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout");
    let mut buf = [0u8; 1024];
    while !answer.contains("\r\n\r\n") {
        let n = refused.read(&mut buf).expect("an answer");
        assert!(n > 0);
        answer.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // Opening the gate serves the two that waited.
    *shut.0.lock().expect("the gate") = false;
    shut.1.notify_all();
    for stream in &mut waiting {
        assert_eq!(read_answer(stream).map(|a| a.0), Some(200));
    }
    server.shutdown().expect("a clean stop");
}

fn stream_write(stream: &mut TcpStream, text: &str) {
    stream.write_all(text.as_bytes()).expect("write");
}

#[test]
fn h3_bodies_over_64_kib_get_413_however_they_are_sent() {
    let server = start("h3-413", |_| {});
    let addr = server.addr();
    // Declared: refused before a byte of it is read.
    let mut declared = connect(addr);
    stream_write(
        &mut declared,
        &format!(
            "POST /api/signup HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\nContent-Length: 70000\r\n\r\n"
        ),
    );
    assert_eq!(read_answer(&mut declared).map(|a| a.0), Some(413));
    // Chunked: refused once it passes the limit.
    let head = format!(
        "POST /api/signup HTTP/1.1\r\nHost: x\r\nOrigin: {ORIGIN}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let chunk = format!("{:x}\r\n{}\r\n", 8192, "x".repeat(8192)).into_bytes();
    let (status, _) = send_while_reading(addr, &head, std::iter::repeat_n(chunk, 9));
    assert_eq!(status, Some(413));
    server.shutdown().expect("a clean stop");
}

#[test]
fn h3_a_100_mb_header_gets_431_and_the_server_barely_grows() {
    let dir = common::scratch_dir("h3-431");
    let db = dir.join("twofold.db").display().to_string();
    let server = ServerProcess::start(&dir, "server", &db, &[]);
    let addr = server.addr;
    // Warm up the paths a request takes, so what grows afterwards is the header's doing.
    for _ in 0..3 {
        let mut stream = connect(addr);
        exchange(&mut stream, "GET /api/me HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    let before = server.rss_kib();
    // Four at once, each streaming a 100 MB header for as long as the server reads.
    let senders: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let chunk = vec![b'a'; 64 * 1024];
                send_while_reading(
                    addr,
                    "GET /api/me HTTP/1.1\r\nHost: x\r\nX-Big: ",
                    std::iter::repeat_n(chunk, 100 * 16),
                )
            })
        })
        .collect();
    for sender in senders {
        let (status, sent) = sender.join().expect("a sender");
        assert_eq!(status, Some(431), "after sending {sent} bytes");
        assert!(sent < 100 * 1024 * 1024, "the server read the whole header");
    }
    let after = server.rss_kib();
    eprintln!("RSS {before} KiB before, {after} KiB after four 100 MB headers");
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}
