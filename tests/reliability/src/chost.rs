//! The C library's host callback table (`struct twofold_host`) written in Rust the way a C
//! program writes it, over a [`MapHost`]: every byte crosses the C interface both ways, and a
//! fault injected in the `MapHost` comes back from the callback as `TWOFOLD_STORAGE` or
//! `TWOFOLD_CONFLICT`.

use std::ffi::{CStr, c_char, c_void};
use std::ptr;

use twofold::*;
use twofold_core::{Environment, Expect, HostError, Storage, Write};

use crate::store::MapHost;

fn status_of(error: HostError) -> i32 {
    match error {
        HostError::Conflict => twofold_status::TwofoldConflict as i32,
        _ => twofold_status::TwofoldStorage as i32,
    }
}

/// # Safety
/// `user_data` is the `MapHost` the table was made for, alive for the call.
unsafe fn host_of<'a>(user_data: *mut c_void) -> &'a MapHost {
    unsafe { &*(user_data as *const MapHost) }
}

/// # Safety
/// `ptr` points to `len` readable bytes (or is NULL with `len` 0).
unsafe fn text<'a>(ptr: *const c_char, len: usize) -> Option<&'a str> {
    if len == 0 {
        return Some("");
    }
    std::str::from_utf8(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }).ok()
}

const STORAGE: i32 = twofold_status::TwofoldStorage as i32;

unsafe extern "C" fn get(
    user_data: *mut c_void,
    key: *const c_char,
    key_len: usize,
    found: twofold_record_fn,
    sink: *mut twofold_record_sink,
) -> i32 {
    let host = unsafe { host_of(user_data) };
    let Some(key) = (unsafe { text(key, key_len) }) else {
        return STORAGE;
    };
    match host.get(key) {
        Ok(Some(r)) => unsafe { found(sink, r.value.as_ptr(), r.value.len(), r.version) },
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
    let Some(prefix) = (unsafe { text(prefix, prefix_len) }) else {
        return STORAGE;
    };
    let after = if after.is_null() {
        None
    } else {
        match unsafe { text(after, after_len) } {
            Some(a) => Some(a),
            None => return STORAGE,
        }
    };
    match host.scan(prefix, after, limit) {
        Ok(entries) => {
            for (key, r) in entries {
                let status = unsafe {
                    emit(
                        sink,
                        key.as_ptr().cast(),
                        key.len(),
                        r.value.as_ptr(),
                        r.value.len(),
                        r.version,
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
    let table = unsafe { std::slice::from_raw_parts(writes, writes_len) };
    let mut batch = Vec::with_capacity(table.len());
    for w in table {
        let Some(key) = (unsafe { text(w.key, w.key_len) }) else {
            return STORAGE;
        };
        batch.push(Write {
            key: key.to_owned(),
            value: (!w.value.is_null())
                .then(|| unsafe { std::slice::from_raw_parts(w.value, w.value_len) }.to_vec()),
            expect: match w.expected_version {
                0 => Expect::Absent,
                v => Expect::Version(v),
            },
        });
    }
    match host.commit(&batch) {
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

/// The callback table over `host` (which must outlive every engine made with it).
pub fn table(host: &MapHost) -> twofold_host {
    twofold_host {
        version: TWOFOLD_HOST_VERSION,
        user_data: host as *const MapHost as *mut c_void,
        get: Some(get),
        scan: Some(scan),
        commit: Some(commit),
        now_ms: Some(now_ms),
        fill_random: Some(fill_random),
    }
}

/// An operation export's signature.
pub type OpFn = unsafe extern "C" fn(
    *const twofold_engine,
    *const twofold_context,
    *const c_char,
    usize,
    *mut *mut c_char,
    *mut usize,
) -> twofold_status;

/// The export of each operation, by name.
pub const EXPORTS: [(&str, OpFn); 15] = [
    ("create_account", twofold_engine_create_account),
    ("sign_in", twofold_engine_sign_in),
    ("sign_in_passkey", twofold_engine_sign_in_passkey),
    ("sign_in_backup_code", twofold_engine_sign_in_backup_code),
    (
        "start_passkey_registration",
        twofold_engine_start_passkey_registration,
    ),
    (
        "finish_passkey_registration",
        twofold_engine_finish_passkey_registration,
    ),
    ("list_passkeys", twofold_engine_list_passkeys),
    ("rename_passkey", twofold_engine_rename_passkey),
    ("remove_passkey", twofold_engine_remove_passkey),
    ("enable_two_factor", twofold_engine_enable_two_factor),
    ("disable_two_factor", twofold_engine_disable_two_factor),
    (
        "regenerate_backup_codes",
        twofold_engine_regenerate_backup_codes,
    ),
    ("status", twofold_engine_status),
    ("audit_events", twofold_engine_audit_events),
    ("verify_audit_chain", twofold_engine_verify_audit_chain),
];

/// The export for `op`.
pub fn export(op: &str) -> OpFn {
    EXPORTS
        .iter()
        .find(|(name, _)| *name == op)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no export for {op}"))
}

/// The calling thread's last error message.
pub fn last_error() -> String {
    let message = twofold_last_error_message();
    if message.is_null() {
        return "<NULL message>".into();
    }
    unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned()
}

/// An engine made by `twofold_engine_new` over a [`MapHost`]; frees the engine before the host.
pub struct CEngine {
    engine: *mut twofold_engine,
    host: Box<MapHost>,
}

// The engine is documented thread-safe, and `MapHost` is `Sync`.
unsafe impl Send for CEngine {}
unsafe impl Sync for CEngine {}

impl CEngine {
    /// An engine with `config` (JSON) over `host`.
    pub fn new(host: MapHost, config: &str) -> Result<CEngine, (twofold_status, String)> {
        let host = Box::new(host);
        let table = table(&host);
        let mut engine = ptr::null_mut();
        let status = unsafe {
            twofold_engine_new(config.as_ptr().cast(), config.len(), &table, &mut engine)
        };
        if status != twofold_status::TwofoldOk {
            return Err((status, last_error()));
        }
        Ok(CEngine { engine, host })
    }

    /// The host the callbacks reach.
    pub fn host(&self) -> &MapHost {
        &self.host
    }

    /// The engine handle.
    pub fn raw(&self) -> *const twofold_engine {
        self.engine
    }

    /// Runs `op` through its own export with `args` (bytes as given): the result text, or
    /// the status and the last error message.
    pub fn call(&self, op: &str, args: &[u8]) -> Result<String, (twofold_status, String)> {
        let ip = "198.51.100.4";
        let agent = "twofold-reliability";
        let ctx = twofold_context {
            ip: ip.as_ptr().cast(),
            ip_len: ip.len(),
            user_agent: agent.as_ptr().cast(),
            user_agent_len: agent.len(),
        };
        let mut out: *mut c_char = ptr::null_mut();
        let mut out_len = 0usize;
        let status = unsafe {
            export(op)(
                self.engine,
                &ctx,
                args.as_ptr().cast(),
                args.len(),
                &mut out,
                &mut out_len,
            )
        };
        if status != twofold_status::TwofoldOk {
            return Err((status, last_error()));
        }
        let text = unsafe { CStr::from_ptr(out) }
            .to_str()
            .expect("results are UTF-8")
            .to_owned();
        assert_eq!(text.len(), out_len, "{op}: out_len is the string's length");
        unsafe { twofold_string_free(out) };
        Ok(text)
    }
}

impl Drop for CEngine {
    fn drop(&mut self) {
        unsafe { twofold_engine_free(self.engine) };
    }
}
