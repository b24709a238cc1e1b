//! Scenario files: one JSON object per file under `scenarios/`, named by its file stem. They are
//! parsed and checked here, before anything runs, so a typo fails with its file and step.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Every rule ID of SPEC.md.
pub const RULES: &[&str] = &[
    "A1", "A2", "A3", "A4", "A5", "A6", "S1", "S2", "S3", "S4", "S5", "S6", "P1", "P2", "P3", "P4",
    "P5", "P6", "P7", "T1", "T2", "T3", "B1", "B2", "B3", "B4", "B5", "B6", "L1", "L2", "L3", "L4",
    "L5", "D1", "D2", "D3", "E1",
];

/// A parsed scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The file stem.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// SPEC rule IDs covered.
    pub rules: Vec<String>,
    /// What it shows, in one sentence.
    pub title: String,
    /// Members merged over the standard configuration; `None`: no `configure` at all (the
    /// default configuration `reset` restores).
    pub config: Option<Map<String, Value>>,
    /// The steps.
    pub steps: Vec<Step>,
}

/// One step of a scenario.
#[derive(Clone, Debug)]
pub struct Step {
    /// 1-based position in the file, for messages.
    pub number: usize,
    /// What it does.
    pub action: Action,
    /// What must come back.
    pub expect: Expect,
    /// Variable to save the answer in.
    pub save: Option<String>,
    /// How many times to run it.
    pub repeat: u32,
    /// The request context.
    pub context: ContextSpec,
    /// False: the answer is checked but left out of the transcript comparison.
    pub compare: bool,
}

/// The `context` of a request.
#[derive(Clone, Debug)]
pub enum ContextSpec {
    /// The runner's default context (engine operations only).
    Default,
    /// No `context` member.
    Omit,
    /// This context.
    Given(Value),
}

/// What a step does.
#[derive(Clone, Debug)]
pub enum Action {
    /// Sends one request.
    Op {
        /// Operation name.
        op: String,
        /// Arguments, unresolved.
        args: Value,
    },
    /// Sends a line as it is.
    Raw(Vec<RawPart>),
    /// Sends several requests before reading any answer; exactly one must succeed.
    Race {
        /// (op, args) of each request.
        requests: Vec<(String, Value)>,
        /// Expectation for the one that succeeds.
        winner: Box<Expect>,
        /// Expectation for the others.
        losers: Box<Expect>,
    },
    /// start_passkey_registration, the authenticator's create, finish_passkey_registration.
    Register(Map<String, Value>),
    /// The authenticator's get over a pending sign-in's options, then sign_in_passkey.
    UsePasskey(Map<String, Value>),
    /// The authenticator's create alone (navigator.credentials.create).
    Create(Map<String, Value>),
    /// The authenticator's get alone (navigator.credentials.get).
    Get(Map<String, Value>),
    /// Declares an authenticator.
    Authenticator(Map<String, Value>),
    /// Checks a value the runner holds; sends nothing.
    Check {
        /// The value, unresolved.
        value: Value,
        /// The matcher.
        matches: Value,
    },
}

/// One piece of a raw line.
#[derive(Clone, Debug)]
pub enum RawPart {
    /// Text, resolved like any value.
    Text(Value),
    /// Bytes, from hex (for invalid UTF-8).
    Bytes(Vec<u8>),
}

/// What a step's answer must be.
#[derive(Clone, Debug)]
pub enum Expect {
    /// Success whose `ok` matches.
    Ok {
        /// Matcher for `ok`.
        ok: Value,
        /// Matcher for the response `id`, if given.
        id: Option<Value>,
    },
    /// An error whose `error` matches (a bare string is the code).
    Error {
        /// Matcher for `error`.
        error: Value,
        /// Matcher for the response `id`, if given.
        id: Option<Value>,
    },
    /// The authenticator refuses (browser steps only).
    AuthenticatorError(String),
    /// Any well-formed answer.
    Any,
}

impl Expect {
    fn success() -> Expect {
        Expect::Ok {
            ok: Value::Object(Map::new()),
            id: None,
        }
    }

