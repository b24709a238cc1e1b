//! Memory: the component's linear memory per instance (watched with a wasmtime
//! `ResourceLimiter`), and peak RSS under 16 concurrent sign-ins: of the `twofold-server`
//! binary when it has been built, and of 16 instances in a child process of this benchmark.

use std::io::{BufRead, BufReader, Read, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use twofold_core::{CreateAccount, Engine};
use twofold_server::bindings::twofold::engine::storage as wstorage;
use twofold_server::bindings::{Twofold, TwofoldPre};
use twofold_server::{ComponentEngine, wit};
use twofold_testkit::TestHost;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::targets::SharedStore;
use crate::world;

pub const CONCURRENT: usize = 16;

/// A field of /proc/<pid>/status, in KiB (`VmRSS`, `VmHWM`).
pub fn proc_status_kib(pid: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ------------------------------------------------------------------ linear memory

/// Store data like twofold-server's, plus a limiter that records linear-memory growth.
struct Watched {
    wasi: WasiCtx,
    table: ResourceTable,
    storage: SharedStore,
    /// Bytes of linear memory (all memories of the instance together).
    linear: usize,
}

impl WasiView for Watched {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wstorage::Host for Watched {
    fn get(&mut self, key: String) -> Result<Option<wstorage::Versioned>, wstorage::StorageError> {
        self.storage.get(key)
    }
    fn scan(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<wstorage::Entry>, wstorage::StorageError> {
        self.storage.scan(prefix, after, limit)
    }
    fn commit(&mut self, writes: Vec<wstorage::Write>) -> Result<(), wstorage::StorageError> {
        self.storage.commit(writes)
    }
}

impl ResourceLimiter for Watched {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.linear += desired.saturating_sub(current);
        Ok(true)
    }
    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// Linear memory of one instance after each step of a sign-in with a passkey.
#[derive(Clone, Debug, Default)]
pub struct LinearMemory {
    pub steps: Vec<(String, usize)>,
}

pub fn linear_memory(loader: &ComponentEngine) -> wasmtime::Result<LinearMemory> {
    let mut w = world::World::new().map_err(wasmtime::Error::msg)?;
    let mut account = w.account(true).map_err(wasmtime::Error::msg)?;
    w.add_passkey(&mut account).map_err(wasmtime::Error::msg)?;

    let engine = loader.engine();
    let mut linker = Linker::<Watched>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    Twofold::add_to_linker::<Watched, HasSelf<Watched>>(&mut linker, |s| s)?;
    let pre = TwofoldPre::new(linker.instantiate_pre(loader.component())?)?;
    let mut store = Store::new(
        engine,
        Watched {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            storage: SharedStore(w.host.clone()),
            linear: 0,
        },
    );
    store.limiter(|s| s as &mut dyn ResourceLimiter);
    // The server's engine sets an epoch deadline on every store; without one any epoch check
    // would trap at once.
    store.set_epoch_deadline(u64::MAX);
    let mut out = LinearMemory::default();
    let bindings = pre.instantiate(&mut store)?;
    out.steps.push(("instantiated".into(), store.data().linear));
    let api = bindings.twofold_engine_engine().engine();
    let handle = match api.call_constructor(&mut store, &world::spec_wit_config())? {
        Ok(h) => h,
        Err(e) => wasmtime::bail!("constructor: {}", e.message),
    };
    out.steps
        .push(("engine constructed".into(), store.data().linear));
    let ctx = wit::Context {
        ip: crate::targets::IP.into(),
        user_agent: crate::targets::USER_AGENT.into(),
    };
    w.sync_clock();
    let status = api.call_status(
        &mut store,
        handle,
        &ctx,
        &wit::UserRef {
            user_id: account.user_id.clone(),
        },
    )?;
    if let Err(e) = status {
        wasmtime::bail!("status: {}", e.message);
    }
    out.steps.push(("after status".into(), store.data().linear));
    let outcome = api.call_sign_in(
        &mut store,
        handle,
        &ctx,
        &wit::SignIn {
            email: account.email.clone(),
            password: account.password.clone(),
            remember_me: false,
        },
    )?;
    let pending = match outcome {
        Ok(wit::SignInOutcome::SecondFactorRequired(p)) => p,
        other => wasmtime::bail!("sign-in: {other:?}"),
    };
    out.steps.push((
        "after sign-in step one (argon2id m=19456 KiB)".into(),
        store.data().linear,
    ));
    let options: Value = serde_json::from_str(&pending.options)?;
    let credential = w
        .assertion(&mut account, &options)
        .map_err(wasmtime::Error::msg)?;
    let done = api.call_sign_in_with_passkey(
        &mut store,
        handle,
        &ctx,
        &wit::PasskeySignIn {
            pending_token: pending.pending_token,
            credential,
        },
    )?;
    if let Err(e) = done {
        wasmtime::bail!("passkey: {}", e.message);
    }
    out.steps
        .push(("after passkey sign-in".into(), store.data().linear));
    Ok(out)
}

// ------------------------------------------------------------------ RSS, in a child process

/// In a fresh process (so nothing else of the benchmark is in its RSS): load the component,
/// make 16 accounts, then 16 threads each instantiate and sign in at the same moment.
/// Prints `{"rss_before_kib", "hwm_kib", "rss_after_kib", "took_ms"}`.
pub fn rss_child(path: &Path) -> wasmtime::Result<()> {
    let options = twofold_server::LoadOptions {
        cache_dir: Some(crate::cache_dir()),
        call_timeout: None,
    };
    let (loader, _) = ComponentEngine::load(path, &options)?;
    let host = Arc::new(TestHost::new(3));
    host.clock.set_ms(world::real_now_ms());
    let native = Engine::new(world::spec_config())?;
    let ctx = twofold_core::Context::new("198.51.100.2", "rss");
    let mut accounts = Vec::new();
    for n in 0..CONCURRENT {
        let email = format!("rss-{n}@example.com");
        let password = format!("correct horse battery {n}");
        let req = CreateAccount {
            email: email.clone(),
            password: password.clone(),
        };
        native.create_account(&*host, &ctx, req)?;
        accounts.push((email, password));
    }
    drop(native);
    // Start the peak from here: what the accounts' setup used does not count.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = proc_status_kib("self", "VmRSS").unwrap_or(0);
    let start = Arc::new(Barrier::new(CONCURRENT));
    let done = Arc::new(Barrier::new(CONCURRENT + 1));
    let started = Instant::now();
    let mut threads = Vec::new();
    for (email, password) in accounts {
        let (loader, host) = (loader.clone(), host.clone());
        let (start, done) = (start.clone(), done.clone());
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            let config = world::spec_wit_config();
            let mut instance = match loader.instantiate(SharedStore(host), &config) {
                Ok(Ok(i)) => i,
                Ok(Err(e)) => return Err(e.message),
                Err(e) => return Err(format!("{e:#}")),
            };
            let ctx = wit::Context {
                ip: "198.51.100.3".into(),
                user_agent: "rss".into(),
            };
            start.wait();
            let outcome = instance.sign_in(
                &ctx,
                &wit::SignIn {
                    email,
                    password,
                    remember_me: false,
                },
            );
            // Every instance stays alive until all have signed in.
            done.wait();
            match outcome {
                Ok(Ok(wit::SignInOutcome::SignedIn(_))) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }));
    }
    done.wait();
    let took = started.elapsed();
    let hwm = proc_status_kib("self", "VmHWM").unwrap_or(0);
    let rss_after = proc_status_kib("self", "VmRSS").unwrap_or(0);
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => wasmtime::bail!("a sign-in failed: {e}"),
            Err(_) => wasmtime::bail!("a sign-in thread panicked"),
        }
    }
    println!(
        "{}",
        json!({
            "rss_before_kib": rss_before,
            "hwm_kib": hwm,
            "rss_after_kib": rss_after,
            "took_ms": took.as_millis() as u64,
        })
    );
    Ok(())
}

