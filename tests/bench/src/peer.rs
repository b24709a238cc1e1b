//! The peer reference: py_webauthn verifying the same assertion, in a Python environment under
//! the target directory (made once by `tests/bench/peer/setup.sh` with the pinned version).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::stats::Samples;

pub struct PeerResult {
    pub versions: String,
    pub verify: Samples,
    pub openssl: Samples,
}

fn peer_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peer")
}

pub fn run(input: &Value, iterations: usize, warmup: usize) -> Result<PeerResult, String> {
    let venv = crate::target_dir().join("bench-peer-venv");
    let setup = Command::new("bash")
        .arg(peer_dir().join("setup.sh"))
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run peer/setup.sh: {e}"))?;
    if !setup.success() {
        return Err(format!(
            "peer/setup.sh failed ({setup}); py_webauthn needs PyPI once"
        ));
    }
    let scratch = crate::bench_dir();
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let input_path = scratch.join("peer-input.json");
    std::fs::write(&input_path, input.to_string()).map_err(|e| e.to_string())?;
    let out = Command::new(venv.join("bin/python"))
        .arg(peer_dir().join("verify.py"))
        .arg(&input_path)
        .arg(iterations.to_string())
        .arg(warmup.to_string())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run the peer: {e}"))?;
    if !out.status.success() {
        return Err(format!("the peer failed ({})", out.status));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let samples = |key: &str| {
        Samples::from_ns(
            v[key]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default(),
        )
    };
    Ok(PeerResult {
        versions: format!(
            "py_webauthn {} on CPython {}, cryptography {}",
            v["webauthn"].as_str().unwrap_or("?"),
            v["python"].as_str().unwrap_or("?"),
            v["cryptography"].as_str().unwrap_or("?"),
        ),
        verify: samples("verify_authentication_response_ns"),
        openssl: samples("openssl_es256_verify_ns"),
    })
}
