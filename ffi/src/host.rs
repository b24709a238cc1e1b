//! The host callback table (`struct twofold_host`) and its adapter to the core's `Storage` and
//! `Environment` traits.
//!
//! Bytes go from C to the library only through sinks that copy them during the callback, so
//! nothing is ever freed by the other side's allocator and no C buffer outlives its call. The
//! contract is `twofold_core::Storage`'s; values cross as bytes (what a C database hands out)
//! and the library refuses any that are not UTF-8, as it refuses every other breach of the
//! contract: a `storage` failure, nothing written.

use std::ffi::{c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{SystemTime, UNIX_EPOCH};

use twofold_core::{Entry, Environment, ErrorCode, Expect, HostError, Storage, Versioned, Write};

use crate::status::{Failure, OK, status_of};

/// The version of `struct twofold_host` this header describes. Set `twofold_host.version` to
/// it; fields are only ever appended, and a later library accepts every earlier version.
pub const TWOFOLD_HOST_VERSION: u32 = 1;

/// Where a `get` callback hands over the record it found. Opaque; valid only during the
/// callback it was passed to.
pub struct twofold_record_sink {
    record: Option<Versioned>,
    problem: Option<String>,
}

/// Where a `scan` callback hands over the entries it found. Opaque; valid only during the
/// callback it was passed to.
pub struct twofold_entry_sink {
    prefix: Vec<u8>,
    after: Option<Vec<u8>>,
    limit: usize,
    entries: Vec<Entry>,
    problem: Option<String>,
}

/// Copies the record a `get` callback found into the library.
///
/// Call it at most once per `get`, during the callback, with the sink the callback was given.
/// `value` points to `value_len` bytes of UTF-8, exactly the bytes `commit` stored (NULL is
/// allowed when `value_len` is 0); the library copies them before returning, so they only need
/// to stay valid during this call. `version` is the record's version (1 or more).
///
/// Returns `TWOFOLD_OK`, or `TWOFOLD_STORAGE` when the record breaks the storage contract (a
/// second record, version 0, NULL value with a length, a value that is not UTF-8): the
/// callback should then stop and return that status. The `get` fails with `TWOFOLD_STORAGE`
/// either way.
pub type twofold_record_fn = unsafe extern "C" fn(
    sink: *mut twofold_record_sink,
    value: *const u8,
    value_len: usize,
    version: u64,
) -> i32;

/// Copies one entry a `scan` callback found into the library.
///
/// Call it once per entry, in ascending byte order of key, during the callback, with the sink
/// the callback was given. `key` points to `key_len` bytes of UTF-8 (not NUL-terminated) and
/// `value` to `value_len` bytes of UTF-8 (NULL is allowed when `value_len` is 0); the library
/// copies both before returning. `version` is the record's version (1 or more).
///
/// Returns `TWOFOLD_OK`, or `TWOFOLD_STORAGE` when the entry breaks the storage contract (key
/// not under the prefix, not after `after`, not ascending, key or value not UTF-8, more than
/// `limit` entries, version 0): the callback should then stop and return that status. The
/// `scan` fails with `TWOFOLD_STORAGE` either way.
pub type twofold_entry_fn = unsafe extern "C" fn(
    sink: *mut twofold_entry_sink,
    key: *const c_char,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    version: u64,
) -> i32;

/// One conditional write of a `commit` batch. Borrowed: every pointer is valid only during
/// the `commit` callback; copy what you keep.
#[repr(C)]
pub struct twofold_write {
    /// The key: `key_len` bytes of UTF-8, not NUL-terminated, never NULL.
    pub key: *const c_char,
    /// Length of `key` in bytes (1 to 512).
    pub key_len: usize,
    /// The bytes to store (UTF-8 JSON text, not NUL-terminated: store them as they are, in a
    /// `TEXT` or a `BLOB` column), or NULL to delete the key. Never NULL for a put, even when
    /// `value_len` is 0.
    pub value: *const u8,
    /// Length of `value` in bytes; 0 for a delete.
    pub value_len: usize,
    /// The version the key must have for the batch to apply, or 0 when the key must be
    /// absent. After a put the key's version is `expected_version + 1` (so 1 for a new key).
    pub expected_version: u64,
}

/// Storage, clock and randomness, supplied by the application.
///
/// Fill every field, set `version` to `TWOFOLD_HOST_VERSION`, and pass it to
/// `twofold_engine_new`, which copies the table: the struct itself may be freed after that
/// call, but `user_data` and the functions must stay valid until `twofold_engine_free`.
///
/// Every callback receives `user_data` first and returns a status as a plain `int32_t`, one
/// of exactly these:
/// - `TWOFOLD_OK` (0): success;
/// - `TWOFOLD_CONFLICT`, from `commit` only: an expectation failed and nothing was applied.
///   The engine re-reads and retries a bounded number of times, then the operation answers
///   `TWOFOLD_CONFLICT`;
/// - `TWOFOLD_STORAGE`: anything else went wrong (I/O, a lost connection, a full disk, an
///   exception in your language).
///
/// Any other value, from any callback, breaks the contract and is treated as a failure:
/// `TWOFOLD_CONFLICT` from `get`, `scan`, `now_ms` or `fill_random`, and any number that is not
/// one of the three above (`-1`, `99`, `TWOFOLD_INTERNAL`, ...). A failure ends the operation
/// with `TWOFOLD_STORAGE` and nothing written. Callbacks cannot pass a message; log details on
/// your side.
///
/// When your language raises: a callback must never unwind (a C++ exception, a `longjmp`, a Rust
/// panic) into the library. Catch everything inside the callback and return
/// `TWOFOLD_STORAGE`. Bindings must wrap every callback so: a Python `ctypes` callback that
/// raises returns an undefined value to C, often 0 (`TWOFOLD_OK`), which would read as "key
/// absent" or "written"; the same holds for cffi, JNA and others. Wrap each callback in a
/// catch-all that logs and returns `TWOFOLD_STORAGE`.
///
/// Callbacks run only during a call into the engine, on the thread that made it, and never
/// after that call returns. Because one engine may be used from many threads at once, the
/// callbacks may be called concurrently and must be thread-safe. They must not call back into
/// the same engine. Every buffer the library passes is borrowed for the duration of the
/// callback; keys are not NUL-terminated.
///
/// The storage contract (the same for every twofold host):
/// - keys are UTF-8, 1 to 512 bytes, compared byte-wise (`memcmp`, shorter first on a tie);
///   values are UTF-8 JSON documents of at most 1 MiB: give back exactly the bytes `commit`
///   stored (a value that is not UTF-8 fails the operation with `TWOFOLD_STORAGE`);
/// - `get` finds one key;
/// - `scan` lists, in ascending key order, at most `limit` keys that start with the prefix and,
///   when `after` is not NULL, are strictly greater than `after`; fewer than `limit` means no
///   more;
/// - `commit` applies every write of the batch or none, atomically and durably, serialised
///   with other commits (one SQL transaction is enough): if any write's `expected_version`
///   does not hold, nothing is applied and it returns `TWOFOLD_CONFLICT`; a batch names each
///   key at most once.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct twofold_host {
    /// Set to `TWOFOLD_HOST_VERSION`.
    pub version: u32,
    /// Passed unchanged as the first argument of every callback; may be NULL.
    pub user_data: *mut c_void,
    /// Required. Looks up the key (`key_len` bytes). If it exists, call
    /// `found(sink, value, value_len, version)` once, then return `TWOFOLD_OK`; if it does
    /// not, return `TWOFOLD_OK` without calling `found`.
    pub get: Option<
        unsafe extern "C" fn(
            user_data: *mut c_void,
            key: *const c_char,
            key_len: usize,
            found: twofold_record_fn,
            sink: *mut twofold_record_sink,
        ) -> i32,
    >,
    /// Required. Lists keys under `prefix` (`prefix_len` bytes, may be 0), strictly after
    /// `after` (`after_len` bytes; `after` is NULL to start at the beginning of the prefix), in
    /// ascending order, at most `limit`: call `emit(sink, key, key_len, value, value_len,
    /// version)` once per entry, then return `TWOFOLD_OK`.
    pub scan: Option<
        unsafe extern "C" fn(
            user_data: *mut c_void,
            prefix: *const c_char,
            prefix_len: usize,
            after: *const c_char,
            after_len: usize,
            limit: usize,
            emit: twofold_entry_fn,
            sink: *mut twofold_entry_sink,
        ) -> i32,
    >,
    /// Required. Applies `writes_len` conditional writes (`writes` is never NULL) all or
    /// nothing; returns `TWOFOLD_OK`, `TWOFOLD_CONFLICT` if an expectation failed (nothing
    /// applied), or `TWOFOLD_STORAGE` if storage failed (nothing applied).
    pub commit: Option<
        unsafe extern "C" fn(
            user_data: *mut c_void,
            writes: *const twofold_write,
            writes_len: usize,
        ) -> i32,
    >,
    /// Optional; NULL uses the system clock. Writes the milliseconds since the Unix epoch to
    /// `*out_ms` (never NULL) and returns `TWOFOLD_OK`.
    pub now_ms: Option<unsafe extern "C" fn(user_data: *mut c_void, out_ms: *mut u64) -> i32>,
    /// Optional; NULL uses the operating system's CSPRNG. Fills `len` bytes at `buf` (never
    /// NULL) from a cryptographically secure generator and returns `TWOFOLD_OK`.
    pub fill_random:
        Option<unsafe extern "C" fn(user_data: *mut c_void, buf: *mut u8, len: usize) -> i32>,
}

