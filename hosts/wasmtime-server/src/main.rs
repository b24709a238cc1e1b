//! `twofold-server`: the twofold WASI component in wasmtime over SQLite or PostgreSQL, serving
//! the JSON API and the web UI over HTTP, or speaking the conformance protocol with `--driver`.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)
)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use twofold_server::driver::{self, Driver};
use twofold_server::http::{self, ServerConfig, Timeouts};
use twofold_server::proto::{AuditKey, Config};
use twofold_server::store::Database;
use twofold_server::{ComponentEngine, LoadOptions};

const USAGE: &str = "\
usage: twofold-server [options]          serve the JSON API and the web UI
       twofold-server --driver [options] speak the conformance protocol on stdin/stdout

options (each also read from the environment variable shown):
  --listen ADDR        address to listen on          TWOFOLD_LISTEN      127.0.0.1:8080
  --origin URL         the site's origin: the address to open, the only Origin accepted on
                       changes, the WebAuthn origin  TWOFOLD_ORIGIN      http://localhost:<port>
  --rp-id DOMAIN       WebAuthn relying party id     TWOFOLD_RP_ID       the origin's host
  --rp-name NAME       relying party name            TWOFOLD_RP_NAME     twofold
  --db PATH|URL        an SQLite file, or a postgres:// URL (several servers may share one)
                                                     TWOFOLD_DB          ./twofold.db
                       (--driver: an in-memory SQLite database unless given)
  --component PATH     the built component           TWOFOLD_COMPONENT   target/wasm32-wasip2/release/twofold_component.wasm
  --workers N          engine worker threads         TWOFOLD_WORKERS     4
  --queue N            requests waiting for a worker before 503
                                                     TWOFOLD_QUEUE       64
  --max-connections N  open connections before new ones get 503
                                                     TWOFOLD_MAX_CONNECTIONS  512
  --request-timeout S  seconds a request may take to arrive (408)
                                                     TWOFOLD_REQUEST_TIMEOUT  10
  --idle-timeout S     seconds an idle keep-alive connection stays open
                                                     TWOFOLD_IDLE_TIMEOUT     60
  --trusted-proxy IP   a reverse proxy whose X-Forwarded-For names the client; repeat or
                       separate with commas          TWOFOLD_TRUSTED_PROXIES  none
  --audit-key-file PATH
                       the keys that authenticate the audit log, one `id:hex` a line, the
                       first signing new events  (or TWOFOLD_AUDIT_KEYS=id:hex,id:hex...)
                       Default with SQLite: <db>.audit-key, made on first start. Keep keys out
                       of the database's backups; in production pass them from a secret store.
  --no-cache           compile the component without reading or writing the compiled-code
                       cache kept beside it
  --driver             conformance driver mode (tests only: its randomness is seeded)
  -h, --help           this text
";

/// A call may run this long before it is stopped as a trap.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Flags that take a value, and the environment variable each falls back to.
const VALUED: &[(&str, &str)] = &[
    ("--listen", "TWOFOLD_LISTEN"),
    ("--origin", "TWOFOLD_ORIGIN"),
    ("--rp-id", "TWOFOLD_RP_ID"),
    ("--rp-name", "TWOFOLD_RP_NAME"),
    ("--db", "TWOFOLD_DB"),
    ("--component", "TWOFOLD_COMPONENT"),
    ("--workers", "TWOFOLD_WORKERS"),
    ("--queue", "TWOFOLD_QUEUE"),
    ("--max-connections", "TWOFOLD_MAX_CONNECTIONS"),
    ("--request-timeout", "TWOFOLD_REQUEST_TIMEOUT"),
    ("--idle-timeout", "TWOFOLD_IDLE_TIMEOUT"),
    ("--trusted-proxy", "TWOFOLD_TRUSTED_PROXIES"),
    ("--audit-key-file", "TWOFOLD_AUDIT_KEY_FILE"),
];

struct Options {
    listen: SocketAddr,
    origin: String,
    rp_id: String,
    rp_name: String,
    db: Option<Database>,
    component: PathBuf,
    workers: usize,
    queue: usize,
    max_connections: usize,
    timeouts: Timeouts,
    trusted_proxies: Vec<IpAddr>,
    audit_keys: Option<Vec<AuditKey>>,
    audit_key_file: Option<PathBuf>,
    cache: bool,
    driver: bool,
}

