//! The ways an operation reaches the engine: in-process, through the C ABI, and in the
//! component under wasmtime (a reused instance, or a fresh one from the `InstancePre` per call).
//!
//! All of them run over one storage (the testkit's `MemoryStorage`), so a ceremony started by
//! one (or by the setup engines) can be finished by any other. Each target builds its own form
//! of the request first, then times only the call: in-process the typed call, through C the
//! exported function (argument parsing and result JSON included), in wasmtime the component
//! call (lifting and lowering included; for a fresh instance also `Store::new`,
//! instantiation, the engine's constructor and dropping the store).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use twofold_core::{
    BackupCodeSignIn, Config, Context, Engine, EngineError, ErrorCode, FinishRegistration, Op,
    PasskeyRegistered, PasskeySignIn, SignIn, SignInOutcome, Status, UserRef, op,
};
use twofold_server::{ComponentEngine, Instance};
use twofold_testkit::TestHost;
use twofold_testsupport::CEngine;

pub const IP: &str = "203.0.113.7";
pub const USER_AGENT: &str = "twofold-bench";

/// One request, in a form every target translates into its own.
#[derive(Clone, Debug)]
pub enum Req {
    SignIn { email: String, password: String },
    Passkey { token: String, credential: String },
    BackupCode { token: String, code: String },
    FinishRegistration { user_id: String, credential: String },
    Status { user_id: String },
}

/// What came back, enough to check it.
#[derive(Clone, Debug)]
pub enum Outcome {
    SecondFactor { token: String, options: Value },
    SignedIn,
    Registered { new_codes: usize },
    Status { passkeys: usize },
    Failed(String),
}

pub trait Target {
    fn name(&self) -> &'static str;
    /// Runs one request; answers the time of the call alone and its outcome.
    fn run(&mut self, req: &Req) -> (Duration, Outcome);
    /// Slow hashes (argon2id) computed so far, where the target can tell.
    fn slow_hashes(&self) -> Option<u64> {
        None
    }
}

macro_rules! timed {
    ($e:expr) => {{
        let started = Instant::now();
        let out = $e;
        (started.elapsed(), out)
    }};
}

/// A request as the proto types carry it: what the in-process and wasmtime targets take.
enum Typed {
    SignIn(SignIn),
    Passkey(PasskeySignIn),
    BackupCode(BackupCodeSignIn),
    Finish(FinishRegistration),
    Status(UserRef),
}

impl Typed {
    fn of(req: &Req) -> Typed {
        match req.clone() {
            Req::SignIn { email, password } => Typed::SignIn(SignIn {
                email,
                password,
                remember_me: false,
            }),
            Req::Passkey { token, credential } => Typed::Passkey(PasskeySignIn {
                pending_token: token,
                credential,
            }),
            Req::BackupCode { token, code } => Typed::BackupCode(BackupCodeSignIn {
                pending_token: token,
                code,
            }),
            Req::FinishRegistration {
                user_id,
                credential,
            } => Typed::Finish(FinishRegistration {
                user_id,
                credential,
            }),
            Req::Status { user_id } => Typed::Status(UserRef { user_id }),
        }
    }
}

fn failed(code: ErrorCode) -> Outcome {
    Outcome::Failed(code.as_str().to_owned())
}

fn signed_in(outcome: SignInOutcome) -> Outcome {
    match outcome {
        SignInOutcome::SecondFactorRequired(s) => Outcome::SecondFactor {
            token: s.pending_token,
            options: serde_json::from_str(&s.options).unwrap_or(Value::Null),
        },
        _ => Outcome::SignedIn,
    }
}

fn registered(r: PasskeyRegistered) -> Outcome {
    Outcome::Registered {
        new_codes: r.backup_codes.map_or(0, |c| c.len()),
    }
}

fn status(s: Status) -> Outcome {
    Outcome::Status {
        passkeys: s.passkeys.len(),
    }
}

// ------------------------------------------------------------------ in-process

pub struct Native {
    pub engine: Engine,
    host: Arc<TestHost>,
    ctx: Context,
}

impl Native {
    pub fn new(engine: Engine, host: Arc<TestHost>) -> Native {
        Native {
            engine,
            host,
            ctx: Context::new(IP, USER_AGENT),
        }
    }
}

fn core_failure(e: twofold_core::Error) -> Outcome {
    failed(e.code())
}

impl Target for Native {
    fn name(&self) -> &'static str {
        "in-process"
    }

    fn slow_hashes(&self) -> Option<u64> {
        Some(self.engine.slow_hash_count())
    }

    fn run(&mut self, req: &Req) -> (Duration, Outcome) {
        let host: &TestHost = &self.host;
        let (e, ctx) = (&self.engine, &self.ctx);
        let (d, out) = match Typed::of(req) {
            Typed::SignIn(r) => timed!(e.sign_in(host, ctx, r).map(signed_in)),
            Typed::Passkey(r) => timed!(
                e.sign_in_with_passkey(host, ctx, r)
                    .map(|_| Outcome::SignedIn)
            ),
            Typed::BackupCode(r) => {
                timed!(
                    e.sign_in_with_backup_code(host, ctx, r)
                        .map(|_| Outcome::SignedIn)
                )
            }
            Typed::Finish(r) => timed!(e.finish_passkey_registration(host, ctx, r).map(registered)),
            Typed::Status(r) => timed!(e.status(host, ctx, r).map(status)),
        };
        (d, out.unwrap_or_else(core_failure))
    }
}

// ------------------------------------------------------------------ C ABI

/// The C library's engine over the test-support host table: `extern "C"` callbacks on the
/// shared testkit host, as a C application's would be on its database.
pub struct CAbi {
    engine: CEngine<TestHost>,
}

