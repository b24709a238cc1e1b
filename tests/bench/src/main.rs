//! twofold-bench: what each operation costs in-process, through the C ABI and in the
//! component under wasmtime, next to the slow parts alone (argon2id, WebAuthn verification)
//! and the peer reference (py_webauthn).
//!
//!     cargo run --release -p twofold-bench -- [--quick] [--no-build] [--no-peer] [--no-memory]
//!
//! Prints Markdown tables (and writes them to `<target>/bench/latest.md`). Timed assertions
//! never go into tests: this runs on demand only.

mod memory;
mod peer;
mod pure;
mod stats;
mod targets;
mod world;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use stats::{Samples, Summary, fmt_ns, fmt_ops};
use targets::{CAbi, Native, Outcome, Req, Target, Wasm};
use twofold_core::{Argon2Params, BackupCodeSignIn, Config, Context, Engine, PasswordConfirmed};
use twofold_server::ComponentEngine;
use world::{Account, World};

const USAGE: &str = "\
usage: cargo run --release -p twofold-bench -- [options]

  --quick       a short run (under a minute): fewer iterations, noisier p99
  --no-build    do not run wasm-component/build.sh first (use the .wasm on disk)
  --no-peer     skip py_webauthn (which needs tests/bench/peer/setup.sh to have reached PyPI once)
  --no-memory   skip the RSS and linear-memory measurements
  -h, --help    this text
";

struct Options {
    quick: bool,
    build: bool,
    peer: bool,
    memory: bool,
}

/// `$CARGO_TARGET_DIR` or the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    let workspace = workspace();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Scratch space and results: `<target>/bench`.
pub fn bench_dir() -> PathBuf {
    target_dir().join("bench")
}

/// Where the compiled component is cached between runs.
pub fn cache_dir() -> PathBuf {
    bench_dir().join("cache")
}

type Res<T> = Result<T, String>;

/// glibc's allocator, which the benchmark tunes (see [`steady_allocator`]).
mod glibc {
    use std::ffi::c_int;

    pub const M_TRIM_THRESHOLD: c_int = -1;
    pub const M_MMAP_THRESHOLD: c_int = -3;

    unsafe extern "C" {
        pub fn mallopt(param: c_int, value: c_int) -> c_int;
        pub fn malloc_trim(pad: usize) -> c_int;
    }
}