#[derive(Clone, Debug)]
pub struct Rss {
    pub what: String,
    /// Right after start, before any request (the server only).
    pub idle_kib: Option<u64>,
    pub before_kib: u64,
    pub peak_kib: u64,
    pub took: Duration,
}

impl Rss {
    pub fn line(&self) -> String {
        let n = CONCURRENT as f64;
        match self.idle_kib {
            // The server: its workers make their instances on first use, so most of the growth
            // comes with the first requests; count it from idle.
            Some(idle) => format!(
                "{}: {:.0} MiB idle after start, {:.0} MiB after {CONCURRENT} sign-ups made one at a time, peak {:.0} MiB with the {CONCURRENT} concurrent sign-ins (VmHWM since start): {:.1} MiB per worker instance over idle; the sign-ins took {:.2} s",
                self.what,
                mib(idle),
                mib(self.before_kib),
                mib(self.peak_kib),
                mib(self.peak_kib.saturating_sub(idle)) / n,
                self.took.as_secs_f64(),
            ),
            None => format!(
                "{}: {:.0} MiB before the sign-ins, peak {:.0} MiB during them ({:+.0} MiB, {:.1} MiB per instance); the sign-ins took {:.2} s",
                self.what,
                mib(self.before_kib),
                mib(self.peak_kib),
                mib(self.peak_kib.saturating_sub(self.before_kib)),
                mib(self.peak_kib.saturating_sub(self.before_kib)) / n,
                self.took.as_secs_f64(),
            ),
        }
    }
}

