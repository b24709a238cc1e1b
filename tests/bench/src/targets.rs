//! The ways an operation reaches the engine: in-process, through the C ABI, and in the
//! component under wasmtime (a reused instance, or a fresh one from the `InstancePre` per call).
//!
//! All of them run over one storage (the testkit's `MemoryStorage`), so a ceremony started by
//! one (or by the setup engines) can be finished by any other. Each target builds its own form
//! of the request first, then times only the call: in-process the typed call, through C the
//! exported function (argument parsing and result JSON included), in wasmtime the component
//! call (lifting and lowering included; for a fresh instance also `Store::new`,
//! instantiation, the engine's constructor and dropping the store).

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use twofold as ffi;
use twofold_core::{
    BackupCodeSignIn, Context, Engine, Expect, FinishRegistration, HostError, PasskeySignIn,
    SignIn, SignInOutcome, Storage, UserRef, Write,
};
use twofold_server::bindings::twofold::engine::storage as wstorage;
use twofold_server::{ComponentEngine, Instance, wit};
use twofold_testkit::TestHost;

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
    Outcome::Failed(e.code().as_str().to_owned())
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
        match req {
            Req::SignIn { email, password } => {
                let r = SignIn {
                    email: email.clone(),
                    password: password.clone(),
                    remember_me: false,
                };
                let (d, out) = timed!(e.sign_in(host, ctx, r));
                let out = match out {
                    Ok(SignInOutcome::SecondFactorRequired(s)) => Outcome::SecondFactor {
                        token: s.pending_token,
                        options: s.options,
                    },
                    Ok(_) => Outcome::SignedIn,
                    Err(e) => core_failure(e),
                };
                (d, out)
            }
            Req::Passkey { token, credential } => {
                let r = PasskeySignIn {
                    pending_token: token.clone(),
                    credential: credential.clone(),
                };
                let (d, out) = timed!(e.sign_in_with_passkey(host, ctx, r));
                (d, out.map_or_else(core_failure, |_| Outcome::SignedIn))
            }
            Req::BackupCode { token, code } => {
                let r = BackupCodeSignIn {
                    pending_token: token.clone(),
                    code: code.clone(),
                };
                let (d, out) = timed!(e.sign_in_with_backup_code(host, ctx, r));
                (d, out.map_or_else(core_failure, |_| Outcome::SignedIn))
            }
            Req::FinishRegistration {
                user_id,
                credential,
            } => {
                let r = FinishRegistration {
                    user_id: user_id.clone(),
                    credential: credential.clone(),
                };
                let (d, out) = timed!(e.finish_passkey_registration(host, ctx, r));
                let out = out.map_or_else(core_failure, |r| Outcome::Registered {
                    new_codes: r.backup_codes.map_or(0, |c| c.len()),
                });
                (d, out)
            }
            Req::Status { user_id } => {
                let r = UserRef {
                    user_id: user_id.clone(),
                };
                let (d, out) = timed!(e.status(host, ctx, r));
                let out = out.map_or_else(core_failure, |s| Outcome::Status {
                    passkeys: s.passkeys.len(),
                });
                (d, out)
            }
        }
    }
}

// ------------------------------------------------------------------ C ABI

/// The C library's engine over a host table whose callbacks are `extern "C"` functions on the
/// shared testkit host, as a C application's would be on its database.
pub struct CAbi {
    engine: *mut ffi::twofold_engine,
    // Keeps `user_data` alive for as long as the engine.
    _host: Arc<TestHost>,
}

type OpFn = unsafe extern "C" fn(
    *const ffi::twofold_engine,
    *const ffi::twofold_context,
    *const c_char,
    usize,
    *mut *mut c_char,
    *mut usize,
) -> ffi::twofold_status;

const OK: i32 = 0;
const CONFLICT: i32 = 13;
const STORAGE: i32 = 14;

/// # Safety
/// `user_data` is the `TestHost` of a live [`CAbi`].
unsafe fn host_of<'a>(user_data: *mut c_void) -> &'a TestHost {
    // SAFETY: the engine's user_data is the Arc<TestHost> the CAbi keeps alive.
    unsafe { &*(user_data as *const TestHost) }
}

/// # Safety
/// `ptr` points to `len` bytes of UTF-8 (the library's keys are).
unsafe fn text<'a>(ptr: *const c_char, len: usize) -> &'a str {
    // SAFETY: per the header, keys are `len` bytes of UTF-8 valid during the callback.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    std::str::from_utf8(bytes).unwrap_or("")
}

