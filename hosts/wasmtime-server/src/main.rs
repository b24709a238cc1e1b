//! `twofold-server`: the twofold WASI component in wasmtime over SQLite, serving the JSON API
//! and the web UI over HTTP, or speaking the conformance protocol with `--driver`.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use twofold_server::driver::{self, Driver};
use twofold_server::http::{self, ServerConfig};
use twofold_server::proto::{AuditKey, Config};
use twofold_server::sqlite::SqliteStorage;
use twofold_server::{ComponentEngine, LoadOptions};

const USAGE: &str = "\
usage: twofold-server [options]          serve the JSON API and the web UI
       twofold-server --driver [options] speak the conformance protocol on stdin/stdout

options (each also read from the environment variable shown):
  --listen ADDR      address to listen on            TWOFOLD_LISTEN     127.0.0.1:8080
  --origin URL       the site's origin (CSRF check, WebAuthn origin)
                                                     TWOFOLD_ORIGIN     http://localhost:<listen port>
  --rp-id DOMAIN     WebAuthn relying party id       TWOFOLD_RP_ID      the origin's host
  --rp-name NAME     relying party name              TWOFOLD_RP_NAME    twofold
  --db PATH          SQLite database file            TWOFOLD_DB         ./twofold.db
                     (--driver: an in-memory database unless given)
  --component PATH   the built component             TWOFOLD_COMPONENT  target/wasm32-wasip2/release/twofold_component.wasm
  --workers N        HTTP worker threads             TWOFOLD_WORKERS    4
  --audit-key-file PATH
                     the keys that authenticate the audit log, one `id:hex` a line, the
                     first signing new events     (or TWOFOLD_AUDIT_KEYS=id:hex,id:hex...)
                     Default: <db>.audit-key, made on first start. Keep keys outside the
                     database's backups; in production pass them from a secret store.
  --no-cache         compile the component without reading or writing the
                     compiled-code cache kept beside it
  --driver           conformance driver mode (tests only: its randomness is seeded)
  -h, --help         this text
";

/// A call may run this long before it is stopped as a trap.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

struct Options {
    listen: SocketAddr,
    origin: String,
    rp_id: String,
    rp_name: String,
    db: Option<PathBuf>,
    component: PathBuf,
    workers: usize,
    audit_keys: Option<Vec<AuditKey>>,
    audit_key_file: Option<PathBuf>,
    cache: bool,
    driver: bool,
}

fn parse(args: Vec<String>) -> Result<Option<Options>, String> {
    let mut flags: Vec<(&str, Option<String>)> = Vec::new();
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
            "--listen" | "--origin" | "--rp-id" | "--rp-name" | "--db" | "--component"
            | "--workers" | "--audit-key-file" => {
                let value = match inline {
                    Some(v) => v,
                    None => args.next().ok_or_else(|| format!("{name} needs a value"))?,
                };
                let key = match name.as_str() {
                    "--listen" => "listen",
                    "--origin" => "origin",
                    "--rp-id" => "rp-id",
                    "--rp-name" => "rp-name",
                    "--db" => "db",
                    "--component" => "component",
                    "--audit-key-file" => "audit-key-file",
                    _ => "workers",
                };
                flags.push((key, Some(value)));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let get = |key: &str, env: &str| -> Option<String> {
        flags
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.clone())
            .or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
    };

    let listen_text = get("listen", "TWOFOLD_LISTEN").unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        format!("--listen {listen_text:?} is not an address such as 127.0.0.1:8080")
    })?;
    let origin = get("origin", "TWOFOLD_ORIGIN")
        .unwrap_or_else(|| format!("http://localhost:{}", listen.port()));
    let origin = origin.trim_end_matches('/').to_owned();
    let host = origin_host(&origin).ok_or_else(|| {
        format!("--origin {origin:?} is not an origin such as http://localhost:8080")
    })?;
    let rp_id = get("rp-id", "TWOFOLD_RP_ID").unwrap_or(host);
    let rp_name = get("rp-name", "TWOFOLD_RP_NAME").unwrap_or_else(|| "twofold".into());
    let db = get("db", "TWOFOLD_DB").map(PathBuf::from);
    let component = get("component", "TWOFOLD_COMPONENT")
        .map(PathBuf::from)
        .unwrap_or_else(twofold_server::default_component_path);
    let workers = match get("workers", "TWOFOLD_WORKERS") {
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| format!("--workers {n:?} must be 1 to 64"))?,
        None => 4,
    };
    let audit_keys = std::env::var("TWOFOLD_AUDIT_KEYS")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| parse_audit_keys(&v.replace(',', "\n")))
        .transpose()
        .map_err(|e| format!("TWOFOLD_AUDIT_KEYS: {e}"))?;
    let audit_key_file = flags
        .iter()
        .rev()
        .find(|(k, _)| *k == "audit-key-file")
        .and_then(|(_, v)| v.clone())
        .map(PathBuf::from);
    Ok(Some(Options {
        listen,
        audit_keys,
        audit_key_file,
        origin,
        rp_id,
        rp_name,
        db,
        component,
        workers,
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

/// The audit keys: `TWOFOLD_AUDIT_KEYS`, else `--audit-key-file`, else `<db>.audit-key`,
/// which is made (32 random bytes, mode 0600) when missing, so a demo needs no setup.
fn audit_keys(options: &Options, db: &std::path::Path) -> wasmtime::Result<Vec<AuditKey>> {
    if let Some(keys) = &options.audit_keys {
        return Ok(keys.clone());
    }
    let (path, explicit) = match &options.audit_key_file {
        Some(path) => (path.clone(), true),
        None => {
            let mut name = db.as_os_str().to_owned();
            name.push(".audit-key");
            (PathBuf::from(name), false)
        }
    };
    if !explicit && !path.exists() {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| wasmtime::format_err!("no randomness for an audit key: {e}"))?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        write_private(&path, &format!("k1:{hex}\n"))?;
        eprintln!(
            "twofold-server: made the audit key {} (keep it, and keep it apart from the \
             database's backups: without it the audit log cannot be verified)",
            path.display()
        );
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| wasmtime::format_err!("cannot read the audit keys {}: {e}", path.display()))?;
    parse_audit_keys(&text).map_err(|e| wasmtime::format_err!("{}: {e}", path.display()))
}

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, text: &str) -> wasmtime::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| wasmtime::format_err!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
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
        let storage = match &options.db {
            Some(path) => SqliteStorage::open(path)?,
            None => SqliteStorage::open_in_memory()?,
        };
        let mut driver = Driver::new(loader, storage, driver::default_config());
        let stdin = std::io::stdin().lock();
        let stdout = std::io::stdout().lock();
        driver.run(stdin, stdout)?;
        return Ok(());
    }

    let db = options
        .db
        .clone()
        .unwrap_or_else(|| PathBuf::from("twofold.db"));
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
            listen: options.listen,
            origin: options.origin.clone(),
            db: db.clone(),
            engine: config,
            workers: options.workers,
            storage_layer: None,
        },
    )?;
    eprintln!(
        "twofold-server: listening on {} (rp-id {}, database {}, {} workers)",
        server.addr(),
        options.rp_id,
        db.display(),
        options.workers
    );
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
}
