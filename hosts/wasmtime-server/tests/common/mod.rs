//! What the test binaries share: the component loaded once per binary (through the
//! compiled-code cache beside it, so only the first binary compiles it), fast engine
//! settings, and scratch directories.

#![allow(dead_code)]

pub mod client;
pub mod process;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use twofold_server::{ComponentEngine, LoadOptions};

/// Calls longer than this trap; the trap tests sleep past it inside a storage call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// The component, loaded once for every test of this binary.
pub fn loader() -> &'static ComponentEngine {
    static LOADER: OnceLock<ComponentEngine> = OnceLock::new();
    LOADER.get_or_init(|| {
        let path = twofold_server::default_component_path();
        assert!(
            path.exists(),
            "the component {} is missing: build it with `wasm-component/build.sh` \
             (or point TWOFOLD_COMPONENT at a built twofold_component.wasm)",
            path.display()
        );
        let options = LoadOptions {
            cache_dir: path.parent().map(PathBuf::from),
            call_timeout: Some(CALL_TIMEOUT),
        };
        match ComponentEngine::load(&path, &options) {
            Ok((loader, report)) => {
                eprintln!(
                    "component {} in {} ms{}",
                    if report.from_cache {
                        "loaded from cache"
                    } else {
                        "compiled"
                    },
                    report.took.as_millis(),
                    report
                        .cache_problem
                        .map(|p| format!(" ({p})"))
                        .unwrap_or_default()
                );
                loader
            }
            Err(e) => panic!("cannot load {}: {e:?}", path.display()),
        }
    })
}

/// A fresh, empty directory under the system's temporary directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "twofold-server-test-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}
