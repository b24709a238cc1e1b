//! Fuzzing on the stable toolchain with proptest: every JSON input of the engine, through every
//! boundary, must get a result or a typed error, never a panic (a trap, an abort), and must
//! never leave storage half-written.
//!
//! - the core's JSON API (`api::call`) for every operation: arbitrary bytes, valid arguments
//!   with bytes flipped, inserted, deleted, JSON values of random types shaped like each
//!   operation's arguments;
//! - credentials: the software authenticator's real registrations and assertions with bits
//!   flipped in base64 fields, truncated CBOR, wrong types, missing and extra members, altered
//!   clientDataJSON, and well-formed ones signed wrongly (wrong origin, RP ID, challenge, flags,
//!   counter);
//! - storage that returns corrupted documents;
//! - the conformance driver's request lines (in process, and through each host program);
//! - the C library: every export with arbitrary bytes, NULL pointers, lengths shorter than the
//!   buffer, bad contexts, hosts that break the callback contract;
//! - the component's WIT interface with the same arguments.
//!
//! After each case: an answer is JSON or a typed error; `internal` (a bug, or a caught panic)
//! fails the case; `invalid_input` and `not_found` leave storage exactly as it was; and any
//! state left satisfies every stored-state rule (`invariants::check`).
//!
//! Cases per target: `TWOFOLD_FUZZ_CASES` (default 256); `TWOFOLD_FUZZ_SEED` replays a run.

use std::ffi::{CStr, c_char};
use std::path::PathBuf;
use std::ptr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestCaseResult, TestRunner};
use serde::de::{self, Deserialize, Visitor};
use serde_json::{Map, Value, json};
use twofold::*;
use twofold_conformance::driver::{Driver, Randomness};
use twofold_conformance::ops::TestOp;
use twofold_core::api::{self, Op};
use twofold_core::{Context, Engine, ErrorCode};
use twofold_reliability::driver::DriverProcess;
use twofold_reliability::world::{PASSWORD, World};
use twofold_reliability::{Snapshot, fuzz_cases, hosts, invariants};
use twofold_testkit::authenticator::Tweaks;
use twofold_testkit::{ORIGIN, TestHost, fast_config};
use twofold_testsupport::{CEngine, CallbackTable, Fault, Misbehave, export, last_error};

mod common;

// ------------------------------------------------------------------ the world and the runner

struct Fixture {
    engine: Engine,
    world: World,
    snapshot: Snapshot,
    config_json: String,
}

fn ctx() -> Context {
    Context::new("198.51.100.4", "twofold-fuzz")
}

/// The world, built once through the core's JSON API.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let engine = Engine::new(fast_config()).expect("the test configuration");
        let host = TestHost::new(7);
        let world = World::build(&mut |op, args| {
            api::call(&engine, &host, &ctx(), op, args.to_string().as_bytes())
                .map(|text| serde_json::from_str(&text).expect("JSON"))
                .map_err(|e| e.code().as_str().to_owned())
        });
        let snapshot = host.storage.snapshot();
        invariants::check(&snapshot).assert_ok("the fuzz world");
        Fixture {
            engine,
            world,
            snapshot,
            config_json: serde_json::to_string(&fast_config()).expect("JSON"),
        }
    })
}

fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| twofold_reliability::rng::seed_from_env("TWOFOLD_FUZZ_SEED"))
}

/// Runs `test` on `cases` values of `strategy` and reports the time taken.
fn fuzz<S: Strategy>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed()),
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let started = Instant::now();
    OUTCOMES.with(|o| o.borrow_mut().clear());
    let result = TestRunner::new(config).run(&strategy, test);
    let outcomes = OUTCOMES.with(|o| std::mem::take(&mut *o.borrow_mut()));
    let outcomes: Vec<String> = outcomes.iter().map(|(k, n)| format!("{k} {n}")).collect();
    eprintln!(
        "fuzz {name}: {cases} cases in {:.1} s; answers: {}",
        started.elapsed().as_secs_f64(),
        if outcomes.is_empty() {
            "-".into()
        } else {
            outcomes.join(", ")
        }
    );
    if let Err(e) = result {
        panic!(
            "fuzz {name} failed (replay: TWOFOLD_FUZZ_SEED={}): {e}",
            seed()
        );
    }
}

thread_local! {
    /// How the cases of the running target were answered (`ok` or the error code), counted over
    /// every case tried, shrinking included.
    static OUTCOMES: std::cell::RefCell<std::collections::BTreeMap<String, u64>> =
        std::cell::RefCell::default();
}

fn tally(outcome: &str) {
    OUTCOMES.with(|o| *o.borrow_mut().entry(outcome.to_owned()).or_default() += 1);
}

/// What every answer must satisfy, whichever boundary gave it.
fn check_answer(
    what: &str,
    answer: Result<&str, ErrorCode>,
    before: &Snapshot,
    after: &Snapshot,
) -> TestCaseResult {
    tally(match answer {
        Ok(_) => "ok",
        Err(code) => code.as_str(),
    });
    match answer {
        Ok(text) => {
            let value: Value = serde_json::from_str(text)
                .map_err(|e| TestCaseError::fail(format!("{what}: answer is not JSON: {e}")))?;
            prop_assert!(value.is_object(), "{what}: answer is not an object: {text}");
        }
        Err(code) => {
            prop_assert_ne!(code, ErrorCode::Internal, "{}: internal error", what);
            if matches!(code, ErrorCode::InvalidInput | ErrorCode::NotFound) {
                prop_assert!(before == after, "{what}: {code} wrote to storage");
            }
            // A refusal records itself (an audit event, failure counts, a used-up ceremony)
            // and changes nothing else: no passkey, owner record, email index, device token,
            // password, code set or epoch.
            let changed: Vec<&String> = before
                .keys()
                .chain(after.keys())
                .filter(|k| before.get(*k) != after.get(*k))
                .collect();
            for key in changed {
                let allowed = ["user/", "audit/", "pending/", "registration/", "throttle/"]
                    .iter()
                    .any(|p| key.starts_with(p));
                prop_assert!(allowed, "{what}: {code} changed {key}");
                if key.starts_with("user/") {
                    let doc = |s: &Snapshot| -> Value {
                        s.get(key.as_str())
                            .and_then(|r| serde_json::from_str(&r.value).ok())
                            .unwrap_or(Value::Null)
                    };
                    let (old, new) = (doc(before), doc(after));
                    for field in [
                        "email",
                        "email_hash",
                        "password",
                        "two_factor",
                        "backup_codes",
                        "user_handle",
                        "passkeys",
                        "epoch",
                    ] {
                        prop_assert_eq!(
                            &old[field],
                            &new[field],
                            "{}: {} changed {}",
                            what,
                            code,
                            field
                        );
                    }
                }
            }
        }
    }
    if before != after {
        let report = invariants::check(after);
        prop_assert!(
            report.problems.is_empty(),
            "{what}: left a state that breaks the rules: {:?}",
            report.problems
        );
    }
    Ok(())
}

/// Runs an operation through the core's JSON API on a fresh copy of the world.
fn core_case(op: Op, args: &[u8]) -> TestCaseResult {
    let f = fixture();
    let host = TestHost::with_data(f.snapshot.clone(), 99);
    let answer = api::call(&f.engine, &host, &ctx(), op, args);
    let what = format!("{} {}", op.name(), String::from_utf8_lossy(args));
    check_answer(
        &what,
        answer.as_deref().map_err(|e| e.code()),
        &f.snapshot,
        &host.storage.snapshot(),
    )
}

// ------------------------------------------------------------------ strategies

/// The member names a type declares to serde: what `deserialize_struct` is told. Nothing here
/// lists an operation's arguments again; they come from the proto types.
fn members<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Names(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("names taken")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Stop {
            Stop
        }
    }
    impl<'de> de::Deserializer<'de> for &mut Names {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut names = Names(None);
    let _ = T::deserialize(&mut names);
    names.0.unwrap_or(&[])
}

