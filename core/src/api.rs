//! The JSON boundary: every operation by name, with JSON arguments and a JSON answer. The C
//! library and the in-process conformance driver use it, so argument parsing, size limits and
//! answer shapes live here once (E1). The shapes are the serde forms of the `twofold-proto`
//! types; the dispatch is the operations table, expanded.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::MAX_JSON_BYTES;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::{Config, Context, Host};

pub use crate::Op;

/// Parses a JSON document within the size limit, naming what was wrong. The message never
/// quotes a value (secret members say only that their type is wrong).
pub fn parse_json<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    if bytes.len() > MAX_JSON_BYTES {
        return Err(Error::invalid(format!("{what} is larger than 64 KiB")));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))?;
    serde_json::from_str(text).map_err(|e| Error::invalid(format!("{what}: {e}")))
}

/// Parses a JSON object within the size limit into `T`.
fn parse_object<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    let trimmed = bytes.trim_ascii_start();
    if bytes.len() <= MAX_JSON_BYTES && !trimmed.starts_with(b"{") && !trimmed.is_empty() {
        return Err(Error::invalid(format!("{what} must be a JSON object")));
    }
    parse_json(what, bytes)
}

/// A configuration from JSON; absent fields take their defaults. Not checked here: the
/// engine checks it when built.
pub fn config_from_json(bytes: &[u8]) -> Result<Config> {
    parse_object("config", bytes)
}

/// A context from JSON (`{"ip", "user_agent", "client_id", "device_token"}`, all optional).
pub fn context_from_json(bytes: &[u8]) -> Result<Context> {
    parse_object("context", bytes)
}

/// Runs one operation: `args_json` holds its arguments, the answer is its JSON result.
pub fn call(
    engine: &Engine,
    host: &dyn Host,
    ctx: &Context,
    op: Op,
    args_json: &[u8],
) -> Result<String> {
    macro_rules! dispatch {
        ($($(#[doc = $doc:literal])+ $variant:ident, $method:ident, $name:literal, $wit:literal,
           $req:path => $answer:path;)+) => {
            match op {
                $(Op::$variant => {
                    let req: $req = parse_object("arguments", args_json)?;
                    answer(&engine.$method(host, ctx, req)?)
                })+
            }
        };
    }
    crate::for_each_op!(dispatch)
}

/// The JSON form of an error: `{"code", "message"}`, plus `retry_after_secs` for
/// `rate_limited`.
pub fn error_json(error: &Error) -> Value {
    let mut v = serde_json::json!({ "code": error.code().as_str(), "message": error.to_string() });
    if let (Some(secs), Some(map)) = (error.retry_after_secs(), v.as_object_mut()) {
        map.insert("retry_after_secs".into(), secs.into());
    }
    v
}

fn answer<T: serde::Serialize>(outcome: &T) -> Result<String> {
    serde_json::to_string(outcome).map_err(Error::internal)
}