/// The flags given (`--trusted-proxy` may repeat); `None` for `--help`.
fn parse(args: Vec<String>) -> Result<Option<Options>, String> {
    let mut given: Vec<(&'static str, String)> = Vec::new();
    let mut driver = false;
    let mut cache = true;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--driver" => driver = true,
            "--no-cache" => cache = false,
            _ => {
                let Some((flag, _)) = VALUED.iter().find(|(f, _)| *f == name) else {
                    return Err(format!("unknown argument {name:?}"));
                };
                let value = match inline {
                    Some(v) => v,
                    None => args.next().ok_or_else(|| format!("{name} needs a value"))?,
                };
                given.push((flag, value));
            }
        }
    }
    // The last value given, else the environment variable.
    let get = |flag: &str| -> Option<String> {
        given
            .iter()
            .rev()
            .find(|(f, _)| *f == flag)
            .map(|(_, v)| v.clone())
            .or_else(|| {
                let env = VALUED.iter().find(|(f, _)| *f == flag)?.1;
                std::env::var(env).ok().filter(|v| !v.is_empty())
            })
    };
    let number =
        |flag: &str, default: usize, range: std::ops::RangeInclusive<usize>| match get(flag) {
            Some(n) => n
                .parse::<usize>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    format!("{flag} {n:?} must be {} to {}", range.start(), range.end())
                }),
            None => Ok(default),
        };

    let listen_text = get("--listen").unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        format!("--listen {listen_text:?} is not an address such as 127.0.0.1:8080")
    })?;
    let origin = get("--origin").unwrap_or_else(|| format!("http://localhost:{}", listen.port()));
    let origin = origin.trim_end_matches('/').to_owned();
    let host = origin_host(&origin).ok_or_else(|| {
        format!("--origin {origin:?} is not an origin such as http://localhost:8080")
    })?;
    let trusted_proxies = given
        .iter()
        .filter(|(f, _)| *f == "--trusted-proxy")
        .map(|(_, v)| v.clone())
        .chain(
            given
                .iter()
                .all(|(f, _)| *f != "--trusted-proxy")
                .then(|| get("--trusted-proxy"))
                .flatten(),
        )
        .flat_map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .map(|s| {
            s.parse::<IpAddr>()
                .map_err(|_| format!("--trusted-proxy {s:?} is not an IP address"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let audit_keys = std::env::var("TWOFOLD_AUDIT_KEYS")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| parse_audit_keys(&v.replace(',', "\n")))
        .transpose()
        .map_err(|e| format!("TWOFOLD_AUDIT_KEYS: {e}"))?;
    let secs = |flag: &str, default: usize| -> Result<Duration, String> {
        Ok(Duration::from_secs(
            number(flag, default, 1..=86_400)? as u64
        ))
    };
    Ok(Some(Options {
        listen,
        rp_id: get("--rp-id").unwrap_or(host),
        rp_name: get("--rp-name").unwrap_or_else(|| "twofold".into()),
        origin,
        db: get("--db").map(|d| Database::from_arg(&d)),
        component: get("--component")
            .map(PathBuf::from)
            .unwrap_or_else(twofold_server::default_component_path),
        workers: number("--workers", 4, 1..=64)?,
        queue: number("--queue", 64, 1..=100_000)?,
        max_connections: number("--max-connections", 512, 1..=1_000_000)?,
        timeouts: Timeouts {
            request: secs("--request-timeout", 10)?,
            idle: secs("--idle-timeout", 60)?,
        },
        trusted_proxies,
        audit_keys,
        audit_key_file: get("--audit-key-file").map(PathBuf::from),
        cache,
        driver,
    }))
}

/// Audit keys from `id:hex` lines (blank lines and `#` comments skipped), first one first.
/// Messages never quote a secret.
fn parse_audit_keys(text: &str) -> Result<Vec<AuditKey>, String> {
    let keys: Vec<AuditKey> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
        .map(|(n, line)| match line.split_once(':') {
            Some((id, secret)) => Ok(AuditKey::new(id.trim(), secret.trim())),
            None => Err(format!("key {} is not `id:hex`", n + 1)),
        })
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err("no key given".into());
    }
    Ok(keys)
}

/// The audit keys: `TWOFOLD_AUDIT_KEYS`, else `--audit-key-file`, else (SQLite only)
/// `<db>.audit-key`, made (32 random bytes, mode 0600) when missing, so a demo needs no setup.
fn audit_keys(options: &Options, db: &Database) -> wasmtime::Result<Vec<AuditKey>> {
    if let Some(keys) = &options.audit_keys {
        return Ok(keys.clone());
    }
    let path = match (&options.audit_key_file, db) {
        (Some(path), _) => path.clone(),
        (None, Database::Sqlite(file)) => {
            let mut name = file.as_os_str().to_owned();
            name.push(".audit-key");
            let path = PathBuf::from(name);
            if !path.exists() {
                make_audit_key(&path)?;
            }
            path
        }
        (None, _) => wasmtime::bail!(
            "the audit log needs a key: pass --audit-key-file PATH (lines of `id:hex`, e.g. \
             `echo \"k1:$(openssl rand -hex 32)\"`) or TWOFOLD_AUDIT_KEYS, the same on every \
             server of the database"
        ),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| wasmtime::format_err!("cannot read the audit keys {}: {e}", path.display()))?;
    parse_audit_keys(&text).map_err(|e| wasmtime::format_err!("{}: {e}", path.display()))
}

/// Writes a new key to a file only its owner can read.
fn make_audit_key(path: &Path) -> wasmtime::Result<()> {
    use std::io::Write as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| wasmtime::format_err!("no randomness for an audit key: {e}"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| wasmtime::format_err!("cannot create {}: {e}", path.display()))?;
    file.write_all(format!("k1:{hex}\n").as_bytes())?;
    file.sync_all()?;
    eprintln!(
        "twofold-server: made the audit key {} (keep it, and keep it apart from the \
         database's backups: without it the audit log cannot be verified)",
        path.display()
    );
    Ok(())
}

/// The host of `scheme://host[:port]`.
fn origin_host(origin: &str) -> Option<String> {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))?;
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => rest.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_owned())
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1).collect()) {
        Ok(Some(options)) => options,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("twofold-server: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("twofold-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(mut options: Options) -> wasmtime::Result<()> {
    match options.component.canonicalize() {
        Ok(path) => options.component = path,
        Err(_) => wasmtime::bail!(
            "the component {} is missing: build it with `wasm-component/build.sh` \
             (or pass --component)",
            options.component.display()
        ),
    }
    let load = LoadOptions {
        cache_dir: options
            .cache
            .then(|| options.component.parent().map(PathBuf::from))
            .flatten(),
        call_timeout: Some(CALL_TIMEOUT),
    };
    let (loader, report) = ComponentEngine::load(&options.component, &load)?;
    eprintln!(
        "twofold-server: component {} {} in {} ms",
        options.component.display(),
        if report.from_cache {
            "loaded from the compiled-code cache"
        } else {
            "compiled"
        },
        report.took.as_millis()
    );
    if let Some(problem) = report.cache_problem {
        eprintln!("twofold-server: compiled-code cache: {problem}");
    }
    if options.driver {
        let db = options.db.clone().unwrap_or(Database::Memory);
        let storage = db
            .open()
            .map_err(|e| wasmtime::format_err!("cannot open {db}: {e}"))?;
        let mut driver = Driver::new(loader, storage, driver::default_config());
        let stdin = std::io::stdin().lock();
        let stdout = std::io::stdout().lock();
        driver.run(stdin, stdout)?;
        return Ok(());
    }

    let db = options
        .db
        .clone()
        .unwrap_or_else(|| Database::Sqlite(PathBuf::from("twofold.db")));
    let config = Config {
        rp_id: options.rp_id.clone(),
        rp_name: options.rp_name.clone(),
        origins: vec![options.origin.clone()],
        audit_keys: audit_keys(&options, &db)?,
        ..Config::default()
    };
    // Register before starting, so a signal during start-up is not lost.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    let server = http::start(
        loader,
        ServerConfig {
            workers: options.workers,
            queue: options.queue,
            max_connections: options.max_connections,
            timeouts: options.timeouts,
            trusted_proxies: options.trusted_proxies.clone(),
            ..ServerConfig::new(options.listen, options.origin.clone(), db.clone(), config)
        },
    )?;
    eprintln!(
        "twofold-server: listening on {} (rp-id {}, {db}, {} workers)",
        server.addr(),
        options.rp_id,
        options.workers
    );
    // What to open: the Origin check refuses changes from any other address.
    eprintln!("twofold-server: open {}/ in a browser", options.origin);
    println!("{}/", options.origin);

    let stopper = server.stopper();
    let signal_handle = signals.handle();
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            eprintln!("twofold-server: signal {signal}, finishing requests in flight");
            stopper.stop();
        }
    });
    let result = server.wait();
    signal_handle.close();
    match result {
        Ok(()) => {
            eprintln!("twofold-server: stopped");
            Ok(())
        }
        Err(why) => wasmtime::bail!("{why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn defaults_follow_the_listen_port_and_the_origin_host() {
        let o = parse(args(&["--listen", "127.0.0.1:9000"]))
            .unwrap()
            .unwrap();
        assert_eq!(o.origin, "http://localhost:9000");
        assert_eq!(o.rp_id, "localhost");
        let o = parse(args(&[
            "--origin=https://auth.example.com/",
            "--rp-id",
            "example.com",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(o.origin, "https://auth.example.com");
        assert_eq!(o.rp_id, "example.com");
        assert!(parse(args(&["--origin", "localhost"])).is_err());
        assert!(parse(args(&["--bogus"])).is_err());
        assert!(parse(args(&["--workers", "0"])).is_err());
        assert!(parse(args(&["--help"])).unwrap().is_none());
        assert_eq!(origin_host("http://[::1]:8080").as_deref(), Some("::1"));
    }

    #[test]
    fn db_picks_the_store_and_trusted_proxies_add_up() {
        let o = parse(args(&[
            "--db",
            "postgres://twofold:secret@db.internal:5432/auth",
            "--trusted-proxy",
            "10.0.0.2",
            "--trusted-proxy=10.0.0.3, ::1",
            "--idle-timeout",
            "2",
        ]))
        .unwrap()
        .unwrap();
        let db = o.db.expect("a database");
        assert!(matches!(db, Database::Postgres(_)));
        assert!(!db.to_string().contains("secret"), "{db}");
        assert_eq!(o.trusted_proxies.len(), 3);
        assert_eq!(o.timeouts.idle, Duration::from_secs(2));
        let o = parse(args(&["--db", "data/twofold.db"])).unwrap().unwrap();
        assert!(matches!(o.db, Some(Database::Sqlite(_))));
        assert!(parse(args(&["--trusted-proxy", "proxy.local"])).is_err());
    }
}
