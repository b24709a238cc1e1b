//! The compiled component on disk, so that a process that starts often (the conformance
//! driver, a test binary, a debug build whose Cranelift compiles the component in over ten
//! seconds) compiles it once per component version instead of once per start.
//!
//! The file name carries a SHA-256 of the component's bytes and wasmtime's compatibility hash
//! of the engine configuration, so a changed component or configuration never meets stale
//! code; wasmtime also checks its own version and settings when it loads the file. Files are
//! written under a temporary name and renamed, so concurrent processes never read half a file.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The component from `dir` when a matching compiled file is there, else compiled from
/// `bytes` and written there. Answers the component, whether it came from the cache, and why
/// the cache could not be used, if it could not (compiling still succeeded).
pub(crate) fn load_or_compile(
    engine: &Engine,
    bytes: &[u8],
    wasm_path: &Path,
    dir: &Path,
) -> wasmtime::Result<(Component, bool, Option<String>)> {
    let file = dir.join(file_name(engine, bytes, wasm_path));
    let mut problem = None;
    if file.exists() {
        // SAFETY: `deserialize_file` trusts the file to be machine code wasmtime wrote. This
        // one was written by `Component::serialize` in `store` below, under a name derived
        // from the component's content and this engine's configuration, in a directory no
        // less trusted than the component itself; wasmtime checks the header, its version and
        // the engine settings before using it, and refuses a mismatch.
        match unsafe { Component::deserialize_file(engine, &file) } {
            Ok(component) => return Ok((component, true, None)),
            Err(e) => problem = Some(format!("ignored {}: {e}", file.display())),
        }
    }
    let component = Component::new(engine, bytes).map_err(|e| {
        e.context(format!(
            "cannot compile the component {}",
            wasm_path.display()
        ))
    })?;
    if let Err(e) = store(&component, &file) {
        problem = Some(format!("cannot write {}: {e}", file.display()));
    }
    Ok((component, false, problem))
}

/// `<stem>.<content hash>-<engine hash>.cwasm`.
fn file_name(engine: &Engine, bytes: &[u8], wasm_path: &Path) -> String {
    let content = Sha256::digest(bytes);
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!(
        "{}.{}-{:016x}.cwasm",
        stem(wasm_path),
        hex(&content[..8]),
        hasher.finish()
    )
}

fn stem(wasm_path: &Path) -> String {
    wasm_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "component".into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes the compiled code atomically, then removes compiled files of older versions of the
/// same component.
fn store(component: &Component, file: &Path) -> wasmtime::Result<()> {
    let code = component.serialize()?;
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        file.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&temp, &code)?;
    if let Err(e) = std::fs::rename(&temp, file) {
        let _ = std::fs::remove_file(&temp);
        return Err(e.into());
    }
    remove_stale(file);
    Ok(())
}

/// Removes `<stem>.*.cwasm` files beside `current` whose content hash differs: they belong
/// to builds of the component that are gone.
fn remove_stale(current: &Path) {
    let (Some(dir), Some(name)) = (current.parent(), current.file_name()) else {
        return;
    };
    let name = name.to_string_lossy();
    let Some((stem, rest)) = name.split_once('.') else {
        return;
    };
    let Some((content, _)) = rest.split_once('-') else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let stale: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|path| {
            let other = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            other.starts_with(&format!("{stem}."))
                && other.ends_with(".cwasm")
                && !other.starts_with(&format!("{stem}.{content}-"))
        })
        .collect();
    for path in stale {
        let _ = std::fs::remove_file(path);
    }
}