impl CAbi {
    pub fn new(host: Arc<TestHost>, config_json: &str) -> CAbi {
        let engine = CEngine::new(host, config_json)
            .unwrap_or_else(|(code, message)| panic!("twofold_engine_new: {code}: {message}"));
        let ctx = json!({ "ip": IP, "user_agent": USER_AGENT }).to_string();
        CAbi {
            engine: engine.with_context(ctx),
        }
    }
}

impl Target for CAbi {
    fn name(&self) -> &'static str {
        "C ABI"
    }

    fn run(&mut self, req: &Req) -> (Duration, Outcome) {
        // The credential goes in as JSON text in a string, one of the two forms the header
        // documents; the other (the browser's object itself) is copied verbatim.
        let (op, args) = match req {
            Req::SignIn { email, password } => (
                Op::SignIn,
                json!({"email": email, "password": password, "remember_me": false}),
            ),
            Req::Passkey { token, credential } => (
                Op::SignInPasskey,
                json!({"pending_token": token, "credential": credential}),
            ),
            Req::BackupCode { token, code } => (
                Op::SignInBackupCode,
                json!({"pending_token": token, "code": code}),
            ),
            Req::FinishRegistration {
                user_id,
                credential,
            } => (
                Op::FinishPasskeyRegistration,
                json!({"user_id": user_id, "credential": credential}),
            ),
            Req::Status { user_id } => (Op::Status, json!({"user_id": user_id})),
        };
        let args = args.to_string();
        let (d, out) = self.engine.timed_call(op, args.as_bytes());
        let out = match out {
            Err((code, _)) => failed(code),
            Ok(text) => {
                let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                match op {
                    // Read as JSON: `SignInOutcome` does not deserialise from JSON (its
                    // `options` is JSON text inside an internally tagged enum).
                    Op::SignIn => match v["status"].as_str() {
                        Some("second_factor_required") => Outcome::SecondFactor {
                            token: v["pending_token"].as_str().unwrap_or_default().to_owned(),
                            options: v["options"].clone(),
                        },
                        _ => Outcome::SignedIn,
                    },
                    Op::FinishPasskeyRegistration => Outcome::Registered {
                        new_codes: v["backup_codes"].as_array().map_or(0, Vec::len),
                    },
                    Op::Status => Outcome::Status {
                        passkeys: v["passkeys"].as_array().map_or(0, Vec::len),
                    },
                    _ => Outcome::SignedIn,
                }
            }
        };
        (d, out)
    }
}

// ------------------------------------------------------------------ the component

/// The component in wasmtime, through twofold-server's embedding, over the shared testkit
/// storage.
pub struct Wasm {
    loader: ComponentEngine,
    config: Config,
    host: Arc<TestHost>,
    /// `Some`: one instance serves every call; `None`: a fresh instance per call.
    reused: Option<Instance>,
    ctx: Context,
    label: Option<&'static str>,
}

impl Wasm {
    pub fn new(
        loader: ComponentEngine,
        config: Config,
        host: Arc<TestHost>,
        reuse: bool,
    ) -> wasmtime::Result<Wasm> {
        let mut w = Wasm {
            loader,
            config,
            host,
            reused: None,
            ctx: Context::new(IP, USER_AGENT),
            label: None,
        };
        if reuse {
            w.reused = Some(w.instantiate()?);
        }
        Ok(w)
    }

    /// Names the target in the report (for component variants).
    pub fn named(mut self, label: &'static str) -> Wasm {
        self.label = Some(label);
        self
    }

    fn instantiate(&self) -> wasmtime::Result<Instance> {
        match self.loader.instantiate(self.host.clone(), &self.config)? {
            Ok(instance) => Ok(instance),
            Err(e) => wasmtime::bail!("the component refused its configuration: {}", e.message),
        }
    }

    fn call(instance: &mut Instance, ctx: &Context, req: &Typed) -> Outcome {
        fn answer<T>(r: wasmtime::Result<Result<T, EngineError>>, f: fn(T) -> Outcome) -> Outcome {
            match r {
                Ok(Ok(v)) => f(v),
                Ok(Err(e)) => failed(e.code),
                Err(trap) => Outcome::Failed(format!("trap: {trap:#}")),
            }
        }
        match req {
            Typed::SignIn(r) => answer(instance.call::<op::SignIn>(ctx, r), signed_in),
            Typed::Passkey(r) => answer(instance.call::<op::SignInPasskey>(ctx, r), |_| {
                Outcome::SignedIn
            }),
            Typed::BackupCode(r) => answer(instance.call::<op::SignInBackupCode>(ctx, r), |_| {
                Outcome::SignedIn
            }),
            Typed::Finish(r) => answer(
                instance.call::<op::FinishPasskeyRegistration>(ctx, r),
                registered,
            ),
            Typed::Status(r) => answer(instance.call::<op::Status>(ctx, r), status),
        }
    }
}

impl Target for Wasm {
    fn name(&self) -> &'static str {
        if let Some(label) = self.label {
            label
        } else if self.reused.is_some() {
            "wasm, reused instance"
        } else {
            "wasm, fresh instance"
        }
    }

    fn run(&mut self, req: &Req) -> (Duration, Outcome) {
        let req = Typed::of(req);
        let ctx = &self.ctx;
        match &mut self.reused {
            Some(instance) => timed!(Wasm::call(instance, ctx, &req)),
            None => timed!(match self.instantiate() {
                Ok(mut instance) => Wasm::call(&mut instance, ctx, &req),
                Err(e) => Outcome::Failed(format!("instantiate: {e:#}")),
            }),
        }
    }
}