/// The engine's copy of a `twofold_host`, checked once at `twofold_engine_new`: the version is
/// known and `get`, `scan` and `commit` are set.
pub(crate) struct CHost(twofold_host);

// SAFETY: the header makes thread safety of `user_data` and the callbacks the application's
// promise ("may be called concurrently and must be thread-safe"); the library only passes
// `user_data` back to them.
unsafe impl Send for CHost {}
unsafe impl Sync for CHost {}

impl CHost {
    /// Copies and checks a host table.
    ///
    /// # Safety
    /// `host` is NULL or points to a readable `twofold_host` of at least the version it claims.
    pub(crate) unsafe fn from_table(host: *const twofold_host) -> Result<CHost, Failure> {
        // SAFETY: non-NULL was promised readable by the caller.
        let Some(host) = (unsafe { host.as_ref() }) else {
            return Err(Failure::invalid("host is NULL"));
        };
        if !(1..=TWOFOLD_HOST_VERSION).contains(&host.version) {
            return Err(Failure::invalid(format!(
                "host version {} is not supported (this library knows 1 to {TWOFOLD_HOST_VERSION})",
                host.version
            )));
        }
        let required = [
            ("get", host.get.is_some()),
            ("scan", host.scan.is_some()),
            ("commit", host.commit.is_some()),
        ];
        if let Some((name, _)) = required.iter().find(|(_, set)| !set) {
            return Err(Failure::invalid(format!("host callback {name} is NULL")));
        }
        Ok(CHost(*host))
    }

