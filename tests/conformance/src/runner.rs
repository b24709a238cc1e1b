//! The runner: plays each scenario against each target, checks every answer, writes the
//! transcripts and compares them with the reference's.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use twofold_proto::{EngineError, ErrorCode};
use twofold_testkit::authenticator::{
    Algorithm, AttestationFormat, Authenticator, AuthenticatorError, CounterMode, Tweaks,
};
use twofold_testkit::{ORIGIN, RP_ID, fast_config};

use crate::driver::Randomness;
use crate::fixture::FixtureKind;
use crate::ops::{self, Kind};
use crate::scenario::{Action, ContextSpec, Expect, RULES, RawPart, Scenario, Step};
use crate::target::{Connection, Endpoint, ProcessSpec, StartError, TargetsFile};
use crate::transcript::{Entry, Transcript, first_difference};
use crate::values::{Vars, check, resolve, truncate};

/// The password scenarios use unless they say otherwise (`$password`).
pub const PASSWORD: &str = "correct horse battery staple";

/// The context of engine requests unless a step gives one.
fn default_context() -> Value {
    json!({"ip": "198.51.100.7", "user_agent": "twofold-conformance/1"})
}

/// The configuration every scenario starts with, before its own `config` members: the
/// testkit's (the test relying party, its audit key, cheap argon2 parameters), as JSON.
pub fn standard_config() -> Map<String, Value> {
    match serde_json::to_value(fast_config()) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Which targets must be available.
#[derive(Clone, Debug, Default)]
pub enum Require {
    /// None: a missing host is skipped.
    #[default]
    Nothing,
    /// Every configured target.
    All,
    /// These.
    Names(Vec<String>),
}

impl Require {
    /// `all`, or a comma-separated list of names.
    pub fn parse(text: &str) -> Require {
        match text.trim() {
            "" => Require::Nothing,
            "all" => Require::All,
            list => Require::Names(
                list.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            ),
        }
    }

    /// Whether target `name` must be available; `all` leaves optional targets out.
    fn wants(&self, name: &str, optional: bool) -> bool {
        match self {
            Require::Nothing => false,
            Require::All => !optional,
            Require::Names(names) => names.iter().any(|n| n == name),
        }
    }

    /// Both sets of requirements.
    pub fn merge(self, other: Require) -> Require {
        match (self, other) {
            (Require::All, _) | (_, Require::All) => Require::All,
            (Require::Nothing, r) | (r, Require::Nothing) => r,
            (Require::Names(mut a), Require::Names(b)) => {
                a.extend(b);
                Require::Names(a)
            }
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The workspace root; commands run there.
    pub root: PathBuf,
    /// `targets.toml`.
    pub targets_file: PathBuf,
    /// The scenario directory.
    pub scenarios_dir: PathBuf,
    /// Where transcripts go (`<out>/<target>/<scenario>.txt`).
    pub out_dir: PathBuf,
    /// Only these targets (plus the reference); empty: all.
    pub only_targets: Vec<String>,
    /// Targets that must be available.
    pub require: Require,
    /// Command overrides: target name -> command.
    pub commands: Vec<(String, Vec<String>)>,
    /// Only scenarios whose name contains one of these, or that cover one of these rule IDs.
    pub filter: Vec<String>,
    /// How long to wait for one response from a driver process.
    pub timeout: Duration,
    /// How long to wait for a driver process's first response.
    pub startup_timeout: Duration,
    /// Targets added after those of the file (tests use this).
    pub extra_targets: Vec<(String, Endpoint)>,
}

impl Options {
    /// The defaults for a workspace root: `tests/conformance/{targets.toml,scenarios}`, and
    /// transcripts under cargo's target directory.
    pub fn for_root(root: &Path) -> Options {
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|d| if d.is_absolute() { d } else { root.join(d) })
            .unwrap_or_else(|| root.join("target"));
        Options {
            root: root.to_owned(),
            targets_file: root.join("tests/conformance/targets.toml"),
            scenarios_dir: root.join("tests/conformance/scenarios"),
            out_dir: target_dir.join("conformance"),
            only_targets: Vec::new(),
            require: Require::Nothing,
            commands: Vec::new(),
            filter: Vec::new(),
            timeout: Duration::from_secs(60),
            startup_timeout: Duration::from_secs(300),
            extra_targets: Vec::new(),
        }
    }

    fn target_dir(&self) -> PathBuf {
        self.out_dir
            .parent()
            .map_or_else(|| self.root.join("target"), Path::to_path_buf)
    }
}

/// How one target did.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Every selected scenario ran.
    Ran {
        /// Scenarios that passed.
        passed: usize,
        /// (scenario, why) for each failure.
        failed: Vec<(String, String)>,
        /// How long it took.
        elapsed: Duration,
    },
    /// Not available and not required.
    Skipped(String),
    /// Required but not available.
    Missing(String),
    /// Could not be set up (its output directory, its fixture).
    Broken(String),
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Report {
    /// Per target, in configuration order.
    pub targets: Vec<(String, Outcome)>,
    /// Where transcripts were written.
    pub out_dir: PathBuf,
}

impl Report {
    /// True when nothing failed and nothing required was missing.
    pub fn success(&self) -> bool {
        self.targets.iter().all(|(_, o)| match o {
            Outcome::Ran { failed, .. } => failed.is_empty(),
            Outcome::Skipped(_) => true,
            Outcome::Missing(_) | Outcome::Broken(_) => false,
        })
    }

    /// Every failure, then one line per target: `conformance <target>: N passed, M failed`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, outcome) in &self.targets {
            if let Outcome::Ran { failed, .. } = outcome {
                for (scenario, why) in failed {
                    out.push_str(&format!(
                        "FAIL {name} {scenario}: {}\n    transcript: {}\n",
                        why.trim_end(),
                        self.out_dir
                            .join(name)
                            .join(format!("{scenario}.txt"))
                            .display()
                    ));
                }
            }
        }
        let times: Vec<String> = self
            .targets
            .iter()
            .filter_map(|(name, outcome)| match outcome {
                Outcome::Ran { elapsed, .. } => {
                    Some(format!("{name} {:.1} s", elapsed.as_secs_f64()))
                }
                _ => None,
            })
            .collect();
        out.push_str(&format!(
            "transcripts in {}; time: {}\n",
            self.out_dir.display(),
            times.join(", ")
        ));
        for (name, outcome) in &self.targets {
            let line = match outcome {
                Outcome::Ran { passed, failed, .. } => {
                    format!(
                        "conformance {name}: {passed} passed, {} failed",
                        failed.len()
                    )
                }
                Outcome::Skipped(why) => format!("conformance {name}: skipped, {why}"),
                Outcome::Missing(why) => {
                    format!("conformance {name}: 0 passed, 1 failed, required but {why}")
                }
                Outcome::Broken(why) => format!("conformance {name}: 0 passed, 1 failed, {why}"),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

/// Loads the scenarios and targets, runs everything, and reports.
pub fn run(opts: &Options) -> Result<Report, String> {
    let all = Scenario::load_dir(&opts.scenarios_dir)?;
    if all.is_empty() {
        return Err(format!("no scenarios in {}", opts.scenarios_dir.display()));
    }
    let uncovered: Vec<&str> = RULES
        .iter()
        .copied()
        .filter(|rule| !all.iter().any(|s| s.rules.iter().any(|r| r == rule)))
        .collect();
    if !uncovered.is_empty() {
        return Err(format!(
            "SPEC rules without a scenario: {}",
            uncovered.join(" ")
        ));
    }
    let scenarios: Vec<Scenario> = all
        .into_iter()
        .filter(|s| {
            opts.filter.is_empty()
                || opts
                    .filter
                    .iter()
                    .any(|f| s.name.contains(f.as_str()) || s.rules.contains(f))
        })
        .collect();
    if scenarios.is_empty() {
        return Err(format!("no scenario matches {:?}", opts.filter));
    }

    let targets = resolve_targets(opts)?;
    let mut outcomes: Vec<(String, Option<Outcome>)> = Vec::new();
    let mut runnable: Vec<(usize, String, Endpoint, bool)> = Vec::new();
    for Resolved {
        name,
        endpoint,
        optional,
    } in targets
    {
        let named_required = matches!(&opts.require, Require::Names(n) if n.contains(&name));
        let selected = outcomes.is_empty()
            || opts.only_targets.contains(&name)
            || (opts.only_targets.is_empty() && (!optional || named_required));
        if !selected {
            continue;
        }
        let unavailable = endpoint
            .unavailable()
            .map(|why| format!("{why}{}", build_hint(opts, &name)));
        let required = opts.require.wants(&name, optional);
        match unavailable {
            Some(why) if required => {
                outcomes.push((name, Some(Outcome::Missing(why))));
            }
            Some(why) => outcomes.push((name, Some(Outcome::Skipped(why)))),
            None => {
                runnable.push((outcomes.len(), name.clone(), endpoint, required));
                outcomes.push((name, None));
            }
        }
    }
    if let Require::Names(names) = &opts.require
        && let Some(unknown) = names
            .iter()
            .find(|n| !outcomes.iter().any(|(o, _)| o == *n))
    {
        return Err(format!(
            "--require names an unknown or unselected target {unknown:?}"
        ));
    }

    // The reference (the first target) runs first; the others then run side by side and are
    // compared with it.
    let mut runnable = runnable.into_iter();
    let Some((ref_index, ref_name, ref_endpoint, _)) = runnable.next() else {
        return Err("the reference target is not available".into());
    };
    if ref_index != 0 {
        return Err("the reference target (the first in targets.toml) is not available".into());
    }
    let (ref_outcome, ref_transcripts) =
        run_target(opts, &ref_name, &ref_endpoint, true, &scenarios, None);
    outcomes[ref_index].1 = Some(ref_outcome);
    let reference = (ref_name.as_str(), &ref_transcripts);
    let others: Vec<(usize, Outcome)> = std::thread::scope(|scope| {
        let handles: Vec<_> = runnable
            .map(|(index, name, endpoint, required)| {
                let scenarios = &scenarios;
                scope.spawn(move || {
                    let (outcome, _) =
                        run_target(opts, &name, &endpoint, required, scenarios, Some(reference));
                    (index, outcome)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    for (index, outcome) in others {
        outcomes[index].1 = Some(outcome);
    }
    Ok(Report {
        targets: outcomes
            .into_iter()
            .map(|(name, o)| {
                let o = o.unwrap_or_else(|| Outcome::Missing("the runner thread died".into()));
                (name, o)
            })
            .collect(),
        out_dir: opts.out_dir.clone(),
    })
}

fn build_hint(opts: &Options, name: &str) -> String {
    TargetsFile::load(&opts.targets_file)
        .ok()
        .and_then(|f| f.target.into_iter().find(|t| t.name == name))
        .and_then(|t| t.build)
        .map(|b| format!("; build it with `{b}`"))
        .unwrap_or_default()
}

/// A target ready to run.
struct Resolved {
    name: String,
    endpoint: Endpoint,
    /// Runs only when named.
    optional: bool,
}

/// The targets of the file (with overrides) and the extra ones, in order.
fn resolve_targets(opts: &Options) -> Result<Vec<Resolved>, String> {
    let file = TargetsFile::load(&opts.targets_file)?;
    let target_dir = opts.target_dir();
    let mut targets = Vec::new();
    for t in file.target {
        let env_key = format!(
            "CONFORMANCE_COMMAND_{}",
            t.name.to_uppercase().replace('-', "_")
        );
        let overridden = opts
            .commands
            .iter()
            .rev()
            .find(|(n, _)| *n == t.name)
            .map(|(_, c)| c.clone())
            .or_else(|| {
                std::env::var(&env_key)
                    .ok()
                    .map(|c| c.split_whitespace().map(str::to_owned).collect())
            });
        let instances = t.instances.unwrap_or(1);
        let fixture = t.fixture.as_deref().map(FixtureKind::parse).transpose()?;
        let endpoint = match (overridden.or(t.command), t.builtin.as_deref()) {
            (Some(command), _) => Endpoint::Process(ProcessSpec {
                command: command
                    .iter()
                    .map(|part| part.replace("{target_dir}", &target_dir.to_string_lossy()))
                    .collect(),
                env: t.env.into_iter().collect(),
                cwd: opts.root.clone(),
                out_dir: opts.out_dir.join(&t.name),
                timeout: opts.timeout,
                startup_timeout: opts.startup_timeout.max(opts.timeout),
                instances,
                fixture,
            }),
            (None, Some("core")) => Endpoint::InProcess {
                randomness: Randomness::Seeded,
                instances,
            },
            _ => return Err(format!("target {:?} has nothing to run", t.name)),
        };
        targets.push(Resolved {
            name: t.name,
            endpoint,
            optional: t.optional,
        });
    }
    for (name, endpoint) in &opts.extra_targets {
        if targets.iter().any(|t| t.name == *name) {
            return Err(format!("two targets are named {name:?}"));
        }
        targets.push(Resolved {
            name: name.clone(),
            endpoint: endpoint.clone(),
            optional: false,
        });
    }
    Ok(targets)
}

/// Runs every scenario on one target; answers its outcome and its transcripts. A target that
/// cannot be set up on this machine is skipped unless `required`.
fn run_target(
    opts: &Options,
    name: &str,
    endpoint: &Endpoint,
    required: bool,
    scenarios: &[Scenario],
    reference: Option<(&str, &HashMap<String, String>)>,
) -> (Outcome, HashMap<String, String>) {
    let started = Instant::now();
    let dir = opts.out_dir.join(name);
    let mut transcripts = HashMap::new();
    let mut passed = 0;
    let mut failed = Vec::new();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        let why = format!("cannot create {}: {e}", dir.display());
        return (Outcome::Broken(why), transcripts);
    }
    // Declared before the connection, so the drivers stop before what they share is torn down.
    let session = match endpoint.start() {
        Ok(session) => session,
        Err(StartError::Unavailable(why)) if required => {
            return (Outcome::Missing(why), transcripts);
        }
        Err(StartError::Unavailable(why)) => return (Outcome::Skipped(why), transcripts),
        Err(StartError::Failed(why)) => {
            let why = format!("cannot set the target up: {why}");
            return (Outcome::Broken(why), transcripts);
        }
    };
    let mut connection: Option<Box<dyn Connection>> = None;
    for scenario in scenarios {
        let conn = match &mut connection {
            Some(c) => c,
            slot => match session.connect() {
                Ok(c) => slot.insert(c),
                Err(e) => {
                    failed.push((scenario.name.clone(), e));
                    continue;
                }
            },
        };
        let mut play = Play::new(conn.as_mut(), scenario);
        let result = play.run();
        let broken = play.broken;
        let text = play.transcript.render();
        drop(play);
        if broken {
            connection = None;
        }
        let path = dir.join(format!("{}.txt", scenario.name));
        let written = std::fs::write(&path, &text)
            .map_err(|e| format!("cannot write {}: {e}", path.display()));
        let verdict = result.and(written).and_then(|()| {
            let Some((ref_name, ref_transcripts)) = reference else {
                return Ok(());
            };
            match ref_transcripts.get(&scenario.name) {
                None => Err(format!("no transcript from {ref_name} to compare with")),
                Some(expected) => match first_difference(expected, ref_name, &text, name) {
                    None => Ok(()),
                    Some(diff) => Err(diff),
                },
            }
        });
        match verdict {
            Ok(()) => {
                passed += 1;
                transcripts.insert(scenario.name.clone(), text);
            }
            Err(why) => failed.push((scenario.name.clone(), why)),
        }
    }
    let outcome = Outcome::Ran {
        passed,
        failed,
        elapsed: started.elapsed(),
    };
    (outcome, transcripts)
}

/// One scenario being played against one connection.
struct Play<'a> {
    conn: &'a mut dyn Connection,
    scenario: &'a Scenario,
    vars: Vars,
    authenticators: BTreeMap<String, Authenticator>,
    next_id: u64,
    transcript: Transcript,
    /// The op of each request id sent, so each answer is checked against its type.
    sent_ops: HashMap<u64, String>,
    /// The connection can no longer be trusted (I/O failed, an answer went missing).
    broken: bool,
}

/// A step failed; the message says how.
type StepResult<T = ()> = Result<T, String>;

impl<'a> Play<'a> {
    fn new(conn: &'a mut dyn Connection, scenario: &'a Scenario) -> Play<'a> {
        let vars = Vars::new(&[
            ("password", json!(PASSWORD)),
            ("origin", json!(ORIGIN)),
            ("rp_id", json!(RP_ID)),
            (
                "audit_keys",
                standard_config().remove("audit_keys").unwrap_or_default(),
            ),
        ]);
        let header = vec![
            format!("scenario {}", scenario.name),
            format!("rules: {}", scenario.rules.join(" ")),
            scenario.title.clone(),
        ];
        Play {
            conn,
            scenario,
            vars,
            authenticators: BTreeMap::new(),
            next_id: 1,
            transcript: Transcript {
                header,
                entries: Vec::new(),
            },
            sent_ops: HashMap::new(),
            broken: false,
        }
    }

    fn run(&mut self) -> StepResult {
        self.setup().map_err(|e| format!("setup: {e}"))?;
        for step in &self.scenario.steps {
            for round in 0..step.repeat {
                if let Err(e) = self.step(step) {
                    let round = if step.repeat > 1 {
                        format!(" (round {} of {})", round + 1, step.repeat)
                    } else {
                        String::new()
                    };
                    let message = format!("step {}{round}: {e}", step.number);
                    self.transcript
                        .entries
                        .push(Entry::Failure(message.clone()));
                    return Err(message);
                }
            }
        }
        Ok(())
    }

    /// `reset`, then `configure` with the standard configuration and the scenario's members.
    fn setup(&mut self) -> StepResult {
        let empty = Expect::Ok {
            ok: json!({"$exact": {}}),
            id: None,
        };
        let response = self.request("reset", json!({}), None)?;
        self.expect(&response, &empty)?;
        if let Some(extra) = &self.scenario.config {
            let mut config = standard_config();
            config.extend(extra.clone());
            let response = self.request("configure", Value::Object(config), None)?;
            self.expect(&response, &empty)?;
        }
        Ok(())
    }

    fn step(&mut self, step: &Step) -> StepResult {
        let saved = match &step.action {
            Action::Op { op, args } => {
                let args = resolve(args, &self.vars)?;
                let context = self.context_for(op, &step.context)?;
                let response = self.request(op, args, context)?;
                self.finish_step(step, &response)?
            }
            Action::Raw(parts) => {
                let mut line = Vec::new();
                for part in parts {
                    match part {
                        RawPart::Bytes(bytes) => line.extend_from_slice(bytes),
                        RawPart::Text(v) => match resolve(v, &self.vars)? {
                            Value::String(s) => line.extend_from_slice(s.as_bytes()),
                            other => line.extend_from_slice(other.to_string().as_bytes()),
                        },
                    }
                }
                self.transcript.entries.push(Entry::Raw(line.clone()));
                if let Ok(Value::Object(request)) = serde_json::from_slice(&line)
                    && let (Some(id), Some(op)) = (
                        request.get("id").and_then(Value::as_u64),
                        request.get("op").and_then(Value::as_str),
                    )
                {
                    self.sent_ops.insert(id, op.to_owned());
                }
                self.send(&line)?;
                let response = self.receive(step.compare)?;
                self.expect(&response, &step.expect)?
            }
            Action::Race {
                requests,
                winner,
                losers,
            } => self.race(requests, winner, losers, step)?,
            Action::Register(params) => self.register(params, step)?,
            Action::UsePasskey(params) => self.use_passkey(params, step)?,
            Action::Create(params) => self.browser("create", params, None, step)?,
            Action::Get(params) => self.browser("get", params, None, step)?,
            Action::Authenticator(params) => {
                self.declare_authenticator(params)?;
                None
            }
            Action::Check { value, matches } => {
                let value = resolve(value, &self.vars)?;
                check(matches, Some(&value), &self.vars, "check")?;
                None
            }
        };
        if let (Some(name), Some(value)) = (&step.save, saved) {
            self.vars.set(name, value);
        }
        Ok(())
    }

    /// Checks a response against the step's expectation, and records whether it was compared.
    fn finish_step(&mut self, step: &Step, response: &Value) -> StepResult<Option<Value>> {
        if !step.compare
            && let Some(Entry::Response(_)) = self.transcript.entries.last()
        {
            self.transcript.entries.pop();
            self.transcript.entries.push(Entry::NotCompared);
        }
        self.expect(response, &step.expect)
    }

    fn context_for(&self, op: &str, spec: &ContextSpec) -> StepResult<Option<Value>> {
        Ok(match spec {
            ContextSpec::Omit => None,
            ContextSpec::Given(v) => Some(resolve(v, &self.vars)?),
            ContextSpec::Default if matches!(ops::classify(op), Some(Kind::Test(_))) => None,
            ContextSpec::Default => Some(default_context()),
        })
    }

    // ----- the wire -----

    fn send(&mut self, line: &[u8]) -> StepResult {
        self.conn.send(line).inspect_err(|_| self.broken = true)
    }

    fn receive(&mut self, compare: bool) -> StepResult<Value> {
        let line = self.conn.recv().inspect_err(|_| self.broken = true)?;
        match serde_json::from_slice::<Value>(&line) {
            Ok(v) => {
                self.transcript.entries.push(if compare {
                    Entry::Response(Ok(v.clone()))
                } else {
                    Entry::NotCompared
                });
                Ok(v)
            }
            Err(e) => {
                self.transcript
                    .entries
                    .push(Entry::Response(Err(line.clone())));
                self.broken = true;
                Err(format!(
                    "the response is not JSON ({e}): {}",
                    String::from_utf8_lossy(truncate_bytes(&line, 300))
                ))
            }
        }
    }

    /// Builds, records and sends a request; answers its id.
    fn send_request(&mut self, op: &str, args: Value, context: Option<Value>) -> StepResult<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = Map::new();
        request.insert("id".into(), json!(id));
        request.insert("op".into(), json!(op));
        request.insert("args".into(), args);
        if let Some(context) = context {
            request.insert("context".into(), context);
        }
        let request = Value::Object(request);
        self.sent_ops.insert(id, op.to_owned());
        self.transcript
            .entries
            .push(Entry::Request(request.clone()));
        self.send(request.to_string().as_bytes())?;
        Ok(id)
    }

    /// Sends one request and reads its response, which must carry the request's id.
    fn request(&mut self, op: &str, args: Value, context: Option<Value>) -> StepResult<Value> {
        let id = self.send_request(op, args, context)?;
        let response = self.receive(true)?;
        self.check_id(&response, id)?;
        Ok(response)
    }

    fn check_id(&mut self, response: &Value, id: u64) -> StepResult {
        if response.get("id") == Some(&json!(id)) {
            Ok(())
        } else {
            self.broken = true;
            Err(format!(
                "the response to request {id} carries id {}",
                response.get("id").map_or("(none)".into(), Value::to_string)
            ))
        }
    }

    /// Checks that a response is well formed (PROTOCOL.md) and matches the expectation;
    /// answers its `ok` member.
    fn expect(&self, response: &Value, expect: &Expect) -> StepResult<Option<Value>> {
        well_formed(response)?;
        let op = response
            .get("id")
            .and_then(Value::as_u64)
            .and_then(|id| self.sent_ops.get(&id));
        if let (Some(op), Some(ok)) = (op, response.get("ok")) {
            ops::check_answer(op, ok)?;
        }
        let id_matcher = match expect {
            Expect::Ok { id, .. } | Expect::Error { id, .. } => id.as_ref(),
            _ => None,
        };
        if let Some(matcher) = id_matcher {
            check(matcher, response.get("id"), &self.vars, "id")?;
        }
        let ok = response.get("ok");
        match (expect, ok, response.get("error")) {
            (Expect::Any, _, _) => {}
            (Expect::Ok { ok: m, .. }, Some(got), _) => check(m, Some(got), &self.vars, "ok")?,
            (Expect::Error { error: m, .. }, _, Some(got)) => {
                check(m, Some(got), &self.vars, "error")?;
            }
            (Expect::AuthenticatorError(kind), _, _) => {
                return Err(format!(
                    "expected the authenticator to refuse ({kind}), but it answered and the \
                     request was sent"
                ));
            }
            (Expect::Ok { .. }, None, _) => {
                return Err(format!("expected success, got {}", brief(response)));
            }
            (Expect::Error { error, .. }, _, None) => {
                let want = error
                    .get("code")
                    .map_or_else(|| error.to_string(), Value::to_string);
                return Err(format!("expected error {want}, got {}", brief(response)));
            }
        }
        Ok(ok.cloned())
    }

    // ----- races -----

    fn race(
        &mut self,
        requests: &[(String, Value)],
        winner: &Expect,
        losers: &Expect,
        step: &Step,
    ) -> StepResult<Option<Value>> {
        let mut ids = Vec::new();
        for (op, args) in requests {
            let args = resolve(args, &self.vars)?;
            let context = self.context_for(op, &step.context)?;
            ids.push(self.send_request(op, args, context)?);
        }
        let mut responses = Vec::new();
        for id in ids {
            let line = self.conn.recv().inspect_err(|_| self.broken = true)?;
            let response: Value = serde_json::from_slice(&line).map_err(|e| {
                self.broken = true;
                format!("a race response is not JSON: {e}")
            })?;
            self.check_id(&response, id)?;
            responses.push(response);
        }
        // Which request wins is the host's business: the transcript lists winners first.
        responses.sort_by_key(|r| r.get("ok").is_none());
        for r in &responses {
            // Which id won is the host's business too.
            let mut shown = r.clone();
            if let Some(id) = shown.get_mut("id") {
                *id = json!("<race>");
            }
            self.transcript.entries.push(Entry::Response(Ok(shown)));
        }
        let winners = responses.iter().filter(|r| r.get("ok").is_some()).count();
        if winners != 1 {
            return Err(format!(
                "exactly one request of the race must succeed, {winners} did: {}",
                responses.iter().map(brief).collect::<Vec<_>>().join("; ")
            ));
        }
        let mut saved = None;
        for (i, r) in responses.iter().enumerate() {
            if i == 0 {
                saved = self.expect(r, winner).map_err(|e| format!("winner: {e}"))?;
            } else {
                self.expect(r, losers).map_err(|e| format!("loser: {e}"))?;
            }
        }
        Ok(saved)
    }

    // ----- the browser -----

    /// start_passkey_registration, create, finish_passkey_registration.
    fn register(&mut self, params: &Map<String, Value>, step: &Step) -> StepResult<Option<Value>> {
        allow_keys(
            params,
            &[
                "user",
                "name",
                "password",
                "authenticator",
                "origin",
                "tweaks",
                "save_options",
                "save_credential",
            ],
        )?;
        let user_id = self.user_id(params.get("user").ok_or("register needs user")?)?;
        let name = resolve(params.get("name").ok_or("register needs name")?, &self.vars)?;
        let password = match params.get("password") {
            Some(p) => resolve(p, &self.vars)?,
            None => json!(PASSWORD),
        };
        let args = json!({"user_id": user_id, "name": name, "password": password});
        let context = self.context_for("start_passkey_registration", &step.context)?;
        let started = self.request("start_passkey_registration", args, context)?;
        let Some(options) = started.get("ok").and_then(|ok| ok.get("options")).cloned() else {
            // Start refused: that is the answer the step's expectation is about.
            return self.expect(&started, &step.expect);
        };
        well_formed(&started)?;
        if let Some(var) = params.get("save_options").and_then(Value::as_str) {
            self.vars.set(var, options.clone());
        }
        let Some(credential) = self.browser_action("create", params, &options, step)? else {
            return Ok(None);
        };
        let args = json!({"user_id": user_id, "credential": credential});
        let context = self.context_for("finish_passkey_registration", &step.context)?;
        let finished = self.request("finish_passkey_registration", args, context)?;
        self.finish_step(step, &finished)
    }

    /// get over a pending sign-in's options, then sign_in_passkey.
    fn use_passkey(
        &mut self,
        params: &Map<String, Value>,
        step: &Step,
    ) -> StepResult<Option<Value>> {
        allow_keys(
            params,
            &[
                "pending",
                "token",
                "options",
                "authenticator",
                "origin",
                "tweaks",
                "save_credential",
            ],
        )?;
        let pending = match params.get("pending") {
            Some(p) => resolve(p, &self.vars)?,
            None => Value::Null,
        };
        let token = match params.get("token") {
            Some(t) => resolve(t, &self.vars)?,
            None => pending
                .get("pending_token")
                .cloned()
                .ok_or("use_passkey needs pending (a sign_in answer) or token")?,
        };
        let options = match params.get("options") {
            Some(o) => resolve(o, &self.vars)?,
            None => pending
                .get("options")
                .cloned()
                .ok_or("use_passkey needs pending (a sign_in answer) or options")?,
        };
        let Some(credential) = self.browser_action("get", params, &options, step)? else {
            return Ok(None);
        };
        let args = json!({"pending_token": token, "credential": credential});
        let context = self.context_for("sign_in_passkey", &step.context)?;
        let response = self.request("sign_in_passkey", args, context)?;
        self.finish_step(step, &response)
    }

    /// A `create` or `get` step on its own: answers the credential.
    fn browser(
        &mut self,
        action: &str,
        params: &Map<String, Value>,
        options: Option<&Value>,
        step: &Step,
    ) -> StepResult<Option<Value>> {
        allow_keys(
            params,
            &[
                "options",
                "authenticator",
                "origin",
                "tweaks",
                "save_credential",
            ],
        )?;
        let options = match options {
            Some(o) => o.clone(),
            None => resolve(
                params.get("options").ok_or("create and get need options")?,
                &self.vars,
            )?,
        };
        let credential = self.browser_action(action, params, &options, step)?;
        if let (Some(credential), Expect::Ok { ok, .. }) = (&credential, &step.expect) {
            check(ok, Some(credential), &self.vars, "credential")?;
        }
        Ok(credential)
    }

    /// Runs the authenticator. `None`: it refused as the step expected.
    fn browser_action(
        &mut self,
        action: &str,
        params: &Map<String, Value>,
        options: &Value,
        step: &Step,
    ) -> StepResult<Option<Value>> {
        let name = params
            .get("authenticator")
            .and_then(Value::as_str)
            .ok_or("name the authenticator (\"authenticator\": \"laptop\")")?
            .to_owned();
        let origin = match params.get("origin") {
            Some(o) => resolve(o, &self.vars)?
                .as_str()
                .ok_or("origin is a string")?
                .to_owned(),
            None => ORIGIN.to_owned(),
        };
        let tweaks_value = match params.get("tweaks") {
            Some(t) => resolve(t, &self.vars)?,
            None => json!({}),
        };
        let tweaks = parse_tweaks(&tweaks_value)?;
        let authenticator = self
            .authenticators
            .entry(name.clone())
            .or_insert_with(|| Authenticator::new(seed_for(&name)));
        let result = match action {
            "create" => authenticator.register(options, &origin, &tweaks),
            _ => authenticator.authenticate(options, &origin, &tweaks),
        };
        let mut note = Map::new();
        note.insert(action.into(), json!(name));
        if tweaks_value.as_object().is_some_and(|t| !t.is_empty()) {
            note.insert("tweaks".into(), tweaks_value);
        }
        if origin != ORIGIN {
            note.insert("origin".into(), json!(origin));
        }
        match result {
            Ok(credential) => {
                self.transcript
                    .entries
                    .push(Entry::Browser(Value::Object(note)));
                if let Some(var) = params.get("save_credential").and_then(Value::as_str) {
                    self.vars.set(var, credential.clone());
                }
                if let Expect::AuthenticatorError(kind) = &step.expect {
                    return Err(format!(
                        "expected the authenticator to refuse ({kind}), but it answered"
                    ));
                }
                Ok(Some(credential))
            }
            Err(e) => {
                let kind = authenticator_error_kind(&e);
                note.insert("refused".into(), json!(kind));
                self.transcript
                    .entries
                    .push(Entry::Browser(Value::Object(note)));
                match &step.expect {
                    Expect::AuthenticatorError(want) if want == kind => Ok(None),
                    _ => Err(format!("the authenticator refused: {e}")),
                }
            }
        }
    }

    fn declare_authenticator(&mut self, params: &Map<String, Value>) -> StepResult {
        allow_keys(
            params,
            &[
                "name",
                "seed",
                "clone_of",
                "algorithms",
                "attestation",
                "counter",
                "initial_counter",
                "backup_eligible",
                "backup_state",
                "chromium_key",
            ],
        )?;
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .ok_or("an authenticator needs a name")?
            .to_owned();
        if self.authenticators.contains_key(&name) {
            return Err(format!("authenticator {name:?} exists already"));
        }
        let mut a = match params.get("clone_of").and_then(Value::as_str) {
            Some(original) => self
                .authenticators
                .get(original)
                .cloned()
                .ok_or_else(|| format!("no authenticator {original:?} to clone"))?,
            None => Authenticator::new(
                params
                    .get("seed")
                    .and_then(Value::as_u64)
                    .unwrap_or_else(|| seed_for(&name)),
            ),
        };
        if let Some(list) = params.get("algorithms") {
            let list = list.as_array().ok_or("algorithms is an array")?;
            let algorithms = list
                .iter()
                .map(|a| match a.as_str() {
                    Some("es256") => Ok(Algorithm::Es256),
                    Some("rs256") => Ok(Algorithm::Rs256),
                    Some("eddsa") => Ok(Algorithm::EdDsa),
                    _ => Err(format!("unknown algorithm {a} (es256, rs256, eddsa)")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            a = a.algorithms(&algorithms);
        }
        if let Some(format) = params.get("attestation") {
            a = a.attestation(match format.as_str() {
                Some("none") => AttestationFormat::None,
                Some("packed") => AttestationFormat::Packed,
                _ => return Err("attestation is none or packed".into()),
            });
        }
        if let Some(mode) = params.get("counter") {
            a = a.counter_mode(match mode.as_str() {
                Some("incrementing") => CounterMode::Incrementing,
                Some("always_zero") => CounterMode::AlwaysZero,
                _ => return Err("counter is incrementing or always_zero".into()),
            });
        }
        if let Some(n) = params.get("initial_counter") {
            let n = n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or("initial_counter is a number")?;
            a = a.initial_counter(n);
        }
        let flag = |key: &str| -> StepResult<Option<bool>> {
            match params.get(key) {
                None => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err(format!("{key} is a boolean")),
            }
        };
        if let (be, bs) = (flag("backup_eligible")?, flag("backup_state")?)
            && (be.is_some() || bs.is_some())
        {
            a = a.backup_flags(be.unwrap_or(false), bs.unwrap_or(false));
        }
        if let Some(include) = flag("chromium_key")? {
            a = a.chromium_extra_key(include);
        }
        self.transcript
            .entries
            .push(Entry::Browser(json!({"authenticator": params})));
        self.authenticators.insert(name, a);
        Ok(())
    }

    /// A user id from a string or from an answer that has `user_id`.
    fn user_id(&self, value: &Value) -> StepResult<Value> {
        let user = resolve(value, &self.vars)?;
        match &user {
            Value::String(_) => Ok(user),
            Value::Object(m) => m
                .get("user_id")
                .cloned()
                .ok_or_else(|| format!("no user_id in {user}")),
            _ => Err(format!("user is a user id or an answer with one: {user}")),
        }
    }
}

/// A response as PROTOCOL.md shapes it: `id`, and `ok` (an object) or `error` (an
/// `EngineError`: `code`, `message`, and `retry_after_secs` exactly for `rate_limited`).
fn well_formed(response: &Value) -> StepResult {
    let map = response
        .as_object()
        .ok_or_else(|| format!("a response is a JSON object: {}", brief(response)))?;
    if !map
        .get("id")
        .is_some_and(|id| id.is_number() || id.is_null())
    {
        return Err(format!(
            "a response has a numeric or null id: {}",
            brief(response)
        ));
    }
    let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
    keys.sort_unstable();
    match keys.as_slice() {
        ["id", "ok"] if map["ok"].is_object() => Ok(()),
        ["error", "id"] => {
            let error: EngineError = serde_json::from_value(map["error"].clone())
                .map_err(|e| format!("error is not an engine error ({e}): {}", brief(response)))?;
            ops::check_error(&map["error"])?;
            if error.retry_after_secs.is_some() != (error.code == ErrorCode::RateLimited) {
                return Err(format!(
                    "retry_after_secs is a number on rate_limited and on nothing else: {}",
                    brief(response)
                ));
            }
            Ok(())
        }
        _ => Err(format!(
            "a response has id and exactly one of ok (an object) or error: {}",
            brief(response)
        )),
    }
}

fn brief(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 400 {
        format!("{}… ({} bytes)", truncate(&text, 400), text.len())
    } else {
        text
    }
}

fn truncate_bytes(bytes: &[u8], max: usize) -> &[u8] {
    &bytes[..bytes.len().min(max)]
}

fn allow_keys(params: &Map<String, Value>, allowed: &[&str]) -> StepResult {
    match params.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown parameter {k:?} (allowed: {})",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

/// A stable seed per authenticator name (FNV-1a), so scenarios need not pick seeds.
fn seed_for(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn authenticator_error_kind(e: &AuthenticatorError) -> &'static str {
    match e {
        AuthenticatorError::InvalidOptions(_) => "invalid_options",
        AuthenticatorError::UnsupportedAlgorithm => "unsupported_algorithm",
        AuthenticatorError::Excluded => "excluded",
        AuthenticatorError::NoCredential => "no_credential",
        AuthenticatorError::Crypto(_) => "crypto",
    }
}

fn parse_tweaks(value: &Value) -> StepResult<Tweaks> {
    let map = value.as_object().ok_or("tweaks is an object")?;
    let mut t = Tweaks::default();
    for (key, v) in map {
        let text = || {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("tweak {key} is a string"))
        };
        let bytes = || {
            URL_SAFE_NO_PAD
                .decode(text()?)
                .map_err(|_| format!("tweak {key} is base64url"))
        };
        let flag = || {
            v.as_bool()
                .ok_or_else(|| format!("tweak {key} is a boolean"))
        };
        match key.as_str() {
            "origin" => t.origin = Some(text()?),
            "rp_id" => t.rp_id = Some(text()?),
            "challenge" => t.challenge = Some(bytes()?),
            "client_data_type" => t.client_data_type = Some(text()?),
            "corrupt_signature" => t.corrupt_signature = flag()?,
            "alter_client_data_after_signing" => t.alter_client_data_after_signing = flag()?,
            "user_present" => t.user_present = Some(flag()?),
            "user_verified" => t.user_verified = Some(flag()?),
            "backup_eligible" => t.backup_eligible = Some(flag()?),
            "backup_state" => t.backup_state = Some(flag()?),
            "counter" => {
                t.counter = Some(
                    v.as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or("tweak counter is a number")?,
                );
            }
            "drop_chromium_key" => t.drop_chromium_key = flag()?,
            "credential_id" => t.credential_id = Some(bytes()?),
            "cross_origin" => t.cross_origin = flag()?,
            "top_origin" => t.top_origin = Some(text()?),
            "credential_id_len" => {
                t.credential_id_len = Some(
                    v.as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or("tweak credential_id_len is a number")?,
                );
            }
            other => return Err(format!("unknown tweak {other:?}")),
        }
    }
    Ok(t)
}