/// The members of `op`'s request.
fn fields_of(op: Op) -> &'static [&'static str] {
    macro_rules! requests {
        ($($(#[doc = $doc:literal])+ $variant:ident, $method:ident, $name:literal,
           $wit:literal, $req:path => $answer:path;)+) => {
            match op { $(Op::$variant => members::<$req>(),)+ }
        };
    }
    twofold_core::for_each_op!(requests)
}

/// Every member name of every request and of the context, and a stray one.
fn all_fields() -> Vec<&'static str> {
    let mut fields: Vec<&str> = Op::ALL
        .iter()
        .flat_map(|op| fields_of(*op))
        .copied()
        .collect();
    fields.extend(members::<Context>());
    fields.push("id");
    fields.sort_unstable();
    fields.dedup();
    fields
}

/// Values that mean something to the world: real ids, tokens, codes, credentials, and near
/// misses of them.
fn good_values(field: &str) -> Vec<Value> {
    let w = &fixture().world;
    let token = &w.pending_token;
    match field {
        "email" => vec![
            json!("ada@example.com"),
            json!("  ADA@Example.COM "),
            json!("bob@example.com"),
            json!("new@example.com"),
            json!("not an email"),
            json!("a@b"),
            json!(format!("{}@example.com", "x".repeat(300))),
        ],
        "password" | "current_password" | "new_password" => vec![
            json!(PASSWORD),
            json!("wrong password"),
            json!(""),
            json!("short"),
            json!("x".repeat(1025)),
        ],
        "remember_me" => vec![json!(true), json!(false)],
        "pending_token" => vec![
            json!(token),
            json!(&token[..token.len() - 1]),
            json!(format!("{token}x")),
            json!(""),
            json!(format!("{}.AAAA", w.user)),
            json!(format!(
                "{}.{}",
                w.off,
                token.split('.').nth(1).unwrap_or("")
            )),
        ],
        "credential" => vec![
            w.assertion.clone(),
            json!(w.assertion.to_string()),
            w.registration.clone(),
            json!(w.registration.to_string()),
            json!({}),
        ],
        "code" => vec![
            json!(w.codes[1]),
            json!(format!(" {} ", w.codes[2].to_uppercase().replace('-', " "))),
            json!("2222-2222-2222"),
            json!(""),
            json!("x".repeat(500)),
        ],
        "user_id" => vec![
            json!(w.user),
            json!(w.off),
            json!("AAAAAAAAAAAAAAAAAAAAAA"),
            json!("no/such user"),
            json!(""),
        ],
        "name" => vec![
            json!("Desk"),
            json!(""),
            json!("   "),
            json!("x".repeat(65)),
            json!("bell\u{7}"),
            json!("名前"),
        ],
        "passkey_id" => vec![json!(w.passkey_id), json!("AAAA"), json!(""), json!("../x")],
        "before" | "limit" | "older_than_days" => {
            vec![json!(0), json!(1), json!(200), json!(201), json!(u64::MAX)]
        }
        "anchor" => vec![
            json!({ "user_id": w.user, "seq": 1, "mac": "00".repeat(32) }),
            json!({ "user_id": w.user, "seq": 0, "mac": "" }),
            Value::Null,
        ],
        _ => vec![json!("")],
    }
}

fn arb_string() -> BoxedStrategy<String> {
    prop_oneof![
        4 => any::<String>(),
        3 => "[a-zA-Z0-9@._ /-]{0,24}",
        1 => Just(String::new()),
        1 => (0usize..4).prop_map(|k| ["\0", "\u{FEFF}", "\u{10FFFF}", "\\"][k].to_owned()),
        1 => (60_000usize..70_000).prop_map(|n| "y".repeat(n)),
    ]
    .boxed()
}

fn arb_leaf() -> BoxedStrategy<Value> {
    let pool: Vec<Value> = all_fields().iter().flat_map(|f| good_values(f)).collect();
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        3 => arb_string().prop_map(Value::String),
        3 => prop::sample::select(pool),
    ]
    .boxed()
}

fn arb_key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(all_fields()).prop_map(str::to_owned),
        1 => "[a-z_]{0,12}",
    ]
    .boxed()
}

fn arb_json() -> BoxedStrategy<Value> {
    arb_leaf()
        .prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((arb_key(), inner), 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// An object shaped like `op`'s arguments: each member absent, a meaningful value, or a
/// random JSON value; now and then a member that does not belong.
fn arb_args(op: Op) -> BoxedStrategy<Value> {
    let fields = fields_of(op);
    let members = fields
        .iter()
        .map(|field| {
            let good = good_values(field);
            (0u8..20, any::<Index>(), arb_json()).prop_map(move |(how, pick, random)| match how {
                0 => None,
                1..=9 => Some(good[0].clone()),
                10..=16 => Some(good[pick.index(good.len())].clone()),
                _ => Some(random),
            })
        })
        .collect::<Vec<_>>();
    (
        members,
        prop::option::weighted(0.03, (arb_key(), arb_json())),
    )
        .prop_map(move |(values, extra)| {
            let mut map = Map::new();
            for (field, value) in fields.iter().zip(values) {
                if let Some(value) = value {
                    map.insert((*field).to_owned(), value);
                }
            }
            if let Some((key, value)) = extra {
                map.insert(key, value);
            }
            Value::Object(map)
        })
        .boxed()
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop::sample::select(Op::ALL.to_vec())
}

/// A valid argument document for `op` from the world's steps.
fn valid_args(op: Op) -> Vec<u8> {
    fixture()
        .world
        .steps()
        .into_iter()
        .find(|(_, step_op, _)| *step_op == op)
        .map(|(_, _, args)| args.to_string().into_bytes())
        .unwrap_or_else(|| b"{}".to_vec())
}

/// One byte-level edit.
#[derive(Clone, Debug)]
enum Edit {
    Flip(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
    Splice(Index, Vec<u8>),
}

fn arb_edit() -> impl Strategy<Value = Edit> {
    let interesting = prop::sample::select(b"{}[]\",:\\0-9ae \xff\x00".to_vec());
    prop_oneof![
        (any::<Index>(), 1u8..=255).prop_map(|(i, x)| Edit::Flip(i, x)),
        (any::<Index>(), prop_oneof![any::<u8>(), interesting])
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<Index>().prop_map(Edit::Delete),
        any::<Index>().prop_map(Edit::Truncate),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Edit::Splice(i, v)),
    ]
}

fn apply_edits(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let len = bytes.len();
        match edit {
            Edit::Flip(i, x) if len > 0 => bytes[i.index(len)] ^= x,
            Edit::Insert(i, b) => bytes.insert(i.index(len + 1), *b),
            Edit::Delete(i) if len > 0 => {
                bytes.remove(i.index(len));
            }
            Edit::Truncate(i) => bytes.truncate(i.index(len + 1)),
            Edit::Splice(i, v) => {
                let at = i.index(len + 1);
                bytes.splice(at..at, v.iter().copied());
            }
            _ => {}
        }
    }
    bytes
}

/// Arbitrary bytes, or an operation's valid arguments with a few byte edits.
fn arb_arg_bytes(op: Op) -> BoxedStrategy<Vec<u8>> {
    let valid = valid_args(op);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        prop::collection::vec(arb_edit(), 1..5)
            .prop_map(move |edits| apply_edits(valid.clone(), &edits)),
    ]
    .boxed()
}

// ------------------------------------------------------------------ the core's JSON API

#[test]
fn fuzz_api_call_with_arbitrary_and_mutated_bytes() {
    fixture();
    let strategy = arb_op().prop_flat_map(|op| (Just(op), arb_arg_bytes(op)));
    fuzz("api::call bytes", fuzz_cases(), strategy, |(op, bytes)| {
        core_case(op, &bytes)
    });
}

