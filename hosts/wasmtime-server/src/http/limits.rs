//! What one client may cost the server (SPEC H3): how long a request may take to arrive, how
//! long a connection may idle, how large headers and bodies may be.
//!
//! Headers are limited by hyper's read buffer (a request whose headers do not fit in 16 KiB is
//! answered 431 by hyper itself, having buffered at most that much). Time is kept per
//! connection by a [`Clock`]: once a request's first byte has arrived, its headers must follow
//! within the request timeout or [`TimedIo`] (the socket as hyper sees it) answers 408 and ends
//! the connection; its body is read by [`read_body`] under the same deadline, before the
//! request goes anywhere near an engine worker. A connection with no request under way closes
//! after the idle timeout (the connection's task watches [`Clock::idle_deadline`]). While a
//! worker handles the request no timer runs: the wait is the server's, not the client's.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::rt::ReadBufCursor;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use twofold_proto::{ErrorCode, MAX_JSON_BYTES};

use crate::http::reply::ApiError;

/// Request headers larger than this are refused with 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Request bodies larger than this are refused with 413 (the engine's own limit, E1).
pub const MAX_BODY_BYTES: usize = MAX_JSON_BYTES;

/// The time limits of a connection.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// A request, headers and body, must arrive within this time of its first byte (H3: 10 s).
    pub request: Duration,
    /// A connection with no request under way is closed after this long (H3: 60 s).
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            request: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        }
    }
}

/// Where a connection is between requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request, since the connection opened or the last answer.
    Idle(Instant),
    /// A request's first byte came at this time; its headers are still arriving.
    Head(Instant),
    /// The request is hyper's and the routes' (body, engine, answer).
    Request,
    /// Timed out: reads see the end of the stream.
    Closed,
}

/// The time-keeping state of one connection, shared by its socket and its requests.
#[derive(Debug)]
pub(crate) struct Clock {
    phase: Mutex<Phase>,
    timeouts: Timeouts,
}

impl Clock {
    pub(crate) fn new(timeouts: Timeouts) -> Arc<Clock> {
        Arc::new(Clock {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            timeouts,
        })
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request's headers are in: its body is due by the returned deadline.
    pub(crate) fn begin_request(&self) -> Instant {
        let mut phase = self.phase();
        let started = match *phase {
            Phase::Head(at) => at,
            // Headers that were already buffered (a pipelined request) start now.
            _ => Instant::now(),
        };
        *phase = Phase::Request;
        started + self.timeouts.request
    }

    /// The answer is on its way: the connection idles from now.
    pub(crate) fn answered(&self) {
        let mut phase = self.phase();
        if *phase != Phase::Closed {
            *phase = Phase::Idle(Instant::now());
        }
    }

    /// When an idle connection is to close; `None` while a request is under way.
    pub(crate) fn idle_deadline(&self) -> Option<Instant> {
        match *self.phase() {
            Phase::Idle(since) => Some(since + self.timeouts.idle),
            _ => None,
        }
    }

    fn bytes_arrived(&self) {
        let mut phase = self.phase();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Head(Instant::now());
        }
    }

    /// When headers under way must have arrived.
    fn head_deadline(&self) -> Option<Instant> {
        match *self.phase() {
            Phase::Head(since) => Some(since + self.timeouts.request),
            _ => None,
        }
    }
}

/// The socket as hyper sees it, with the connection's timers in its reads.
pub(crate) struct TimedIo {
    stream: TcpStream,
    clock: Arc<Clock>,
    sleep: Pin<Box<Sleep>>,
}

impl TimedIo {
    pub(crate) fn new(stream: TcpStream, clock: Arc<Clock>) -> TimedIo {
        TimedIo {
            stream,
            clock,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }
}

/// A whole answer written straight to a socket that hyper does not (or no longer) serve:
/// the error shape of every other answer, and the connection closes.
pub(crate) fn raw_answer(status: &str, code: ErrorCode, message: &str, extra: &str) -> Vec<u8> {
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Cache-Control: no-store\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What a client whose headers came too slowly reads before the connection closes.
fn request_timeout_response(timeout: Duration) -> Vec<u8> {
    raw_answer(
        "408 Request Timeout",
        ErrorCode::InvalidInput,
        &format!("the request did not arrive within {} s", timeout.as_secs()),
        "",
    )
}

impl hyper::rt::Read for TimedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if *this.clock.phase() == Phase::Closed {
            return Poll::Ready(Ok(()));
        }
        // Through a buffer of our own: hyper's cursor can only be filled by copying into it
        // without unsafe code.
        let mut local = [0u8; 8 * 1024];
        let want = buf.remaining().min(local.len());
        let mut read = ReadBuf::new(&mut local[..want]);
        match Pin::new(&mut this.stream).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => {
                if !read.filled().is_empty() {
                    this.clock.bytes_arrived();
                }
                buf.put_slice(read.filled());
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some(deadline) = this.clock.head_deadline() else {
                    return Poll::Pending;
                };
                if this.sleep.deadline() != deadline {
                    this.sleep.as_mut().reset(deadline);
                }
                if this.sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // hyper has written nothing for this request, so the answer can go straight
                // to the socket; a client too slow to read it loses nothing.
                let _ = this
                    .stream
                    .try_write(&request_timeout_response(this.clock.timeouts.request));
                *this.clock.phase() = Phase::Closed;
                // The end of the stream: hyper closes the connection.
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl hyper::rt::Write for TimedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }
}

/// A refusal that also ends the connection: whatever the client still sends is not read.
fn closing(status: u16, message: String) -> ApiError {
    ApiError::with_status(status, ErrorCode::InvalidInput, message).closing()
}

/// Reads the whole body by `deadline`: 413 beyond [`MAX_BODY_BYTES`] (at once when the
/// declared length says so), 408 when it does not arrive in time.
pub(crate) async fn read_body(
    body: Incoming,
    declared: Option<u64>,
    deadline: Instant,
    timeouts: Timeouts,
) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        closing(
            413,
            format!(
                "the request body is larger than {} KiB",
                MAX_BODY_BYTES / 1024
            ),
        )
    };
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let collect = async {
        let mut body = body;
        let mut bytes: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|_| closing(400, "the request body could not be read".into()))?;
            if let Ok(data) = frame.into_data() {
                let data: Bytes = data;
                if bytes.len() + data.len() > MAX_BODY_BYTES {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(bytes)
    };
    match tokio::time::timeout_at(deadline, collect).await {
        Ok(result) => result,
        Err(_) => Err(closing(
            408,
            format!(
                "the request did not arrive within {} s",
                timeouts.request.as_secs()
            ),
        )),
    }
}

/// Runs `future` until it ends or `stop` resolves, whichever is first: `None` when stopped.
pub(crate) async fn unless<F: Future>(
    future: F,
    stop: impl Future<Output = ()>,
) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut stop = std::pin::pin!(stop);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        if stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}
