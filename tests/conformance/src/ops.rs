//! The operations a driver answers, taken from one place each: the engine's from
//! `twofold_proto`'s table ([`Op`], expanded with [`for_each_op!`]), the suite's test-only ones
//! from [`TestOp`] below. The reference driver dispatches by them, the runner checks every
//! answer against the serde form of its type, and `twofold-conformance --print-ops` writes
//! PROTOCOL.md's tables from them (a test keeps the file current).

use std::fmt::Write as _;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use twofold_proto::{Config, EngineError, ErrorCode, Op, SignInOutcome, for_each_op};

/// Where `reset` sets the clock: 2026-01-01T00:00:00Z.
pub const RESET_CLOCK_MS: u64 = 1_767_225_600_000;

/// What a request's `op` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An engine operation.
    Engine(Op),
    /// A test-only operation.
    Test(TestOp),
}

/// The operation named `name`, if there is one.
pub fn classify(name: &str) -> Option<Kind> {
    Op::parse(name)
        .map(Kind::Engine)
        .or_else(|| TestOp::parse(name).map(Kind::Test))
}

/// The configuration a driver starts with and `reset` restores: the engine's defaults (relying
/// party `localhost`, origin `http://localhost:8080`, SPEC argon2 costs) and the testkit's
/// audit key, since the engine refuses to run without one.
pub fn default_config() -> Config {
    Config {
        audit_keys: vec![twofold_testkit::test_audit_key()],
        ..Config::default()
    }
}

/// The arguments and answer `{}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// The arguments of `set_clock`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetClock {
    /// What the clock reads from now on, in milliseconds since the Unix epoch.
    pub now_ms: u64,
}

/// The arguments of `advance_clock`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvanceClock {
    /// How far to move the clock forward, in milliseconds.
    pub ms: u64,
}

/// The arguments of `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// The seed.
    pub seed: u64,
}

/// The answer of `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seeded {
    /// Whether the host made its randomness deterministic.
    pub seeded: bool,
}

/// The test-only operations, one line each (`Variant, "name", Args => Answer, example args =>
/// example answer;`) after what the operation does.
macro_rules! test_ops {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident, $name:literal, $args:ty => $answer:ty, $example:expr => $example_answer:expr;
    )+) => {
        /// An operation only drivers offer, for the suite to set the scene.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum TestOp {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl TestOp {
            /// Every test-only operation.
            pub const ALL: &'static [TestOp] = &[$(TestOp::$variant),+];

            /// The name in requests.
            pub fn name(self) -> &'static str {
                match self { $(TestOp::$variant => $name,)+ }
            }

            /// What the operation does.
            pub fn description(self) -> &'static str {
                match self { $(TestOp::$variant => concat!($($doc),+).trim_ascii(),)+ }
            }

            /// Example arguments and answer, as JSON.
            pub fn example(self) -> (String, String) {
                match self {
                    $(TestOp::$variant => {
                        let (args, answer): ($args, $answer) = ($example, $example_answer);
                        (json_text(&args), json_text(&answer))
                    })+
                }
            }

            /// Whether `ok` is exactly the JSON of its answer type.
            pub fn check_answer(self, ok: &Value) -> Result<(), String> {
                match self { $(TestOp::$variant => same_shape::<$answer>(ok, "ok"),)+ }
            }
        }
    };
}

test_ops! {
    /// Empties storage, sets the clock to 1767225600000 (2026-01-01T00:00:00Z), reseeds
    /// randomness with 0 where the host can, and restores the default configuration.
    Reset, "reset", Empty => Empty, Empty {} => Empty {};
    /// Replaces the engine with one built from this configuration (the `Config` JSON; absent
    /// members take their `Config` defaults, and `audit_keys` has none, so name the test key).
    /// Storage is kept. A configuration the engine refuses is its error (`invalid_input`), and
    /// the engine stays as it was.
    Configure, "configure", Config => Empty, default_config() => Empty {};
    /// The clock reads `now_ms` until changed; it does not move by itself in driver mode.
    SetClock, "set_clock", SetClock => Empty, SetClock { now_ms: RESET_CLOCK_MS } => Empty {};
    /// Moves the clock forward by `ms`.
    AdvanceClock, "advance_clock", AdvanceClock => Empty, AdvanceClock { ms: 1500 } => Empty {};
    /// Makes randomness deterministic where the host can: `seeded` false means the host keeps
    /// its CSPRNG (transcripts replace random values with placeholders either way).
    Seed, "seed", Seed => Seeded, Seed { seed: 42 } => Seeded { seeded: true };
}

impl TestOp {
    /// The test-only operation named `name`.
    pub fn parse(name: &str) -> Option<TestOp> {
        TestOp::ALL.iter().copied().find(|op| op.name() == name)
    }
}

