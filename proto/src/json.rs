//! Members that hold JSON text in memory (WebAuthn options and credentials, audit details) and
//! are embedded JSON values in JSON documents.
//!
//! In Rust and in WIT these members are `String`s of JSON text: the engine makes the text once
//! and the browser's `JSON.parse` or `parse*OptionsFromJSON` reads it. In a JSON document they
//! are written as the JSON value itself, copied verbatim (no parse into a tree, no second
//! serialisation). When reading, the member may be the value itself or that value as a JSON
//! string; either way the result is the text, captured verbatim.

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// `#[serde(with = "twofold_proto::json::text")]` for a `String` of JSON text.
pub mod text {
    use super::*;

    /// Writes the text as the JSON value it holds.
    pub fn serialize<S: Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(text)
            .map_err(|e| S::Error::custom(format!("a JSON-text member is not JSON: {e}")))?;
        raw.serialize(s)
    }

    /// Reads a JSON value, or a JSON string holding one, as text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        unwrap_string(raw.get()).map_err(D::Error::custom)
    }
}

/// The same for an `Option<String>` of JSON text.
pub mod optional_text {
    use super::*;

    /// Writes the text as the JSON value it holds, or `null`.
    pub fn serialize<S: Serializer>(text: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        match text {
            Some(t) => super::text::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    /// Reads `null` as `None`, anything else as [`text`](super::text) does.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let raw = Option::<Box<RawValue>>::deserialize(d)?;
        raw.map(|r| unwrap_string(r.get()).map_err(D::Error::custom))
            .transpose()
    }
}

/// A JSON string holding JSON text becomes that text; any other JSON value is its own text.
fn unwrap_string(raw: &str) -> Result<String, serde_json::Error> {
    if raw.starts_with('"') {
        serde_json::from_str::<String>(raw)
    } else {
        Ok(raw.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Holder {
        #[serde(with = "super::text")]
        options: String,
    }

    #[test]
    fn text_is_embedded_verbatim_and_read_back_from_either_form() {
        let h = Holder {
            options: r#"{"challenge":"abc","timeout":300000}"#.into(),
        };
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, r#"{"options":{"challenge":"abc","timeout":300000}}"#);
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), h);
        let as_string = r#"{"options":"{\"challenge\":\"abc\",\"timeout\":300000}"}"#;
        assert_eq!(serde_json::from_str::<Holder>(as_string).unwrap(), h);
        let from_value: Holder =
            serde_json::from_value(serde_json::json!({"options": {"a": [1, 2]}})).unwrap();
        assert_eq!(from_value.options, r#"{"a":[1,2]}"#);
    }

    #[test]
    fn text_that_is_not_json_does_not_serialize() {
        let h = Holder {
            options: "{not json".into(),
        };
        assert!(serde_json::to_string(&h).is_err());
    }
}