#[test]
fn fuzz_api_call_with_json_shaped_like_the_arguments() {
    fixture();
    let strategy = arb_op().prop_flat_map(|op| (Just(op), arb_args(op)));
    fuzz(
        "api::call shaped JSON",
        fuzz_cases(),
        strategy,
        |(op, args)| core_case(op, args.to_string().as_bytes()),
    );
}

// ------------------------------------------------------------------ credentials

const CREDENTIAL_FIELDS: [&[&str]; 13] = [
    &["id"],
    &["rawId"],
    &["type"],
    &["authenticatorAttachment"],
    &["clientExtensionResults"],
    &["response", "clientDataJSON"],
    &["response", "attestationObject"],
    &["response", "authenticatorData"],
    &["response", "signature"],
    &["response", "userHandle"],
    &["response", "publicKey"],
    &["response", "publicKeyAlgorithm"],
    &["response", "transports"],
];

const CLIENT_DATA_MEMBERS: [&str; 6] = [
    "type",
    "challenge",
    "origin",
    "crossOrigin",
    "topOrigin",
    "other_keys_can_be_added_here",
];

/// One change to a credential document.
#[derive(Clone, Debug)]
enum CredEdit {
    /// Flip bits of one byte of a base64url field's decoded bytes.
    FlipBit(usize, Index, u8),
    /// Cut a decoded field (truncated CBOR, short signature).
    Truncate(usize, Index),
    /// Append bytes to a decoded field.
    Append(usize, Vec<u8>),
    /// Replace a field with arbitrary text (bad base64 too).
    Text(usize, String),
    /// Replace a field with a JSON value of any type.
    Value(usize, Value),
    /// Remove a field.
    Remove(usize),
    /// Add an unknown member, at the top or inside `response`.
    Extra(bool, String, Value),
    /// Set a member of the decoded clientDataJSON.
    ClientData(usize, Value),
    /// Exchange two fields.
    Swap(usize, usize),
}

fn arb_cred_edit() -> impl Strategy<Value = CredEdit> {
    let field = 0..CREDENTIAL_FIELDS.len();
    prop_oneof![
        3 => (field.clone(), any::<Index>(), 1u8..=255).prop_map(|(f, i, x)| CredEdit::FlipBit(f, i, x)),
        2 => (field.clone(), any::<Index>()).prop_map(|(f, i)| CredEdit::Truncate(f, i)),
        1 => (field.clone(), prop::collection::vec(any::<u8>(), 1..40)).prop_map(|(f, v)| CredEdit::Append(f, v)),
        1 => (field.clone(), arb_string()).prop_map(|(f, s)| CredEdit::Text(f, s)),
        1 => (field.clone(), arb_json()).prop_map(|(f, v)| CredEdit::Value(f, v)),
        1 => field.clone().prop_map(CredEdit::Remove),
        1 => (any::<bool>(), arb_key(), arb_json()).prop_map(|(r, k, v)| CredEdit::Extra(r, k, v)),
        2 => (0..CLIENT_DATA_MEMBERS.len(), arb_leaf()).prop_map(|(m, v)| CredEdit::ClientData(m, v)),
        1 => (field.clone(), field).prop_map(|(a, b)| CredEdit::Swap(a, b)),
    ]
}

fn slot<'a>(cred: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    let mut at = cred;
    for part in path {
        at = at.as_object_mut()?.get_mut(*part)?;
    }
    Some(at)
}

fn decoded(value: &Value) -> Vec<u8> {
    match value.as_str() {
        Some(text) => URL_SAFE_NO_PAD
            .decode(text)
            .unwrap_or_else(|_| text.as_bytes().to_vec()),
        None => value.to_string().into_bytes(),
    }
}

fn encoded(bytes: &[u8]) -> Value {
    Value::String(URL_SAFE_NO_PAD.encode(bytes))
}

fn apply_cred_edit(cred: &mut Value, edit: &CredEdit) {
    let change_bytes = |cred: &mut Value, f: usize, change: &dyn Fn(&mut Vec<u8>)| {
        if let Some(v) = slot(cred, CREDENTIAL_FIELDS[f]) {
            let mut bytes = decoded(v);
            change(&mut bytes);
            *v = encoded(&bytes);
        }
    };
    match edit {
        CredEdit::FlipBit(f, i, x) => change_bytes(cred, *f, &|b| {
            if !b.is_empty() {
                let at = i.index(b.len());
                b[at] ^= x;
            }
        }),
        CredEdit::Truncate(f, i) => change_bytes(cred, *f, &|b| b.truncate(i.index(b.len() + 1))),
        CredEdit::Append(f, extra) => change_bytes(cred, *f, &|b| b.extend_from_slice(extra)),
        CredEdit::Text(f, text) => {
            if let Some(v) = slot(cred, CREDENTIAL_FIELDS[*f]) {
                *v = Value::String(text.clone());
            }
        }
        CredEdit::Value(f, value) => {
            if let Some(v) = slot(cred, CREDENTIAL_FIELDS[*f]) {
                *v = value.clone();
            }
        }
        CredEdit::Remove(f) => {
            let path = CREDENTIAL_FIELDS[*f];
            let (last, parent) = path.split_last().expect("a path");
            if let Some(Value::Object(map)) = slot(cred, parent) {
                map.remove(*last);
            }
        }
        CredEdit::Extra(in_response, key, value) => {
            let target = if *in_response {
                slot(cred, &["response"])
            } else {
                Some(cred)
            };
            if let Some(Value::Object(map)) = target {
                map.insert(key.clone(), value.clone());
            }
        }
        CredEdit::ClientData(member, value) => {
            if let Some(v) = slot(cred, &["response", "clientDataJSON"]) {
                let mut data: Value = serde_json::from_slice(&decoded(v)).unwrap_or(json!({}));
                if let Some(map) = data.as_object_mut() {
                    map.insert(CLIENT_DATA_MEMBERS[*member].to_owned(), value.clone());
                }
                *v = encoded(data.to_string().as_bytes());
            }
        }
        CredEdit::Swap(a, b) => {
            let first = slot(cred, CREDENTIAL_FIELDS[*a]).map(|v| v.clone());
            let second = slot(cred, CREDENTIAL_FIELDS[*b]).map(|v| v.clone());
            if let (Some(first), Some(second)) = (first, second) {
                if let Some(v) = slot(cred, CREDENTIAL_FIELDS[*a]) {
                    *v = second;
                }
                if let Some(v) = slot(cred, CREDENTIAL_FIELDS[*b]) {
                    *v = first;
                }
            }
        }
    }
}

/// How a credential travels: the object, its text, or its text with byte edits.
#[derive(Clone, Debug)]
enum Form {
    Object,
    Text,
    Garbled(Vec<Edit>),
}

/// Deviations of a well-formed credential, from the authenticator itself.
#[derive(Clone, Debug)]
struct TweakSpec {
    origin: Option<String>,
    rp_id: Option<String>,
    challenge: Option<Vec<u8>>,
    client_data_type: Option<String>,
    corrupt_signature: bool,
    alter_client_data_after_signing: bool,
    flags: [Option<bool>; 4],
    counter: Option<u32>,
    drop_chromium_key: bool,
    /// Made in a cross-origin frame: `crossOrigin` true, and sometimes a `topOrigin`.
    cross_origin: Option<Option<String>>,
}

