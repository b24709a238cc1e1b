//! `include/twofold.h` is generated, committed and checked: this test regenerates it with the
//! pinned cbindgen and fails on any difference. `TWOFOLD_BLESS=1` rewrites the file instead.
//!
//! The statuses are not a Rust item cbindgen could see (the codes are one table,
//! `ErrorCode::ALL`, declared by a macro in `twofold-proto`), so their block is written here
//! from that table and handed to cbindgen after the includes: names, numbers and each code's
//! description as its documentation come from the one source.

use std::path::Path;

use twofold_core::{ErrorCode, Op};

/// `enum { TWOFOLD_OK = 0, TWOFOLD_INVALID_INPUT = 1, ... };` with each code's description.
fn status_block() -> String {
    let mut block = String::from(
        "\n/**\n * The values of `twofold_status`: `TWOFOLD_OK` and the stable error codes of the\n \
         * specification, numbered once and never reused (`twofold_status_name` gives the\n \
         * code's string).\n */\nenum {\n    /**\n     * Success.\n     */\n    TWOFOLD_OK = 0,\n",
    );
    for code in ErrorCode::ALL {
        block.push_str(&format!(
            "    /**\n{}     */\n    TWOFOLD_{} = {},\n",
            wrapped(code.description(), "     * "),
            code.as_str().to_ascii_uppercase(),
            code.number()
        ));
    }
    block.push_str("};");
    block
}

/// `text` as lines of at most 100 characters, each starting with `lead`.
fn wrapped(text: &str, lead: &str) -> String {
    let mut out = String::new();
    let mut line = String::from(lead);
    for word in text.split_whitespace() {
        if line.len() > lead.len() && line.len() + 1 + word.len() > 100 {
            out.push_str(line.trim_end());
            out.push('\n');
            line = String::from(lead);
        }
        if line.len() > lead.len() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

fn fresh_header() -> String {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let after = config.after_includes.take().unwrap_or_default();
    config.after_includes = Some(format!("{after}\n{}", status_block()));
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    String::from_utf8(fresh).expect("the header is UTF-8")
}

#[test]
fn checked_in_header_matches_a_fresh_generation() {
    let header_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../include/twofold.h");
    let fresh = fresh_header();
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

#[test]
fn every_code_and_every_operation_is_in_the_header() {
    let header = fresh_header();
    for code in ErrorCode::ALL {
        let line = format!(
            "TWOFOLD_{} = {},",
            code.as_str().to_ascii_uppercase(),
            code.number()
        );
        assert!(header.contains(&line), "no `{line}`");
    }
    for op in Op::ALL {
        let function = format!("twofold_status twofold_engine_{}(", op.name());
        assert!(header.contains(&function), "no `{function}`");
    }
}
