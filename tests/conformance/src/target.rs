//! Targets: the hosts under test, as configured in `targets.toml`, and the line connections
//! the runner speaks the driver protocol over (in process for the reference, a child's
//! standard input and output for every other host).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use serde::Deserialize;

use crate::driver::{Driver, Randomness};

/// `targets.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsFile {
    /// Every target; the first is the reference.
    pub target: Vec<TargetConfig>,
}

/// One `[[target]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The name in reports and in `target/conformance/<name>/`.
    pub name: String,
    /// `"core"`: the in-process reference driver.
    #[serde(default)]
    pub builtin: Option<String>,
    /// The driver command, run from the workspace root; `{target_dir}` is cargo's target
    /// directory.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Extra environment for the command.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// How to build the host, shown when its command is missing.
    #[serde(default)]
    pub build: Option<String>,
}

impl TargetsFile {
    /// Reads and checks a targets file.
    pub fn load(path: &Path) -> Result<TargetsFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file: TargetsFile =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if file.target.is_empty() {
            return Err(format!("{}: no [[target]]", path.display()));
        }
        for t in &file.target {
            match (&t.builtin, &t.command) {
                (Some(b), None) if b == "core" => {}
                (None, Some(cmd)) if !cmd.is_empty() => {}
                _ => {
                    return Err(format!(
                        "{}: target {:?} needs either builtin = \"core\" or a non-empty command",
                        path.display(),
                        t.name
                    ));
                }
            }
        }
        Ok(file)
    }
}

/// How to reach one target.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// The reference driver, in this process.
    InProcess(Randomness),
    /// A driver process.
    Process {
        /// Program and arguments, resolved.
        command: Vec<String>,
        /// Extra environment.
        env: Vec<(String, String)>,
        /// Working directory (the workspace root).
        cwd: PathBuf,
        /// Where the child's standard error goes.
        stderr_log: PathBuf,
        /// How long to wait for one response.
        timeout: Duration,
        /// How long to wait for the first response (a wasmtime host compiling its component
        /// without a cache takes a minute in a debug build).
        startup_timeout: Duration,
    },
}

impl Endpoint {
    /// Opens a fresh connection.
    pub fn connect(&self) -> Result<Box<dyn Connection>, String> {
        match self {
            Endpoint::InProcess(randomness) => Ok(Box::new(InProcess {
                driver: Driver::new(*randomness),
                queue: VecDeque::new(),
            })),
            Endpoint::Process {
                command,
                env,
                cwd,
                stderr_log,
                timeout,
                startup_timeout,
            } => {
                ProcessConnection::spawn(command, env, cwd, stderr_log, *timeout, *startup_timeout)
                    .map(|c| Box::new(c) as Box<dyn Connection>)
            }
        }
    }
}

/// Where a command's program is, when it names a file that does not exist.
pub fn missing_program(command: &[String], cwd: &Path) -> Option<PathBuf> {
    let program = Path::new(command.first()?);
    if program.components().count() == 1 {
        // A bare name is looked up on PATH when run.
        let found = std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()));
        return (!found).then(|| program.to_path_buf());
    }
    let full = cwd.join(program);
    (!full.is_file()).then_some(full)
}

/// A line-oriented link to a driver. Lines carry no newline.
pub trait Connection {
    /// Sends one request line.
    fn send(&mut self, line: &[u8]) -> Result<(), String>;
    /// Receives the next response line.
    fn recv(&mut self) -> Result<Vec<u8>, String>;
}

/// The reference driver behind the same line interface: requests queue up until a response
/// is read, so pipelined requests are answered in order as a process would answer them.
struct InProcess {
    driver: Driver,
    queue: VecDeque<Vec<u8>>,
}

impl Connection for InProcess {
    fn send(&mut self, line: &[u8]) -> Result<(), String> {
        self.queue.push_back(line.to_vec());
        Ok(())
    }

    fn recv(&mut self) -> Result<Vec<u8>, String> {
        let line = self
            .queue
            .pop_front()
            .ok_or("no request is waiting for a response")?;
        Ok(self.driver.handle_line(&line).into_bytes())
    }
}

/// A driver process: requests go to its standard input; a thread reads its standard output,
/// so a response that never comes times out instead of hanging the runner.
struct ProcessConnection {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Result<Vec<u8>, String>>,
    timeout: Duration,
    /// Until the first response: a host may compile or load things first.
    startup_timeout: Option<Duration>,
}

impl ProcessConnection {
    fn spawn(
        command: &[String],
        env: &[(String, String)],
        cwd: &Path,
        stderr_log: &Path,
        timeout: Duration,
        startup_timeout: Duration,
    ) -> Result<ProcessConnection, String> {
        let (program, args) = command.split_first().ok_or("empty command")?;
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(stderr_log)
            .map_err(|e| format!("cannot open {}: {e}", stderr_log.display()))?;
        let program = if Path::new(program).components().count() == 1 {
            PathBuf::from(program)
        } else {
            cwd.join(program)
        };
        let mut child = Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", command.join(" ")))?;
        let stdout = child.stdout.take().ok_or("the child has no stdout")?;
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) => {
                        let _ = tx.send(Err("the driver closed its output (exited?)".into()));
                        return;
                    }
                    Ok(_) => {
                        if line.last() == Some(&b'\n') {
                            line.pop();
                        }
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                        if tx.send(Ok(line)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("reading the driver's output: {e}")));
                        return;
                    }
                }
            }
        });
        Ok(ProcessConnection {
            child,
            stdin,
            lines,
            timeout,
            startup_timeout: Some(startup_timeout),
        })
    }
}

impl Connection for ProcessConnection {
    fn send(&mut self, line: &[u8]) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("the driver's input is closed")?;
        stdin
            .write_all(line)
            .and_then(|()| stdin.write_all(b"\n"))
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("writing to the driver: {e}"))
    }

    fn recv(&mut self) -> Result<Vec<u8>, String> {
        let timeout = self.startup_timeout.unwrap_or(self.timeout);
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                self.startup_timeout = None;
                line
            }
            Err(RecvTimeoutError::Timeout) => {
                Err(format!("no response within {} s", timeout.as_secs_f64()))
            }
            Err(RecvTimeoutError::Disconnected) => {
                Err("the driver closed its output (exited?)".into())
            }
        }
    }
}

impl Drop for ProcessConnection {
    fn drop(&mut self) {
        // Closing standard input is how a driver is told to stop; kill it if it does not.
        drop(self.stdin.take());
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
