//! `twofold-conformance`: runs the conformance scenarios against every target of
//! `targets.toml` and prints `conformance <target>: N passed, M failed` per target.
//! `twofold-conformance --driver` serves the reference driver on standard input and output.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use twofold_conformance::driver::{Driver, Randomness};
use twofold_conformance::runner::{self, Options, Require};

const USAGE: &str = "\
usage: twofold-conformance [options]
       twofold-conformance --driver [--unseeded]

Runs every scenario of tests/conformance/scenarios against every target of
tests/conformance/targets.toml; transcripts go to target/conformance/<target>/.

  --target NAME        run only this target (repeatable; the reference always runs)
  --require NAMES      comma-separated targets that must be available, or `all`
                       (also: env CONFORMANCE_REQUIRE)
  --require-all        the same as --require all
  --command NAME=CMD   the driver command of a target (also: env CONFORMANCE_COMMAND_<NAME>)
  --only TEXT          only scenarios whose name contains TEXT or that cover rule TEXT
                       (repeatable)
  --timeout SECS       how long to wait for one response (default 60; the first
                       response of a driver may take up to 300)
  --root DIR           the workspace root (default: where this crate was built from)
  --targets FILE       another targets file
  --scenarios DIR      another scenario directory
  --list               list the scenarios and the rules they cover
  --print-ops          print PROTOCOL.md's generated tables (operations, their
                       types, error codes, test-only operations, the default
                       configuration)
  --driver             serve the reference driver (the core engine) on stdin/stdout;
                       with --unseeded its randomness ignores `reset` and `seed`
";

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("twofold-conformance: {e}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> Result<ExitCode, String> {
    let mut args = std::env::args().skip(1);
    let default_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut root = None;
    let mut targets = Vec::new();
    let mut require = std::env::var("CONFORMANCE_REQUIRE")
        .map(|r| Require::parse(&r))
        .unwrap_or_default();
    let mut commands = Vec::new();
    let mut filter = Vec::new();
    let mut timeout = None;
    let mut targets_file = None;
    let mut scenarios_dir = None;
    let mut list = false;
    let mut print_ops = false;
    let mut driver = false;
    let mut unseeded = false;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--target" => targets.push(value("--target")?),
            "--require" => require = require.merge(Require::parse(&value("--require")?)),
            "--require-all" => require = Require::All,
            "--command" => {
                let spec = value("--command")?;
                let (name, command) = spec.split_once('=').ok_or("--command takes NAME=COMMAND")?;
                commands.push((
                    name.to_owned(),
                    command.split_whitespace().map(str::to_owned).collect(),
                ));
            }
            "--only" => filter.push(value("--only")?),
            "--timeout" => {
                let secs: f64 = value("--timeout")?
                    .parse()
                    .map_err(|_| "--timeout takes seconds")?;
                timeout = Some(Duration::from_secs_f64(secs));
            }
            "--root" => root = Some(PathBuf::from(value("--root")?)),
            "--targets" => targets_file = Some(PathBuf::from(value("--targets")?)),
            "--scenarios" => scenarios_dir = Some(PathBuf::from(value("--scenarios")?)),
            "--list" => list = true,
            "--print-ops" => print_ops = true,
            "--driver" => driver = true,
            "--unseeded" => unseeded = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }

    if print_ops {
        print!("{}", twofold_conformance::ops::protocol_tables());
        return Ok(ExitCode::SUCCESS);
    }

    if driver {
        let randomness = if unseeded {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos());
            Randomness::Unseeded(nanos as u64 ^ u64::from(std::process::id()))
        } else {
            Randomness::Seeded
        };
        let stdin = std::io::stdin().lock();
        let stdout = std::io::stdout().lock();
        Driver::new(randomness)
            .map_err(|e| format!("driver: {e}"))?
            .serve(stdin, stdout)
            .map_err(|e| format!("driver: {e}"))?;
        return Ok(ExitCode::SUCCESS);
    }

    let root = root.unwrap_or(default_root);
    let root = root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    let mut opts = Options::for_root(&root);
    if let Some(f) = targets_file {
        opts.targets_file = f;
    }
    if let Some(d) = scenarios_dir {
        opts.scenarios_dir = d;
    }
    opts.only_targets = targets;
    opts.require = require;
    opts.commands = commands;
    opts.filter = filter;
    if let Some(t) = timeout {
        opts.timeout = t;
    }

    if list {
        let scenarios = twofold_conformance::scenario::Scenario::load_dir(&opts.scenarios_dir)?;
        for s in &scenarios {
            println!("{:<48} {}", s.name, s.rules.join(" "));
        }
        println!("{} scenarios", scenarios.len());
        return Ok(ExitCode::SUCCESS);
    }

    let report = runner::run(&opts)?;
    print!("{}", report.render());
    Ok(if report.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
