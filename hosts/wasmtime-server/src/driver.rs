//! Driver mode (`twofold-server --driver`): the conformance protocol of
//! `tests/conformance/PROTOCOL.md` on stdin and stdout, run against this host's real storage
//! through the component.
//!
//! Engine operations are dispatched by the operations table (`twofold_proto::for_each_op!`):
//! JSON arguments become the proto request with serde, the typed call runs, and the answer is
//! written with serde, so the transcripts are the core's by construction.
//!
//! The engine's clock and randomness come from WASI, so driver mode gives the instance a WASI
//! wall clock that reads a settable time (it moves only on `set_clock` / `advance_clock`) and a
//! `wasi:random` generator seeded by `seed` (0 after `reset`; from the OS at start, so a driver
//! restarted on a kept database does not hand out the ids it gave before). Driver mode is for
//! tests only: its randomness is predictable by design.

use std::convert::Infallible;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{SeedableRng, TryRng};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use twofold_proto::{AuditKey, Config, Context, EngineError, ErrorCode, MAX_JSON_BYTES, Op};
use wasmtime_wasi::{HostWallClock, WasiCtx};

use crate::store::Backend;
use crate::{ComponentEngine, Instance};

/// 2026-01-01T00:00:00Z, where `reset` puts the clock.
pub const RESET_CLOCK_MS: u64 = 1_767_225_600_000;

/// The audit key of driver mode's default configuration: the testkit's `TEST_AUDIT_KEY_HEX`
/// (id `test`), which every conformance target uses (a test checks the two are equal; the
/// server does not link the testkit).
pub const DRIVER_AUDIT_KEY_HEX: &str =
    "8f1d5c0a3b7e9f2461d8c7b5a3e9f0c2d4b6a8e0f2c4d6b8a0e2f4c6d8b0a2e4";

/// The configuration `reset` restores (PROTOCOL.md): relying party `localhost`, origin
/// `http://localhost:8080`, the test audit key, SPEC defaults for the rest.
pub fn default_config() -> Config {
    Config::new(
        "localhost",
        "twofold",
        "http://localhost:8080",
        AuditKey::new("test", DRIVER_AUDIT_KEY_HEX),
    )
}

/// The settable wall clock the instance reads through `wasi:clocks/wall-clock`.
#[derive(Clone, Debug)]
struct ManualClock(Arc<AtomicU64>);

impl HostWallClock for ManualClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        Duration::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// A reseedable generator behind `wasi:random`, shared with the driver that reseeds it.
#[derive(Clone, Debug)]
struct SeededRandom(Arc<Mutex<StdRng>>);

impl SeededRandom {
    fn new(seed: u64) -> SeededRandom {
        SeededRandom(Arc::new(Mutex::new(StdRng::seed_from_u64(seed))))
    }

