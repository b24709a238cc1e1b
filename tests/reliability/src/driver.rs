//! A host's driver (`--driver`, `tests/conformance/PROTOCOL.md`) as a child process: send a
//! request line, wait (bounded) for its answer line, kill it with SIGKILL at any moment.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use serde_json::{Value, json};

/// How long an answer may take before the host counts as hung.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// The answer to one request.
#[derive(Clone, Debug)]
pub enum Answer {
    /// `ok`: the result.
    Ok(Value),
    /// `error`: its code and the whole error object.
    Err(String, Value),
    /// No answer: the process ended (or was killed) first.
    Gone,
}

impl Answer {
    /// The result, or a panic naming what happened.
    pub fn ok(self, what: &str) -> Value {
        match self {
            Answer::Ok(v) => v,
            other => panic!("{what}: expected ok, got {other:?}"),
        }
    }

    /// The error code, if it is an error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Answer::Err(code, _) => Some(code),
            _ => None,
        }
    }
}

/// A running driver process.
pub struct DriverProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Vec<u8>>,
    next_id: u64,
    /// Where the process's standard error goes.
    pub stderr_log: PathBuf,
}

impl DriverProcess {
    /// Starts `program args...`; its standard error goes to `stderr_log`.
    pub fn spawn(program: &Path, args: &[String], stderr_log: &Path) -> DriverProcess {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr_log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", stderr_log.display()));
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    // A line cut short by the end of the output is an answer the process
                    // did not finish writing (it was killed): no answer.
                    Ok(_) if line.last() != Some(&b'\n') => break,
                    Ok(_) => {
                        line.pop();
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        DriverProcess {
            stdin: child.stdin.take(),
            child,
            lines,
            next_id: 1,
            stderr_log: stderr_log.to_owned(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes one line (a newline is added). False when the process no longer reads.
    pub fn send_line(&mut self, line: &[u8]) -> bool {
        let Some(stdin) = self.stdin.as_mut() else {
            return false;
        };
        stdin.write_all(line).is_ok() && stdin.write_all(b"\n").is_ok() && stdin.flush().is_ok()
    }

    /// The next answer line; `None` when the process ended first. Panics after
    /// [`ANSWER_TIMEOUT`] (a hung host is a failure, not a skip).
    pub fn recv_line(&self) -> Option<Vec<u8>> {
        match self.lines.recv_timeout(ANSWER_TIMEOUT) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => panic!(
                "the driver gave no answer in {ANSWER_TIMEOUT:?} (stderr: {})",
                self.stderr_log.display()
            ),
        }
    }

    /// Sends a request and waits for its answer, checking that the answer has the request's id.
    pub fn request(&mut self, op: &str, args: Value) -> Answer {
        match self.send_request(op, args) {
            Some(id) => self.read_answer(id, op),
            None => Answer::Gone,
        }
    }

    /// Sends a request (engine operations with a context, test-only ones without); answers its
    /// id, or `None` when the process no longer reads.
    pub fn send_request(&mut self, op: &str, args: Value) -> Option<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let line = if twofold_core::Op::parse(op).is_none() {
            json!({ "id": id, "op": op, "args": args })
        } else {
            // Requests from many addresses, as a real site gets them: the per-client limits
            // (S6) then leave long scripted runs alone.
            let ip = format!("198.51.100.{}", id % 200);
            let context = json!({ "ip": ip, "user_agent": "twofold-reliability" });
            json!({ "id": id, "op": op, "args": args, "context": context })
        };
        self.send_line(line.to_string().as_bytes()).then_some(id)
    }

    /// Reads the answer to request `id`: `Gone` when the process ended before writing it.
    pub fn read_answer(&mut self, id: u64, op: &str) -> Answer {
        let Some(answer) = self.recv_line() else {
            return Answer::Gone;
        };
        let answer: Value = serde_json::from_slice(&answer).unwrap_or_else(|e| {
            panic!(
                "{op}: answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&answer)
            )
        });
        assert_eq!(
            answer["id"], id,
            "{op}: answer to another request: {answer}"
        );
        if let Some(ok) = answer.get("ok") {
            Answer::Ok(ok.clone())
        } else {
            let error = answer["error"].clone();
            let code = error["code"].as_str().unwrap_or_default().to_owned();
            assert!(
                twofold_core::ErrorCode::parse(&code).is_some(),
                "{op}: an answer that is neither ok nor a typed error: {answer}"
            );
            Answer::Err(code, error)
        }
    }

    /// SIGKILL (no chance to clean up), then reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdin = None;
    }

    /// Closes standard input and waits (bounded) for the process to exit by itself; answers
    /// whether it did with status 0.
    pub fn close(mut self) -> bool {
        self.stdin = None;
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        false
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        if self.alive() {
            self.kill();
        }
    }
}
