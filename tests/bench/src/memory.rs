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
use twofold_core::proto::WIT_PACKAGE;
use twofold_core::{
    Config, Context, CreateAccount, Engine, EngineError, Operation, PasskeySignIn, SignIn,
    SignInOutcome, Storage, UserRef, Write, op,
};
use twofold_server::ComponentEngine;
use twofold_testkit::TestHost;
use wasmtime::component::{Lift, Linker, Lower, ResourceAny, ResourceTable};
use wasmtime::{ResourceLimiter, Store, StoreContextMut};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

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

/// Store data like twofold-server's, plus a limiter that records linear-memory growth. The
/// server's embedding keeps its store to itself (no limiter can be set on it), so this one
/// links the component itself: WASI, the storage import over the shared testkit host, and
/// typed calls of the engine's constructor and methods with the proto types.
struct Watched {
    wasi: WasiCtx,
    table: ResourceTable,
    storage: Arc<TestHost>,
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

/// `twofold:engine/<name>@<version>`.
fn interface(name: &str) -> String {
    let (package, version) = WIT_PACKAGE.split_once('@').unwrap_or((WIT_PACKAGE, ""));
    format!("{package}/{name}@{version}")
}

/// One instance in a watched store, with its engine resource.
struct Watching {
    store: Store<Watched>,
    instance: wasmtime::component::Instance,
    engine: ResourceAny,
}

impl Watching {
    fn new(
        loader: &ComponentEngine,
        host: Arc<TestHost>,
        config: &Config,
    ) -> wasmtime::Result<(Watching, usize)> {
        let mut linker = Linker::<Watched>::new(loader.engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        type Cx<'a> = StoreContextMut<'a, Watched>;
        let mut storage = linker.instance(&interface("storage"))?;
        storage.func_wrap("get", |cx: Cx<'_>, (key,): (String,)| {
            Ok((cx.data().storage.get(&key),))
        })?;
        storage.func_wrap(
            "scan",
            |cx: Cx<'_>, (prefix, after, limit): (String, Option<String>, u32)| {
                Ok((cx.data().storage.scan(&prefix, after.as_deref(), limit),))
            },
        )?;
        storage.func_wrap("commit", |cx: Cx<'_>, (writes,): (Vec<Write>,)| {
            Ok((cx.data().storage.commit(&writes),))
        })?;
        let watched = Watched {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            storage: host,
            linear: 0,
        };
        let mut store = Store::new(loader.engine(), watched);
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        // The server's engine interrupts on epochs; without a deadline any check would trap.
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = linker.instantiate(&mut store, loader.component())?;
        let instantiated = store.data().linear;
        let engine_iface = instance
            .get_export_index(&mut store, None, &interface("engine"))
            .ok_or_else(|| wasmtime::format_err!("no engine interface"))?;
        let constructor = instance
            .get_export_index(&mut store, Some(&engine_iface), "[constructor]engine")
            .ok_or_else(|| wasmtime::format_err!("no engine constructor"))?;
        let constructor = instance
            .get_typed_func::<(&Config,), (Result<ResourceAny, EngineError>,)>(
                &mut store,
                &constructor,
            )?;
        let (engine,) = constructor.call(&mut store, (config,))?;
        let engine = engine.map_err(|e| wasmtime::format_err!("constructor: {e}"))?;
        Ok((
            Watching {
                store,
                instance,
                engine,
            },
            instantiated,
        ))
    }

    fn linear(&self) -> usize {
        self.store.data().linear
    }

    fn call<O>(&mut self, ctx: &Context, req: &O::Request) -> wasmtime::Result<O::Answer>
    where
        O: Operation,
        O::Request: Lower,
        O::Answer: Lift,
    {
        let store = &mut self.store;
        let iface = self
            .instance
            .get_export_index(&mut *store, None, &interface("engine"))
            .ok_or_else(|| wasmtime::format_err!("no engine interface"))?;
        let name = format!("[method]engine.{}", O::OP.wit_name());
        let method = self
            .instance
            .get_export_index(&mut *store, Some(&iface), &name)
            .ok_or_else(|| wasmtime::format_err!("no {name}"))?;
        let method = self.instance.get_typed_func::<
            (ResourceAny, &Context, &O::Request),
            (Result<O::Answer, EngineError>,),
        >(&mut *store, &method)?;
        let (answer,) = method.call(&mut *store, (self.engine, ctx, req))?;
        answer.map_err(|e| wasmtime::format_err!("{}: {e}", O::OP.name()))
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

    let mut out = LinearMemory::default();
    let (mut watching, instantiated) =
        Watching::new(loader, w.host.clone(), &world::spec_config())?;
    out.steps.push(("instantiated".into(), instantiated));
    out.steps
        .push(("engine constructed".into(), watching.linear()));
    let ctx = Context::new(crate::targets::IP, crate::targets::USER_AGENT);
    w.sync_clock();
    let user = UserRef {
        user_id: account.user_id.clone(),
    };
    watching.call::<op::Status>(&ctx, &user)?;
    out.steps.push(("after status".into(), watching.linear()));
    let sign_in = SignIn {
        email: account.email.clone(),
        password: account.password.clone(),
        remember_me: false,
    };
    let pending = match watching.call::<op::SignIn>(&ctx, &sign_in)? {
        SignInOutcome::SecondFactorRequired(p) => p,
        other => wasmtime::bail!("sign-in: {other:?}"),
    };
    out.steps.push((
        "after sign-in step one (argon2id m=19456 KiB)".into(),
        watching.linear(),
    ));
    let options: Value = serde_json::from_str(&pending.options)?;
    let credential = w
        .assertion(&mut account, &options)
        .map_err(wasmtime::Error::msg)?;
    let finish = PasskeySignIn {
        pending_token: pending.pending_token,
        credential,
    };
    watching.call::<op::SignInPasskey>(&ctx, &finish)?;
    out.steps
        .push(("after passkey sign-in".into(), watching.linear()));
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
            let config = world::spec_config();
            let mut instance = match loader.instantiate(host, &config) {
                Ok(Ok(i)) => i,
                Ok(Err(e)) => return Err(e.message),
                Err(e) => return Err(format!("{e:#}")),
            };
            let ctx = Context::new("198.51.100.3", "rss");
            start.wait();
            let req = SignIn {
                email,
                password,
                remember_me: false,
            };
            let outcome = instance.call::<op::SignIn>(&ctx, &req);
            // Every instance stays alive until all have signed in.
            done.wait();
            match outcome {
                Ok(Ok(SignInOutcome::SignedIn(_))) => Ok(()),
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