    fn reseed(&self, seed: u64) {
        *self.lock() = StdRng::seed_from_u64(seed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StdRng> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl TryRng for SeededRandom {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.lock().try_next_u32()
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.lock().try_next_u64()
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.lock().try_fill_bytes(dst)
    }
}

/// The driver's state: storage, clock, randomness, configuration and the live instance.
pub struct Driver {
    loader: ComponentEngine,
    storage: Arc<dyn Backend>,
    clock: ManualClock,
    random: SeededRandom,
    seed: u64,
    default_config: Config,
    config: Config,
    instance: Option<Instance>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetClock {
    now_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceClock {
    ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seed {
    seed: u64,
}

fn invalid(message: impl Into<String>) -> EngineError {
    EngineError::new(ErrorCode::InvalidInput, message)
}

fn internal(message: impl Into<String>) -> EngineError {
    EngineError::new(ErrorCode::Internal, message)
}

/// Test-only arguments, checked like the engine's.
fn test_args<T: DeserializeOwned>(args: &Map<String, Value>) -> Result<T, EngineError> {
    T::deserialize(Value::Object(args.clone())).map_err(|e| invalid(format!("arguments: {e}")))
}

impl Driver {
    /// A driver over `storage` whose `reset` restores `default_config`. The clock starts at
    /// [`RESET_CLOCK_MS`], as after `reset`; storage is kept, so randomness starts from an OS
    /// seed rather than 0 (a restart must not repeat the ids already stored).
    pub fn new(
        loader: ComponentEngine,
        storage: Arc<dyn Backend>,
        default_config: Config,
    ) -> Driver {
        let mut bytes = [0u8; 8];
        if let Err(e) = getrandom::fill(&mut bytes) {
            eprintln!("twofold-server: no OS randomness for the driver's seed ({e}); using 0");
        }
        let seed = u64::from_le_bytes(bytes);
        Driver {
            loader,
            storage,
            clock: ManualClock(Arc::new(AtomicU64::new(RESET_CLOCK_MS))),
            random: SeededRandom::new(seed),
            seed,
            config: default_config.clone(),
            default_config,
            instance: None,
        }
    }

    /// Answers request lines from `input` on `output` until `input` ends. Empty lines are
    /// skipped.
    pub fn run(&mut self, mut input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
        let mut line = Vec::new();
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            let mut text = line.as_slice();
            text = text.strip_suffix(b"\n").unwrap_or(text);
            text = text.strip_suffix(b"\r").unwrap_or(text);
            if text.is_empty() {
                continue;
            }
            writeln!(output, "{}", self.answer(text))?;
            output.flush()?;
        }
    }

    /// The response line for one request line (both without their newline).
    pub fn answer(&mut self, line: &[u8]) -> String {
        let (id, outcome) = self.handle(line);
        match outcome {
            Ok(ok) => format!("{{\"id\":{id},\"ok\":{ok}}}"),
            Err(e) => {
                let error = serde_json::to_string(&e).unwrap_or_else(|_| {
                    r#"{"code":"internal","message":"unprintable error"}"#.into()
                });
                format!("{{\"id\":{id},\"error\":{error}}}")
            }
        }
    }

    /// The response id (the request's numeric `id`, else null) and the answer: the result
    /// object as JSON text, or an error.
    fn handle(&mut self, line: &[u8]) -> (Value, Result<String, EngineError>) {
        let request = std::str::from_utf8(line)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(text).ok());
        let Some(Value::Object(request)) = request else {
            return (
                Value::Null,
                Err(invalid("a request is one JSON object on one line")),
            );
        };
        let id = match request.get("id") {
            Some(Value::Number(n)) => Value::Number(n.clone()),
            _ => return (Value::Null, Err(invalid("a request needs a numeric id"))),
        };
        let Some(Value::String(op)) = request.get("op") else {
            return (id, Err(invalid("a request needs a string op")));
        };
        let args = match request.get("args") {
            None => Map::new(),
            Some(Value::Object(args)) => args.clone(),
            Some(_) => return (id, Err(invalid("args must be a JSON object"))),
        };
        let context = match request.get("context") {
            None | Some(Value::Null) => Ok(Context::default()),
            Some(value @ Value::Object(_)) => {
                Context::deserialize(value).map_err(|e| invalid(format!("context: {e}")))
            }
            Some(_) => Err(invalid("context must be a JSON object")),
        };
        let outcome = context.and_then(|ctx| self.dispatch(op, &args, &ctx));
        (id, outcome)
    }

    fn dispatch(
        &mut self,
        op: &str,
        args: &Map<String, Value>,
        ctx: &Context,
    ) -> Result<String, EngineError> {
        match op {
            "configure" => self.configure(args),
            "reset" => {
                let NoArgs {} = test_args(args)?;
                self.reset()
            }
            "set_clock" => {
                let SetClock { now_ms } = test_args(args)?;
                self.clock.0.store(now_ms, Ordering::SeqCst);
                Ok("{}".into())
            }
            "advance_clock" => {
                let AdvanceClock { ms } = test_args(args)?;
                let now = self.clock.0.load(Ordering::SeqCst);
                self.clock.0.store(now.saturating_add(ms), Ordering::SeqCst);
                Ok("{}".into())
            }
            "seed" => {
                let Seed { seed } = test_args(args)?;
                self.seed = seed;
                self.random.reseed(seed);
                // The instance's WASI context took its insecure seed at creation.
                self.instance = None;
                Ok(r#"{"seeded":true}"#.into())
            }
            name => match Op::parse(name) {
                Some(op) => self.engine_op(op, ctx, &Value::Object(args.clone()).to_string()),
                None => Err(invalid(format!("unknown op {name:?}"))),
            },
        }
    }

    /// `configure`: the arguments over the default configuration (absent members keep their
    /// default, the audit key included). A configuration the engine refuses leaves the old
    /// engine in place.
    fn configure(&mut self, args: &Map<String, Value>) -> Result<String, EngineError> {
        let mut merged = match serde_json::to_value(&self.default_config) {
            Ok(Value::Object(map)) => map,
            _ => return Err(internal("the default configuration does not serialise")),
        };
        merged.extend(args.iter().map(|(k, v)| (k.clone(), v.clone())));
        let config = Config::deserialize(Value::Object(merged))
            .map_err(|e| invalid(format!("config: {e}")))?;
        let instance = self.instantiate(&config)?;
        self.config = config;
        self.instance = Some(instance);
        Ok("{}".into())
    }

    fn reset(&mut self) -> Result<String, EngineError> {
        self.instance = None;
        self.storage.clear().map_err(|e| {
            EngineError::new(ErrorCode::Storage, format!("cannot empty storage: {e}"))
        })?;
        self.clock.0.store(RESET_CLOCK_MS, Ordering::SeqCst);
        self.seed = 0;
        self.random.reseed(0);
        self.config = self.default_config.clone();
        Ok("{}".into())
    }

    fn instantiate(&self, config: &Config) -> Result<Instance, EngineError> {
        let wasi = WasiCtx::builder()
            .wall_clock(self.clock.clone())
            .secure_random(self.random.clone())
            .insecure_random(self.random.clone())
            .insecure_random_seed(u128::from(self.seed))
            .build();
        match self
            .loader
            .instantiate_with(Arc::clone(&self.storage), wasi, config)
        {
            Ok(result) => result,
            Err(trap) => Err(internal(format!(
                "cannot instantiate the component: {trap:#}"
            ))),
        }
    }

    /// One engine operation by the table: arguments (JSON text) to the proto request, the
    /// typed call, the answer back to JSON text. A trap drops the instance and answers
    /// `internal`.
    fn engine_op(&mut self, op: Op, ctx: &Context, args: &str) -> Result<String, EngineError> {
        if args.len() > MAX_JSON_BYTES {
            return Err(invalid("arguments are larger than 64 KiB"));
        }
        if self.instance.is_none() {
            self.instance = Some(self.instantiate(&self.config)?);
        }
        let Some(instance) = self.instance.as_mut() else {
            return Err(internal("no instance"));
        };
        macro_rules! dispatch {
            ($($(#[doc = $doc:literal])+ $variant:ident, $method:ident, $name:literal,
               $wit:literal, $req:path => $answer:path;)+) => {
                match op {
                    $(Op::$variant => {
                        let req: $req = serde_json::from_str(args)
                            .map_err(|e| invalid(format!("arguments: {e}")))?;
                        instance
                            .call::<twofold_proto::ops::op::$variant>(ctx, &req)
                            .map(|answer| answer.map(|a| serde_json::to_string(&a)))
                    })+
                }
            };
        }
        match twofold_proto::for_each_op!(dispatch) {
            Ok(Ok(Ok(text))) => Ok(text),
            Ok(Ok(Err(e))) => Err(internal(format!("the answer does not serialise: {e}"))),
            Ok(Err(e)) => Err(e),
            Err(trap) => {
                self.instance = None;
                eprintln!("twofold-server: the component trapped; instance replaced: {trap:#}");
                Err(internal("the component trapped; see the host's log"))
            }
        }
    }
}