fn arb_tweaks() -> impl Strategy<Value = Option<TweakSpec>> {
    let origin = prop::option::weighted(
        0.3,
        prop_oneof![
            prop::sample::select(vec![
                "http://localhost:8081",
                "https://localhost:8080",
                "http://evil.example",
                "http://localhost:8080/",
                "null",
            ])
            .prop_map(str::to_owned),
            arb_string(),
        ],
    );
    let rp_id = prop::option::weighted(
        0.2,
        prop::sample::select(vec!["example.com", "localhos", "", "LOCALHOST"])
            .prop_map(str::to_owned),
    );
    let challenge = prop::option::weighted(0.2, prop::collection::vec(any::<u8>(), 0..48));
    let kind = prop::option::weighted(
        0.2,
        prop::sample::select(vec!["webauthn.get", "webauthn.create", "", "payment.get"])
            .prop_map(str::to_owned),
    );
    let flags = [
        prop::option::weighted(0.15, any::<bool>()),
        prop::option::weighted(0.15, any::<bool>()),
        prop::option::weighted(0.15, any::<bool>()),
        prop::option::weighted(0.15, any::<bool>()),
    ];
    let counter = prop::option::weighted(0.2, prop_oneof![Just(0u32), Just(1), any::<u32>()]);
    let cross_origin = prop::option::weighted(
        0.1,
        prop::option::of(prop_oneof![Just(ORIGIN.to_owned()), arb_string()]),
    );
    prop::option::weighted(
        0.5,
        (
            origin,
            rp_id,
            challenge,
            kind,
            prop::bool::weighted(0.15),
            prop::bool::weighted(0.1),
            flags,
            counter,
            prop::bool::weighted(0.1),
            cross_origin,
        )
            .prop_map(
                |(origin, rp_id, challenge, kind, corrupt, alter, flags, counter, drop, cross)| {
                    TweakSpec {
                        origin,
                        rp_id,
                        challenge,
                        client_data_type: kind,
                        corrupt_signature: corrupt,
                        alter_client_data_after_signing: alter,
                        flags,
                        counter,
                        drop_chromium_key: drop,
                        cross_origin: cross,
                    }
                },
            ),
    )
}

impl TweakSpec {
    fn tweaks(&self) -> Tweaks {
        Tweaks {
            origin: self.origin.clone(),
            rp_id: self.rp_id.clone(),
            challenge: self.challenge.clone(),
            client_data_type: self.client_data_type.clone(),
            corrupt_signature: self.corrupt_signature,
            alter_client_data_after_signing: self.alter_client_data_after_signing,
            user_present: self.flags[0],
            user_verified: self.flags[1],
            backup_eligible: self.flags[2],
            backup_state: self.flags[3],
            counter: self.counter,
            drop_chromium_key: self.drop_chromium_key,
            cross_origin: self.cross_origin.is_some(),
            top_origin: self.cross_origin.clone().flatten(),
            ..Tweaks::default()
        }
    }
}

/// A credential case: registration or assertion, signed with tweaks or not, then edited, then
/// sent in some form.
#[derive(Clone, Debug)]
struct CredentialCase {
    registration: bool,
    tweaks: Option<TweakSpec>,
    edits: Vec<CredEdit>,
    form: Form,
}

fn arb_credential_case() -> impl Strategy<Value = CredentialCase> {
    let form = prop_oneof![
        3 => Just(Form::Object),
        2 => Just(Form::Text),
        1 => prop::collection::vec(arb_edit(), 1..4).prop_map(Form::Garbled),
    ];
    (
        any::<bool>(),
        arb_tweaks(),
        prop::collection::vec(arb_cred_edit(), 0..4),
        form,
    )
        .prop_map(|(registration, tweaks, edits, form)| CredentialCase {
            registration,
            tweaks,
            edits,
            form,
        })
}

/// The case's arguments, and whether the engine must refuse them; `None` when the
/// authenticator itself refuses the tweaks.
fn credential_args(case: &CredentialCase) -> Option<(Op, Vec<u8>, bool)> {
    let w = &fixture().world;
    let signed = match (&case.tweaks, case.registration) {
        (None, true) => w.registration.clone(),
        (None, false) => w.assertion.clone(),
        (Some(spec), true) => twofold_testkit::authenticator::Authenticator::new(42)
            .register(&w.creation_options, ORIGIN, &spec.tweaks())
            .ok()?,
        (Some(spec), false) => w
            .authenticator
            .clone()
            .authenticate(&w.request_options, ORIGIN, &spec.tweaks())
            .ok()?,
    };
    let mut credential = signed.clone();
    for edit in &case.edits {
        apply_cred_edit(&mut credential, edit);
    }
    let must_fail = must_be_refused(case, &signed, &credential);
    let (op, mut args) = if case.registration {
        (
            Op::FinishPasskeyRegistration,
            json!({ "user_id": w.user, "credential": credential }),
        )
    } else {
        (
            Op::SignInPasskey,
            json!({ "pending_token": w.pending_token, "credential": credential }),
        )
    };
    let bytes = match &case.form {
        Form::Object => args.to_string().into_bytes(),
        Form::Text => {
            args["credential"] = Value::String(args["credential"].to_string());
            args.to_string().into_bytes()
        }
        Form::Garbled(edits) => {
            let text = apply_edits(args["credential"].to_string().into_bytes(), edits);
            args["credential"] = Value::String(String::from_utf8_lossy(&text).into_owned());
            args.to_string().into_bytes()
        }
    };
    Some((op, bytes, must_fail))
}

/// The cases the engine must refuse whatever else they hold: a ceremony for another origin,
/// RP ID, challenge or type, or without user presence; and an assertion whose signed parts
/// (authenticatorData, clientDataJSON, signature) were changed after signing.
fn must_be_refused(case: &CredentialCase, signed: &Value, sent: &Value) -> bool {
    let bad_tweak = case.tweaks.as_ref().is_some_and(|t| {
        let kind = if case.registration {
            "webauthn.create"
        } else {
            "webauthn.get"
        };
        // `http://localhost:8080/` is the same origin (webauthn-rs compares parsed URLs).
        t.origin
            .as_deref()
            .is_some_and(|o| !o.eq_ignore_ascii_case(ORIGIN) && o.trim_end_matches('/') != ORIGIN)
            || t.rp_id
                .as_deref()
                .is_some_and(|r| r != twofold_testkit::RP_ID)
            || t.challenge.is_some()
            || t.client_data_type.as_deref().is_some_and(|k| k != kind)
            || t.flags[0] == Some(false)
            // S3: no top origin is configured, so an assertion from a cross-origin frame is
            // refused.
            || (!case.registration
                && (t.corrupt_signature
                    || t.alter_client_data_after_signing
                    || t.cross_origin.is_some()))
    });
    let fixes_client_data = case
        .edits
        .iter()
        .any(|e| matches!(e, CredEdit::ClientData(..)));
    let resigned = ["clientDataJSON", "authenticatorData", "signature"]
        .iter()
        .any(|field| signed["response"][field] != sent["response"][field]);
    let garbled = matches!(case.form, Form::Garbled(_));
    if case.registration {
        bad_tweak && !fixes_client_data && !garbled
    } else {
        (bad_tweak || resigned) && !garbled
    }
}

#[test]
fn fuzz_mutated_credentials_from_the_software_authenticator() {
    fixture();
    fuzz(
        "credentials",
        fuzz_cases(),
        arb_credential_case(),
        |case| match credential_args(&case) {
            Some((op, bytes, must_fail)) => {
                if must_fail {
                    tally("must be refused");
                    let f = fixture();
                    let host = TestHost::with_data(f.snapshot.clone(), 99);
                    let answer = api::call(&f.engine, &host, &ctx(), op, &bytes);
                    prop_assert!(
                        answer.is_err(),
                        "{}: accepted a credential that must be refused: {}",
                        op.name(),
                        String::from_utf8_lossy(&bytes)
                    );
                }
                core_case(op, &bytes)
            }
            None => Ok(()),
        },
    );
}

// ------------------------------------------------------------------ corrupted storage

/// One way a stored record can come back wrong.
#[derive(Clone, Debug)]
enum Corruption {
    Bytes(Vec<Edit>),
    Json(Value),
    Member(String, Value),
    Remove,
}

