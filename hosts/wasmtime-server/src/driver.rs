//! Driver mode (`twofold-server --driver`): the conformance protocol of
//! `tests/conformance/PROTOCOL.md` on stdin and stdout, run against this host's real storage
//! (an SQLite file, or an in-memory SQLite database) through the component.
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
use serde_json::{Value, json};
use wasmtime_wasi::{HostWallClock, WasiCtx};

use crate::json::{self, host_error, request};
use crate::sqlite::SqliteStorage;
use crate::{ComponentEngine, Instance, wit};

/// 2026-01-01T00:00:00Z, where `reset` puts the clock.
pub const RESET_CLOCK_MS: u64 = 1_767_225_600_000;

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
    storage: SqliteStorage,
    clock: ManualClock,
    random: SeededRandom,
    seed: u64,
    default_config: wit::Config,
    config: wit::Config,
    instance: Option<Instance>,
}

/// The parts of a request line the driver reads.
#[derive(Deserialize)]
struct Line {
    op: String,
    #[serde(default)]
    args: Option<Value>,
    #[serde(default)]
    context: Option<Value>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ContextArgs {
    ip: String,
    user_agent: String,
}

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

fn invalid(message: impl Into<String>) -> wit::Error {
    host_error(wit::ErrorCode::InvalidInput, message)
}

impl Driver {
    /// A driver over `storage` whose `reset` restores `default_config`. The clock starts at
    /// [`RESET_CLOCK_MS`], as after `reset`; storage is kept, so randomness starts from an OS
    /// seed rather than 0 (a restart must not repeat the ids already stored).
    pub fn new(
        loader: ComponentEngine,
        storage: SqliteStorage,
        default_config: wit::Config,
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

    /// Answers request lines from `input` on `output` until `input` ends.
    /// A line that is not UTF-8 is answered `invalid_input` with a null id, like any other
    /// line that is not a request.
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
            let answer = match std::str::from_utf8(text) {
                Ok(text) => self.answer(text),
                Err(_) => error_line(Value::Null, &invalid("the line is not valid UTF-8")),
            };
            writeln!(output, "{answer}")?;
            output.flush()?;
        }
    }

