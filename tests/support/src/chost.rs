//! The C host callback table in Rust, and an engine made through the C exports over it.

use std::ffi::{CStr, c_char, c_void};
use std::ptr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use twofold::*;
use twofold_core::{ErrorCode, Expect, Host, HostError, Op, Write};

/// Which callback the library made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Callback {
    /// `get`
    Get,
    /// `scan`
    Scan,
    /// `commit`
    Commit,
    /// `now_ms`
    Now,
    /// `fill_random`
    Random,
}

/// What a callback does instead of its work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehave {
    /// Any callback answers this status without doing anything: `TWOFOLD_STORAGE` and
    /// `TWOFOLD_CONFLICT` are a host's failures, anything else breaks the contract.
    Status(i32),
    /// `get` hands its record over with version 0.
    GetVersionZero,
    /// `get` hands its record over twice.
    GetTwice,
    /// `get` hands over a NULL value with a length.
    GetNullValueWithLength,
    /// `get` hands over its value with a byte that is not UTF-8.
    GetNotUtf8,
    /// `scan` hands its entries over in descending order.
    ScanReversed,
    /// `scan` adds an entry outside the prefix.
    ScanOutsidePrefix,
    /// `scan` hands over more than `limit` entries.
    ScanTooMany,
    /// `scan` adds an entry whose key is not UTF-8.
    ScanKeyNotUtf8,
    /// `scan` hands over a value that is not UTF-8.
    ScanValueNotUtf8,
    /// `scan` hands over `after` itself first.
    ScanRepeatsAfter,
}

/// Where a [`Misbehave`] applies. A misbehaviour of `get` or `scan` at another callback leaves
/// that callback working.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// What the callback does.
    pub how: Misbehave,
    /// The first callback it applies to, counted from 1 over every callback made after the
    /// fault was set.
    pub from: u64,
    /// Only at callback `from`, or at every callback from there on.
    pub once: bool,
}

#[derive(Default)]
struct Calls {
    made: u64,
    log: Vec<Callback>,
    /// The fault, with `from` made absolute.
    fault: Option<Fault>,
}

/// What the callbacks reach through `user_data`.
struct Shared {
    host: Arc<dyn Host + Send + Sync>,
    calls: Mutex<Calls>,
}

impl Shared {
    fn calls(&self) -> MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a callback; what it must do instead of its work, if anything.
    fn enter(&self, callback: Callback) -> Option<Misbehave> {
        let mut calls = self.calls();
        calls.made += 1;
        calls.log.push(callback);
        let now = calls.made;
        let fault = calls.fault?;
        let applies = if fault.once {
            now == fault.from
        } else {
            now >= fault.from
        };
        applies.then_some(fault.how)
    }
}

const OK: i32 = 0;

fn storage() -> i32 {
    ErrorCode::Storage.number()
}

/// What a C host answers for a failure of its store.
fn status_of(error: HostError) -> i32 {
    match error {
        HostError::Conflict => ErrorCode::Conflict.number(),
        HostError::Failed(_) => storage(),
    }
}

/// # Safety
/// `user_data` is the [`Shared`] of a live [`CallbackTable`].
unsafe fn shared<'a>(user_data: *mut c_void) -> &'a Shared {
    // SAFETY: every table this module makes carries its own `Shared`, kept alive by the
    // `CallbackTable` for as long as an engine may call.
    unsafe { &*(user_data as *const Shared) }
}

/// # Safety
/// `ptr` points to `len` readable bytes, or `len` is 0.
unsafe fn bytes<'a>(ptr: *const c_char, len: usize) -> &'a [u8] {
    if len == 0 || ptr.is_null() {
        return &[];
    }
    // SAFETY: the library passes buffers valid for their lengths during the callback.
    unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }
}

/// # Safety
/// As [`bytes`].
unsafe fn text<'a>(ptr: *const c_char, len: usize) -> Option<&'a str> {
    // SAFETY: as `bytes`.
    std::str::from_utf8(unsafe { bytes(ptr, len) }).ok()
}