fn arb_corruption() -> impl Strategy<Value = (Index, Corruption, Op, Value)> {
    let corruption = prop_oneof![
        2 => prop::collection::vec(arb_edit(), 1..4).prop_map(Corruption::Bytes),
        1 => arb_json().prop_map(Corruption::Json),
        3 => (arb_key(), arb_json()).prop_map(|(k, v)| Corruption::Member(k, v)),
        1 => Just(Corruption::Remove),
    ];
    (any::<Index>(), corruption, arb_op())
        .prop_flat_map(|(i, c, op)| (Just(i), Just(c), Just(op), arb_args(op)))
}

/// A record under one of the world's keys is damaged behind the engine's back: an operation
/// must still answer (`internal` allowed here: the state is impossible) and never panic.
#[test]
fn fuzz_operations_over_corrupted_storage() {
    let f = fixture();
    let keys: Vec<String> = f.snapshot.keys().cloned().collect();
    // Members of the stored documents (`core/src/docs.rs`) worth damaging.
    let member_names = [
        "v",
        "id",
        "user_id",
        "email",
        "email_hash",
        "two_factor",
        "epoch",
        "passkeys",
        "backup_codes",
        "audit_seq",
        "audit_mac",
        "credential",
        "state",
        "expires_at",
        "failures",
        "blocked_until",
        "seq",
        "mac",
        "prev_mac",
        "key_id",
        "ceremony",
    ];
    fuzz(
        "corrupted storage",
        fuzz_cases(),
        arb_corruption(),
        |(pick, corruption, op, args)| {
            let key = &keys[pick.index(keys.len())];
            let mut snapshot = f.snapshot.clone();
            let record = snapshot.get_mut(key).expect("a key of the world");
            match &corruption {
                Corruption::Bytes(edits) => {
                    // Storage values are text: damage that leaves bad UTF-8 is replaced.
                    let bytes = apply_edits(record.value.clone().into_bytes(), edits);
                    record.value = String::from_utf8_lossy(&bytes).into_owned();
                }
                Corruption::Json(v) => record.value = v.to_string(),
                Corruption::Member(name, v) => {
                    let mut doc: Value = serde_json::from_str(&record.value).expect("JSON");
                    let name = if name.len() % 2 == 0 {
                        member_names[name.len() % member_names.len()].to_owned()
                    } else {
                        name.clone()
                    };
                    doc[name] = v.clone();
                    record.value = doc.to_string();
                }
                Corruption::Remove => {
                    snapshot.remove(key);
                }
            }
            let host = TestHost::with_data(snapshot, 5);
            let answer = api::call(&f.engine, &host, &ctx(), op, args.to_string().as_bytes());
            tally(answer.as_ref().map_or_else(|e| e.code().as_str(), |_| "ok"));
            if let Ok(text) = &answer {
                prop_assert!(
                    serde_json::from_str::<Value>(text).is_ok(),
                    "not JSON: {text}"
                );
            }
            Ok(())
        },
    );
}

// ------------------------------------------------------------------ driver request lines

fn arb_line() -> BoxedStrategy<Vec<u8>> {
    let op = prop_oneof![
        3 => arb_op().prop_map(|op| op.name().to_owned()),
        1 => prop::sample::select(TestOp::ALL.to_vec()).prop_map(|op| op.name().to_owned()),
        1 => arb_string(),
    ];
    let id = prop_oneof![
        4 => (1u64..1 << 53).prop_map(Value::from),
        1 => arb_leaf(),
    ];
    let structured = (
        prop::option::weighted(0.95, id),
        prop::option::weighted(0.95, op),
        prop::option::weighted(
            0.9,
            prop_oneof![arb_op().prop_flat_map(arb_args), arb_json()],
        ),
        prop::option::weighted(
            0.5,
            prop_oneof![
                Just(json!({ "ip": "127.0.0.1", "user_agent": "fuzz" })),
                arb_json(),
            ],
        ),
        prop::option::weighted(0.05, (arb_key(), arb_json())),
    )
        .prop_map(|(id, op, args, context, extra)| {
            let mut map = Map::new();
            let mut put = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    map.insert(k.to_owned(), v);
                }
            };
            put("id", id);
            put("op", op.map(Value::String));
            put("args", args);
            put("context", context);
            if let Some((k, v)) = extra {
                map.insert(k, v);
            }
            Value::Object(map).to_string().into_bytes()
        });
    let valid = (arb_op(), 1u64..1000).prop_map(|(op, id)| {
        let args: Value = serde_json::from_slice(&valid_args(op)).expect("JSON");
        json!({ "id": id, "op": op.name(), "args": args })
            .to_string()
            .into_bytes()
    });
    let shaped = (arb_op(), 1u64..1000)
        .prop_flat_map(|(op, id)| (Just(op), Just(id), arb_args(op)))
        .prop_map(|(op, id, args)| {
            json!({ "id": id, "op": op.name(), "args": args, "context": { "ip": "::1" } })
                .to_string()
                .into_bytes()
        });
    let line = prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 1..200),
        3 => structured,
        3 => shaped,
        3 => (valid, prop::collection::vec(arb_edit(), 1..4)).prop_map(|(l, e)| apply_edits(l, &e)),
    ];
    line.prop_map(|mut l| {
        l.retain(|b| *b != b'\n' && *b != b'\r');
        // PROTOCOL.md does not say whether a blank line gets an answer; stay out of that.
        if l.iter().all(|b| b.is_ascii_whitespace() || *b < 0x20) {
            l.push(b'x');
        }
        // A random `configure` could ask for argon2 with gigabytes of memory: keep it cheap.
        let parsed: Option<Value> = serde_json::from_slice(&l).ok();
        if parsed.is_some_and(|v| v["op"] == "configure") {
            l = fast_configure_line(7);
        }
        l
    })
    .boxed()
}

fn fast_configure_line(id: u64) -> Vec<u8> {
    json!({ "id": id, "op": "configure", "args": serde_json::to_value(fast_config()).expect("JSON") })
        .to_string()
        .into_bytes()
}