pub fn rss_in_child(component: &Path) -> Result<Rss, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .arg("--rss-child")
        .arg(component)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("the child failed ({})", out.status));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(Rss {
        what: format!(
            "{CONCURRENT} threads, each with its own instance, in a child process of the benchmark"
        ),
        idle_kib: None,
        before_kib: v["rss_before_kib"].as_u64().unwrap_or(0),
        peak_kib: v["hwm_kib"].as_u64().unwrap_or(0),
        took: Duration::from_millis(v["took_ms"].as_u64().unwrap_or(0)),
    })
}

// ------------------------------------------------------------------ RSS of twofold-server

/// One HTTP/1.1 request on a fresh connection; answers the status code.
fn http_post(addr: SocketAddr, origin: &str, path: &str, body: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(code)
}

/// Runs `target/release/twofold-server` (16 workers, SQLite in the target dir), signs 16
/// accounts up one after the other, then signs them in at the same moment, and reads the
/// server's peak RSS.
pub fn rss_of_server(server: &Path, component: &Path, scratch: &Path) -> Result<Rss, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let origin = format!("http://localhost:{port}");
    std::fs::create_dir_all(scratch).map_err(|e| e.to_string())?;
    let db = scratch.join(format!("rss-{port}.db"));
    let mut child = Command::new(server)
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--origin")
        .arg(&origin)
        .arg("--db")
        .arg(&db)
        .arg("--component")
        .arg(component)
        .arg("--workers")
        .arg(CONCURRENT.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", server.display()))?;
    let pid = child.id().to_string();
    let result = (|| {
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("listening on") => break,
                Some(Ok(_)) => continue,
                _ => return Err("the server stopped before listening".to_string()),
            }
        }
        let idle = proc_status_kib(&pid, "VmRSS");
        // Keep draining the request log so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        let accounts: Vec<(String, String)> = (0..CONCURRENT)
            .map(|n| {
                (
                    format!("rss-{n}@example.com"),
                    format!("correct horse battery {n}"),
                )
            })
            .collect();
        for (email, password) in &accounts {
            let body = json!({"email": email, "password": password}).to_string();
            let code = http_post(addr, &origin, "/api/signup", &body).map_err(|e| e.to_string())?;
            if code != 200 {
                return Err(format!("signup answered {code}"));
            }
        }
        let before = proc_status_kib(&pid, "VmRSS").unwrap_or(0);
        let start = Arc::new(Barrier::new(CONCURRENT));
        let started = Instant::now();
        let threads: Vec<_> = accounts
            .into_iter()
            .map(|(email, password)| {
                let start = start.clone();
                let origin = origin.clone();
                std::thread::spawn(move || {
                    let body = json!({"email": email, "password": password}).to_string();
                    start.wait();
                    http_post(addr, &origin, "/api/signin", &body)
                })
            })
            .collect();
        for t in threads {
            match t.join() {
                Ok(Ok(200)) => {}
                Ok(Ok(code)) => return Err(format!("signin answered {code}")),
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err("a client thread panicked".into()),
            }
        }
        let took = started.elapsed();
        let peak = proc_status_kib(&pid, "VmHWM").unwrap_or(0);
        Ok(Rss {
            what: format!(
                "twofold-server ({CONCURRENT} HTTP workers, SQLite), {CONCURRENT} concurrent POST /api/signin"
            ),
            idle_kib: idle,
            before_kib: before,
            peak_kib: peak,
            took,
        })
    })();
    let _ = child.kill();
    let _ = child.wait();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = db.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    result
}