    /// A required callback, set since `from_table` checked it.
    fn required<F>(name: &str, callback: Option<F>) -> Result<F, HostError> {
        callback.ok_or_else(|| HostError::Failed(format!("host callback {name} is NULL")))
    }
}

fn callback_failed(name: &str, status: i32) -> HostError {
    HostError::Failed(format!("host callback {name} returned status {status}"))
}

/// A status from `get`, `scan`, `now_ms` or `fill_random`: anything but `TWOFOLD_OK` fails
/// (a conflict included: only a commit can meet one).
fn check(name: &str, status: i32) -> Result<(), HostError> {
    match status {
        OK => Ok(()),
        other => Err(callback_failed(name, other)),
    }
}

/// What a `get` or `scan` handed over, unless its sink refused something or it failed.
fn received<T>(name: &str, problem: Option<String>, status: i32, value: T) -> Result<T, HostError> {
    match problem {
        Some(problem) => Err(HostError::Failed(problem)),
        None => check(name, status).map(|()| value),
    }
}

fn storage_status() -> i32 {
    status_of(ErrorCode::Storage)
}

/// Copies `len` bytes from C; NULL is accepted only with a zero length.
///
/// # Safety
/// A non-NULL `ptr` points to `len` readable bytes.
unsafe fn copy_bytes(ptr: *const u8, len: usize) -> Option<Vec<u8>> {
    if len == 0 {
        return Some(Vec::new());
    }
    if ptr.is_null() || len > isize::MAX as usize {
        return None;
    }
    // SAFETY: checked non-NULL; readable for `len` bytes by the caller's promise.
    Some(unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec())
}