unsafe extern "C" fn get(
    user_data: *mut c_void,
    key: *const c_char,
    key_len: usize,
    found: twofold_record_fn,
    sink: *mut twofold_record_sink,
) -> i32 {
    // SAFETY: `user_data` is this table's; the key is valid during the call.
    let (s, key) = unsafe { (shared(user_data), text(key, key_len)) };
    let fault = s.enter(Callback::Get);
    if let Some(Misbehave::Status(status)) = fault {
        return status;
    }
    let Some(key) = key else { return storage() };
    let record = match s.host.get(key) {
        Ok(Some(record)) => record,
        Ok(None) => return OK,
        Err(e) => return status_of(e),
    };
    let mut value = record.value.into_bytes();
    if fault == Some(Misbehave::GetNotUtf8) {
        value.push(0xff);
    }
    let (v, n) = (value.as_ptr(), value.len());
    // SAFETY: `sink` is the one this callback was given; `value` outlives each call.
    unsafe {
        match fault {
            Some(Misbehave::GetVersionZero) => found(sink, v, n, 0),
            Some(Misbehave::GetNullValueWithLength) => found(sink, ptr::null(), 10, 1),
            Some(Misbehave::GetTwice) => {
                found(sink, v, n, record.version);
                found(sink, v, n, record.version)
            }
            _ => found(sink, v, n, record.version),
        }
    }
}

/// Entries as a scan callback hands them over: key, value, version.
type Entries = Vec<(Vec<u8>, Vec<u8>, u64)>;