unsafe extern "C" fn c_get(
    user_data: *mut c_void,
    key: *const c_char,
    key_len: usize,
    found: ffi::twofold_record_fn,
    sink: *mut ffi::twofold_record_sink,
) -> i32 {
    // SAFETY: see the helpers.
    let (host, key) = unsafe { (host_of(user_data), text(key, key_len)) };
    match host.storage.get(key) {
        // SAFETY: the sink is the one this callback was given; the value outlives the call.
        Ok(Some(r)) => unsafe { found(sink, r.value.as_ptr(), r.value.len(), r.version) },
        Ok(None) => OK,
        Err(_) => STORAGE,
    }
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn c_scan(
    user_data: *mut c_void,
    prefix: *const c_char,
    prefix_len: usize,
    after: *const c_char,
    after_len: usize,
    limit: usize,
    emit: ffi::twofold_entry_fn,
    sink: *mut ffi::twofold_entry_sink,
) -> i32 {
    // SAFETY: see the helpers.
    let (host, prefix) = unsafe { (host_of(user_data), text(prefix, prefix_len)) };
    // SAFETY: as above; NULL means no lower bound.
    let after = (!after.is_null()).then(|| unsafe { text(after, after_len) });
    let Ok(entries) = host.storage.scan(prefix, after, limit) else {
        return STORAGE;
    };
    for (k, r) in &entries {
        // SAFETY: the sink is the one this callback was given; the buffers outlive the call.
        let status = unsafe {
            emit(
                sink,
                k.as_ptr().cast(),
                k.len(),
                r.value.as_ptr(),
                r.value.len(),
                r.version,
            )
        };
        if status != OK {
            return status;
        }
    }
    OK
}

unsafe extern "C" fn c_commit(
    user_data: *mut c_void,
    writes: *const ffi::twofold_write,
    writes_len: usize,
) -> i32 {
    // SAFETY: see the helpers; `writes` holds `writes_len` entries valid during the call.
    let (host, writes) = unsafe {
        (
            host_of(user_data),
            std::slice::from_raw_parts(writes, writes_len),
        )
    };
    let batch: Vec<Write> = writes
        .iter()
        .map(|w| Write {
            // SAFETY: keys and values are valid for their lengths during the call.
            key: unsafe { text(w.key, w.key_len) }.to_owned(),
            value: (!w.value.is_null())
                .then(|| unsafe { std::slice::from_raw_parts(w.value, w.value_len) }.to_vec()),
            expect: match w.expected_version {
                0 => Expect::Absent,
                v => Expect::Version(v),
            },
        })
        .collect();
    match host.storage.commit(&batch) {
        Ok(()) => OK,
        Err(HostError::Conflict) => CONFLICT,
        Err(_) => STORAGE,
    }
}

unsafe extern "C" fn c_now_ms(user_data: *mut c_void, out_ms: *mut u64) -> i32 {
    // SAFETY: see the helpers; `out_ms` is never NULL.
    unsafe { *out_ms = host_of(user_data).clock.now_ms() };
    OK
}

unsafe extern "C" fn c_fill_random(user_data: *mut c_void, buf: *mut u8, len: usize) -> i32 {
    // SAFETY: see the helpers; `buf` holds `len` writable bytes.
    unsafe {
        host_of(user_data)
            .rng
            .fill(std::slice::from_raw_parts_mut(buf, len))
    };
    OK
}

impl CAbi {
    pub fn new(host: Arc<TestHost>, config_json: &str) -> CAbi {
        let table = ffi::twofold_host {
            version: ffi::TWOFOLD_HOST_VERSION,
            user_data: Arc::as_ptr(&host) as *mut c_void,
            get: Some(c_get),
            scan: Some(c_scan),
            commit: Some(c_commit),
            now_ms: Some(c_now_ms),
            fill_random: Some(c_fill_random),
        };
        let mut engine = std::ptr::null_mut();
        // SAFETY: valid pointers and lengths; the table is copied by the library.
        let status = unsafe {
            ffi::twofold_engine_new(
                config_json.as_ptr().cast(),
                config_json.len(),
                &table,
                &mut engine,
            )
        };
        assert_eq!(
            status as i32, OK,
            "twofold_engine_new refused the configuration"
        );
        CAbi {
            engine,
            _host: host,
        }
    }

    /// Calls one export; the time covers the call alone (not freeing the result).
    fn call(&self, op: OpFn, args: &[u8]) -> (Duration, Result<Value, String>) {
        let ctx = ffi::twofold_context {
            ip: IP.as_ptr().cast(),
            ip_len: IP.len(),
            user_agent: USER_AGENT.as_ptr().cast(),
            user_agent_len: USER_AGENT.len(),
        };
        let mut out: *mut c_char = std::ptr::null_mut();
        let mut out_len = 0usize;
        // SAFETY: valid engine, context and buffers; out-parameters are ours.
        let (d, status) = timed!(unsafe {
            op(
                self.engine,
                &ctx,
                args.as_ptr().cast(),
                args.len(),
                &mut out,
                &mut out_len,
            )
        });
        if status as i32 != OK {
            // SAFETY: a static string, never NULL.
            let name = unsafe { std::ffi::CStr::from_ptr(ffi::twofold_status_name(status as i32)) };
            return (d, Err(name.to_string_lossy().into_owned()));
        }
        // SAFETY: on success `out` holds `out_len` bytes, freed with twofold_string_free.
        let value = unsafe {
            let bytes = std::slice::from_raw_parts(out.cast::<u8>(), out_len);
            let v = serde_json::from_slice(bytes).unwrap_or(Value::Null);
            ffi::twofold_string_free(out);
            v
        };
        (d, Ok(value))
    }
}

impl Drop for CAbi {
    fn drop(&mut self) {
        // SAFETY: made by twofold_engine_new, freed once.
        unsafe { ffi::twofold_engine_free(self.engine) };
    }
}

fn c_args(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

impl Target for CAbi {
    fn name(&self) -> &'static str {
        "C ABI"
    }

    fn run(&mut self, req: &Req) -> (Duration, Outcome) {
        // The credential goes in as JSON text in a string, one of the two forms the header
        // documents; the other (the browser's object itself) costs a re-serialization in
        // `twofold_core::api` (see the README section).
        let (op, args): (OpFn, Value) = match req {
            Req::SignIn { email, password } => (
                ffi::twofold_engine_sign_in,
                json!({"email": email, "password": password, "remember_me": false}),
            ),
            Req::Passkey { token, credential } => (
                ffi::twofold_engine_sign_in_passkey,
                json!({"pending_token": token, "credential": credential}),
            ),
            Req::BackupCode { token, code } => (
                ffi::twofold_engine_sign_in_backup_code,
                json!({"pending_token": token, "code": code}),
            ),
            Req::FinishRegistration {
                user_id,
                credential,
            } => (
                ffi::twofold_engine_finish_passkey_registration,
                json!({"user_id": user_id, "credential": credential}),
            ),
            Req::Status { user_id } => (ffi::twofold_engine_status, json!({"user_id": user_id})),
        };
        let (d, out) = self.call(op, &c_args(&args));
        let out = match (req, out) {
            (_, Err(code)) => Outcome::Failed(code),
            (Req::SignIn { .. }, Ok(v)) => match v["status"].as_str() {
                Some("second_factor_required") => Outcome::SecondFactor {
                    token: v["pending_token"].as_str().unwrap_or_default().to_owned(),
                    options: v["options"].clone(),
                },
                _ => Outcome::SignedIn,
            },
            (Req::FinishRegistration { .. }, Ok(v)) => Outcome::Registered {
                new_codes: v["backup_codes"].as_array().map_or(0, Vec::len),
            },
            (Req::Status { .. }, Ok(v)) => Outcome::Status {
                passkeys: v["passkeys"].as_array().map_or(0, Vec::len),
            },
            (_, Ok(_)) => Outcome::SignedIn,
        };
        (d, out)
    }
}

// ------------------------------------------------------------------ the component

/// `InvalidCredentials` -> `invalid_credentials`, so every target names errors alike.
fn snake_case(name: &str) -> String {
    let name = name.rsplit("::").next().unwrap_or(name);
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The shared testkit storage behind the component's `storage` import.
pub struct SharedStore(pub Arc<TestHost>);

fn wit_storage_error(e: HostError) -> wstorage::StorageError {
    match e {
        HostError::Conflict => wstorage::StorageError::Conflict,
        other => wstorage::StorageError::Failed(other.to_string()),
    }
}

impl wstorage::Host for SharedStore {
    fn get(&mut self, key: String) -> Result<Option<wstorage::Versioned>, wstorage::StorageError> {
        let found = self.0.storage.get(&key).map_err(wit_storage_error)?;
        Ok(found.map(|r| wstorage::Versioned {
            value: r.value,
            version: r.version,
        }))
    }

    fn scan(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<wstorage::Entry>, wstorage::StorageError> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let found = self
            .0
            .storage
            .scan(&prefix, after.as_deref(), limit)
            .map_err(wit_storage_error)?;
        Ok(found
            .into_iter()
            .map(|(key, r)| wstorage::Entry {
                key,
                value: wstorage::Versioned {
                    value: r.value,
                    version: r.version,
                },
            })
            .collect())
    }

    fn commit(&mut self, writes: Vec<wstorage::Write>) -> Result<(), wstorage::StorageError> {
        let batch: Vec<Write> = writes
            .into_iter()
            .map(|w| Write {
                key: w.key,
                value: w.value,
                expect: match w.expect {
                    wstorage::Expect::Absent => Expect::Absent,
                    wstorage::Expect::Version(v) => Expect::Version(v),
                },
            })
            .collect();
        self.0.storage.commit(&batch).map_err(wit_storage_error)
    }
}

/// The component in wasmtime, through twofold-server's library.
pub struct Wasm {
    loader: ComponentEngine,
    config: wit::Config,
    host: Arc<TestHost>,
    /// `Some`: one instance serves every call; `None`: a fresh instance per call.
    reused: Option<Instance>,
    ctx: wit::Context,
    label: Option<&'static str>,
}

enum WitReq {
    SignIn(wit::SignIn),
    Passkey(wit::PasskeySignIn),
    BackupCode(wit::BackupCodeSignIn),
    Finish(wit::FinishRegistration),
    Status(wit::UserRef),
}

impl Wasm {
    pub fn new(
        loader: ComponentEngine,
        config: wit::Config,
        host: Arc<TestHost>,
        reuse: bool,
    ) -> wasmtime::Result<Wasm> {
        let mut w = Wasm {
            loader,
            config,
            host,
            reused: None,
            ctx: wit::Context {
                ip: IP.into(),
                user_agent: USER_AGENT.into(),
            },
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
        match self
            .loader
            .instantiate(SharedStore(self.host.clone()), &self.config)?
        {
            Ok(instance) => Ok(instance),
            Err(e) => wasmtime::bail!("the component refused its configuration: {}", e.message),
        }
    }

    fn call(instance: &mut Instance, ctx: &wit::Context, req: &WitReq) -> Outcome {
        fn failed(e: wit::Error) -> Outcome {
            Outcome::Failed(snake_case(&format!("{:?}", e.code)))
        }
        let trap = |e: wasmtime::Error| Outcome::Failed(format!("trap: {e:#}"));
        match req {
            WitReq::SignIn(r) => match instance.sign_in(ctx, r) {
                Ok(Ok(wit::SignInOutcome::SecondFactorRequired(s))) => Outcome::SecondFactor {
                    token: s.pending_token,
                    options: serde_json::from_str(&s.options).unwrap_or(Value::Null),
                },
                Ok(Ok(wit::SignInOutcome::SignedIn(_))) => Outcome::SignedIn,
                Ok(Err(e)) => failed(e),
                Err(e) => trap(e),
            },
            WitReq::Passkey(r) => match instance.sign_in_with_passkey(ctx, r) {
                Ok(Ok(_)) => Outcome::SignedIn,
                Ok(Err(e)) => failed(e),
                Err(e) => trap(e),
            },
            WitReq::BackupCode(r) => match instance.sign_in_with_backup_code(ctx, r) {
                Ok(Ok(_)) => Outcome::SignedIn,
                Ok(Err(e)) => failed(e),
                Err(e) => trap(e),
            },
            WitReq::Finish(r) => match instance.finish_passkey_registration(ctx, r) {
                Ok(Ok(r)) => Outcome::Registered {
                    new_codes: r.backup_codes.map_or(0, |c| c.len()),
                },
                Ok(Err(e)) => failed(e),
                Err(e) => trap(e),
            },
            WitReq::Status(r) => match instance.status(ctx, r) {
                Ok(Ok(s)) => Outcome::Status {
                    passkeys: s.passkeys.len(),
                },
                Ok(Err(e)) => failed(e),
                Err(e) => trap(e),
            },
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
        let req = match req.clone() {
            Req::SignIn { email, password } => WitReq::SignIn(wit::SignIn {
                email,
                password,
                remember_me: false,
            }),
            Req::Passkey { token, credential } => WitReq::Passkey(wit::PasskeySignIn {
                pending_token: token,
                credential,
            }),
            Req::BackupCode { token, code } => WitReq::BackupCode(wit::BackupCodeSignIn {
                pending_token: token,
                code,
            }),
            Req::FinishRegistration {
                user_id,
                credential,
            } => WitReq::Finish(wit::FinishRegistration {
                user_id,
                credential,
            }),
            Req::Status { user_id } => WitReq::Status(wit::UserRef { user_id }),
        };
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