/// The id a line's answer must carry (PROTOCOL.md, "Lines that are not requests").
fn expected_id(line: &[u8]) -> Value {
    let request = std::str::from_utf8(line)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(text).ok());
    match request {
        Some(Value::Object(map)) => match map.get("id") {
            Some(Value::Number(n)) => Value::Number(n.clone()),
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

/// Ids the runner uses (integers 1 to 2^53 - 1) come back exactly; other numbers come back as
/// numbers (a host may parse them as doubles), anything else as null.
fn ids_match(expected: &Value, got: &Value) -> bool {
    const PROTOCOL_MAX: u64 = (1 << 53) - 1;
    match expected.as_u64() {
        Some(n) if (1..=PROTOCOL_MAX).contains(&n) => got.as_u64() == Some(n),
        _ => match (expected.as_f64(), got.as_f64()) {
            (Some(a), Some(b)) => a == b || (a - b).abs() <= a.abs().max(b.abs()) * 1e-12,
            _ => expected.is_null() && got.is_null(),
        },
    }
}

/// One answer line: one JSON object with the right id, and exactly `ok` or a typed `error`.
fn check_answer_line(line: &[u8], answer: &[u8], lenient_json: bool) -> TestCaseResult {
    let shown = String::from_utf8_lossy(line);
    let answer: Value = serde_json::from_slice(answer)
        .map_err(|e| TestCaseError::fail(format!("answer to {shown:?} is not JSON: {e}")))?;
    let map = answer
        .as_object()
        .ok_or_else(|| TestCaseError::fail(format!("answer to {shown:?} is not an object")))?;
    let expected = expected_id(line);
    let not_json =
        std::str::from_utf8(line).is_ok() && serde_json::from_slice::<Value>(line).is_err();
    prop_assert!(
        ids_match(&expected, &answer["id"]) || (lenient_json && not_json),
        "id of the answer to {shown:?}: {} for {expected}",
        answer["id"]
    );
    tally(match (map.get("ok"), map.get("error")) {
        (Some(_), _) => "ok",
        (_, Some(e)) => e["code"].as_str().unwrap_or("?"),
        _ => "?",
    });
    match (map.get("ok"), map.get("error")) {
        (Some(ok), None) => prop_assert!(ok.is_object(), "ok is not an object: {answer}"),
        (None, Some(error)) => {
            let code = error["code"].as_str().unwrap_or_default();
            let known = ErrorCode::parse(code);
            prop_assert!(known.is_some(), "unknown code in {answer}");
            prop_assert_ne!(
                known,
                Some(ErrorCode::Internal),
                "internal answer to {:?}: {}",
                shown,
                answer
            );
            prop_assert!(error["message"].is_string(), "no message in {answer}");
            let allowed = if code == "rate_limited" { 3 } else { 2 };
            prop_assert!(
                error.as_object().is_some_and(|e| e.len() <= allowed),
                "extra members: {answer}"
            );
        }
        _ => prop_assert!(false, "neither ok nor error: {answer}"),
    }
    prop_assert_eq!(map.len(), 2, "extra members in {}", answer);
    Ok(())
}

#[test]
fn fuzz_conformance_driver_lines_in_process() {
    fixture();
    let driver = Driver::new(Randomness::Seeded).expect("the reference driver");
    let driver = std::sync::Mutex::new(driver);
    let setup = |d: &mut Driver| {
        let answer = d.handle_line(&fast_configure_line(1));
        assert!(answer.contains("\"ok\""), "{answer}");
        d.handle_line(
            json!({ "id": 2, "op": "create_account",
                    "args": { "email": "ada@example.com", "password": PASSWORD } })
            .to_string()
            .as_bytes(),
        );
    };
    setup(&mut driver.lock().expect("lock"));
    fuzz(
        "driver lines (in process)",
        fuzz_cases(),
        arb_line(),
        |line| {
            let mut d = driver.lock().unwrap_or_else(|p| p.into_inner());
            let answer = d.handle_line(&line);
            prop_assert!(!answer.contains('\n'), "an answer spans lines: {answer}");
            if expected_id(&line) != Value::Null
                && serde_json::from_slice::<Value>(&line).is_ok_and(|v| v["op"] == "reset")
            {
                setup(&mut d);
            }
            check_answer_line(&line, answer.as_bytes(), false)
        },
    );
}

/// Keeps the fuzzer off the bugs that have their own (ignored) regression tests, so it can find
/// others: `twofold-c` echoes ids of 10^15 and more rounded
/// (`c_host_echoes_every_protocol_id_exactly`); and it answers some lines that are not JSON as
/// requests (`c_host_refuses_lines_that_are_not_json`), so for it the id of an answer to a
/// line that is not JSON is not checked (see `check_answer_line`).
fn around_open_bugs(host: &str, line: Vec<u8>) -> Vec<u8> {
    if host != "c-sqlite" {
        return line;
    }
    match serde_json::from_slice::<Value>(&line) {
        Ok(Value::Object(mut map))
            if map
                .get("id")
                .and_then(Value::as_u64)
                .is_some_and(|n| n >= 1_000_000_000_000_000) =>
        {
            let id = map["id"].as_u64().unwrap_or(1) % 1_000_000_000_000_000 + 1;
            map.insert("id".into(), id.into());
            Value::Object(map).to_string().into_bytes()
        }
        _ => line,
    }
}

/// `twofold-c --driver` over a fresh database, or `None` (the test is skipped) when the C host
/// is not built.
fn c_host_driver(name: &str) -> Option<DriverProcess> {
    if !hosts::available(name, &hosts::c_host_needs()) {
        return None;
    }
    let log = hosts::scratch_dir(name).join("log");
    let args = ["--driver".to_owned()];
    Some(DriverProcess::spawn(&hosts::c_host_binary(), &args, &log))
}

/// Sends one line and reads its answer as JSON.
fn exchange(host: &mut DriverProcess, line: &[u8]) -> Value {
    assert!(host.send_line(line), "the host stopped reading");
    let answer = host.recv_line().expect("an answer");
    serde_json::from_slice(&answer).expect("JSON")
}

/// Regression: PROTOCOL.md lets the runner use any id below 2^53, and the answer must carry it.
/// `twofold-c` reads ids as doubles and cJSON prints them with 15 significant digits, so
/// 9007199254740991 comes back as `9.00719925474099e+15` (another number).
#[test]
fn c_host_echoes_every_protocol_id_exactly() {
    let Some(mut host) = c_host_driver("c-host-ids") else {
        return;
    };
    for id in [
        9_007_199_254_740_991u64,
        5_995_003_203_837_319,
        1_000_000_000_000_001,
    ] {
        let line = format!(r#"{{"id":{id},"op":"status","args":{{}}}}"#);
        let answer = exchange(&mut host, line.as_bytes());
        assert_eq!(answer["id"].as_u64(), Some(id), "answer {answer}");
    }
}

/// Regression: a line with a raw control character inside a string, a NUL or other control
/// byte between tokens, or a number with a leading zero is not JSON (RFC 8259), so PROTOCOL.md
/// has it answered with id null, as the reference driver does. `twofold-c` answers these as
/// requests: cJSON skips every byte up to 0x20 as whitespace, takes control characters inside
/// strings and reads `04` as 4.
#[test]
#[ignore = "bug: twofold-c (cJSON) still reads numbers with leading zeros such as \"id\":04 as requests"]
fn c_host_refuses_lines_that_are_not_json() {
    let Some(mut host) = c_host_driver("c-host-json") else {
        return;
    };
    let lines: [&[u8]; 4] = [
        b"{\"id\":1,\"op\":\"status\",\"args\":{\"user_id\":\"a\x0bb\"}}",
        b"\x00{\"id\":2,\"op\":\"status\",\"args\":{}}",
        b"{\"id\":3,\x0c\"op\":\"status\",\"args\":{}}",
        b"{\"id\":04,\"op\":\"status\",\"args\":{}}",
    ];
    for line in lines {
        let mut reference = Driver::new(Randomness::Seeded).expect("the reference driver");
        let expected: Value = serde_json::from_str(&reference.handle_line(line)).expect("JSON");
        assert_eq!(expected["id"], Value::Null, "the reference driver");
        let answer = exchange(&mut host, line);
        assert_eq!(answer["id"], Value::Null, "answer {answer}");
        assert_eq!(answer["error"]["code"], "invalid_input", "answer {answer}");
    }
}

/// The same lines through each host program's driver: one answer per line, in order, and the
/// host still serves afterwards.
#[test]
fn fuzz_driver_lines_of_the_host_programs() {
    fixture();
    let dir = hosts::scratch_dir("fuzz-drivers");
    let mut programs: Vec<(&str, PathBuf, Vec<String>)> = Vec::new();
    if hosts::available("fuzz driver lines of twofold-c", &hosts::c_host_needs()) {
        programs.push(("c-sqlite", hosts::c_host_binary(), vec!["--driver".into()]));
    }
    if hosts::available(
        "fuzz driver lines of twofold-server",
        &hosts::server_needs(),
    ) {
        let component = hosts::component_path().display().to_string();
        programs.push((
            "wasmtime-server",
            hosts::server_binary(),
            vec!["--driver".into(), "--component".into(), component],
        ));
    }
    for (name, program, args) in programs {
        let mut host = DriverProcess::spawn(&program, &args, &dir.join(format!("{name}.log")));
        host.send_line(&fast_configure_line(1));
        let answer = host.recv_line().expect("the host answers configure");
        assert!(String::from_utf8_lossy(&answer).contains("\"ok\""));
        let host = std::sync::Mutex::new(host);
        fuzz(
            &format!("driver lines ({name})"),
            fuzz_cases(),
            arb_line(),
            |line| {
                let line = around_open_bugs(name, line);
                let mut host = host.lock().unwrap_or_else(|p| p.into_inner());
                prop_assert!(host.send_line(&line), "{name} stopped reading");
                let answer = host.recv_line();
                let answer = answer.ok_or_else(|| {
                    TestCaseError::fail(format!(
                        "{name} exited on {:?}; see {}",
                        String::from_utf8_lossy(&line),
                        host.stderr_log.display()
                    ))
                })?;
                if serde_json::from_slice::<Value>(&line).is_ok_and(|v| v["op"] == "reset") {
                    host.send_line(&fast_configure_line(1));
                    host.recv_line();
                }
                check_answer_line(&line, &answer, name == "c-sqlite")
            },
        );
        let mut host = host.into_inner().unwrap_or_else(|p| p.into_inner());
        let status = host.request("status", json!({ "user_id": "AAAAAAAAAAAAAAAAAAAAAA" }));
        assert_eq!(status.code(), Some("not_found"), "{name} still serves");
        assert!(host.close(), "{name} exits cleanly when its input ends");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------------ the C library

#[derive(Clone, Copy, Debug)]
enum Len {
    Exact,
    /// Shorter than the buffer (still inside it).
    Short(Index),
    Zero,
}

/// The context a call passes.
#[derive(Clone, Debug)]
enum Ctx {
    /// A well-formed context with every member.
    Valid,
    /// NULL with a length.
    Null,
    /// NULL with length 0 (still NULL: a context is required).
    NullEmpty,
    /// Not UTF-8.
    BadUtf8,
    /// `{}`: nobody known.
    Empty,
    /// Any JSON: the engine checks it.
    Json(Value),
}

/// One call of an operation export.
#[derive(Clone, Debug)]
struct CCall {
    /// An index into `Op::ALL` for the operation's own export; `Op::ALL.len()` for
    /// `twofold_engine_call`.
    export: usize,
    op_name: Vec<u8>,
    args: Vec<u8>,
    len: Len,
    ctx: Ctx,
    /// NULL in place of `args`, `engine`, `out`, `out_len`.
    nulls: [bool; 4],
}

fn arb_c_call() -> impl Strategy<Value = CCall> {
    // The operation first; its own export (or `twofold_engine_call` with its name, now and
    // then another name or bytes), and arguments made for it.
    let call = arb_op().prop_flat_map(|op| {
        let args = prop_oneof![
            2 => arb_arg_bytes(op),
            4 => arb_args(op).prop_map(|a| a.to_string().into_bytes()),
            1 => Just(valid_args(op)),
        ];
        let op_name = prop_oneof![
            8 => Just(op.name().as_bytes().to_vec()),
            1 => arb_op().prop_map(|op| op.name().as_bytes().to_vec()),
            1 => prop::collection::vec(any::<u8>(), 0..30),
        ];
        let own = Op::ALL.iter().position(|o| *o == op).unwrap_or(0);
        let export = prop_oneof![3 => Just(own), 1 => Just(Op::ALL.len())];
        (export, op_name, args)
    });
    let len = prop_oneof![
        10 => Just(Len::Exact),
        2 => any::<Index>().prop_map(Len::Short),
        1 => Just(Len::Zero),
    ];
    let ctx = prop_oneof![
        16 => Just(Ctx::Valid),
        1 => Just(Ctx::Null),
        1 => Just(Ctx::NullEmpty),
        1 => Just(Ctx::BadUtf8),
        1 => Just(Ctx::Empty),
        2 => arb_json().prop_map(Ctx::Json),
    ];
    let nulls = prop::array::uniform4(prop::bool::weighted(0.03));
    (call, len, ctx, nulls).prop_map(|((export, op_name, args), len, ctx, nulls)| CCall {
        export,
        op_name,
        args,
        len,
        ctx,
        nulls,
    })
}

/// Where an out-parameter that must stay unwritten points: never dereferenced.
const SENTINEL_PTR: usize = 0x5eed;
const SENTINEL_LEN: usize = 0xdead_beef;

fn status_name(status: twofold_status) -> &'static str {
    ErrorCode::from_number(status).map_or("ok", |c| c.as_str())
}

fn status_in_range(status: twofold_status) -> bool {
    status == 0 || ErrorCode::from_number(status).is_some()
}

/// A C engine over a fresh copy of the world.
fn c_engine(seed: u64) -> CEngine<TestHost> {
    let f = fixture();
    let host = Arc::new(TestHost::with_data(f.snapshot.clone(), seed));
    CEngine::new(host, &f.config_json).expect("an engine over the world")
}

fn c_case(call: &CCall) -> TestCaseResult {
    let f = fixture();
    let engine = c_engine(3);
    let context: Vec<u8> = match &call.ctx {
        Ctx::Valid => json!({
            "ip": "203.0.113.9", "user_agent": "agent", "client_id": "", "device_token": null
        })
        .to_string()
        .into_bytes(),
        Ctx::BadUtf8 => b"{\"user_agent\": \"agent\xff\xfe\"}".to_vec(),
        Ctx::Empty | Ctx::Null | Ctx::NullEmpty => b"{}".to_vec(),
        Ctx::Json(v) => v.to_string().into_bytes(),
    };
    let (ctx_ptr, ctx_len): (*const c_char, usize) = match call.ctx {
        Ctx::Null => (ptr::null(), context.len()),
        Ctx::NullEmpty => (ptr::null(), 0),
        _ => (context.as_ptr().cast(), context.len()),
    };
    let args_len = match call.len {
        Len::Exact => call.args.len(),
        Len::Short(i) => i.index(call.args.len().max(1)).min(call.args.len()),
        Len::Zero => 0,
    };
    let [args_null, engine_null, out_null, out_len_null] = call.nulls;
    let args_ptr: *const c_char = if args_null {
        ptr::null()
    } else {
        call.args.as_ptr().cast()
    };
    let engine_ptr = if engine_null {
        ptr::null()
    } else {
        engine.raw()
    };
    let mut out: *mut c_char = SENTINEL_PTR as *mut c_char;
    let mut out_len: usize = SENTINEL_LEN;
    let out_ptr: *mut *mut c_char = if out_null { ptr::null_mut() } else { &mut out };
    let out_len_ptr: *mut usize = if out_len_null {
        ptr::null_mut()
    } else {
        &mut out_len
    };
    let status = unsafe {
        match Op::ALL.get(call.export) {
            Some(op) => export(*op)(
                engine_ptr,
                ctx_ptr,
                ctx_len,
                args_ptr,
                args_len,
                out_ptr,
                out_len_ptr,
            ),
            None => twofold_engine_call(
                engine_ptr,
                ctx_ptr,
                ctx_len,
                call.op_name.as_ptr().cast(),
                call.op_name.len(),
                args_ptr,
                args_len,
                out_ptr,
                out_len_ptr,
            ),
        }
    };
    prop_assert!(status_in_range(status), "status {}", status);
    let null_argument =
        call.nulls.contains(&true) || matches!(call.ctx, Ctx::Null | Ctx::NullEmpty | Ctx::BadUtf8);
    if null_argument {
        prop_assert_eq!(
            status,
            ErrorCode::InvalidInput.number(),
            "NULL or bad pointer argument"
        );
    }
    let after = engine.host().storage.snapshot();
    if status == 0 {
        prop_assert_ne!(out as usize, SENTINEL_PTR, "ok without a result");
        let text = unsafe { CStr::from_ptr(out) };
        prop_assert_eq!(
            text.to_bytes().len(),
            out_len,
            "out_len is the result's length"
        );
        let text = text
            .to_str()
            .map_err(|_| TestCaseError::fail("result not UTF-8"))?
            .to_owned();
        unsafe { twofold_string_free(out) };
        check_answer("C export", Ok(&text), &f.snapshot, &after)
    } else {
        prop_assert_eq!(out as usize, SENTINEL_PTR, "out written on failure");
        prop_assert_eq!(out_len, SENTINEL_LEN, "out_len written on failure");
        prop_assert_eq!(twofold_last_error_status(), status, "last error status");
        let message = twofold_last_error_message();
        prop_assert!(!message.is_null(), "NULL last error message");
        let code = ErrorCode::from_number(status).expect("a code");
        check_answer("C export", Err(code), &f.snapshot, &after)
    }
}

#[test]
fn fuzz_every_c_export_with_bytes_nulls_and_short_lengths() {
    fixture();
    fuzz("C exports", fuzz_cases(), arb_c_call(), |call| {
        c_case(&call)
    });
}

/// `twofold_engine_new` with any configuration bytes and host tables of any shape, and the
/// functions that take any status number.
#[test]
fn fuzz_engine_new_and_the_status_functions() {
    let f = fixture();
    let config = prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..200),
        2 => prop::collection::vec(arb_edit(), 1..5).prop_map(|e| apply_edits(f.config_json.clone().into_bytes(), &e)),
        2 => prop::collection::vec((arb_key(), arb_json()), 0..4).prop_map(|m| {
            Value::Object(m.into_iter().collect()).to_string().into_bytes()
        }),
    ];
    let strategy = (
        config,
        prop::bool::weighted(0.05),
        prop_oneof![4 => Just(TWOFOLD_HOST_VERSION), 1 => any::<u32>()],
        [
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.1),
        ],
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.05),
        any::<i32>(),
    );
    fuzz(
        "engine_new and status functions",
        fuzz_cases(),
        strategy,
        |(config, config_null, version, nulls, host_null, out_null, number)| {
            let callbacks = CallbackTable::new(Arc::new(TestHost::new(1)));
            let mut table = callbacks.table();
            table.version = version;
            if nulls[0] {
                table.get = None;
            }
            if nulls[1] {
                table.scan = None;
            }
            if nulls[2] {
                table.commit = None;
            }
            let mut engine: *mut twofold_engine = SENTINEL_PTR as *mut twofold_engine;
            let status = unsafe {
                twofold_engine_new(
                    if config_null {
                        ptr::null()
                    } else {
                        config.as_ptr().cast()
                    },
                    config.len(),
                    if host_null { ptr::null() } else { &table },
                    if out_null {
                        ptr::null_mut()
                    } else {
                        &mut engine
                    },
                )
            };
            prop_assert!(status_in_range(status));
            prop_assert_ne!(status, ErrorCode::Internal.number());
            tally(status_name(status));
            if status == 0 {
                prop_assert!(
                    version >= 1
                        && !nulls.contains(&true)
                        && !config_null
                        && !host_null
                        && !out_null
                );
                prop_assert_ne!(engine as usize, SENTINEL_PTR);
                unsafe { twofold_engine_free(engine) };
            } else {
                prop_assert_eq!(
                    engine as usize,
                    SENTINEL_PTR,
                    "out_engine written on failure"
                );
            }
            for text in [twofold_status_name(number), twofold_status_message(number)] {
                prop_assert!(!text.is_null());
                let text = unsafe { CStr::from_ptr(text) };
                prop_assert!(text.to_str().is_ok());
            }
            unsafe {
                twofold_string_free(ptr::null_mut());
                twofold_engine_free(ptr::null_mut());
            }
            Ok(())
        },
    );
}