/// Breaks a correct scan's answer the way `how` says.
fn spoil(how: Misbehave, entries: &mut Entries, prefix: &str, after: Option<&str>, limit: usize) {
    let filler = || (b"{}".to_vec(), 1);
    match how {
        Misbehave::ScanReversed => entries.reverse(),
        Misbehave::ScanOutsidePrefix => {
            let (value, version) = filler();
            entries.push((b"~outside".to_vec(), value, version));
        }
        Misbehave::ScanTooMany if limit <= 64 => {
            for n in entries.len()..=limit {
                let (value, version) = filler();
                let key = format!("{prefix}\u{10FFFF}{n:04}").into_bytes();
                entries.push((key, value, version));
            }
        }
        Misbehave::ScanKeyNotUtf8 => {
            let mut key = prefix.as_bytes().to_vec();
            key.extend_from_slice(b"\xff\xfe");
            let (value, version) = filler();
            entries.push((key, value, version));
        }
        Misbehave::ScanValueNotUtf8 => match entries.first_mut() {
            Some((_, value, _)) => value.push(0xff),
            None => {
                let key = format!("{prefix}\u{10FFFF}").into_bytes();
                entries.push((key, vec![b'"', 0xff, b'"'], 1));
            }
        },
        Misbehave::ScanRepeatsAfter => {
            if let Some(after) = after {
                let (value, version) = filler();
                entries.insert(0, (after.as_bytes().to_vec(), value, version));
            }
        }
        _ => {}
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
    // SAFETY: `user_data` is this table's; the buffers are valid during the call.
    let (s, prefix, after) = unsafe {
        let after = (!after.is_null()).then(|| text(after, after_len));
        (shared(user_data), text(prefix, prefix_len), after)
    };
    let fault = s.enter(Callback::Scan);
    if let Some(Misbehave::Status(status)) = fault {
        return status;
    }
    let (Some(prefix), Some(after)) = (prefix, after.map_or(Some(None), |a| a.map(Some))) else {
        return storage();
    };
    let found = match s
        .host
        .scan(prefix, after, u32::try_from(limit).unwrap_or(u32::MAX))
    {
        Ok(found) => found,
        Err(e) => return status_of(e),
    };
    let mut entries: Entries = found
        .into_iter()
        .map(|e| {
            (
                e.key.into_bytes(),
                e.value.value.into_bytes(),
                e.value.version,
            )
        })
        .collect();
    if let Some(how) = fault {
        spoil(how, &mut entries, prefix, after, limit);
    }
    for (key, value, version) in &entries {
        // SAFETY: `sink` is the one this callback was given; the buffers outlive the call.
        let status = unsafe {
            emit(
                sink,
                key.as_ptr().cast(),
                key.len(),
                value.as_ptr(),
                value.len(),
                *version,
            )
        };
        if status != OK {
            return status;
        }
    }
    OK
}

/// Counts a callback that only works or fails: its fault's status, or what `work` did.
fn serve(s: &Shared, callback: Callback, work: impl FnOnce(&dyn Host) -> Result<(), i32>) -> i32 {
    if let Some(Misbehave::Status(status)) = s.enter(callback) {
        return status;
    }
    work(&*s.host).map_or_else(|status| status, |()| OK)
}

unsafe extern "C" fn commit(
    user_data: *mut c_void,
    writes: *const twofold_write,
    writes_len: usize,
) -> i32 {
    // SAFETY: `user_data` is this table's.
    let s = unsafe { shared(user_data) };
    serve(s, Callback::Commit, |host| {
        let table = if writes_len == 0 {
            &[][..]
        } else {
            // SAFETY: `writes` holds `writes_len` entries, valid during the call.
            unsafe { std::slice::from_raw_parts(writes, writes_len) }
        };
        let mut batch = Vec::with_capacity(table.len());
        for w in table {
            // SAFETY: keys and values are valid for their lengths during the call.
            let (key, value) =
                unsafe { (text(w.key, w.key_len), text(w.value.cast(), w.value_len)) };
            let (Some(key), Some(value)) = (key, value) else {
                return Err(storage());
            };
            batch.push(Write {
                key: key.to_owned(),
                value: (!w.value.is_null()).then(|| value.to_owned()),
                expect: match w.expected_version {
                    0 => Expect::Absent,
                    v => Expect::Version(v),
                },
            });
        }
        host.commit(&batch).map_err(status_of)
    })
}

unsafe extern "C" fn now_ms(user_data: *mut c_void, out_ms: *mut u64) -> i32 {
    // SAFETY: `user_data` is this table's.
    let s = unsafe { shared(user_data) };
    serve(s, Callback::Now, |host| {
        let ms = host.now_ms().map_err(status_of)?;
        // SAFETY: the library passes a place to write, never NULL.
        unsafe { out_ms.write(ms) };
        Ok(())
    })
}

unsafe extern "C" fn fill_random(user_data: *mut c_void, buf: *mut u8, len: usize) -> i32 {
    // SAFETY: `user_data` is this table's.
    let s = unsafe { shared(user_data) };
    serve(s, Callback::Random, |host| {
        // SAFETY: the library passes `len` writable bytes, never NULL.
        let buf = unsafe { std::slice::from_raw_parts_mut(buf, len) };
        host.fill_random(buf).map_err(status_of)
    })
}

/// A `struct twofold_host` over a Rust [`Host`], counting every callback, with a settable
/// [`Fault`].
pub struct CallbackTable {
    shared: Box<Shared>,
}

impl CallbackTable {
    /// A table whose callbacks reach `host`.
    pub fn new(host: Arc<dyn Host + Send + Sync>) -> CallbackTable {
        CallbackTable {
            shared: Box::new(Shared {
                host,
                calls: Mutex::default(),
            }),
        }
    }

    /// The C table: every callback set, `user_data` this table's state (valid while `self`
    /// lives).
    pub fn table(&self) -> twofold_host {
        twofold_host {
            version: TWOFOLD_HOST_VERSION,
            user_data: &*self.shared as *const Shared as *mut c_void,
            get: Some(get),
            scan: Some(scan),
            commit: Some(commit),
            now_ms: Some(now_ms),
            fill_random: Some(fill_random),
        }
    }

    /// From now on, misbehave as `fault` says (`from` counts from the next callback, 1).
    pub fn set_fault(&self, fault: Fault) {
        let mut calls = self.shared.calls();
        let from = calls.made + fault.from;
        calls.fault = Some(Fault { from, ..fault });
    }

    /// Works correctly again.
    pub fn clear_fault(&self) {
        self.shared.calls().fault = None;
    }

    /// Callbacks made so far.
    pub fn calls(&self) -> u64 {
        self.shared.calls().made
    }

    /// The callbacks made so far, in order.
    pub fn log(&self) -> Vec<Callback> {
        self.shared.calls().log.clone()
    }
}

/// The signature every operation export shares.
pub type OpFn = unsafe extern "C" fn(
    *const twofold_engine,
    *const c_char,
    usize,
    *const c_char,
    usize,
    *mut *mut c_char,
    *mut usize,
) -> twofold_status;

/// The export of each operation.
pub fn export(op: Op) -> OpFn {
    match op {
        Op::CreateAccount => twofold_engine_create_account,
        Op::SignIn => twofold_engine_sign_in,
        Op::SignInPasskey => twofold_engine_sign_in_passkey,
        Op::SignInBackupCode => twofold_engine_sign_in_backup_code,
        Op::StartPasskeyRegistration => twofold_engine_start_passkey_registration,
        Op::FinishPasskeyRegistration => twofold_engine_finish_passkey_registration,
        Op::ListPasskeys => twofold_engine_list_passkeys,
        Op::RenamePasskey => twofold_engine_rename_passkey,
        Op::RemovePasskey => twofold_engine_remove_passkey,
        Op::EnableTwoFactor => twofold_engine_enable_two_factor,
        Op::DisableTwoFactor => twofold_engine_disable_two_factor,
        Op::RegenerateBackupCodes => twofold_engine_regenerate_backup_codes,
        Op::ChangePassword => twofold_engine_change_password,
        Op::ResetPassword => twofold_engine_reset_password,
        Op::Status => twofold_engine_status,
        Op::AuditEvents => twofold_engine_audit_events,
        Op::AuditAnchor => twofold_engine_audit_anchor,
        Op::VerifyAuditChain => twofold_engine_verify_audit_chain,
        Op::PruneAuditEvents => twofold_engine_prune_audit_events,
    }
}

/// The calling thread's last error message.
pub fn last_error() -> String {
    let message = twofold_last_error_message();
    if message.is_null() {
        return "<NULL message>".into();
    }
    // SAFETY: the library returns a NUL-terminated string valid until the next failing call.
    unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned()
}

/// The context every [`CEngine`] call passes unless told otherwise.
pub const CONTEXT: &str = r#"{"ip": "198.51.100.4", "user_agent": "twofold-tests"}"#;

/// What an operation answered through C: its JSON, or its code and the last error message.
pub type Answer = Result<String, (ErrorCode, String)>;

/// An engine made by `twofold_engine_new` over a [`CallbackTable`] on `H`.
pub struct CEngine<H: Host + Send + Sync + 'static> {
    engine: *mut twofold_engine,
    callbacks: CallbackTable,
    host: Arc<H>,
    context: String,
}