/// Copies a value from C; NULL is accepted only with a zero length; it must be UTF-8.
///
/// # Safety
/// As [`copy_bytes`].
unsafe fn copy_text(ptr: *const u8, len: usize, what: &str) -> Result<String, String> {
    // SAFETY: the caller's promise is `copy_bytes`'s.
    let bytes = unsafe { copy_bytes(ptr, len) }
        .ok_or_else(|| format!("{what} callback passed a NULL pointer with a non-zero length"))?;
    String::from_utf8(bytes)
        .map_err(|_| format!("{what} callback passed a value that is not UTF-8"))
}

/// Runs a sink function's work on its sink inside a panic boundary: a NULL sink or a panic is
/// `TWOFOLD_STORAGE`.
///
/// # Safety
/// `sink` is NULL or the sink the library passed to the running callback.
unsafe fn with_sink<S>(sink: *mut S, work: impl FnOnce(&mut S) -> i32) -> i32 {
    // SAFETY: the library owns the sink and lends it to the running callback only.
    catch_unwind(AssertUnwindSafe(|| match unsafe { sink.as_mut() } {
        Some(sink) => work(sink),
        None => storage_status(),
    }))
    .unwrap_or_else(|_| storage_status())
}

unsafe extern "C" fn record_found(
    sink: *mut twofold_record_sink,
    value: *const u8,
    value_len: usize,
    version: u64,
) -> i32 {
    // SAFETY: `sink` is the one the library passed to the running `get`.
    unsafe {
        with_sink(sink, |sink| {
            let problem = if sink.record.is_some() {
                "get callback passed more than one record".to_owned()
            } else if version == 0 {
                "get callback passed version 0".to_owned()
            } else {
                // SAFETY: the callback promises `value_len` readable bytes at a non-NULL
                // `value`.
                match copy_text(value, value_len, "get") {
                    Ok(value) => {
                        sink.record = Some(Versioned { value, version });
                        return OK;
                    }
                    Err(problem) => problem,
                }
            };
            sink.problem.get_or_insert(problem);
            storage_status()
        })
    }
}

impl twofold_entry_sink {
    fn accept(&mut self, key: Vec<u8>, value: String, version: u64) -> Result<(), &'static str> {
        if self.entries.len() >= self.limit {
            return Err("scan callback passed more than `limit` entries");
        }
        if version == 0 {
            return Err("scan callback passed version 0");
        }
        if !key.starts_with(&self.prefix) {
            return Err("scan callback passed a key outside the prefix");
        }
        let floor = self
            .entries
            .last()
            .map(|e| e.key.as_bytes())
            .or(self.after.as_deref());
        if floor.is_some_and(|floor| key.as_slice() <= floor) {
            return Err("scan callback passed keys out of order or not after `after`");
        }
        let key =
            String::from_utf8(key).map_err(|_| "scan callback passed a key that is not UTF-8")?;
        self.entries.push(Entry {
            key,
            value: Versioned { value, version },
        });
        Ok(())
    }
}

unsafe extern "C" fn entry_found(
    sink: *mut twofold_entry_sink,
    key: *const c_char,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    version: u64,
) -> i32 {
    // SAFETY: `sink` is the one the library passed to the running `scan`.
    unsafe {
        with_sink(sink, |sink| {
            if sink.problem.is_some() {
                return storage_status();
            }
            // SAFETY: the callback promises readable buffers of the lengths it gives.
            let copied = (
                copy_bytes(key.cast(), key_len),
                copy_text(value, value_len, "scan"),
            );
            let result = match copied {
                (Some(key), Ok(value)) => sink.accept(key, value, version).map_err(str::to_owned),
                (None, _) => {
                    Err("scan callback passed a NULL pointer with a non-zero length".into())
                }
                (_, Err(problem)) => Err(problem),
            };
            match result {
                Ok(()) => OK,
                Err(problem) => {
                    sink.problem = Some(problem);
                    storage_status()
                }
            }
        })
    }
}

