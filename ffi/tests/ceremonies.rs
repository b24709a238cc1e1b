//! Full WebAuthn ceremonies through the exported C functions, which C alone cannot drive (it
//! has no authenticator). The storage is the testkit's, reached through a `twofold_host`
//! callback table, so every byte crosses the C interface both ways as it would from C.

use std::ffi::{CStr, c_char, c_void};
use std::ptr;
use std::sync::{Arc, Barrier};

use serde_json::{Value, json};
use twofold::*;
use twofold_core::{Environment, ErrorCode, Expect, HostError, Storage, Write};
use twofold_testkit::authenticator::{Authenticator, Tweaks};
use twofold_testkit::{ORIGIN, TestHost, fast_config};

// ---------------------------------------------------------------- the host, as C would write it

unsafe fn host_of<'a>(user_data: *mut c_void) -> &'a TestHost {
    unsafe { &*(user_data as *const TestHost) }
}

unsafe fn text<'a>(ptr: *const c_char, len: usize) -> &'a str {
    std::str::from_utf8(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }).unwrap()
}

fn status_of(error: HostError) -> i32 {
    match error {
        HostError::Conflict => ErrorCode::Conflict.number(),
        _ => ErrorCode::Storage.number(),
    }
}

unsafe extern "C" fn get(
    user_data: *mut c_void,
    key: *const c_char,
    key_len: usize,
    found: twofold_record_fn,
    sink: *mut twofold_record_sink,
) -> i32 {
    let host = unsafe { host_of(user_data) };
    match host.get(unsafe { text(key, key_len) }) {
        Ok(Some(record)) => unsafe {
            found(
                sink,
                record.value.as_ptr(),
                record.value.len(),
                record.version,
            )
        },
        Ok(None) => 0,
        Err(e) => status_of(e),
    }
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn scan(
    user_data: *mut c_void,
    prefix: *const c_char,
    prefix_len: usize,
    after: *const c_char,
    after_len: usize,
    limit: usize,
    emit: twofold_entry_fn,
    sink: *mut twofold_entry_sink,
) -> i32 {
    let host = unsafe { host_of(user_data) };
    let after = (!after.is_null()).then(|| unsafe { text(after, after_len) });
    let limit = u32::try_from(limit).unwrap_or(u32::MAX);
    match host.scan(unsafe { text(prefix, prefix_len) }, after, limit) {
        Ok(entries) => {
            for entry in entries {
                let status = unsafe {
                    emit(
                        sink,
                        entry.key.as_ptr().cast(),
                        entry.key.len(),
                        entry.value.value.as_ptr(),
                        entry.value.value.len(),
                        entry.value.version,
                    )
                };
                if status != 0 {
                    return status;
                }
            }
            0
        }
        Err(e) => status_of(e),
    }
}

unsafe extern "C" fn commit(
    user_data: *mut c_void,
    writes: *const twofold_write,
    writes_len: usize,
) -> i32 {
    let host = unsafe { host_of(user_data) };
    let writes: Vec<Write> = unsafe { std::slice::from_raw_parts(writes, writes_len) }
        .iter()
        .map(|w| Write {
            key: unsafe { text(w.key, w.key_len) }.to_owned(),
            value: (!w.value.is_null()).then(|| {
                String::from_utf8(
                    unsafe { std::slice::from_raw_parts(w.value, w.value_len) }.to_vec(),
                )
                .unwrap()
            }),
            expect: match w.expected_version {
                0 => Expect::Absent,
                v => Expect::Version(v),
            },
        })
        .collect();
    match host.commit(&writes) {
        Ok(()) => 0,
        Err(e) => status_of(e),
    }
}

unsafe extern "C" fn now_ms(user_data: *mut c_void, out_ms: *mut u64) -> i32 {
    match unsafe { host_of(user_data) }.now_ms() {
        Ok(ms) => {
            unsafe { out_ms.write(ms) };
            0
        }
        Err(e) => status_of(e),
    }
}

unsafe extern "C" fn fill_random(user_data: *mut c_void, buf: *mut u8, len: usize) -> i32 {
    let buf = unsafe { std::slice::from_raw_parts_mut(buf, len) };
    match unsafe { host_of(user_data) }.fill_random(buf) {
        Ok(()) => 0,
        Err(e) => status_of(e),
    }
}

type OpFn = unsafe extern "C" fn(
    *const twofold_engine,
    *const c_char,
    usize,
    *const c_char,
    usize,
    *mut *mut c_char,
    *mut usize,
) -> twofold_status;

/// An engine over a testkit host; frees the engine before the host.
struct Fixture {
    engine: *mut twofold_engine,
    /// Reached only through the callbacks' `user_data`; must outlive `engine`.
    _host: Box<TestHost>,
}

// The engine is documented thread-safe; the testkit host is Sync.
unsafe impl Send for Fixture {}
unsafe impl Sync for Fixture {}

impl Fixture {
    fn new(seed: u64) -> Fixture {
        let host = Box::new(TestHost::new(seed));
        let table = twofold_host {
            version: TWOFOLD_HOST_VERSION,
            user_data: &*host as *const TestHost as *mut c_void,
            get: Some(get),
            scan: Some(scan),
            commit: Some(commit),
            now_ms: Some(now_ms),
            fill_random: Some(fill_random),
        };
        let config = serde_json::to_string(&fast_config()).unwrap();
        let mut engine = ptr::null_mut();
        let status = unsafe {
            twofold_engine_new(config.as_ptr().cast(), config.len(), &table, &mut engine)
        };
        assert_eq!(status, 0, "{}", last_error());
        Fixture {
            engine,
            _host: host,
        }
    }

    /// Runs an operation through its own export (`twofold_engine_<op>`).
    fn call(&self, op: &str, args: Value) -> Result<Value, (ErrorCode, String)> {
        let export: OpFn = match op {
            "create_account" => twofold_engine_create_account,
            "sign_in" => twofold_engine_sign_in,
            "sign_in_passkey" => twofold_engine_sign_in_passkey,
            "sign_in_backup_code" => twofold_engine_sign_in_backup_code,
            "start_passkey_registration" => twofold_engine_start_passkey_registration,
            "finish_passkey_registration" => twofold_engine_finish_passkey_registration,
            "list_passkeys" => twofold_engine_list_passkeys,
            "rename_passkey" => twofold_engine_rename_passkey,
            "remove_passkey" => twofold_engine_remove_passkey,
            "enable_two_factor" => twofold_engine_enable_two_factor,
            "disable_two_factor" => twofold_engine_disable_two_factor,
            "regenerate_backup_codes" => twofold_engine_regenerate_backup_codes,
            "change_password" => twofold_engine_change_password,
            "reset_password" => twofold_engine_reset_password,
            "status" => twofold_engine_status,
            "audit_events" => twofold_engine_audit_events,
            "audit_anchor" => twofold_engine_audit_anchor,
            "verify_audit_chain" => twofold_engine_verify_audit_chain,
            "prune_audit_events" => twofold_engine_prune_audit_events,
            _ => panic!("no export for {op}"),
        };
        self.invoke(&args.to_string(), |ctx, args, out, out_len| unsafe {
            export(
                self.engine,
                ctx.as_ptr().cast(),
                ctx.len(),
                args.as_ptr().cast(),
                args.len(),
                out,
                out_len,
            )
        })
    }

    /// Runs an operation by name through `twofold_engine_call`.
    fn call_by_name(&self, op: &str, args: Value) -> Result<Value, (ErrorCode, String)> {
        self.invoke(&args.to_string(), |ctx, args, out, out_len| unsafe {
            twofold_engine_call(
                self.engine,
                ctx.as_ptr().cast(),
                ctx.len(),
                op.as_ptr().cast(),
                op.len(),
                args.as_ptr().cast(),
                args.len(),
                out,
                out_len,
            )
        })
    }

    fn invoke(
        &self,
        args: &str,
        f: impl FnOnce(&str, &str, *mut *mut c_char, *mut usize) -> twofold_status,
    ) -> Result<Value, (ErrorCode, String)> {
        let ctx = r#"{"ip": "198.51.100.4", "user_agent": "ceremonies.rs"}"#;
        let mut out: *mut c_char = ptr::null_mut();
        let mut out_len = 0usize;
        let status = f(ctx, args, &mut out, &mut out_len);
        if status != 0 {
            assert!(out.is_null(), "out written on failure");
            return Err((ErrorCode::from_number(status).unwrap(), last_error()));
        }
        let text = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_owned();
        assert_eq!(text.len(), out_len);
        unsafe { twofold_string_free(out) };
        Ok(serde_json::from_str(&text).unwrap())
    }

    fn ok(&self, op: &str, args: Value) -> Value {
        self.call(op, args)
            .unwrap_or_else(|(status, message)| panic!("{op}: {status:?}: {message}"))
    }

    fn fails(&self, op: &str, args: Value) -> ErrorCode {
        match self.call(op, args) {
            Ok(v) => panic!("{op} succeeded: {v}"),
            Err((status, _)) => status,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        unsafe { twofold_engine_free(self.engine) };
    }
}

fn last_error() -> String {
    unsafe { CStr::from_ptr(twofold_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

const PASSWORD: &str = "correct horse battery";

/// An account with a registered passkey (so 2FA on) and its backup codes.
fn enrolled(fx: &Fixture, email: &str, authenticator: &mut Authenticator) -> (String, Vec<String>) {
    let account = fx.ok(
        "create_account",
        json!({"email": email, "password": PASSWORD}),
    );
    let user_id = account["user_id"].as_str().unwrap().to_owned();
    let started = fx.ok(
        "start_passkey_registration",
        json!({"user_id": user_id, "name": "Laptop", "password": PASSWORD}),
    );
    let credential = authenticator
        .register(&started["options"], ORIGIN, &Tweaks::default())
        .unwrap();
    let finished = fx.ok(
        "finish_passkey_registration",
        json!({"user_id": user_id, "credential": credential}),
    );
    assert_eq!(finished["two_factor_enabled"], true);
    assert_eq!(finished["passkey"]["name"], "Laptop");
    let codes: Vec<String> = serde_json::from_value(finished["backup_codes"].clone()).unwrap();
    assert_eq!(codes.len(), 10);
    assert_eq!(finished["backup_codes_remaining"], 10);
    (user_id, codes)
}

fn pending(fx: &Fixture, email: &str) -> Value {
    let step_one = fx.ok(
        "sign_in",
        json!({"email": email, "password": PASSWORD, "remember_me": true}),
    );
    assert_eq!(step_one["status"], "second_factor_required");
    step_one
}

#[test]
fn passkey_and_backup_code_ceremonies_through_the_c_interface() {
    let fx = Fixture::new(1);
    let mut authenticator = Authenticator::new(7);
    let (user_id, codes) = enrolled(&fx, "ada@example.com", &mut authenticator);

    // Sign in with the passkey: the credential as JSON text this time.
    let step_one = pending(&fx, "ada@example.com");
    let token = step_one["pending_token"].as_str().unwrap();
    let assertion = authenticator
        .authenticate(&step_one["options"], ORIGIN, &Tweaks::default())
        .unwrap();
    let signed_in = fx.ok(
        "sign_in_passkey",
        json!({"pending_token": token, "credential": assertion.to_string()}),
    );
    assert_eq!(signed_in["user_id"], user_id.as_str());
    assert_eq!(signed_in["remember_me"], false);
    // The token is spent.
    let again = json!({"pending_token": token, "credential": assertion});
    assert_eq!(fx.fails("sign_in_passkey", again), ErrorCode::Expired);

    // A corrupted signature is refused.
    let step_one = pending(&fx, "ada@example.com");
    let tweaks = Tweaks {
        corrupt_signature: true,
        ..Tweaks::default()
    };
    let forged = authenticator
        .authenticate(&step_one["options"], ORIGIN, &tweaks)
        .unwrap();
    let args = json!({"pending_token": step_one["pending_token"], "credential": forged});
    assert_eq!(fx.fails("sign_in_passkey", args), ErrorCode::InvalidPasskey);

    // A backup code, typed sloppily, works once.
    let sloppy = codes[0].to_uppercase().replace('-', " ");
    let args = json!({"pending_token": step_one["pending_token"], "code": sloppy});
    let signed_in = fx.ok("sign_in_backup_code", args);
    assert_eq!(signed_in["user_id"], user_id.as_str());
    assert_eq!(signed_in["backup_codes_remaining"], 9);
    assert_eq!(signed_in["backup_codes_running_low"], false);
    let step_one = pending(&fx, "ada@example.com");
    let args = json!({"pending_token": step_one["pending_token"], "code": codes[0]});
    assert_eq!(
        fx.fails("sign_in_backup_code", args),
        ErrorCode::InvalidBackupCode
    );

    // Passkey management and the two-factor switches.
    let listed = fx.ok("list_passkeys", json!({"user_id": user_id}));
    let passkey_id = listed["passkeys"][0]["id"].as_str().unwrap().to_owned();
    assert!(listed["passkeys"][0]["last_used_at"].is_u64());
    let renamed = fx.ok(
        "rename_passkey",
        json!({"user_id": user_id, "passkey_id": passkey_id, "name": "  Phone "}),
    );
    assert_eq!(renamed["name"], "Phone");
    let confirm = json!({"user_id": user_id, "password": PASSWORD});
    let fresh = fx.ok("regenerate_backup_codes", confirm.clone());
    assert_eq!(fresh["codes"].as_array().unwrap().len(), 10);
    assert_eq!(
        fx.fails("enable_two_factor", confirm.clone()),
        ErrorCode::AlreadyEnabled
    );
    let status = fx.ok("disable_two_factor", confirm.clone());
    assert_eq!(status["two_factor_enabled"], false);
    assert_eq!(status["passkeys"].as_array().unwrap().len(), 1);
    let codes = fx.ok("enable_two_factor", confirm.clone());
    assert_eq!(codes["codes"].as_array().unwrap().len(), 10);
    let status = fx.ok(
        "remove_passkey",
        json!({"user_id": user_id, "passkey_id": passkey_id, "password": PASSWORD}),
    );
    assert_eq!(status["two_factor_enabled"], false);
    assert_eq!(status["backup_codes_remaining"], 0);

    // Every step is in the audit chain, and the chain is intact.
    let events = fx.ok("audit_events", json!({"user_id": user_id, "limit": 200}));
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "passkey_registered",
        "passkey_ok",
        "passkey_failed",
        "backup_code_ok",
        "backup_code_failed",
        "passkey_renamed",
        "two_factor_disabled",
        "passkey_removed",
    ] {
        assert!(kinds.contains(&kind), "no {kind} event in {kinds:?}");
    }
    assert_eq!(events["events"][0]["ip"], "198.51.100.4");
    let chain = fx.ok("verify_audit_chain", json!({"user_id": user_id}));
    assert_eq!(chain["intact"], true, "{chain}");

    // The generic entry point answers exactly as the operation's own export.
    let by_name = fx.call_by_name("status", json!({"user_id": user_id}));
    assert_eq!(
        by_name.unwrap(),
        fx.ok("status", json!({"user_id": user_id}))
    );
}

#[test]
fn a_registration_ceremony_is_single_use() {
    let fx = Fixture::new(2);
    let mut authenticator = Authenticator::new(8);
    let account = fx.ok(
        "create_account",
        json!({"email": "bo@example.com", "password": PASSWORD}),
    );
    let user_id = account["user_id"].as_str().unwrap();
    let args = json!({"user_id": user_id, "name": "Key", "password": PASSWORD});
    let started = fx.ok("start_passkey_registration", args);
    let credential = authenticator
        .register(&started["options"], ORIGIN, &Tweaks::default())
        .unwrap();
    let finish = json!({"user_id": user_id, "credential": credential});
    fx.ok("finish_passkey_registration", finish.clone());
    assert_eq!(
        fx.fails("finish_passkey_registration", finish),
        ErrorCode::Expired
    );
}

#[test]
fn one_backup_code_raced_from_many_threads_signs_in_once() {
    const THREADS: usize = 4;
    let fx = Arc::new(Fixture::new(3));
    let mut authenticator = Authenticator::new(9);
    let (_, codes) = enrolled(&fx, "cy@example.com", &mut authenticator);
    let tokens: Vec<Value> = (0..THREADS)
        .map(|_| pending(&fx, "cy@example.com")["pending_token"].clone())
        .collect();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let (fx, barrier, code) = (Arc::clone(&fx), Arc::clone(&barrier), codes[0].clone());
            std::thread::spawn(move || {
                barrier.wait();
                fx.call_by_name(
                    "sign_in_backup_code",
                    json!({"pending_token": token, "code": code}),
                )
                .map_err(|(status, _)| status)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    for result in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(*result, ErrorCode::InvalidBackupCode);
    }
}