// SAFETY: the engine is documented thread-safe, and the host the callbacks reach is Send + Sync.
unsafe impl<H: Host + Send + Sync> Send for CEngine<H> {}
// SAFETY: as above.
unsafe impl<H: Host + Send + Sync> Sync for CEngine<H> {}

impl<H: Host + Send + Sync + 'static> CEngine<H> {
    /// An engine with `config_json` over `host`, or the status and message
    /// `twofold_engine_new` answered.
    pub fn new(host: Arc<H>, config_json: &str) -> Result<CEngine<H>, (ErrorCode, String)> {
        let callbacks = CallbackTable::new(host.clone());
        let table = callbacks.table();
        let mut engine = ptr::null_mut();
        // SAFETY: valid buffers; the table is copied and its `user_data` outlives the engine.
        let status = unsafe {
            twofold_engine_new(
                config_json.as_ptr().cast(),
                config_json.len(),
                &table,
                &mut engine,
            )
        };
        if status != OK {
            return Err((code_of(status), last_error()));
        }
        Ok(CEngine {
            engine,
            callbacks,
            host,
            context: CONTEXT.to_owned(),
        })
    }

    /// The same engine, calling with this context JSON.
    pub fn with_context(mut self, context: impl Into<String>) -> CEngine<H> {
        self.context = context.into();
        self
    }

    /// The host the callbacks reach.
    pub fn host(&self) -> &H {
        &self.host
    }

    /// The callback table, to count callbacks or set a fault.
    pub fn callbacks(&self) -> &CallbackTable {
        &self.callbacks
    }

    /// The engine handle, for calls made by hand.
    pub fn raw(&self) -> *const twofold_engine {
        self.engine
    }

    /// Runs `op` through its own export with `args` (bytes as given).
    pub fn call(&self, op: Op, args: &[u8]) -> Answer {
        self.timed_call(op, args).1
    }

    /// Runs the operation named `name` through `twofold_engine_call`.
    pub fn call_by_name(&self, name: &[u8], args: &[u8]) -> Answer {
        let (engine, op) = (self.engine, name);
        // SAFETY: valid engine and buffers; the out-parameters are `invoke`'s.
        let call = |c, cl, a, al, o, ol| unsafe {
            twofold_engine_call(engine, c, cl, op.as_ptr().cast(), op.len(), a, al, o, ol)
        };
        self.invoke(args, call).1
    }

    /// [`call`](CEngine::call), with the time the export alone took.
    pub fn timed_call(&self, op: Op, args: &[u8]) -> (Duration, Answer) {
        let engine = self.engine;
        // SAFETY: valid engine and buffers; the out-parameters are `invoke`'s.
        let call = |c, cl, a, al, o, ol| unsafe { export(op)(engine, c, cl, a, al, o, ol) };
        self.invoke(args, call)
    }

    /// Runs one export with this engine's context and `args`, and reads its answer, checking
    /// the out-parameter rules on the way.
    fn invoke(
        &self,
        args: &[u8],
        f: impl FnOnce(
            *const c_char,
            usize,
            *const c_char,
            usize,
            *mut *mut c_char,
            *mut usize,
        ) -> twofold_status,
    ) -> (Duration, Answer) {
        let ctx = self.context.as_bytes();
        let mut out: *mut c_char = ptr::null_mut();
        let mut out_len = usize::MAX;
        let started = Instant::now();
        let status = f(
            ctx.as_ptr().cast(),
            ctx.len(),
            args.as_ptr().cast(),
            args.len(),
            &mut out,
            &mut out_len,
        );
        let took = started.elapsed();
        if status != OK {
            assert!(out.is_null(), "out written on failure");
            assert_eq!(out_len, usize::MAX, "out_len written on failure");
            return (took, Err((code_of(status), last_error())));
        }
        assert!(!out.is_null(), "no answer on success");
        // SAFETY: on success `out` is a NUL-terminated string the library made.
        let text = unsafe { CStr::from_ptr(out) }
            .to_str()
            .expect("answers are UTF-8")
            .to_owned();
        // SAFETY: made by the library, freed once.
        unsafe { twofold_string_free(out) };
        assert_eq!(text.len(), out_len, "out_len is the answer's length");
        (took, Ok(text))
    }
}

impl<H: Host + Send + Sync + 'static> Drop for CEngine<H> {
    fn drop(&mut self) {
        // SAFETY: made by twofold_engine_new, freed once, before the table it calls.
        unsafe { twofold_engine_free(self.engine) };
    }
}

/// The code of a failure status (a status outside the table is a library bug).
fn code_of(status: twofold_status) -> ErrorCode {
    ErrorCode::from_number(status)
        .unwrap_or_else(|| panic!("the library answered status {status}, not a code"))
}