fn arb_misbehave() -> impl Strategy<Value = Misbehave> {
    let nonzero = any::<i32>().prop_filter("non-zero", |s| *s != 0);
    prop_oneof![
        1 => Just(Misbehave::GetVersionZero),
        1 => Just(Misbehave::GetTwice),
        1 => Just(Misbehave::GetNullValueWithLength),
        1 => Just(Misbehave::GetNotUtf8),
        1 => Just(Misbehave::ScanReversed),
        1 => Just(Misbehave::ScanOutsidePrefix),
        1 => Just(Misbehave::ScanTooMany),
        1 => Just(Misbehave::ScanKeyNotUtf8),
        1 => Just(Misbehave::ScanValueNotUtf8),
        1 => Just(Misbehave::ScanRepeatsAfter),
        3 => prop_oneof![Just(13), Just(14), Just(15), Just(-1), Just(99), nonzero]
            .prop_map(Misbehave::Status),
    ]
}

/// A host that breaks the callback contract (version 0, a record twice, keys out of order or
/// outside the prefix, too many entries, values that are not UTF-8, statuses the contract does
/// not know, a conflict outside `commit`), from some callback on, gets `storage` or `conflict`
/// (or its operation's ordinary answer if the broken callback was never reached), and nothing
/// is written.
#[test]
fn fuzz_hosts_that_break_the_callback_contract() {
    let f = fixture();
    let steps = f.world.steps();
    let strategy = (0..steps.len(), arb_misbehave(), 1u64..12);
    fuzz(
        "misbehaving C hosts",
        fuzz_cases(),
        strategy,
        |(step, how, from)| {
            let (name, op, args) = &steps[step];
            let engine = c_engine(3).with_context("{}");
            engine.callbacks().set_fault(Fault {
                how,
                from,
                once: false,
            });
            let answer = engine.call(*op, args.to_string().as_bytes());
            let code = answer.as_ref().err().map(|(code, _)| *code);
            tally(code.map_or("ok", ErrorCode::as_str));
            prop_assert_ne!(
                code,
                Some(ErrorCode::Internal),
                "{}: {}",
                name,
                last_error()
            );
            let after = engine.host().storage.snapshot();
            if matches!(code, Some(ErrorCode::Storage | ErrorCode::Conflict)) {
                prop_assert!(
                    after == f.snapshot,
                    "{name}: {code:?} under {how:?} but storage changed"
                );
            } else if after != f.snapshot {
                invariants::check(&after)
                    .problems
                    .is_empty()
                    .then_some(())
                    .ok_or_else(|| {
                        TestCaseError::fail(format!("{name}: broken state after {how:?}"))
                    })?;
            }
            Ok(())
        },
    );
}