/// A put with an empty value still gets a valid, non-NULL pointer.
static EMPTY: [u8; 1] = [0];

impl Storage for CHost {
    fn get(&self, key: &str) -> Result<Option<Versioned>, HostError> {
        let mut sink = twofold_record_sink {
            record: None,
            problem: None,
        };
        let get = CHost::required("get", self.0.get)?;
        // SAFETY: the application promised a callable `get`; every pointer passed is valid
        // for the duration of the call.
        let status = unsafe {
            get(
                self.0.user_data,
                key.as_ptr().cast(),
                key.len(),
                record_found,
                &mut sink,
            )
        };
        received("get", sink.problem, status, sink.record)
    }

    fn scan(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<Entry>, HostError> {
        let scan = CHost::required("scan", self.0.scan)?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut sink = twofold_entry_sink {
            prefix: prefix.as_bytes().to_vec(),
            after: after.map(|a| a.as_bytes().to_vec()),
            limit,
            entries: Vec::new(),
            problem: None,
        };
        let (after_ptr, after_len) = match after {
            Some(a) => (a.as_ptr().cast(), a.len()),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: as in `get`.
        let status = unsafe {
            scan(
                self.0.user_data,
                prefix.as_ptr().cast(),
                prefix.len(),
                after_ptr,
                after_len,
                limit,
                entry_found,
                &mut sink,
            )
        };
        received("scan", sink.problem, status, sink.entries)
    }

    fn commit(&self, writes: &[Write]) -> Result<(), HostError> {
        let commit = CHost::required("commit", self.0.commit)?;
        let mut table = Vec::with_capacity(writes.len());
        for write in writes {
            let expected_version = match write.expect {
                Expect::Absent => 0,
                Expect::Version(0) => {
                    return Err(HostError::Failed(
                        "engine expected version 0, which the C interface cannot express".into(),
                    ));
                }
                Expect::Version(v) => v,
            };
            let (value, value_len) = match &write.value {
                None => (std::ptr::null(), 0),
                Some(v) if v.is_empty() => (EMPTY.as_ptr(), 0),
                Some(v) => (v.as_ptr(), v.len()),
            };
            table.push(twofold_write {
                key: write.key.as_ptr().cast(),
                key_len: write.key.len(),
                value,
                value_len,
                expected_version,
            });
        }
        // SAFETY: as in `get`; `table` and the buffers it points into outlive the call.
        let status = unsafe { commit(self.0.user_data, table.as_ptr(), table.len()) };
        match status {
            OK => Ok(()),
            s if s == status_of(ErrorCode::Conflict) => Err(HostError::Conflict),
            other => Err(callback_failed("commit", other)),
        }
    }
}

impl Environment for CHost {
    fn now_ms(&self) -> Result<u64, HostError> {
        let Some(now_ms) = self.0.now_ms else {
            let since_epoch = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_err(|_| HostError::Failed("the system clock is before 1970".into()))?;
            return u64::try_from(since_epoch.as_millis())
                .map_err(|_| HostError::Failed("the system clock is out of range".into()));
        };
        let mut out = 0u64;
        // SAFETY: as in `get`; `out` is a valid place for the callback to write.
        check("now_ms", unsafe { now_ms(self.0.user_data, &mut out) })?;
        Ok(out)
    }

    fn fill_random(&self, buf: &mut [u8]) -> Result<(), HostError> {
        let Some(fill_random) = self.0.fill_random else {
            return getrandom::fill(buf)
                .map_err(|e| HostError::Failed(format!("the OS random generator failed: {e}")));
        };
        if buf.is_empty() {
            return Ok(());
        }
        // SAFETY: as in `get`; `buf` is writable for its length.
        check("fill_random", unsafe {
            fill_random(self.0.user_data, buf.as_mut_ptr(), buf.len())
        })
    }
}
