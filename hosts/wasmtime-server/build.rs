//! Embeds every file under `web/` in the binary, so `twofold-server` serves the UI from
//! wherever it is copied: writes `$OUT_DIR/web_assets.rs`, a table of URL path and bytes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let web = manifest.join("web");
    println!("cargo:rerun-if-changed=web");

    let mut files = Vec::new();
    collect(&web, &mut files);
    files.sort();

    let mut table = String::from("&[\n");
    for file in &files {
        // Each file too: a directory's own time changes only when entries come and go.
        println!("cargo:rerun-if-changed={}", file.display());
        let Ok(relative) = file.strip_prefix(&web) else {
            continue;
        };
        let url: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let _ = writeln!(
            table,
            "    ({:?}, include_bytes!({:?}) as &[u8]),",
            format!("/{}", url.join("/")),
            file.display().to_string()
        );
    }
    table.push(']');

    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    if let Err(e) = std::fs::write(out.join("web_assets.rs"), table) {
        panic!("cannot write web_assets.rs: {e}");
    }
}

/// Every regular file under `dir`, skipping hidden ones (editor and OS droppings).
fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(&path, files);
        } else if path.is_file() {
            files.push(path);
        }
    }
}
