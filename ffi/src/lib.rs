//! twofold-ffi: the C library of twofold (`libtwofold`, header `include/twofold.h`).
//!
//! This crate only translates: C pointers, lengths and callback tables in, JSON documents and
//! statuses out. Every rule lives in `twofold-core`; the JSON shapes are the serde forms of the
//! `twofold-proto` types that `twofold_core::api` reads and writes, and the statuses are
//! `ErrorCode`'s table. Each export runs inside a panic boundary and writes its out-parameters
//! only on success. The header is generated from these sources and that table by cbindgen
//! (pinned), and `tests/header.rs` fails when the checked-in copy drifts.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)
)]
#![deny(unsafe_op_in_unsafe_fn)]
// The exported types carry their C names (`twofold_engine`), as rustls-ffi does.
#![allow(non_camel_case_types)]
// Each export's safety contract is its C documentation (pointer rules in the header preamble),
// written for C readers rather than as a Rust `# Safety` section.
#![allow(clippy::missing_safety_doc)]

mod engine;
mod host;
mod status;

use std::ffi::c_char;

pub use engine::*;
pub use host::*;
pub use status::*;

/// The major version of the library this header belongs to.
pub const TWOFOLD_VERSION_MAJOR: u32 = 0;
/// The minor version of the library this header belongs to.
pub const TWOFOLD_VERSION_MINOR: u32 = 2;
/// The patch version of the library this header belongs to.
pub const TWOFOLD_VERSION_PATCH: u32 = 0;
// `TWOFOLD_VERSION_STRING` is written by cbindgen.toml (cbindgen emits no string constants for
// C); the tests below keep all of them equal to the package version.

/// The largest JSON document (configuration or operation arguments) the library accepts, in
/// bytes.
pub const TWOFOLD_MAX_JSON_BYTES: usize = 65536;

/// The version of the library actually linked, e.g. `"0.2.0"`; compare it with
/// `TWOFOLD_VERSION_STRING` to detect a header/library mismatch.
///
/// Returns a static NUL-terminated string, never NULL; do not free it.
/// Thread safety: may be called from any thread at any time.
#[unsafe(no_mangle)]
pub extern "C" fn twofold_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_constants_match_the_package() {
        let version =
            format!("{TWOFOLD_VERSION_MAJOR}.{TWOFOLD_VERSION_MINOR}.{TWOFOLD_VERSION_PATCH}");
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
        let linked = unsafe { std::ffi::CStr::from_ptr(twofold_version()) };
        assert_eq!(linked.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        let header = include_str!("../../include/twofold.h");
        let define = format!(
            "#define TWOFOLD_VERSION_STRING \"{}\"",
            env!("CARGO_PKG_VERSION")
        );
        assert!(header.contains(&define), "header lacks `{define}`");
        let config = include_str!("../cbindgen.toml");
        assert!(
            config.contains(&define.replace('"', "\\\"")),
            "cbindgen.toml lacks `{define}`"
        );
    }

    #[test]
    fn json_limit_matches_the_core() {
        assert_eq!(TWOFOLD_MAX_JSON_BYTES, twofold_core::MAX_JSON_BYTES);
    }
}