    /// The response line for one request line.
    pub fn answer(&mut self, line: &str) -> Value {
        let parsed: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => return error_line(Value::Null, &invalid(format!("not JSON: {e}"))),
        };
        let id = match parsed.get("id") {
            Some(id) if id.is_number() => id.clone(),
            _ => {
                return error_line(
                    Value::Null,
                    &invalid("a request is a JSON object with a numeric id"),
                );
            }
        };
        let line: Line = match serde_json::from_value(parsed) {
            Ok(line) => line,
            Err(e) => return error_line(id, &invalid(format!("request: {e}"))),
        };
        match self.dispatch(&line) {
            Ok(ok) => json!({ "id": id, "ok": ok }),
            Err(e) => error_line(id, &e),
        }
    }

    fn dispatch(&mut self, line: &Line) -> Result<Value, wit::Error> {
        let args = line.args.clone().unwrap_or_else(|| json!({}));
        match line.op.as_str() {
            "configure" => self.configure(&args),
            "reset" => self.reset(),
            "set_clock" => {
                let a: SetClock = json::args(&args)?;
                self.clock.0.store(a.now_ms, Ordering::SeqCst);
                Ok(json!({}))
            }
            "advance_clock" => {
                let a: AdvanceClock = json::args(&args)?;
                let now = self.clock.0.load(Ordering::SeqCst);
                self.clock
                    .0
                    .store(now.saturating_add(a.ms), Ordering::SeqCst);
                Ok(json!({}))
            }
            "seed" => {
                let a: Seed = json::args(&args)?;
                self.seed = a.seed;
                self.random.reseed(a.seed);
                // The instance's WASI context took its insecure seed at creation.
                self.instance = None;
                Ok(json!({ "seeded": true }))
            }
            op => {
                let ctx = context(line.context.as_ref())?;
                self.engine_op(op, &ctx, &args)
            }
        }
    }

    fn configure(&mut self, args: &Value) -> Result<Value, wit::Error> {
        let config: request::Config = json::args(args)?;
        let config = config.over(&self.default_config);
        // Build the new engine first: a refused configuration leaves the old one in place.
        let instance = self.instantiate(&config)?;
        self.config = config;
        self.instance = Some(instance);
        Ok(json!({}))
    }

    fn reset(&mut self) -> Result<Value, wit::Error> {
        self.instance = None;
        self.storage.clear().map_err(|e| {
            host_error(
                wit::ErrorCode::Storage,
                format!("cannot empty storage: {e}"),
            )
        })?;
        self.clock.0.store(RESET_CLOCK_MS, Ordering::SeqCst);
        self.seed = 0;
        self.random.reseed(0);
        self.config = self.default_config.clone();
        Ok(json!({}))
    }

    fn instantiate(&self, config: &wit::Config) -> Result<Instance, wit::Error> {
        let wasi = WasiCtx::builder()
            .wall_clock(self.clock.clone())
            .secure_random(self.random.clone())
            .insecure_random(self.random.clone())
            .insecure_random_seed(u128::from(self.seed))
            .build();
        match self
            .loader
            .instantiate_with(self.storage.clone(), wasi, config)
        {
            Ok(result) => result,
            Err(trap) => Err(host_error(
                wit::ErrorCode::Internal,
                format!("cannot instantiate the component: {trap:#}"),
            )),
        }
    }

    fn instance(&mut self) -> Result<&mut Instance, wit::Error> {
        if self.instance.is_none() {
            self.instance = Some(self.instantiate(&self.config)?);
        }
        self.instance
            .as_mut()
            .ok_or_else(|| host_error(wit::ErrorCode::Internal, "no instance"))
    }

    /// Runs one engine call; a trap drops the instance and answers `internal`.
    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut Instance) -> wasmtime::Result<Result<T, wit::Error>>,
    ) -> Result<T, wit::Error> {
        match f(self.instance()?) {
            Ok(answer) => answer,
            Err(trap) => {
                self.instance = None;
                eprintln!("twofold-server: the component trapped; instance replaced: {trap:#}");
                Err(host_error(
                    wit::ErrorCode::Internal,
                    "the component trapped; see the host's log",
                ))
            }
        }
    }

    fn engine_op(
        &mut self,
        op: &str,
        ctx: &wit::Context,
        args: &Value,
    ) -> Result<Value, wit::Error> {
        match op {
            "create_account" => {
                let req: wit::CreateAccount = json::args::<request::CreateAccount>(args)?.into();
                self.call(|tf| tf.create_account(ctx, &req))
                    .map(|a| json::account_created(&a))
            }
            "sign_in" => {
                let req: wit::SignIn = json::args::<request::SignIn>(args)?.into();
                json::sign_in_outcome(&self.call(|tf| tf.sign_in(ctx, &req))?)
            }
            "sign_in_passkey" => {
                let req: wit::PasskeySignIn = json::args::<request::PasskeySignIn>(args)?.into();
                self.call(|tf| tf.sign_in_with_passkey(ctx, &req))
                    .map(|s| json::signed_in(&s))
            }
            "sign_in_backup_code" => {
                let req: wit::BackupCodeSignIn =
                    json::args::<request::BackupCodeSignIn>(args)?.into();
                self.call(|tf| tf.sign_in_with_backup_code(ctx, &req))
                    .map(|s| json::signed_in(&s))
            }
            "start_passkey_registration" => {
                let req: wit::StartRegistration =
                    json::args::<request::StartRegistration>(args)?.into();
                json::registration_started(
                    &self.call(|tf| tf.start_passkey_registration(ctx, &req))?,
                )
            }
            "finish_passkey_registration" => {
                let req: wit::FinishRegistration =
                    json::args::<request::FinishRegistration>(args)?.into();
                self.call(|tf| tf.finish_passkey_registration(ctx, &req))
                    .map(|r| json::passkey_registered(&r))
            }
            "list_passkeys" => {
                let req: wit::UserRef = json::args::<request::UserRef>(args)?.into();
                self.call(|tf| tf.list_passkeys(ctx, &req))
                    .map(|list| json::passkey_list(&list))
            }
            "rename_passkey" => {
                let req: wit::RenamePasskey = json::args::<request::RenamePasskey>(args)?.into();
                self.call(|tf| tf.rename_passkey(ctx, &req))
                    .map(|p| json::passkey(&p))
            }
            "remove_passkey" => {
                let req: wit::RemovePasskey = json::args::<request::RemovePasskey>(args)?.into();
                self.call(|tf| tf.remove_passkey(ctx, &req))
                    .map(|s| json::status(&s))
            }
            "enable_two_factor" => {
                let req: wit::PasswordConfirmed =
                    json::args::<request::PasswordConfirmed>(args)?.into();
                self.call(|tf| tf.enable_two_factor(ctx, &req))
                    .map(|c| json::backup_codes(&c))
            }
            "disable_two_factor" => {
                let req: wit::PasswordConfirmed =
                    json::args::<request::PasswordConfirmed>(args)?.into();
                self.call(|tf| tf.disable_two_factor(ctx, &req))
                    .map(|s| json::status(&s))
            }
            "regenerate_backup_codes" => {
                let req: wit::PasswordConfirmed =
                    json::args::<request::PasswordConfirmed>(args)?.into();
                self.call(|tf| tf.regenerate_backup_codes(ctx, &req))
                    .map(|c| json::backup_codes(&c))
            }
            "status" => {
                let req: wit::UserRef = json::args::<request::UserRef>(args)?.into();
                self.call(|tf| tf.status(ctx, &req))
                    .map(|s| json::status(&s))
            }
            "audit_events" => {
                let req: wit::AuditQuery = json::args::<request::AuditQuery>(args)?.into();
                json::audit_page(&self.call(|tf| tf.audit_events(ctx, &req))?)
            }
            "verify_audit_chain" => {
                let req: wit::UserRef = json::args::<request::UserRef>(args)?.into();
                self.call(|tf| tf.verify_audit_chain(ctx, &req))
                    .map(|r| json::chain_report(&r))
            }
            other => Err(invalid(format!("unknown op {other:?}"))),
        }
    }
}

/// The request's `context`; absent means empty IP and user agent.
fn context(value: Option<&Value>) -> Result<wit::Context, wit::Error> {
    let Some(value) = value else {
        return Ok(wit::Context {
            ip: String::new(),
            user_agent: String::new(),
        });
    };
    if !value.is_object() {
        return Err(invalid("context must be a JSON object"));
    }
    let c = ContextArgs::deserialize(value).map_err(|e| invalid(format!("context: {e}")))?;
    Ok(wit::Context {
        ip: c.ip,
        user_agent: c.user_agent,
    })
}

fn error_line(id: Value, e: &wit::Error) -> Value {
    json!({ "id": id, "error": json::error(e) })
}
