//! A small blocking HTTP/1.1 client for the server's JSON API: one keep-alive connection to
//! 127.0.0.1, the session cookie kept like a browser keeps it, `Origin` on every request that
//! changes state. Loopback only: the address is checked.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// The longest a request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer.
#[derive(Clone, Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON (`null` if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// `error.code` of an error answer, or "" for a success.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One browser: a connection and a cookie jar of one cookie.
pub struct Client {
    addr: SocketAddr,
    origin: String,
    conn: Option<BufReader<TcpStream>>,
    /// The session cookie (`name=value`), if the server set one.
    pub cookie: Option<String>,
    /// The client address a proxy would name in `X-Forwarded-For` (the server trusts the
    /// loopback proxy, see `Server::start`): one per simulated device, so each counts as its
    /// own client for the per-client limits (S6).
    pub forwarded_for: Option<String>,
}

impl Client {
    /// A client for the server at `addr` (loopback only), sending `Origin: origin`.
    pub fn new(addr: SocketAddr, origin: &str) -> Client {
        assert!(addr.ip().is_loopback(), "tests talk to loopback only");
        Client {
            addr,
            origin: origin.to_owned(),
            conn: None,
            cookie: None,
            forwarded_for: None,
        }
    }

    /// Opens the connection now (so a race starts with connected clients).
    pub fn connect(&mut self) -> std::io::Result<()> {
        if self.conn.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, REQUEST_TIMEOUT)?;
            stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
            stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
            stream.set_nodelay(true)?;
            self.conn = Some(BufReader::new(stream));
        }
        Ok(())
    }

    /// Sends a request (JSON body when given) and reads the answer. A connection the server
    /// closed while idle is reopened once, before anything of the request was answered.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> std::io::Result<Response> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: twofold-reliability\r\n\
             Content-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        if method != "GET" {
            head.push_str(&format!("Origin: {}\r\n", self.origin));
        }
        if let Some(cookie) = &self.cookie {
            head.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        if let Some(client) = &self.forwarded_for {
            head.push_str(&format!("X-Forwarded-For: {client}\r\n"));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body.as_bytes());

        let reused = self.conn.is_some();
        match self.exchange(&request) {
            Ok(response) => Ok(response),
            Err(Stale) if reused => {
                self.conn = None;
                self.exchange(&request).map_err(|e| e.into_io())
            }
            Err(e) => Err(e.into_io()),
        }
    }

    fn exchange(&mut self, request: &[u8]) -> Result<Response, Failure> {
        self.connect().map_err(Failure::Io)?;
        let conn = self.conn.as_mut().ok_or(Stale)?;
        if conn.get_mut().write_all(request).is_err() {
            return Err(Stale);
        }
        let mut status_line = String::new();
        match conn.read_line(&mut status_line) {
            Ok(0) => return Err(Stale),
            Ok(_) => {}
            Err(e) => return Err(Failure::Io(e)),
        }
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| Failure::Io(invalid(format!("status line {status_line:?}"))))?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            conn.read_line(&mut line).map_err(Failure::Io)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .ok_or_else(|| Failure::Io(invalid("no Content-Length".into())))?;
        let mut body = vec![0; length];
        conn.read_exact(&mut body).map_err(Failure::Io)?;
        let response = Response {
            status,
            headers,
            body,
        };
        if response
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            self.conn = None;
        }
        for (name, value) in &response.headers {
            if name == "set-cookie" {
                let pair = value.split(';').next().unwrap_or_default().trim();
                if value.contains("Max-Age=0") || pair.ends_with('=') {
                    self.cookie = None;
                } else {
                    self.cookie = Some(pair.to_owned());
                }
            }
        }
        Ok(response)
    }
}

enum Failure {
    /// The kept-alive connection was closed before this request was read.
    Stale,
    Io(std::io::Error),
}
use Failure::Stale;

impl Failure {
    fn into_io(self) -> std::io::Error {
        match self {
            Stale => std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection closed by the server",
            ),
            Failure::Io(e) => e,
        }
    }
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}
