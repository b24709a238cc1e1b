//! A browser for the multi-process tests: one keep-alive connection, the session cookie,
//! `Origin` on changes, and an `X-Forwarded-For` address of its own (the servers trust
//! 127.0.0.1 as a proxy), so each client counts as its own client for the engine's per-client
//! limits. It never re-sends a request: an answer that does not come is an error, so a test
//! knows exactly which requests were acknowledged.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};
use twofold_testkit::ORIGIN;
use twofold_testkit::authenticator::{Authenticator, Tweaks};

/// The password of every test account.
pub const PASSWORD: &str = "correct horse battery staple";

/// The longest a request may take before it counts as failed.
const TIMEOUT: Duration = Duration::from_secs(60);

/// An answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// `error.code`, or "" for a success.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

pub struct Client {
    pub addr: SocketAddr,
    forwarded_for: String,
    conn: Option<BufReader<TcpStream>>,
    /// The session cookie (`name=value`).
    pub cookie: Option<String>,
}

impl Client {
    /// A client of the server at `addr`, seen by the engine as `forwarded_for`.
    pub fn new(addr: SocketAddr, forwarded_for: &str) -> Client {
        Client {
            addr,
            forwarded_for: forwarded_for.to_owned(),
            conn: None,
            cookie: None,
        }
    }

    /// Drops the connection (the next request opens a new one).
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// One request; an I/O failure drops the connection.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> std::io::Result<Answer> {
        let result = self.exchange(method, path, body);
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> std::io::Result<Answer> {
        if self.conn.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, TIMEOUT)?;
            stream.set_read_timeout(Some(TIMEOUT))?;
            stream.set_write_timeout(Some(TIMEOUT))?;
            stream.set_nodelay(true)?;
            self.conn = Some(BufReader::new(stream));
        }
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: twofold-cluster-test\r\n\
             X-Forwarded-For: {}\r\nContent-Length: {}\r\n",
            self.forwarded_for,
            body.len()
        );
        if method != "GET" {
            head.push_str(&format!("Origin: {}\r\n", super::process::ORIGIN));
            head.push_str("Content-Type: application/json\r\n");
        }
        if let Some(cookie) = &self.cookie {
            head.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(&body);
        let broken = || std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "closed");
        let conn = self.conn.as_mut().ok_or_else(broken)?;
        conn.get_mut().write_all(head.as_bytes())?;
        let mut line = String::new();
        if conn.read_line(&mut line)? == 0 {
            return Err(broken());
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(broken)?;
        let (mut length, mut close) = (0usize, false);
        loop {
            let mut line = String::new();
            if conn.read_line(&mut line)? == 0 {
                return Err(broken());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "content-length" => length = value.parse().map_err(|_| broken())?,
                "connection" => close = value.eq_ignore_ascii_case("close"),
                "set-cookie" => {
                    let pair = value.split(';').next().unwrap_or_default().trim();
                    self.cookie = (!value.contains("Max-Age=0") && !pair.ends_with('='))
                        .then(|| pair.to_owned());
                }
                _ => {}
            }
        }
        let mut bytes = vec![0; length];
        conn.read_exact(&mut bytes)?;
        if close {
            self.conn = None;
        }
        Ok(Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }
}

/// A request that must answer 200: its body.
pub fn ok(client: &mut Client, method: &str, path: &str, body: Option<Value>) -> Value {
    let answer = client
        .send(method, path, body.as_ref())
        .unwrap_or_else(|e| panic!("{method} {path} on {}: {e}", client.addr));
    assert_eq!(answer.status, 200, "{method} {path}: {}", answer.body);
    answer.body
}

/// Signs up (the client is then signed in) and registers a first passkey on `device`: the
/// backup codes.
pub fn user_with_passkey(
    client: &mut Client,
    email: &str,
    device: &mut Authenticator,
) -> Vec<String> {
    ok(
        client,
        "POST",
        "/api/signup",
        Some(json!({ "email": email, "password": PASSWORD })),
    );
    let options = ok(
        client,
        "POST",
        "/api/passkeys/registration/start",
        Some(json!({ "name": "Laptop", "password": PASSWORD })),
    )["options"]
        .clone();
    let credential = device
        .register(&options, ORIGIN, &Tweaks::default())
        .expect("the authenticator registers");
    let registered = ok(
        client,
        "POST",
        "/api/passkeys/registration/finish",
        Some(json!({ "credential": credential })),
    );
    serde_json::from_value(registered["backup_codes"].clone()).expect("the first passkey's codes")
}

/// Step one with a fresh session: the request options.
pub fn pending(client: &mut Client, email: &str) -> Value {
    client.cookie = None;
    let answer = ok(
        client,
        "POST",
        "/api/signin",
        Some(json!({ "email": email, "password": PASSWORD })),
    );
    assert_eq!(answer["status"], "second_factor_required", "{answer}");
    answer["options"].clone()
}

/// A complete two-step sign-in with the passkey on `device`.
pub fn sign_in(client: &mut Client, email: &str, device: &mut Authenticator) {
    let options = pending(client, email);
    let assertion = device
        .authenticate(&options, ORIGIN, &Tweaks::default())
        .expect("the authenticator signs");
    ok(
        client,
        "POST",
        "/api/signin/passkey",
        Some(json!({ "credential": assertion })),
    );
}