/// argon2 allocates its whole memory (19 MiB for a password, 4 MiB for a code) per hash.
/// glibc serves that from fresh `mmap`ed pages or from the heap depending on its recent
/// history (its mmap threshold adapts, its heap top is trimmed), and fresh pages cost a page
/// fault each: 4,864 faults, about 10 ms, per password hash. That made native timings jump by
/// up to 70% from call to call. The benchmark pins the thresholds so every native path is
/// measured in the steady state (blocks from the heap, never returned); `alloc_faults` measures
/// the other case on its own.
fn steady_allocator() {
    // SAFETY: mallopt only changes allocator parameters; 32 MiB is glibc's largest mmap
    // threshold on 64-bit targets.
    unsafe {
        glibc::mallopt(glibc::M_MMAP_THRESHOLD, 32 << 20);
        glibc::mallopt(glibc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// argon2id (password parameters) natively, first with every block freshly mapped (what glibc
/// may do by default), then in the steady state: (p50 fresh, faults, p50 steady).
fn alloc_faults(n: usize) -> (f64, u64, f64) {
    let argon = pure::Argon2Alone::new(Argon2Params::PASSWORD_DEFAULT);
    // SAFETY: as in steady_allocator. With the heap's free top returned and a fixed 128 KiB
    // threshold, every argon2 block is mapped afresh and unmapped when freed.
    unsafe {
        glibc::mallopt(glibc::M_TRIM_THRESHOLD, 128 << 10);
        glibc::mallopt(glibc::M_MMAP_THRESHOLD, 128 << 10);
        glibc::malloc_trim(0);
    }
    let mut fresh = Samples::default();
    let mut faults = Vec::new();
    for _ in 0..n {
        let before = minor_faults();
        fresh.push(argon.run());
        faults.push(minor_faults() - before);
    }
    steady_allocator();
    let mut steady = Samples::default();
    for _ in 0..n {
        steady.push(argon.run());
    }
    faults.sort_unstable();
    (
        fresh.summary().p50_ns,
        faults.get(n / 2).copied().unwrap_or(0),
        steady.summary().p50_ns,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The RSS child keeps glibc's defaults, as a server would run.
    if !matches!(
        args.first().map(String::as_str),
        Some("--probe-argon2" | "--rss-child")
    ) {
        steady_allocator();
    }
    if args.first().map(String::as_str) == Some("--rss-child") {
        let path = args.get(1).map(PathBuf::from).unwrap_or_default();
        if let Err(e) = memory::rss_child(&path) {
            eprintln!("rss child: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    if args.first().map(String::as_str) == Some("--profile") {
        // For valgrind --tool=callgrind: one operation on one target, N times.
        let get = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
        if let Err(e) = profile(get(1), get(2), get(3).parse().unwrap_or(100)) {
            eprintln!("twofold-bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.first().map(String::as_str) == Some("--probe-argon2") {
        probe_argon2();
        return;
    }
    let mut options = Options {
        quick: false,
        build: true,
        peer: true,
        memory: true,
    };
    for arg in &args {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--no-build" => options.build = false,
            "--no-peer" => options.peer = false,
            "--no-memory" => options.memory = false,
            "-h" | "--help" => {
                print!("{USAGE}");
                return;
            }
            other => {
                eprintln!("twofold-bench: unknown argument {other:?}\n\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    if let Err(e) = run(&options) {
        eprintln!("twofold-bench: {e}");
        std::process::exit(1);
    }
}

// ------------------------------------------------------------------ the operations

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    SignIn,
    SignInUnknown,
    Passkey,
    BackupCode,
    RegisterFirst,
    RegisterMore,
    Status,
}

impl Op {
    const ALL: [Op; 7] = [
        Op::SignIn,
        Op::SignInUnknown,
        Op::Passkey,
        Op::BackupCode,
        Op::RegisterFirst,
        Op::RegisterMore,
        Op::Status,
    ];

    fn label(self) -> &'static str {
        match self {
            Op::SignIn => "sign-in step one (password; 2FA on)",
            Op::SignInUnknown => "sign-in, unknown email (dummy hash)",
            Op::Passkey => "passkey sign-in finish",
            Op::BackupCode => "backup-code sign-in",
            Op::RegisterFirst => "registration finish, first passkey (+10 codes)",
            Op::RegisterMore => "registration finish, another passkey",
            Op::Status => "status",
        }
    }

    /// Timed iterations per target (each target runs each iteration once).
    fn iterations(self, quick: bool) -> usize {
        let (full, short) = match self {
            Op::SignIn => (300, 20),
            Op::SignInUnknown => (200, 15),
            Op::Passkey => (2000, 200),
            Op::BackupCode => (400, 40),
            Op::RegisterFirst => (200, 15),
            Op::RegisterMore => (1000, 100),
            Op::Status => (5000, 500),
        };
        if quick { short } else { full }
    }
}

/// The accounts the operations run on.
struct Fixtures {
    /// SPEC-cost password, 2FA on: timed sign-in step one.
    signin: Account,
    /// Cheap password, 2FA on: pending sign-ins for timed passkey finishes; status.
    passkey: Account,
    /// Cheap password, 2FA on, backup codes at the SPEC cost.
    codes: Account,
}

impl Fixtures {
    fn new(w: &mut World) -> Res<Fixtures> {
        let mut signin = w.account(true)?;
        w.add_passkey(&mut signin)?;
        let mut passkey = w.account(false)?;
        w.add_passkey(&mut passkey)?;
        let mut codes = w.account(false)?;
        w.add_passkey(&mut codes)?;
        w.spec_codes(&mut codes)?;
        Ok(Fixtures {
            signin,
            passkey,
            codes,
        })
    }
}

/// The untimed setup of one call: its request.
fn prepare(op: Op, w: &mut World, fx: &mut Fixtures) -> Res<Req> {
    Ok(match op {
        Op::SignIn => Req::SignIn {
            email: fx.signin.email.clone(),
            password: fx.signin.password.clone(),
        },
        Op::SignInUnknown => Req::SignIn {
            email: w.unknown_email(),
            password: "not the password".into(),
        },
        Op::Passkey => {
            let (token, options) = w.pending(&fx.passkey)?;
            let credential = w.assertion(&mut fx.passkey, &options)?;
            Req::Passkey { token, credential }
        }
        Op::BackupCode => {
            if fx.codes.codes.is_empty() {
                w.spec_codes(&mut fx.codes)?;
            }
            let code = fx.codes.codes.pop().ok_or("no backup code left")?;
            let (token, _) = w.pending(&fx.codes)?;
            Req::BackupCode { token, code }
        }
        Op::RegisterFirst => {
            let mut account = w.account(false)?;
            let credential = w.registration(&mut account)?;
            Req::FinishRegistration {
                user_id: account.user_id,
                credential,
            }
        }
        Op::RegisterMore => {
            let mut account = w.account(false)?;
            w.add_passkey(&mut account)?;
            w.second_device(&mut account);
            let credential = w.registration(&mut account)?;
            Req::FinishRegistration {
                user_id: account.user_id,
                credential,
            }
        }
        Op::Status => Req::Status {
            user_id: fx.passkey.user_id.clone(),
        },
    })
}

/// Checks the outcome, and cleans up after it (untimed).
fn check(op: Op, target: &str, out: Outcome, w: &mut World, fx: &mut Fixtures) -> Res<()> {
    let wrong = |out: &Outcome| Err(format!("{} via {target}: unexpected {out:?}", op.label()));
    match (op, &out) {
        (Op::SignIn, Outcome::SecondFactor { token, options }) => {
            // Finish the sign-in, so pending sign-ins do not pile up as they would not in use.
            w.complete(&mut fx.signin, token, options)
        }
        (Op::SignInUnknown, Outcome::Failed(code)) if code == "invalid_credentials" => Ok(()),
        (Op::Passkey | Op::BackupCode, Outcome::SignedIn) => Ok(()),
        (Op::RegisterFirst, Outcome::Registered { new_codes: 10 }) => Ok(()),
        (Op::RegisterMore, Outcome::Registered { new_codes: 0 }) => Ok(()),
        (Op::Status, Outcome::Status { passkeys: 1 }) => Ok(()),
        _ => wrong(&out),
    }
}

struct OpResult {
    samples: BTreeMap<&'static str, Samples>,
    /// Minor page faults of each call (counted around it, untimed).
    faults: BTreeMap<&'static str, Vec<u64>>,
    /// Slow hashes per call of the in-process engine (min, max).
    slow_hashes: Option<(u64, u64)>,
}

/// A slow part alone, timed in the same rotation as the operation it belongs to.
type Alone<'a> = (&'static str, Box<dyn FnMut() -> Duration + 'a>);

const ARGON2_PASSWORD: &str = "argon2id m=19456 KiB t=2 p=1 (password), native";
const ARGON2_CODE: &str = "argon2id m=4096 KiB t=1 p=1 (backup code), native";
const VERIFY: &str = "webauthn-rs-core authenticate_credential (parsed assertion), native";
const VERIFY_JSON: &str = "the same, parsing the assertion's JSON text too, native";
const RAW_ES256: &str = "raw ES256 verify, RustCrypto p256 0.14, native";

/// Runs `op` on every target, interleaved: each iteration runs every target (and each slow
/// part alone) once, in a random order, so that changes of load hit all of them alike.
fn bench_op(
    op: Op,
    quick: bool,
    targets: &mut [Box<dyn Target>],
    alone: &mut [Alone<'_>],
    w: &mut World,
    fx: &mut Fixtures,
) -> Res<OpResult> {
    let n = op.iterations(quick);
    let warmup = (n / 20).max(3);
    let mut samples: BTreeMap<&'static str, Samples> = BTreeMap::new();
    let mut faults: BTreeMap<&'static str, Vec<u64>> = BTreeMap::new();
    let mut slow: Option<(u64, u64)> = None;
    let started = Instant::now();
    let slots = targets.len() + alone.len();
    let mut order: Vec<usize> = (0..slots).collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ op as u64;
    for i in 0..warmup + n {
        // A new random order every iteration: in a fixed rotation each target would always
        // follow the same one (a fresh wasm instance, say, which leaves the caches cold).
        for k in (1..slots).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            order.swap(k, (rng % (k as u64 + 1)) as usize);
        }
        for &slot in &order {
            if slot >= targets.len() {
                let (name, f) = &mut alone[slot - targets.len()];
                let faults_before = minor_faults();
                let d = f();
                let faulted = minor_faults() - faults_before;
                if i >= warmup {
                    samples.entry(*name).or_default().push(d);
                    faults.entry(*name).or_default().push(faulted);
                }
                continue;
            }
            let t = &mut targets[slot];
            let req = prepare(op, w, fx)?;
            w.sync_clock();
            let hashes_before = t.slow_hashes();
            let faults_before = minor_faults();
            let (d, out) = t.run(&req);
            let faulted = minor_faults() - faults_before;
            if let (Some(a), Some(b)) = (hashes_before, t.slow_hashes())
                && i >= warmup
            {
                let c = b - a;
                slow = Some(slow.map_or((c, c), |(lo, hi)| (lo.min(c), hi.max(c))));
            }
            let name = t.name();
            check(op, name, out, w, fx)?;
            if i >= warmup {
                samples.entry(name).or_default().push(d);
                faults.entry(name).or_default().push(faulted);
            }
        }
    }
    eprintln!(
        "  {:<48} {n} x {slots} in {:.1} s",
        op.label(),
        started.elapsed().as_secs_f64()
    );
    Ok(OpResult {
        samples,
        faults,
        slow_hashes: slow,
    })
}

// ------------------------------------------------------------------ component variants

const VARIANT_SERVER: &str = "default build, server's engine (epoch interruption)";
const VARIANT_DEFAULT: &str = "default build, plain engine";
const VARIANT_SIMD: &str = "+simd128";
const VARIANT_WIDE: &str = "+simd128 +wide-arithmetic";
const VARIANTS: [&str; 4] = [VARIANT_SERVER, VARIANT_DEFAULT, VARIANT_SIMD, VARIANT_WIDE];

/// The default component and the variants `build-variants.sh` made, each compiled by a wasmtime
/// engine of its own with what it needs enabled (and no epoch interruption, unlike the
/// server's): empty variants mean only the default exists.
fn component_variants(
    server: &ComponentEngine,
    default: &Path,
) -> Res<Vec<(&'static str, ComponentEngine)>> {
    let dir = target_dir().join("bench-variants");
    let mut out = vec![(VARIANT_SERVER, server.clone())];
    for (label, path, wide) in [
        (VARIANT_DEFAULT, default.to_path_buf(), false),
        (
            VARIANT_SIMD,
            dir.join("simd128/wasm32-wasip2/release/twofold_component.wasm"),
            false,
        ),
        (
            VARIANT_WIDE,
            dir.join("wide-arithmetic/wasm32-wasip2/release/twofold_component.wasm"),
            true,
        ),
    ] {
        if !path.exists() {
            continue;
        }
        let mut config = wasmtime::Config::new();
        config.wasm_wide_arithmetic(wide);
        let engine = wasmtime::Engine::new(&config).map_err(|e| format!("{e:#}"))?;
        let component = wasmtime::component::Component::from_file(&engine, &path)
            .map_err(|e| format!("{}: {e:#}", path.display()))?;
        out.push((
            label,
            ComponentEngine::new(component).map_err(|e| format!("{e:#}"))?,
        ));
    }
    if out.len() <= 2 {
        out.clear();
    }
    Ok(out)
}

// ------------------------------------------------------------------ B5: one slow hash

struct CodeCheck {
    codes: u32,
    right_hashes: u64,
    wrong_hashes: u64,
    right_p50: f64,
    wrong_p50: f64,
    /// Median page faults of a check.
    faults: u64,
}

/// A backup-code check with 1, 10 and 100 codes in the set: slow hashes per check (from
/// `Engine::slow_hash_count`) and the median time, for a right code (the last of the set)
/// and a wrong one.
fn code_checks(w: &mut World, reps: usize) -> Res<Vec<CodeCheck>> {
    let ctx = Context::new(targets::IP, targets::USER_AGENT);
    let mut out = Vec::new();
    for count in [1u32, 10, 100] {
        let engine = Engine::new(Config {
            backup_code_count: Some(count),
            ..world::spec_config()
        })
        .map_err(|e| e.to_string())?;
        let mut account = w.account(false)?;
        w.add_passkey(&mut account)?;
        let (mut right, mut wrong) = (Samples::default(), Samples::default());
        let (mut right_hashes, mut wrong_hashes) = (0, 0);
        let mut faults = Vec::new();
        let mut codes: Vec<String> = Vec::new();
        for _ in 0..reps {
            if codes.is_empty() {
                w.sync_clock();
                codes = engine
                    .regenerate_backup_codes(
                        &*w.host,
                        &ctx,
                        PasswordConfirmed {
                            user_id: account.user_id.clone(),
                            password: account.password.clone(),
                        },
                    )
                    .map_err(|e| e.to_string())?
                    .codes;
                // The last code of the set: the worst place for a scan that stopped early.
                codes.reverse();
            }
            for right_code in [false, true] {
                let code = if right_code {
                    codes.remove(0)
                } else {
                    "2222-2222-2222".to_owned()
                };
                let (token, _) = w.pending(&account)?;
                w.sync_clock();
                let before = engine.slow_hash_count();
                let faults_before = minor_faults();
                let started = Instant::now();
                let result = engine.sign_in_with_backup_code(
                    &*w.host,
                    &ctx,
                    BackupCodeSignIn {
                        pending_token: token,
                        code,
                    },
                );
                let d = started.elapsed();
                faults.push(minor_faults() - faults_before);
                let hashes = engine.slow_hash_count() - before;
                match (right_code, result) {
                    (true, Ok(_)) => {
                        right.push(d);
                        right_hashes = right_hashes.max(hashes);
                    }
                    (false, Err(e)) if e.code().as_str() == "invalid_backup_code" => {
                        wrong.push(d);
                        wrong_hashes = wrong_hashes.max(hashes);
                    }
                    (_, other) => return Err(format!("backup-code check: {other:?}")),
                }
            }
        }
        faults.sort_unstable();
        out.push(CodeCheck {
            codes: count,
            right_hashes,
            wrong_hashes,
            right_p50: right.summary().p50_ns,
            wrong_p50: wrong.summary().p50_ns,
            faults: faults.get(faults.len() / 2).copied().unwrap_or(0),
        });
    }
    Ok(out)
}

/// Runs one operation on one target `n` times (no report): for profilers.
fn profile(op: &str, target: &str, n: usize) -> Res<()> {
    let op = match op {
        "sign-in" => Op::SignIn,
        "unknown" => Op::SignInUnknown,
        "passkey" => Op::Passkey,
        "backup-code" => Op::BackupCode,
        "register-first" => Op::RegisterFirst,
        "register-more" => Op::RegisterMore,
        "status" => Op::Status,
        _ => return Err("--profile sign-in|unknown|passkey|backup-code|register-first|register-more|status native|c|wasm N".into()),
    };
    let mut w = World::new()?;
    let mut fx = Fixtures::new(&mut w)?;
    let mut t: Box<dyn Target> = match target {
        "native" => Box::new(Native::new(
            Engine::new(world::spec_config()).map_err(|e| e.to_string())?,
            w.host.clone(),
        )),
        "c" => Box::new(CAbi::new(w.host.clone(), &world::spec_config_json())),
        "wasm" => {
            let path = twofold_server::default_component_path();
            let load = twofold_server::LoadOptions {
                cache_dir: Some(cache_dir()),
                call_timeout: None,
            };
            let (loader, _) = ComponentEngine::load(&path, &load).map_err(|e| format!("{e:#}"))?;
            Box::new(
                Wasm::new(loader, world::spec_config(), w.host.clone(), true)
                    .map_err(|e| format!("{e:#}"))?,
            )
        }
        _ => return Err("target: native, c or wasm".into()),
    };
    let mut total = Duration::ZERO;
    let mut faults = Vec::new();
    for _ in 0..n {
        let req = prepare(op, &mut w, &mut fx)?;
        w.sync_clock();
        let before = minor_faults();
        let (d, out) = t.run(&req);
        faults.push(minor_faults() - before);
        total += d;
        check(op, t.name(), out, &mut w, &mut fx)?;
    }
    eprintln!(
        "{} via {}: {n} calls, mean {}, page faults per call {faults:?}",
        op.label(),
        t.name(),
        fmt_ns(total.as_nanos() as f64 / n as f64)
    );
    Ok(())
}

/// Minor page faults of this process so far.
fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_owned();
            rest.split_whitespace().nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Diagnostics: argon2 alone vs in the engine, with the page faults of each call.
fn probe_argon2() {
    let alone = pure::Argon2Alone::new(Argon2Params::PASSWORD_DEFAULT);
    for i in 0..8 {
        let f = minor_faults();
        let d = alone.run();
        eprintln!(
            "alone {i}: {:.2} ms, {} faults",
            d.as_secs_f64() * 1e3,
            minor_faults() - f
        );
    }
    let mut w = World::new().expect("world");
    let mut native = Native::new(
        Engine::new(world::spec_config()).expect("engine"),
        w.host.clone(),
    );
    for i in 0..8 {
        let req = Req::SignIn {
            email: w.unknown_email(),
            password: "not the password".into(),
        };
        let f = minor_faults();
        let (d, _) = native.run(&req);
        eprintln!(
            "engine {i}: {:.2} ms, {} faults",
            d.as_secs_f64() * 1e3,
            minor_faults() - f
        );
    }
    for i in 0..4 {
        let f = minor_faults();
        let d = alone.run();
        eprintln!(
            "alone again {i}: {:.2} ms, {} faults",
            d.as_secs_f64() * 1e3,
            minor_faults() - f
        );
    }
}

// ------------------------------------------------------------------ the machine

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn load1() -> f64 {
    loadavg()
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

// ------------------------------------------------------------------ the run

fn run(o: &Options) -> Res<()> {
    let run_started = Instant::now();
    let load_at_start = loadavg();
    eprintln!("twofold-bench: load average {load_at_start}");
    if load1() > 2.0 {
        eprintln!(
            "twofold-bench: warning: load average above 2, the numbers will be noisy (ratios less so: targets are interleaved)"
        );
    }

    // The component.
    let component = twofold_server::default_component_path();
    let component = std::fs::canonicalize(&component).unwrap_or(component);
    if o.build {
        let status = Command::new("bash")
            .arg(workspace().join("wasm-component/build.sh"))
            .stdout(std::io::stderr())
            .status()
            .map_err(|e| format!("cannot run wasm-component/build.sh: {e}"))?;
        if !status.success() {
            return Err("wasm-component/build.sh failed".into());
        }
    }
    if !component.exists() {
        return Err(format!(
            "{} is missing: run wasm-component/build.sh",
            component.display()
        ));
    }
    let component_size = std::fs::metadata(&component).map(|m| m.len()).unwrap_or(0);
    let load = twofold_server::LoadOptions {
        cache_dir: Some(cache_dir()),
        call_timeout: None,
    };
    let (loader, report) =
        ComponentEngine::load(&component, &load).map_err(|e| format!("{e:#}"))?;
    eprintln!(
        "twofold-bench: component {} ({} bytes) {} in {} ms",
        component.display(),
        component_size,
        if report.from_cache {
            "loaded from cache"
        } else {
            "compiled"
        },
        report.took.as_millis()
    );

    // The world and the targets.
    let mut w = World::new()?;
    let mut fx = Fixtures::new(&mut w)?;
    let mut targets: Vec<Box<dyn Target>> = vec![
        Box::new(Native::new(
            Engine::new(world::spec_config()).map_err(|e| e.to_string())?,
            w.host.clone(),
        )),
        Box::new(CAbi::new(w.host.clone(), &world::spec_config_json())),
        Box::new(
            Wasm::new(loader.clone(), world::spec_config(), w.host.clone(), true)
                .map_err(|e| format!("{e:#}"))?,
        ),
        Box::new(
            Wasm::new(loader.clone(), world::spec_config(), w.host.clone(), false)
                .map_err(|e| format!("{e:#}"))?,
        ),
    ];

    // The slow parts alone, each timed in the rotation of the operations it is part of.
    let q = o.quick;
    let argon_pw = pure::Argon2Alone::new(Argon2Params::PASSWORD_DEFAULT);
    let argon_code = pure::Argon2Alone::new(Argon2Params::BACKUP_CODE_DEFAULT);
    let verification = pure::Verification::new()?;
    let assertion_text = verification.assertion_json();
    let raw = pure::RawEs256::new();

    eprintln!(
        "twofold-bench: operations ({} targets and the slow parts alone, interleaved)",
        targets.len()
    );
    let mut results: BTreeMap<Op, OpResult> = BTreeMap::new();
    let mut peer = None;
    for op in Op::ALL {
        let mut alone: Vec<Alone<'_>> = match op {
            Op::SignIn | Op::SignInUnknown => {
                vec![(ARGON2_PASSWORD, Box::new(|| argon_pw.run()))]
            }
            Op::BackupCode | Op::RegisterFirst => {
                vec![(ARGON2_CODE, Box::new(|| argon_code.run()))]
            }
            Op::Passkey => vec![
                (VERIFY, Box::new(|| verification.run())),
                (
                    VERIFY_JSON,
                    Box::new(|| verification.run_from_json(&assertion_text)),
                ),
                (RAW_ES256, Box::new(|| raw.run())),
            ],
            Op::RegisterMore | Op::Status => Vec::new(),
        };
        results.insert(
            op,
            bench_op(op, q, &mut targets, &mut alone, &mut w, &mut fx)?,
        );
        if op == Op::Passkey && o.peer {
            // The peer right after twofold's verification, on the same assertion.
            let n = op.iterations(q);
            match peer::run(&verification.peer_input, n, (n / 10).max(3)) {
                Ok(p) => peer = Some(p),
                Err(e) => eprintln!("twofold-bench: peer skipped: {e}"),
            }
        }
    }
    drop(targets);

    eprintln!("twofold-bench: argon2id with freshly mapped memory");
    let faulting = alloc_faults(if q { 10 } else { 40 });

    // Component builds with wasm features the default build must not use, when built.
    let variants = match component_variants(&loader, &component) {
        Ok(v) if !v.is_empty() => {
            eprintln!("twofold-bench: component variants ({})", v.len() - 2);
            let mut targets: Vec<Box<dyn Target>> = vec![Box::new(Native::new(
                Engine::new(world::spec_config()).map_err(|e| e.to_string())?,
                w.host.clone(),
            ))];
            for (label, loader) in v {
                targets.push(Box::new(
                    Wasm::new(loader, world::spec_config(), w.host.clone(), true)
                        .map_err(|e| format!("{e:#}"))?
                        .named(label),
                ));
            }
            let mut out = BTreeMap::new();
            for op in [Op::SignInUnknown, Op::Passkey, Op::BackupCode] {
                out.insert(op, bench_op(op, q, &mut targets, &mut [], &mut w, &mut fx)?);
            }
            Some(out)
        }
        Ok(_) => {
            eprintln!(
                "twofold-bench: no component variants built (tests/bench/build-variants.sh makes them)"
            );
            None
        }
        Err(e) => {
            eprintln!("twofold-bench: component variants skipped: {e}");
            None
        }
    };

    eprintln!("twofold-bench: backup-code checks with 1, 10 and 100 codes");
    let checks = code_checks(&mut w, if q { 3 } else { 10 })?;

    // Memory.
    let mut linear = None;
    let mut rss = Vec::new();
    if o.memory {
        eprintln!("twofold-bench: memory");
        match memory::linear_memory(&loader) {
            Ok(l) => linear = Some(l),
            Err(e) => eprintln!("twofold-bench: linear memory: {e:#}"),
        }
        let server = target_dir().join("release/twofold-server");
        if server.exists() {
            match memory::rss_of_server(&server, &component, &bench_dir().join("tmp")) {
                Ok(r) => rss.push(r),
                Err(e) => eprintln!("twofold-bench: RSS of twofold-server: {e}"),
            }
        } else {
            eprintln!(
                "twofold-bench: {} not built: measuring RSS with instances in a child process only",
                server.display()
            );
        }
        match memory::rss_in_child(&component) {
            Ok(r) => rss.push(r),
            Err(e) => eprintln!("twofold-bench: RSS in a child process: {e}"),
        }
    }

    let machine = Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu: cpu_model(),
        load_at_start,
        load_at_end: loadavg(),
        rustc: command_line("rustc", &["-V"]),
        component: format!("{} ({} bytes)", component.display(), component_size),
        quick: q,
        took: run_started.elapsed(),
    };
    let report = render(&Report {
        machine,
        peer,
        results,
        variants,
        faulting,
        checks,
        linear,
        rss,
    });
    print!("{report}");
    let _ = std::fs::create_dir_all(bench_dir());
    let latest = bench_dir().join(if q { "latest-quick.md" } else { "latest.md" });
    if std::fs::write(&latest, &report).is_ok() {
        eprintln!("twofold-bench: written to {}", latest.display());
    }
    Ok(())
}

// ------------------------------------------------------------------ the report

struct Machine {
    nproc: usize,
    cpu: String,
    load_at_start: String,
    load_at_end: String,
    rustc: String,
    component: String,
    quick: bool,
    took: Duration,
}

struct Report {
    machine: Machine,
    peer: Option<peer::PeerResult>,
    results: BTreeMap<Op, OpResult>,
    variants: Option<BTreeMap<Op, OpResult>>,
    /// argon2id alone: p50 with fresh pages, their faults, p50 in the steady state.
    faulting: (f64, u64, f64),
    checks: Vec<CodeCheck>,
    linear: Option<memory::LinearMemory>,
    rss: Vec<memory::Rss>,
}

const NATIVE: &str = "in-process";
const C_ABI: &str = "C ABI";
const WASM_REUSED: &str = "wasm, reused instance";
const WASM_FRESH: &str = "wasm, fresh instance";

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

impl Report {
    fn op(&self, op: Op, target: &str) -> Summary {
        self.results
            .get(&op)
            .and_then(|r| r.samples.get(target))
            .map(Samples::summary)
            .unwrap_or_default()
    }

    /// The median of the minor page faults per call.
    fn faults(&self, op: Op, target: &str) -> String {
        let Some(mut f) = self
            .results
            .get(&op)
            .and_then(|r| r.faults.get(target))
            .cloned()
        else {
            return String::new();
        };
        f.sort_unstable();
        f.get(f.len() / 2).map(u64::to_string).unwrap_or_default()
    }

    /// A slow part alone, as timed in the rotation of `op`.
    fn alone(&self, op: Op, name: &str) -> Summary {
        self.op(op, name)
    }
}

fn render(r: &Report) -> String {
    let m = &r.machine;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Machine: {} cores ({}), load average {} at the start and {} at the end; {}; wasmtime 48.0.8 (Cranelift); component {}. {} run, {:.0} s.\n",
        m.nproc,
        m.cpu,
        m.load_at_start,
        m.load_at_end,
        m.rustc,
        m.component,
        if m.quick { "A --quick" } else { "A full" },
        m.took.as_secs_f64()
    );

    // Operations.
    let _ = writeln!(
        s,
        "#### Operations (one thread; SPEC argon2 parameters; ops/s from the mean)\n"
    );
    let _ = writeln!(
        s,
        "| operation | path | ops/s | p50 | p99 | n | slow hashes | page faults |\n|---|---|---:|---:|---:|---:|---:|---:|"
    );
    for (op, result) in &r.results {
        for target in [NATIVE, C_ABI, WASM_REUSED, WASM_FRESH] {
            let Some(samples) = result.samples.get(target) else {
                continue;
            };
            let x = samples.summary();
            let hashes = match (target, result.slow_hashes) {
                (NATIVE, Some((lo, hi))) if lo == hi => lo.to_string(),
                (NATIVE, Some((lo, hi))) => format!("{lo}-{hi}"),
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "| {} | {target} | {} | {} | {} | {} | {hashes} | {} |",
                op.label(),
                fmt_ops(x.ops_per_s()),
                fmt_ns(x.p50_ns),
                fmt_ns(x.p99_ns),
                x.n,
                r.faults(*op, target),
            );
        }
    }

    // The slow parts alone.
    let _ = writeln!(s, "\n#### The slow parts alone\n");
    let _ = writeln!(
        s,
        "| what | ops/s | p50 | p99 | n | page faults |\n|---|---:|---:|---:|---:|---:|"
    );
    let mut alone_rows: Vec<(String, Summary, String)> = [
        (Op::SignIn, ARGON2_PASSWORD),
        (Op::BackupCode, ARGON2_CODE),
        (Op::Passkey, VERIFY),
        (Op::Passkey, VERIFY_JSON),
        (Op::Passkey, RAW_ES256),
    ]
    .into_iter()
    .map(|(op, name)| (name.to_owned(), r.alone(op, name), r.faults(op, name)))
    .collect();
    alone_rows.push((
        "argon2id m=19456 KiB t=2 in the component (= sign-in with an unknown email, reused instance)"
            .into(),
        r.op(Op::SignInUnknown, WASM_REUSED),
        r.faults(Op::SignInUnknown, WASM_REUSED),
    ));
    if let Some(p) = &r.peer {
        alone_rows.push((
            format!(
                "py_webauthn verify_authentication_response, same assertion ({})",
                p.versions
            ),
            p.verify.summary(),
            String::new(),
        ));
        alone_rows.push((
            "raw ES256 verify, OpenSSL through Python `cryptography`, same signature".into(),
            p.openssl.summary(),
            String::new(),
        ));
    }
    for (name, x, faults) in &alone_rows {
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {} | {faults} |",
            fmt_ops(x.ops_per_s()),
            fmt_ns(x.p50_ns),
            fmt_ns(x.p99_ns),
            x.n
        );
    }

    let (fresh, faults, steady) = r.faulting;
    let _ = writeln!(
        s,
        "\nargon2id m=19456 KiB natively when glibc maps its block afresh for every hash (a fixed 128 KiB mmap threshold): {} and {faults} page faults per hash, against {} from a reused heap block ({:.2}x). The tables above pin glibc's thresholds so that every native path is measured in the steady state.",
        fmt_ns(fresh),
        fmt_ns(steady),
        fresh / steady
    );

    // Ratios against the targets.
    let _ = writeln!(
        s,
        "\n#### Targets (ratios of p50 latencies unless stated)\n"
    );
    let _ = writeln!(s, "| target | measured | |\n|---|---|---|");
    for op in r.results.keys() {
        let (native, c) = (r.op(*op, NATIVE), r.op(*op, C_ABI));
        if native.n == 0 || c.n == 0 {
            continue;
        }
        let ratio = c.p50_ns / native.p50_ns;
        let _ = writeln!(
            s,
            "| C ABI / in-process ≤ 1.05: {} | {ratio:.3} ({:+.1} µs) | {} |",
            op.label(),
            (c.p50_ns - native.p50_ns) / 1e3,
            verdict(ratio <= 1.05)
        );
    }
    let finish = r.op(Op::Passkey, NATIVE);
    if let Some(p) = &r.peer {
        let py = p.verify.summary();
        let ratio = finish.ops_per_s() / py.ops_per_s();
        let _ = writeln!(
            s,
            "| passkey sign-in finish in-process faster than py_webauthn's verification alone (ops/s) | {} vs {} ops/s: {ratio:.2}x | {} |",
            fmt_ops(finish.ops_per_s()),
            fmt_ops(py.ops_per_s()),
            verdict(ratio > 1.0)
        );
    } else {
        let _ = writeln!(
            s,
            "| passkey sign-in finish in-process faster than py_webauthn | not measured (--no-peer or no Python environment) | |"
        );
    }
    for (op, limit) in [
        (Op::Passkey, 1.2),
        (Op::SignIn, 1.5),
        (Op::SignInUnknown, 1.5),
    ] {
        let native = r.op(op, NATIVE);
        for target in [WASM_REUSED, WASM_FRESH] {
            let x = r.op(op, target);
            if x.n == 0 || native.n == 0 {
                continue;
            }
            let ratio = x.p50_ns / native.p50_ns;
            let _ = writeln!(
                s,
                "| {target} / in-process ≤ {limit}: {} | {ratio:.2} | {} |",
                op.label(),
                verdict(ratio <= limit)
            );
        }
    }
    // Each operation against the slow part timed in its own rotation.
    let shares: [(Op, f64, &str); 6] = [
        (
            Op::SignIn,
            r.alone(Op::SignIn, ARGON2_PASSWORD).p50_ns,
            "1 argon2id (password)",
        ),
        (
            Op::SignInUnknown,
            r.alone(Op::SignInUnknown, ARGON2_PASSWORD).p50_ns,
            "1 argon2id (password)",
        ),
        (
            Op::Passkey,
            r.alone(Op::Passkey, VERIFY).p50_ns,
            "1 WebAuthn verification",
        ),
        (
            Op::BackupCode,
            r.alone(Op::BackupCode, ARGON2_CODE).p50_ns,
            "1 argon2id (code)",
        ),
        (
            Op::RegisterFirst,
            10.0 * r.alone(Op::RegisterFirst, ARGON2_CODE).p50_ns,
            "10 argon2id (codes)",
        ),
        (Op::RegisterMore, 0.0, "none"),
    ];
    for (op, slow, what) in shares {
        let x = r.op(op, NATIVE);
        if x.n == 0 {
            continue;
        }
        let rest = (x.p50_ns - slow).max(0.0);
        let share = rest / x.p50_ns;
        let line = if slow > 0.0 {
            format!(
                "{:.1}% ({} of {}; slow part: {what})",
                share * 100.0,
                fmt_ns(rest),
                fmt_ns(x.p50_ns)
            )
        } else {
            format!("no slow part: all of {} is the rest", fmt_ns(x.p50_ns))
        };
        let _ = writeln!(
            s,
            "| everything but argon2 and signatures ≤ 5%, in-process: {} | {line} | {} |",
            op.label(),
            if slow > 0.0 {
                verdict(share <= 0.05)
            } else {
                "n/a"
            }
        );
    }
    let status = r.op(Op::Status, NATIVE);
    let _ = writeln!(
        s,
        "| everything but argon2 and signatures ≤ 5%, in-process: status | no slow part: {} | n/a |",
        fmt_ns(status.p50_ns)
    );
    for c in &r.checks {
        let _ = writeln!(
            s,
            "| a backup-code check costs 1 slow hash: {} code{} in the set | right code {} hash ({}), wrong code {} hash ({}); {} page faults | {} |",
            c.codes,
            if c.codes == 1 { "" } else { "s" },
            c.right_hashes,
            fmt_ns(c.right_p50),
            c.wrong_hashes,
            fmt_ns(c.wrong_p50),
            c.faults,
            verdict(c.right_hashes == 1 && c.wrong_hashes == 1)
        );
    }

    // Component variants.
    if let Some(v) = &r.variants {
        let _ = writeln!(
            s,
            "\n#### Component builds (reused instance; p50, and the ratio to in-process in the same rotation)\n"
        );
        let _ = writeln!(
            s,
            "| operation | in-process | {} |\n|---|---:|{}",
            VARIANTS.join(" | "),
            "---:|".repeat(VARIANTS.len())
        );
        for (op, result) in v {
            let native = result
                .samples
                .get(NATIVE)
                .map(Samples::summary)
                .unwrap_or_default();
            let cells: Vec<String> = VARIANTS
                .iter()
                .map(|label| match result.samples.get(label) {
                    Some(x) => {
                        let x = x.summary();
                        format!("{} ({:.2}x)", fmt_ns(x.p50_ns), x.p50_ns / native.p50_ns)
                    }
                    None => "not built".into(),
                })
                .collect();
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                op.label(),
                fmt_ns(native.p50_ns),
                cells.join(" | ")
            );
        }
    }

    // Memory.
    if r.linear.is_some() || !r.rss.is_empty() {
        let _ = writeln!(s, "\n#### Memory\n");
    }
    if let Some(l) = &r.linear {
        let steps: Vec<String> = l
            .steps
            .iter()
            .map(|(what, bytes)| format!("{what}: {:.1} MiB", *bytes as f64 / 1048576.0))
            .collect();
        let _ = writeln!(
            s,
            "- Linear memory of one instance (wasm memories never shrink): {}.",
            steps.join("; ")
        );
    }
    for x in &r.rss {
        let _ = writeln!(s, "- Peak RSS, {}.", x.line());
    }
    s
}