    fn parse(value: &Value) -> Result<Expect, String> {
        let map = value.as_object().ok_or("expect is an object")?;
        let id = map.get("id").cloned();
        let keys: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "id")
            .collect();
        match keys.as_slice() {
            ["ok"] => Ok(Expect::Ok {
                ok: map["ok"].clone(),
                id,
            }),
            ["error"] => {
                let error = match &map["error"] {
                    Value::String(code) => {
                        let mut m = Map::new();
                        m.insert("code".into(), Value::String(code.clone()));
                        Value::Object(m)
                    }
                    other => other.clone(),
                };
                Ok(Expect::Error { error, id })
            }
            ["authenticator_error"] if id.is_none() => match &map["authenticator_error"] {
                Value::String(kind) => Ok(Expect::AuthenticatorError(kind.clone())),
                _ => Err("authenticator_error is a string".into()),
            },
            ["any"] if id.is_none() => Ok(Expect::Any),
            _ => Err(format!(
                "expect has one of ok, error, authenticator_error, any (plus id): {value}"
            )),
        }
    }
}

/// Whether `name` is an operation a request may name.
pub fn is_op(name: &str) -> bool {
    crate::ops::classify(name).is_some()
}

const MODIFIERS: &[&str] = &["expect", "save", "repeat", "context", "compare", "note"];
const BROWSER: &[&str] = &["register", "use_passkey", "create", "get", "authenticator"];

fn parse_step(number: usize, value: &Value) -> Result<Step, String> {
    let map = value.as_object().ok_or("a step is an object")?;
    let mut action_keys: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| !MODIFIERS.contains(k))
        .collect();
    action_keys.sort_unstable();
    let params = |key: &str| -> Result<Map<String, Value>, String> {
        map[key]
            .as_object()
            .cloned()
            .ok_or_else(|| format!("{key} takes an object"))
    };
    let action = match action_keys.as_slice() {
        ["args", "op"] | ["op"] => {
            let op = map["op"].as_str().ok_or("op is a string")?.to_owned();
            Action::Op {
                op,
                args: map
                    .get("args")
                    .cloned()
                    .unwrap_or(Value::Object(Map::new())),
            }
        }
        ["raw"] => Action::Raw(parse_raw(&map["raw"])?),
        ["losers", "race", "winner"] => {
            let items = map["race"]
                .as_array()
                .ok_or("race takes an array of steps")?;
            let mut requests = Vec::new();
            for item in items {
                match parse_step(number, item)? {
                    Step {
                        action: Action::Op { op, args },
                        repeat: 1,
                        save: None,
                        ..
                    } => requests.push((op, args)),
                    _ => return Err("race takes plain requests without expect or save".into()),
                }
            }
            if requests.len() < 2 {
                return Err("race takes at least two requests".into());
            }
            Action::Race {
                requests,
                winner: Box::new(Expect::parse(&map["winner"])?),
                losers: Box::new(Expect::parse(&map["losers"])?),
            }
        }
        ["check", "matches"] => Action::Check {
            value: map["check"].clone(),
            matches: map["matches"].clone(),
        },
        ["register"] => Action::Register(params("register")?),
        ["use_passkey"] => Action::UsePasskey(params("use_passkey")?),
        ["create"] => Action::Create(params("create")?),
        ["get"] => Action::Get(params("get")?),
        ["authenticator"] => Action::Authenticator(params("authenticator")?),
        [name] if is_op(name) => Action::Op {
            op: (*name).to_owned(),
            args: map[*name].clone(),
        },
        other => {
            return Err(format!(
                "a step has one action (an op name, op+args, raw, race, check, or one of {}), \
                 got {other:?}",
                BROWSER.join(", ")
            ));
        }
    };
    let expect = match map.get("expect") {
        Some(e) => Expect::parse(e)?,
        None if matches!(action, Action::Race { .. }) => Expect::Any,
        None => Expect::success(),
    };
    if matches!(expect, Expect::AuthenticatorError(_))
        && !matches!(
            action,
            Action::Register(_) | Action::UsePasskey(_) | Action::Create(_) | Action::Get(_)
        )
    {
        return Err("authenticator_error is for register, use_passkey, create and get".into());
    }
    let save = match map.get("save") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() && !s.contains(['.', '[', '$']) => Some(s.clone()),
        Some(other) => return Err(format!("save takes a plain variable name, got {other}")),
    };
    let repeat = match map.get("repeat") {
        None => 1,
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
            .ok_or("repeat takes a positive number")?,
    };
    let context = match map.get("context") {
        None => ContextSpec::Default,
        Some(Value::Bool(false)) => ContextSpec::Omit,
        // Anything else is sent as it is, wrong types included (E1).
        Some(v) => ContextSpec::Given(v.clone()),
    };
    let compare = match map.get("compare") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("compare takes a boolean".into()),
    };
    if let Some(note) = map.get("note")
        && !note.is_string()
    {
        return Err("note takes a string".into());
    }
    Ok(Step {
        number,
        action,
        expect,
        save,
        repeat,
        context,
        compare,
    })
}