// ------------------------------------------------------------------ the component

/// The same shaped arguments and mutated credentials through the WIT interface: the guest never
/// traps on input (a trap is a panic inside the component).
#[test]
fn fuzz_the_component_through_its_wit_interface() {
    if !hosts::available("fuzz the component", &hosts::component_needs()) {
        return;
    }
    component::fuzz_component();
}

mod component {
    use super::*;
    use common::component::{call, instance};
    use twofold_testkit::MemoryStorage;

    pub fn fuzz_component() {
        // The component's own world (its ids, tokens and challenges), built through it.
        let (world, snapshot) = common::component::world();
        let steps = world.steps();
        let strategy = (
            0..steps.len(),
            prop::collection::vec(arb_cred_edit(), 0..3),
            arb_op(),
        )
            .prop_flat_map(|(step, edits, op)| (Just(step), Just(edits), Just(op), arb_args(op)));
        fuzz(
            "component (WIT)",
            fuzz_cases(),
            strategy,
            |(step, edits, op, shaped)| {
                // Half the cases: one of this world's own steps with its credential edited;
                // the others: shaped arguments (the core world's values, mostly unknown here).
                let (name, op, args) = if step % 2 == 0 {
                    let (name, op, mut args) = steps[step].clone();
                    if let Some(cred) = args.get_mut("credential") {
                        for edit in &edits {
                            apply_cred_edit(cred, edit);
                        }
                    }
                    (name, op, args)
                } else {
                    (op.name(), op, shaped)
                };
                let fork = Arc::new(MemoryStorage::with_data(snapshot.clone()));
                let mut tf = instance(Arc::clone(&fork));
                let answer = call(&mut tf, op, &args)
                    .map_err(|trap| TestCaseError::fail(format!("{name} trapped: {trap}")))?;
                let after = fork.snapshot();
                match &answer {
                    Ok(value) => check_answer(name, Ok(&value.to_string()), &snapshot, &after),
                    Err(e) => check_answer(name, Err(e.code), &snapshot, &after),
                }
            },
        );
    }
}
