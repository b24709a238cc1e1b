//! Where the host programs and the component are, and what to do when one is missing.
//!
//! The host programs are built by other steps (`cargo build -p twofold-server`,
//! `make -C hosts/c-sqlite`, `wasm-component/build.sh`). A test that needs a missing one prints
//! why and passes, unless `TWOFOLD_REQUIRE_HOSTS=1`, where it fails saying what to build.

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the workspace) or `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace().join(dir),
        None => workspace().join("target"),
    }
}

fn from_env(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or(default)
}

/// `$TWOFOLD_SERVER_BIN`, else `<target>/debug/twofold-server`.
pub fn server_binary() -> PathBuf {
    from_env(
        "TWOFOLD_SERVER_BIN",
        target_dir().join("debug/twofold-server"),
    )
}

/// `$TWOFOLD_C_HOST`, else `hosts/c-sqlite/build/twofold-c`.
pub fn c_host_binary() -> PathBuf {
    from_env(
        "TWOFOLD_C_HOST",
        workspace().join("hosts/c-sqlite/build/twofold-c"),
    )
}

/// `$TWOFOLD_COMPONENT`, else `<target>/wasm32-wasip2/release/twofold_component.wasm`.
pub fn component_path() -> PathBuf {
    from_env(
        "TWOFOLD_COMPONENT",
        target_dir().join("wasm32-wasip2/release/twofold_component.wasm"),
    )
}

/// Whether `TWOFOLD_REQUIRE_HOSTS=1`.
pub fn hosts_required() -> bool {
    std::env::var("TWOFOLD_REQUIRE_HOSTS").is_ok_and(|v| v == "1")
}

/// True when every path exists. Otherwise prints what is missing and answers false, or panics
/// under `TWOFOLD_REQUIRE_HOSTS=1`.
pub fn available(test: &str, needs: &[(&str, PathBuf, &str)]) -> bool {
    let missing: Vec<String> = needs
        .iter()
        .filter(|(_, path, _)| !path.exists())
        .map(|(what, path, build)| format!("{what} {} (build: {build})", path.display()))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!("{test}: missing {}", missing.join("; "));
    assert!(!hosts_required(), "{message} [TWOFOLD_REQUIRE_HOSTS=1]");
    eprintln!("SKIPPED {message}; set TWOFOLD_REQUIRE_HOSTS=1 to fail instead");
    false
}

/// The server and the component it loads.
pub fn server_needs() -> Vec<(&'static str, PathBuf, &'static str)> {
    vec![(
        "the server",
        server_binary(),
        "cargo build -p twofold-server",
    )]
    .into_iter()
    .chain(component_needs())
    .collect()
}

/// The component (tests that load it in process).
pub fn component_needs() -> Vec<(&'static str, PathBuf, &'static str)> {
    vec![("the component", component_path(), "wasm-component/build.sh")]
}

/// The C host.
pub fn c_host_needs() -> Vec<(&'static str, PathBuf, &'static str)> {
    vec![("the C host", c_host_binary(), "make -C hosts/c-sqlite")]
}

/// A fresh empty directory for one test's databases, under the system's temporary directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("twofold-reliability-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}
