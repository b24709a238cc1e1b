//! Runs the conformance suite under `cargo test`: every scenario against the in-process core
//! (the reference), and against the same core as a driver process whose randomness ignores
//! `reset` and `seed`, which proves the process plumbing and that transcripts do not depend
//! on random values. Also checks how the runner treats hosts that are missing, broken or mute.

use std::path::{Path, PathBuf};
use std::time::Duration;

use twofold_conformance::driver::Randomness;
use twofold_conformance::fixture::FixtureKind;
use twofold_conformance::ops;
use twofold_conformance::runner::{self, Options, Outcome, Report, Require};
use twofold_conformance::target::{Endpoint, ProcessSpec};

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
    Endpoint::Process(ProcessSpec {
        command: command.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        cwd: root(),
        out_dir: opts.out_dir.join(name),
        timeout,
        startup_timeout: timeout,
        instances: 1,
        fixture: None,
    })
}

fn ran(report: &Report, name: &str) -> usize {
    match outcome(report, name) {
        Outcome::Ran { passed, failed, .. } => {
            assert!(failed.is_empty(), "{name}: {}", report.render());
            *passed
        }
        other => panic!("{name}: {other:?}\n{}", report.render()),
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

#[test]
fn three_core_instances_sharing_one_storage_write_the_reference_transcripts() {
    let mut opts = options("core-x3");
    let endpoint = Endpoint::InProcess {
        randomness: Randomness::Seeded,
        instances: 3,
    };
    opts.extra_targets.push(("core-x3".into(), endpoint));
    opts.only_targets.push("core-x3".into());
    let report = runner::run(&opts).unwrap();
    assert!(report.success(), "{}", report.render());
    assert_eq!(ran(&report, "core-x3"), ran(&report, "core"));
}

#[test]
fn the_postgres_fixture_hands_its_instances_a_database_they_can_reach() {
    let mut opts = options("postgres-fixture");
    opts.filter = vec!["s1_".into()];
    let exe = env!("CARGO_BIN_EXE_twofold-conformance");
    // Each instance proves it can reach the database before it serves the protocol. The core
    // driver keeps its own storage, so one instance is all this can check; the instances
    // of a real target share the database.
    let script =
        format!("psql --no-psqlrc -q -c 'select 1' '{{postgres_url}}' >&2 && exec {exe} --driver");
    let mut endpoint = process(&["sh", "-c", &script], &opts, "pg", Duration::from_secs(60));
    if let Endpoint::Process(spec) = &mut endpoint {
        spec.fixture = Some(FixtureKind::Postgres);
    }
    opts.extra_targets.push(("pg".into(), endpoint));
    opts.only_targets.push("pg".into());
    // Required: where PostgreSQL is missing this fails, naming tests/setup.sh.
    opts.require = Require::parse("core,pg");
    let report = runner::run(&opts).unwrap();
    assert!(report.success(), "{}", report.render());
    assert_eq!(ran(&report, "pg"), 1);
    let log = std::fs::read_to_string(opts.out_dir.join("pg/postgres.log")).unwrap();
    assert!(log.contains("database system is ready"), "{log}");
}

#[test]
fn optional_and_multi_instance_targets_are_read_from_the_targets_file() {
    let mut opts = options("targets-file");
    opts.only_targets.clear();
    opts.filter = vec!["s1_".into()];
    let file = opts.out_dir.join("targets.toml");
    std::fs::create_dir_all(&opts.out_dir).unwrap();
    std::fs::write(
        &file,
        r#"
[[target]]
name = "core"
builtin = "core"

[[target]]
name = "core-x2"
builtin = "core"
instances = 2

[[target]]
name = "later"
command = ["hosts/nowhere/twofold-later", "--driver", "--db", "{postgres_url}"]
instances = 3
fixture = "postgres"
optional = true
"#,
    )
    .unwrap();
    opts.targets_file = file.clone();

    // An optional target runs only when named; --require-all leaves it out.
    opts.require = Require::All;
    let report = runner::run(&opts).unwrap();
    assert!(report.success(), "{}", report.render());
    assert_eq!(ran(&report, "core-x2"), 1);
    assert!(!report.targets.iter().any(|(n, _)| n == "later"));

    opts.require = Require::parse("later");
    let report = runner::run(&opts).unwrap();
    assert!(!report.success());
    assert!(
        matches!(outcome(&report, "later"), Outcome::Missing(why) if why.contains("not found"))
    );

    std::fs::write(
        &file,
        "[[target]]\nname = \"x\"\ncommand = [\"a\"]\nfixture = \"mysql\"\n",
    )
    .unwrap();
    let err = runner::run(&opts).unwrap_err();
    assert!(err.contains("unknown fixture"), "{err}");
}

#[test]
fn protocol_md_shows_the_generated_tables() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("PROTOCOL.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let begin = text
        .find(ops::GENERATED_BEGIN)
        .expect("PROTOCOL.md has the generated part");
    let end = text[begin..].find(ops::GENERATED_END).expect("and its end") + begin;
    let shown = &text[begin..end + ops::GENERATED_END.len() + 1];
    assert!(
        shown == ops::protocol_tables(),
        "PROTOCOL.md's tables are out of date: replace the generated part with the output of \
         `cargo run -q -p twofold-conformance -- --print-ops`"
    );
}

#[test]
fn each_operation_is_the_wit_method_with_its_request_and_answer_types() {
    let engine = std::fs::read_to_string(root().join("wit/engine.wit")).unwrap();
    for op in twofold_proto::Op::ALL {
        let (request, answer) = ops::engine_types(*op);
        let method = format!(
            "{}: func(ctx: context, req: {}) -> result<{}, engine-error>;",
            op.wit_name(),
            ops::wit_type_name(request),
            ops::wit_type_name(answer)
        );
        assert!(engine.contains(&method), "wit/engine.wit has no `{method}`");
    }
}
