//! `include/twofold.h` is generated, committed and checked: this test regenerates it with the
//! pinned cbindgen and fails on any difference. `TWOFOLD_BLESS=1` rewrites the file instead.

use std::path::Path;

#[test]
fn checked_in_header_matches_a_fresh_generation() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header_path = crate_dir.join("../include/twofold.h");
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("the header is UTF-8");

    if std::env::var_os("TWOFOLD_BLESS").is_some() {
        std::fs::write(&header_path, &fresh).expect("write include/twofold.h");
        return;
    }
    let checked_in = std::fs::read_to_string(&header_path).unwrap_or_default();
    if checked_in != fresh {
        let line = checked_in
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| checked_in.lines().count().min(fresh.lines().count()));
        panic!(
            "include/twofold.h is out of date (first difference at line {}); regenerate it with \
             `TWOFOLD_BLESS=1 cargo test -p twofold-ffi --test header` and commit the result",
            line + 1
        );
    }
}