fn parse_raw(value: &Value) -> Result<Vec<RawPart>, String> {
    let parts = match value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    parts
        .into_iter()
        .map(|part| match part {
            Value::Object(m) if m.len() == 1 && m.contains_key("hex") => {
                let hex = m["hex"].as_str().ok_or("hex takes a string")?;
                let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
                digits
                    .chunks(2)
                    .map(|pair| {
                        std::str::from_utf8(pair)
                            .ok()
                            .and_then(|p| u8::from_str_radix(p, 16).ok())
                            .filter(|_| pair.len() == 2)
                            .ok_or_else(|| format!("bad hex {hex:?}"))
                    })
                    .collect::<Result<Vec<u8>, String>>()
                    .map(RawPart::Bytes)
            }
            other => Ok(RawPart::Text(other)),
        })
        .collect()
}

impl Scenario {
    /// Parses one scenario file.
    pub fn load(path: &Path) -> Result<Scenario, String> {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or("bad file name")?
            .to_owned();
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let value: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
        let map = value.as_object().ok_or("a scenario is a JSON object")?;
        for key in map.keys() {
            if !["rules", "title", "config", "steps", "note"].contains(&key.as_str()) {
                return Err(format!("unknown member {key:?}"));
            }
        }
        let rules: Vec<String> = map
            .get("rules")
            .and_then(Value::as_array)
            .ok_or("rules: an array of SPEC rule IDs")?
            .iter()
            .map(|r| r.as_str().map(str::to_owned).ok_or("a rule ID is a string"))
            .collect::<Result<_, _>>()?;
        if rules.is_empty() {
            return Err("rules is empty".into());
        }
        if let Some(bad) = rules.iter().find(|r| !RULES.contains(&r.as_str())) {
            return Err(format!("{bad} is not a SPEC rule ID"));
        }
        let title = map
            .get("title")
            .and_then(Value::as_str)
            .ok_or("title: one sentence")?
            .to_owned();
        let config = match map.get("config") {
            None => Some(Map::new()),
            Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(_) => return Err("config is an object (or null for none)".into()),
        };
        let steps = map
            .get("steps")
            .and_then(Value::as_array)
            .ok_or("steps: an array")?
            .iter()
            .enumerate()
            .map(|(i, s)| parse_step(i + 1, s).map_err(|e| format!("step {}: {e}", i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Scenario {
            name,
            path: path.to_owned(),
            rules,
            title,
            config,
            steps,
        })
    }

    /// Every `*.json` under `dir`, sorted by name.
    pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, String> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        let mut errors = Vec::new();
        let mut scenarios = Vec::new();
        for path in paths {
            match Scenario::load(&path) {
                Ok(s) => scenarios.push(s),
                Err(e) => errors.push(format!("{}: {e}", path.display())),
            }
        }
        if errors.is_empty() {
            Ok(scenarios)
        } else {
            Err(errors.join("\n"))
        }
    }
}
