//! Targets: the hosts under test, as configured in `targets.toml`, and the line connections
//! the runner speaks the driver protocol over (in process for the reference, a child's
//! standard input and output for every other host, and several drivers behind one connection
//! for a target of several instances).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::driver::{Driver, Randomness, SharedStorage};
use crate::fixture::{Fixture, FixtureError, FixtureKind};
use crate::ops::{self, Kind, TestOp};

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
    /// The driver command, run from the workspace root. Placeholders: `{target_dir}` (cargo's
    /// target directory), `{scratch_dir}` (an empty directory for this run of the target, shared
    /// by its instances), and what the fixture provides (`{postgres_url}`).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Extra environment for the command.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// How to build the host, shown when its command is missing.
    #[serde(default)]
    pub build: Option<String>,
    /// How many drivers run side by side (default 1). Engine requests go to them in turn,
    /// racing ones included; test-only operations go to all (PROTOCOL.md, "Several instances").
    #[serde(default)]
    pub instances: Option<usize>,
    /// What the instances share for the run: `"postgres"`, a fresh PostgreSQL server whose URL
    /// is `{postgres_url}`. The builtin core's instances share their in-memory storage.
    #[serde(default)]
    pub fixture: Option<String>,
    /// Runs only when named (`--target`, `--require`); `--require-all` leaves it out.
    #[serde(default)]
    pub optional: bool,
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
            let fail = |why: &str| format!("{}: target {:?} {why}", path.display(), t.name);
            match (&t.builtin, &t.command) {
                (Some(b), None) if b == "core" => {}
                (None, Some(cmd)) if !cmd.is_empty() => {}
                _ => {
                    return Err(fail(
                        "needs either builtin = \"core\" or a non-empty command",
                    ));
                }
            }
            if t.instances == Some(0) {
                return Err(fail("needs at least one instance"));
            }
            if let Some(f) = &t.fixture {
                FixtureKind::parse(f).map_err(|e| fail(&e))?;
                if t.builtin.is_some() {
                    return Err(fail(
                        "is builtin: its instances share memory, it takes no fixture",
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
    /// The reference driver, in this process; several instances share one in-memory storage.
    InProcess {
        /// Seeded like a host that can, or not.
        randomness: Randomness,
        /// How many drivers.
        instances: usize,
    },
    /// Driver processes.
    Process(ProcessSpec),
}

/// Driver processes of one target.
#[derive(Clone, Debug)]
pub struct ProcessSpec {
    /// Program and arguments, `{target_dir}` resolved.
    pub command: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Working directory (the workspace root).
    pub cwd: PathBuf,
    /// The target's output directory: standard error logs (`driver-stderr.log`, or
    /// `driver-stderr-N.log` per instance), fixture logs and the scratch directory.
    pub out_dir: PathBuf,
    /// How long to wait for one response.
    pub timeout: Duration,
    /// How long to wait for the first response (a wasmtime host compiling its component
    /// without a cache takes a minute in a debug build).
    pub startup_timeout: Duration,
    /// How many processes.
    pub instances: usize,
    /// What they share.
    pub fixture: Option<FixtureKind>,
}

impl Endpoint {
    /// The reference driver, one instance.
    pub fn core(randomness: Randomness) -> Endpoint {
        Endpoint::InProcess {
            randomness,
            instances: 1,
        }
    }

    /// Why the target cannot run here (its program is missing), if it cannot.
    pub fn unavailable(&self) -> Option<String> {
        match self {
            Endpoint::InProcess { .. } => None,
            Endpoint::Process(spec) => missing_program(&spec.command, &spec.cwd)
                .map(|p| format!("{} not found", p.display())),
        }
    }

    /// Sets up what the target's drivers share for one run (the fixture, the scratch
    /// directory); connections are made from the answer.
    pub fn start(&self) -> Result<Session, StartError> {
        match self {
            Endpoint::InProcess {
                randomness,
                instances,
            } => Ok(Session::InProcess {
                randomness: *randomness,
                instances: *instances,
            }),
            Endpoint::Process(spec) => {
                let scratch = spec.out_dir.join("scratch");
                if scratch.exists() {
                    std::fs::remove_dir_all(&scratch).map_err(|e| {
                        StartError::Failed(format!("cannot empty {}: {e}", scratch.display()))
                    })?;
                }
                std::fs::create_dir_all(&scratch).map_err(|e| {
                    StartError::Failed(format!("cannot create {}: {e}", scratch.display()))
                })?;
                let fixture = match spec.fixture {
                    Some(kind) => Some(kind.start(&spec.out_dir).map_err(|e| match e {
                        FixtureError::Unavailable(why) => StartError::Unavailable(why),
                        FixtureError::Failed(why) => StartError::Failed(why),
                    })?),
                    None => None,
                };
                let mut substitutions =
                    vec![("{scratch_dir}".to_owned(), scratch.display().to_string())];
                if let Some(f) = &fixture {
                    substitutions.extend(f.substitutions.iter().cloned());
                }
                let command = spec
                    .command
                    .iter()
                    .map(|part| {
                        substitutions
                            .iter()
                            .fold(part.clone(), |part, (from, to)| part.replace(from, to))
                    })
                    .collect();
                Ok(Session::Processes {
                    spec: Box::new(spec.clone()),
                    command,
                    _fixture: fixture,
                })
            }
        }
    }
}

/// Why a target could not be set up for a run.
#[derive(Debug)]
pub enum StartError {
    /// This machine cannot run it (a fixture's programs are not installed).
    Unavailable(String),
    /// Setting it up failed.
    Failed(String),
}

/// A target set up for a run: what its connections share lives as long as this does.
pub enum Session {
    /// In-process drivers.
    InProcess {
        /// Their randomness.
        randomness: Randomness,
        /// How many.
        instances: usize,
    },
    /// Driver processes.
    Processes {
        /// The target.
        spec: Box<ProcessSpec>,
        /// The command with every placeholder resolved.
        command: Vec<String>,
        /// Torn down when the session ends.
        _fixture: Option<Fixture>,
    },
}

impl Session {
    /// Opens a fresh connection: one driver, or several behind one line interface.
    pub fn connect(&self) -> Result<Box<dyn Connection>, String> {
        let mut connections: Vec<Box<dyn Connection>> = Vec::new();
        match self {
            Session::InProcess {
                randomness,
                instances,
            } => {
                let storage = SharedStorage::default();
                for _ in 0..*instances {
                    let driver = Driver::sharing(*randomness, storage.clone())
                        .map_err(|e| format!("the reference driver: {e}"))?;
                    connections.push(Box::new(InProcess {
                        driver,
                        queue: VecDeque::new(),
                    }));
                }
            }
            Session::Processes { spec, command, .. } => {
                for i in 0..spec.instances {
                    let log = if spec.instances == 1 {
                        "driver-stderr.log".to_owned()
                    } else {
                        format!("driver-stderr-{}.log", i + 1)
                    };
                    connections.push(Box::new(ProcessConnection::spawn(
                        command,
                        &spec.env,
                        &spec.cwd,
                        &spec.out_dir.join(log),
                        spec.timeout,
                        spec.startup_timeout,
                    )?));
                }
            }
        }
        if connections.len() == 1 {
            return connections.pop().ok_or_else(|| "no driver".into());
        }
        Ok(Box::new(Spread::new(connections)))
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

/// Several drivers behind one connection, as several server processes behind a load balancer:
/// engine requests go to them in turn (pipelined ones too, so a race step is a race between
/// processes), and test-only operations go to all of them, so their clocks and configurations
/// move together. Each instance answers its own requests in order, so answers come back in
/// request order.
struct Spread {
    drivers: Vec<Box<dyn Connection>>,
    /// The instance the next engine request goes to.
    next: usize,
    /// Per request sent and not yet answered: who answers it.
    pending: VecDeque<Pending>,
}

enum Pending {
    /// One instance.
    One(usize),
    /// Every instance; with `reseeded`, instances after the first also answer the `seed` that
    /// followed a `reset`.
    All { reseeded: bool },
}

/// The id of the `seed` requests the connection adds after a `reset`; the runner's own ids
/// count up from 1 and never get near it.
const SPREAD_SEED_ID: u64 = (1 << 53) - 1;

impl Spread {
    fn new(drivers: Vec<Box<dyn Connection>>) -> Spread {
        Spread {
            drivers,
            next: 0,
            pending: VecDeque::new(),
        }
    }

    /// A seeded host hands out the same values as every other instance seeded alike, and ids
    /// made in two processes would collide in the one storage they share: every instance but
    /// the first gets a seed of its own, derived from the one asked for.
    fn instance_seed(seed: u64, instance: usize) -> u64 {
        let mask = (1u64 << 53) - 1;
        seed.wrapping_add(0x9E37_79B9_u64.wrapping_mul(instance as u64)) & mask
    }
}

impl Connection for Spread {
    fn send(&mut self, line: &[u8]) -> Result<(), String> {
        let request: Option<Value> = serde_json::from_slice(line).ok();
        let test_op = request
            .as_ref()
            .and_then(|r| r.get("op"))
            .and_then(Value::as_str)
            .and_then(ops::classify)
            .and_then(|kind| match kind {
                Kind::Test(op) => Some(op),
                Kind::Engine(_) => None,
            });
        let Some(test_op) = test_op else {
            let instance = self.next;
            self.next = (self.next + 1) % self.drivers.len();
            self.drivers[instance].send(line)?;
            self.pending.push_back(Pending::One(instance));
            return Ok(());
        };
        let asked_seed = request
            .as_ref()
            .and_then(|r| r.pointer("/args/seed"))
            .and_then(Value::as_u64);
        for (i, driver) in self.drivers.iter_mut().enumerate() {
            match (test_op, asked_seed) {
                (TestOp::Seed, Some(seed)) if i > 0 => {
                    let mut own = request.clone().unwrap_or(Value::Null);
                    if let Some(args) = own.get_mut("args") {
                        *args = json!({"seed": Spread::instance_seed(seed, i)});
                    }
                    driver.send(own.to_string().as_bytes())?;
                }
                _ => driver.send(line)?,
            }
            if test_op == TestOp::Reset && i > 0 {
                let seed = json!({"id": SPREAD_SEED_ID, "op": "seed",
                                  "args": {"seed": Spread::instance_seed(0, i)}});
                driver.send(seed.to_string().as_bytes())?;
            }
        }
        self.pending.push_back(Pending::All {
            reseeded: test_op == TestOp::Reset,
        });
        Ok(())
    }

    fn recv(&mut self) -> Result<Vec<u8>, String> {
        match self
            .pending
            .pop_front()
            .ok_or("no request is waiting for a response")?
        {
            Pending::One(instance) => self.drivers[instance]
                .recv()
                .map_err(|e| format!("instance {}: {e}", instance + 1)),
            Pending::All { reseeded } => {
                let mut answers = Vec::new();
                for (i, driver) in self.drivers.iter_mut().enumerate() {
                    let answer = driver
                        .recv()
                        .map_err(|e| format!("instance {}: {e}", i + 1))?;
                    if reseeded && i > 0 {
                        let seeded = driver
                            .recv()
                            .map_err(|e| format!("instance {}: {e}", i + 1))?;
                        let seeded: Value = serde_json::from_slice(&seeded).unwrap_or_default();
                        if seeded.get("ok").is_none() {
                            return Err(format!(
                                "instance {} refused the seed that follows a reset: {seeded}",
                                i + 1
                            ));
                        }
                    }
                    answers.push(answer);
                }
                // Test-only operations must fare alike everywhere (messages aside), or the
                // instances no longer share one clock and one configuration.
                let gist = |line: &[u8]| -> Value {
                    let mut v: Value = serde_json::from_slice(line).unwrap_or_default();
                    if let Some(message) = v.pointer_mut("/error/message") {
                        *message = Value::Null;
                    }
                    v
                };
                let first = gist(&answers[0]);
                if let Some((i, other)) = answers
                    .iter()
                    .enumerate()
                    .skip(1)
                    .find(|(_, a)| gist(a) != first)
                {
                    return Err(format!(
                        "the instances answered a test-only operation differently: instance 1 \
                         {}, instance {} {}",
                        String::from_utf8_lossy(&answers[0]),
                        i + 1,
                        String::from_utf8_lossy(other)
                    ));
                }
                Ok(answers.swap_remove(0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Every line sent, with the instance it went to.
    type Log = Arc<Mutex<Vec<(usize, Value)>>>;

    /// Answers `{"id", "ok": {...}}` to every line and records what it was sent.
    struct Recorder {
        name: usize,
        sent: Log,
        queue: VecDeque<Value>,
        answer: Value,
    }

    impl Connection for Recorder {
        fn send(&mut self, line: &[u8]) -> Result<(), String> {
            let request: Value = serde_json::from_slice(line)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(line).into_owned()));
            self.sent.lock().unwrap().push((self.name, request.clone()));
            self.queue.push_back(request);
            Ok(())
        }

        fn recv(&mut self) -> Result<Vec<u8>, String> {
            let request = self.queue.pop_front().ok_or("nothing sent")?;
            Ok(json!({"id": request["id"], "ok": self.answer})
                .to_string()
                .into_bytes())
        }
    }

    fn spread(answers: &[Value]) -> (Spread, Log) {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let drivers = answers
            .iter()
            .enumerate()
            .map(|(name, answer)| {
                Box::new(Recorder {
                    name,
                    sent: Arc::clone(&sent),
                    queue: VecDeque::new(),
                    answer: answer.clone(),
                }) as Box<dyn Connection>
            })
            .collect();
        (Spread::new(drivers), sent)
    }

    fn line(id: u64, op: &str, args: Value) -> Vec<u8> {
        json!({"id": id, "op": op, "args": args})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn engine_requests_go_round_robin_even_when_pipelined() {
        let (mut s, sent) = spread(&[json!({}), json!({}), json!({})]);
        for id in 1..=4 {
            s.send(&line(id, "status", json!({"user_id": "u"})))
                .unwrap();
        }
        s.send(b"not json").unwrap();
        for id in 1..=4 {
            let answer: Value = serde_json::from_slice(&s.recv().unwrap()).unwrap();
            assert_eq!(answer["id"], json!(id));
        }
        let who: Vec<usize> = sent.lock().unwrap().iter().map(|(n, _)| *n).collect();
        assert_eq!(who, [0, 1, 2, 0, 1]);
    }

    #[test]
    fn test_operations_go_to_every_instance_and_a_reset_reseeds_all_but_the_first_apart() {
        let (mut s, sent) = spread(&[json!({}), json!({}), json!({})]);
        s.send(&line(1, "reset", json!({}))).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&s.recv().unwrap()).unwrap()["id"],
            json!(1)
        );
        s.send(&line(2, "seed", json!({"seed": 42}))).unwrap();
        s.recv().unwrap();
        let sent = sent.lock().unwrap();
        let ops: Vec<(usize, &str)> = sent
            .iter()
            .map(|(n, r)| (*n, r["op"].as_str().unwrap()))
            .collect();
        assert_eq!(
            ops,
            [
                (0, "reset"),
                (1, "reset"),
                (1, "seed"),
                (2, "reset"),
                (2, "seed"),
                (0, "seed"),
                (1, "seed"),
                (2, "seed")
            ]
        );
        let seeds = |from: usize| -> Vec<u64> {
            sent[from..]
                .iter()
                .filter(|(_, r)| r["op"] == "seed")
                .map(|(_, r)| r["args"]["seed"].as_u64().unwrap())
                .collect()
        };
        let after_reset = seeds(0);
        assert!(after_reset[0] != 0 && after_reset[1] != 0 && after_reset[0] != after_reset[1]);
        let asked = seeds(5);
        assert_eq!(asked[0], 42);
        assert!(asked[1] != 42 && asked[2] != 42 && asked[1] != asked[2]);
    }

    #[test]
    fn instances_that_disagree_on_a_test_operation_fail_the_connection() {
        let (mut s, _) = spread(&[json!({"seeded": true}), json!({"seeded": false})]);
        s.send(&line(1, "seed", json!({"seed": 1}))).unwrap();
        let err = s.recv().unwrap_err();
        assert!(err.contains("instance 2"), "{err}");
    }
}
