//! Runs the conformance suite under `cargo test`: every scenario against the in-process core
//! (the reference), and against the same core as a driver process whose randomness ignores
//! `reset` and `seed`, which proves the process plumbing and that transcripts do not depend
//! on random values. Also checks how the runner treats hosts that are missing, broken or mute.

use std::path::{Path, PathBuf};
use std::time::Duration;

use twofold_conformance::runner::{self, Options, Outcome, Report, Require};
use twofold_conformance::target::Endpoint;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn options(name: &str) -> Options {
    let mut opts = Options::for_root(&root());
    opts.out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    opts.only_targets = vec!["core".into()];
    opts
}

fn process(command: &[&str], opts: &Options, name: &str, timeout: Duration) -> Endpoint {
    std::fs::create_dir_all(opts.out_dir.join(name)).unwrap();
    Endpoint::Process {
        command: command.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        cwd: root(),
        stderr_log: opts.out_dir.join(name).join("driver-stderr.log"),
        timeout,
        startup_timeout: timeout,
    }
}

fn outcome<'a>(report: &'a Report, name: &str) -> &'a Outcome {
    &report.targets.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn every_scenario_passes_on_the_core_in_process_and_as_an_unseeded_driver_process() {
    let mut opts = options("suite");
    let exe = env!("CARGO_BIN_EXE_twofold-conformance");
    let endpoint = process(
        &[exe, "--driver", "--unseeded"],
        &opts,
        "core-process",
        Duration::from_secs(60),
    );
    opts.extra_targets.push(("core-process".into(), endpoint));
    opts.only_targets.push("core-process".into());
    opts.require = Require::All;

    let report = runner::run(&opts).unwrap();
    let text = report.render();
    println!("{text}");
    assert!(report.success(), "{text}");
    for name in ["core", "core-process"] {
        match outcome(&report, name) {
            Outcome::Ran { passed, failed, .. } => {
                assert!(*passed >= 60 && failed.is_empty(), "{name}: {text}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("conformance core-process: "),
        "{text}"
    );
}

#[test]
fn a_missing_host_is_skipped_unless_required() {
    let mut opts = options("missing");
    opts.filter = vec!["s1_".into()];
    let endpoint = process(
        &["hosts/nowhere/twofold-nothing", "--driver"],
        &opts,
        "nowhere",
        Duration::from_secs(5),
    );
    opts.extra_targets.push(("nowhere".into(), endpoint));
    opts.only_targets.push("nowhere".into());

    let report = runner::run(&opts).unwrap();
    assert!(report.success(), "{}", report.render());
    assert!(
        matches!(outcome(&report, "nowhere"), Outcome::Skipped(why) if why.contains("not found"))
    );
    assert!(report.render().contains("conformance nowhere: skipped, "));

    opts.require = Require::parse("core,nowhere");
    let report = runner::run(&opts).unwrap();
    assert!(!report.success());
    assert!(matches!(outcome(&report, "nowhere"), Outcome::Missing(_)));
}

#[test]
fn a_host_that_answers_wrongly_or_not_at_all_fails() {
    let mut opts = options("broken");
    opts.filter = vec!["s1_".into(), "a3_".into()];
    // `cat` echoes each request: a line with no ok or error.
    let echo = process(&["/bin/cat"], &opts, "echo", Duration::from_secs(5));
    // `sleep` reads nothing and answers nothing.
    let mute = process(
        &["/bin/sleep", "30"],
        &opts,
        "mute",
        Duration::from_millis(300),
    );
    opts.extra_targets.push(("echo".into(), echo));
    opts.extra_targets.push(("mute".into(), mute));
    opts.only_targets.extend(["echo".into(), "mute".into()]);

    let report = runner::run(&opts).unwrap();
    let text = report.render();
    assert!(!report.success(), "{text}");
    match outcome(&report, "echo") {
        Outcome::Ran { passed, failed, .. } => {
            assert_eq!((*passed, failed.len()), (0, 2), "{text}");
            assert!(failed[0].1.contains("exactly one of ok"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    match outcome(&report, "mute") {
        Outcome::Ran { passed, failed, .. } => {
            assert_eq!((*passed, failed.len()), (0, 2), "{text}");
            assert!(failed[0].1.contains("no response within"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        text.contains("conformance core: 2 passed, 0 failed"),
        "{text}"
    );
}