/// Whether `ok` is exactly what the operation `op` answers: its answer type's JSON, no member
/// more or less, absent optional members left out. Unknown operations are not checked here.
pub fn check_answer(op: &str, ok: &Value) -> Result<(), String> {
    match classify(op) {
        Some(Kind::Engine(op)) => check_engine_answer(op, ok),
        Some(Kind::Test(op)) => op.check_answer(ok),
        None => Ok(()),
    }
}

/// Whether `error` is exactly an [`EngineError`]'s JSON (`retry_after_secs` left out when
/// absent, never `null`).
pub fn check_error(error: &Value) -> Result<(), String> {
    same_shape::<EngineError>(error, "error")
}

fn check_engine_answer(op: Op, ok: &Value) -> Result<(), String> {
    if op == Op::SignIn {
        // serde cannot read `SignInOutcome` back from JSON: an internally tagged enum buffers
        // its members, and the embedded `options` need the raw text. So it is read by its tag.
        // (The lead knows; drop this once twofold-proto reads its own JSON.)
        return same_shape_with(ok, "ok", read_sign_in_outcome);
    }
    macro_rules! check {
        ($($(#[doc = $doc:literal])+ $variant:ident, $method:ident, $name:literal, $wit:literal,
           $req:path => $answer:path;)+) => {
            match op {
                $(Op::$variant => same_shape::<$answer>(ok, "ok"),)+
            }
        };
    }
    for_each_op!(check)
}

/// The names of an engine operation's request and answer types (`twofold_proto`).
pub fn engine_types(op: Op) -> (&'static str, &'static str) {
    macro_rules! types {
        ($($(#[doc = $doc:literal])+ $variant:ident, $method:ident, $name:literal, $wit:literal,
           $req:path => $answer:path;)+) => {
            match op {
                $(Op::$variant => (short_type_name::<$req>(), short_type_name::<$answer>()),)+
            }
        };
    }
    for_each_op!(types)
}

fn read_sign_in_outcome(value: &Value) -> Result<SignInOutcome, serde_json::Error> {
    let mut members = value.clone();
    let status = members
        .as_object_mut()
        .and_then(|m| m.remove("status"))
        .unwrap_or_default();
    match status.as_str() {
        Some("signed_in") => serde_json::from_value(members).map(SignInOutcome::SignedIn),
        Some("second_factor_required") => {
            serde_json::from_value(members).map(SignInOutcome::SecondFactorRequired)
        }
        _ => Err(serde::de::Error::custom(format!(
            "status {status} is neither signed_in nor second_factor_required"
        ))),
    }
}

/// `value` read as `T` and written back must be `value` again: that catches missing and extra
/// members, wrong types, and `null` where a member should be left out.
fn same_shape<T: Serialize + DeserializeOwned>(value: &Value, at: &str) -> Result<(), String> {
    same_shape_with(value, at, |v| serde_json::from_value::<T>(v.clone()))
}

fn same_shape_with<T: Serialize>(
    value: &Value,
    at: &str,
    read: impl Fn(&Value) -> Result<T, serde_json::Error>,
) -> Result<(), String> {
    let name = short_type_name::<T>();
    let typed = read(value).map_err(|e| format!("{at} is not a {name}: {e}"))?;
    let canonical =
        serde_json::to_value(&typed).map_err(|e| format!("a {name} does not serialise: {e}"))?;
    match first_mismatch(value, &canonical, at) {
        None => Ok(()),
        Some(why) => Err(format!("{at} is not exactly a {name}: {why}")),
    }
}

/// Where `got` differs from the canonical JSON of its type.
fn first_mismatch(got: &Value, canonical: &Value, at: &str) -> Option<String> {
    match (got, canonical) {
        (Value::Object(g), Value::Object(c)) => {
            if let Some(extra) = g.keys().find(|k| !c.contains_key(*k)) {
                return Some(if g[extra].is_null() {
                    format!("{at}.{extra} is null; an absent member is left out")
                } else {
                    format!("{at}.{extra} is not a member of this answer")
                });
            }
            if let Some(missing) = c.keys().find(|k| !g.contains_key(*k)) {
                return Some(format!("{at}.{missing} is missing"));
            }
            g.iter()
                .find_map(|(k, v)| first_mismatch(v, &c[k], &format!("{at}.{k}")))
        }
        (Value::Array(g), Value::Array(c)) if g.len() == c.len() => g
            .iter()
            .zip(c)
            .enumerate()
            .find_map(|(i, (g, c))| first_mismatch(g, c, &format!("{at}[{i}]"))),
        _ if got == canonical => None,
        _ => Some(format!("{at} is {got}, which reads as {canonical}")),
    }
}

/// `twofold_proto::model::SignIn` -> `SignIn`.
fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// `SignInOutcome` -> `sign-in-outcome`: the WIT name of a proto type.
pub fn wit_type_name(rust_name: &str) -> String {
    let mut out = String::new();
    for (i, c) in rust_name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The first line of PROTOCOL.md's generated part.
pub const GENERATED_BEGIN: &str =
    "<!-- generated by `twofold-conformance --print-ops`; do not edit by hand -->";
/// The line after it.
pub const GENERATED_END: &str = "<!-- end of generated part -->";

/// PROTOCOL.md's generated part: the engine operations with their request and answer types,
/// the error codes, the test-only operations and the default configuration.
pub fn protocol_tables() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{GENERATED_BEGIN}");
    out.push_str(
        "\n| op | args: `twofold_proto` type (WIT record) | ok: type (WIT) | WIT method | what it does |\n\
         |---|---|---|---|---|\n",
    );
    for op in Op::ALL {
        let (req, answer) = engine_types(*op);
        let _ = writeln!(
            out,
            "| `{}` | `{req}` (`{}`) | `{answer}` (`{}`) | `{}` | {} |",
            op.name(),
            wit_type_name(req),
            wit_type_name(answer),
            op.wit_name(),
            one_line(op.description()),
        );
    }
    out.push_str("\n| error code | C status | WIT `error-code` | meaning |\n|---|---|---|---|\n");
    for code in ErrorCode::ALL {
        let _ = writeln!(
            out,
            "| `{}` | {} | `{}` | {} |",
            code.as_str(),
            code.number(),
            code.wit_name(),
            one_line(code.description()),
        );
    }
    out.push_str(
        "\n| test-only op | args (example) | ok (example) | what it does |\n|---|---|---|---|\n",
    );
    for op in TestOp::ALL {
        let (args, answer) = op.example();
        let args = match op {
            TestOp::Configure => {
                "a `Config` (`config`), such as the default configuration below".to_owned()
            }
            _ => format!("`{args}`"),
        };
        let _ = writeln!(
            out,
            "| `{}` | {args} | `{answer}` | {} |",
            op.name(),
            one_line(op.description()),
        );
    }
    let config = serde_json::to_string_pretty(&default_config())
        .unwrap_or_else(|e| format!("(unprintable: {e})"));
    let _ = write!(
        out,
        "\nThe default configuration (what a driver starts with and `reset` restores):\n\n\
         ```json\n{config}\n```\n\n{GENERATED_END}\n"
    );
    out
}

fn json_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("(unprintable: {e})"))
}

fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_must_be_exactly_their_type() {
        let status = json!({"user_id": "u", "email": "a@b.c", "two_factor_enabled": false,
            "passkeys": [], "backup_codes_remaining": 0, "backup_codes_running_low": false,
            "security_epoch": 1});
        assert_eq!(check_answer("status", &status), Ok(()));
        let mut extra = status.clone();
        extra["hash"] = json!("x");
        assert!(
            check_answer("status", &extra)
                .unwrap_err()
                .contains("ok.hash is not a member")
        );
        let mut missing = status.clone();
        missing.as_object_mut().unwrap().remove("security_epoch");
        assert!(
            check_answer("status", &missing)
                .unwrap_err()
                .contains("security_epoch")
        );
        let signed_in = json!({"status": "signed_in", "user_id": "u", "remember_me": true,
            "security_epoch": 1, "device_token": "t", "backup_codes_remaining": null});
        assert!(
            check_answer("sign_in", &signed_in)
                .unwrap_err()
                .contains("backup_codes_remaining is null")
        );
        assert_eq!(check_answer("seed", &json!({"seeded": false})), Ok(()));
        assert!(check_answer("reset", &json!({"done": true})).is_err());
    }

    #[test]
    fn a_second_factor_answer_with_embedded_options_reads_back() {
        let pending = json!({"status": "second_factor_required", "pending_token": "u.t",
            "options": {"challenge": "c", "allowCredentials": [{"id": "x", "type": "public-key"}]}});
        assert_eq!(check_answer("sign_in", &pending), Ok(()));
    }

    #[test]
    fn every_name_is_one_operation() {
        for op in Op::ALL {
            assert_eq!(classify(op.name()), Some(Kind::Engine(*op)));
        }
        for op in TestOp::ALL {
            assert_eq!(classify(op.name()), Some(Kind::Test(*op)));
        }
        assert_eq!(classify("launch"), None);
        assert_eq!(wit_type_name("SignInOutcome"), "sign-in-outcome");
    }
}
