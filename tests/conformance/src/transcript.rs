//! Transcripts: what a scenario sent to a target and what came back, with every value that a
//! host may choose at random (user ids, tokens, challenges, codes, MACs, state digests,
//! signatures) replaced by a placeholder numbered in order of first appearance, such as
//! `<user_id#1>` or `<code#3>`. Two hosts that behave alike produce the same text whatever their randomness;
//! a value that reappears keeps its placeholder, so "the token from step 5 was sent back" stays
//! visible. Times become offsets from the clock `reset` sets (`<T0+300s>`). Numbering starts
//! again at every `reset`, so a scenario must not carry values across one.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::ops::RESET_CLOCK_MS;
use crate::values::{is_backup_code, is_base64url, truncate};

/// One line of a transcript, before normalisation.
#[derive(Clone, Debug)]
pub enum Entry {
    /// A request the runner built.
    Request(Value),
    /// A raw request line.
    Raw(Vec<u8>),
    /// A response: parsed, or the bytes when they were not JSON.
    Response(Result<Value, Vec<u8>>),
    /// A response left out of the comparison (`"compare": false`).
    NotCompared,
    /// A browser action of the runner's software authenticator.
    Browser(Value),
    /// A failed expectation.
    Failure(String),
}

/// A scenario's exchange with one target.
#[derive(Clone, Debug, Default)]
pub struct Transcript {
    /// Header lines (scenario, rules, title).
    pub header: Vec<String>,
    /// Everything in order.
    pub entries: Vec<Entry>,
}

impl Transcript {
    /// The text of the transcript, random values replaced.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.header {
            let _ = writeln!(out, "# {line}");
        }
        let mut n = Normalizer::default();
        for entry in &self.entries {
            let line = match entry {
                Entry::Request(v) => {
                    if v.get("op").and_then(Value::as_str) == Some("reset") {
                        // A seeded host repeats its random values after `reset`; a host with
                        // a CSPRNG does not. Numbering starts again so both read the same.
                        n = Normalizer::default();
                    }
                    format!("> {}", n.value(v, "", ""))
                }
                Entry::Raw(bytes) => {
                    let text = String::from_utf8_lossy(bytes);
                    format!("> raw {}", clip(&n.text(&text)))
                }
                Entry::Response(Ok(v)) => format!("< {}", n.value(v, "", "")),
                Entry::Response(Err(bytes)) => {
                    let text = String::from_utf8_lossy(bytes);
                    format!("< not JSON: {}", clip(&n.text(&text)))
                }
                Entry::NotCompared => "< (not compared)".to_owned(),
                Entry::Browser(v) => format!("~ {}", n.value(v, "", "")),
                Entry::Failure(message) => format!("! {}", n.text(message)),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

/// Long lines (an oversized request) keep their start and their length.
fn clip(text: &str) -> String {
    const MAX: usize = 400;
    if text.len() <= MAX {
        text.to_owned()
    } else {
        format!("{}… ({} bytes)", truncate(text, MAX), text.len())
    }
}

/// Keys whose string values are times, in milliseconds since the epoch.
const TIME_KEYS: &[&str] = &["at", "created_at", "last_used_at", "until", "now_ms"];

/// What placeholders each key's random values get.
fn kind_of(key: &str, parent: &str, s: &str) -> Option<&'static str> {
    if s.is_empty() {
        return None;
    }
    let kind = match key {
        "user_id" => "user_id",
        "pending_token" => "token",
        "challenge" => "challenge",
        "device_token" => "device_token",
        "mac" | "prev_mac" => "mac",
        "state" => "state",
        // The test audit key is a fixed value every driver is configured with.
        "secret" => return None,
        "passkey_id" | "rawId" | "credential_id" => "credential_id",
        "userHandle" => "user_handle",
        "id" if parent == "user" => "user_handle",
        "id" if parent == "rp" => return None,
        "id" if looks_random(s) => "credential_id",
        "clientDataJSON" => "client_data",
        "attestationObject" => "attestation",
        "authenticatorData" => "authenticator_data",
        "signature" => "signature",
        "publicKey" => "public_key",
        "codes" | "backup_codes" | "code" if is_backup_code(s) => "code",
        _ if is_backup_code(s) => "code",
        _ if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => "hash",
        _ if looks_random(s) => "random",
        _ => return None,
    };
    Some(kind)
}

/// base64url of at least 12 bytes with a digit or a capital in it: what random ids look like,
/// and what words and names do not.
fn looks_random(s: &str) -> bool {
    s.len() >= 16
        && is_base64url(s)
        && s.bytes()
            .any(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

/// Backup codes as the engine compares them: lower case, no spaces or hyphens.
fn normalised_code(s: &str) -> String {
    s.chars()
        .filter(|c| *c != ' ' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

#[derive(Default)]
struct Normalizer {
    /// Value -> placeholder.
    seen: HashMap<String, String>,
    /// Normalised backup code -> placeholder.
    codes: HashMap<String, String>,
    counts: HashMap<&'static str, usize>,
}

impl Normalizer {
    /// A copy of `v` with random values replaced and object keys sorted.
    fn value(&mut self, v: &Value, key: &str, parent: &str) -> Value {
        match v {
            Value::String(s) => Value::String(self.string(s, key, parent)),
            Value::Number(n) if TIME_KEYS.contains(&key) => match n.as_u64() {
                Some(ms) if ms >= 1_000_000_000_000 => Value::String(relative_time(ms)),
                _ => v.clone(),
            },
            // Array items take their array's key: `codes: [...]` holds codes.
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| self.value(item, key, parent))
                    .collect(),
            ),
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    let child = if k == "message" {
                        Value::String("<message>".into())
                    } else {
                        self.value(&map[k], k, key)
                    };
                    out.insert(k.clone(), child);
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }

    fn string(&mut self, s: &str, key: &str, parent: &str) -> String {
        if let Some(placeholder) = self.seen.get(s) {
            return placeholder.clone();
        }
        if key == "code" || key == "codes" || key == "backup_codes" {
            // A code as a person types it: the same code in other case or spacing.
            if let Some(placeholder) = self.codes.get(&normalised_code(s)) {
                let shape: String = s
                    .chars()
                    .map(|c| if c.is_alphanumeric() { 'x' } else { c })
                    .collect();
                return format!("{placeholder} typed as {shape:?}");
            }
        }
        match kind_of(key, parent, s) {
            Some(kind) => {
                let count = self.counts.entry(kind).or_insert(0);
                *count += 1;
                let placeholder = format!("<{kind}#{count}>");
                self.seen.insert(s.to_owned(), placeholder.clone());
                if kind == "code" {
                    self.codes.insert(normalised_code(s), placeholder.clone());
                }
                placeholder
            }
            // JSON inside a string (a credential sent as text) is normalised as JSON.
            None if s.starts_with(['{', '['])
                && let Ok(inner) = serde_json::from_str::<Value>(s) =>
            {
                format!("<json {}>", self.value(&inner, key, parent))
            }
            None if s.len() > 200 => {
                let head: String = s.chars().take(24).collect();
                format!("<{} chars: {}…>", s.chars().count(), self.text(&head))
            }
            None => self.text(s),
        }
    }

    /// Free text with every known random value in it replaced.
    fn text(&self, s: &str) -> String {
        let mut known: Vec<(&String, &String)> =
            self.seen.iter().filter(|(v, _)| v.len() >= 8).collect();
        known.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(b.0)));
        let mut out = s.to_owned();
        for (value, placeholder) in known {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), placeholder);
            }
        }
        out
    }
}

fn relative_time(ms: u64) -> String {
    let (sign, delta) = if ms >= RESET_CLOCK_MS {
        ('+', ms - RESET_CLOCK_MS)
    } else {
        ('-', RESET_CLOCK_MS - ms)
    };
    if delta % 1000 == 0 {
        format!("<T0{sign}{}s>", delta / 1000)
    } else {
        format!("<T0{sign}{delta}ms>")
    }
}

/// The first difference between two transcripts, with a little context, or `None`.
pub fn first_difference(
    reference: &str,
    reference_name: &str,
    other: &str,
    other_name: &str,
) -> Option<String> {
    if reference == other {
        return None;
    }
    let a: Vec<&str> = reference.lines().collect();
    let b: Vec<&str> = other.lines().collect();
    let at = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let mut out = format!("transcripts differ at line {}:\n", at + 1);
    for line in &a[at.saturating_sub(2)..at] {
        let _ = writeln!(out, "    {}", clip(line));
    }
    let width = reference_name.len().max(other_name.len()) + 1;
    let _ = writeln!(
        out,
        "  - {:<width$} {}",
        format!("{reference_name}:"),
        a.get(at).map_or("(end)".into(), |l| clip(l))
    );
    let _ = writeln!(
        out,
        "  + {:<width$} {}",
        format!("{other_name}:"),
        b.get(at).map_or("(end)".into(), |l| clip(l))
    );
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(entries: Vec<Entry>) -> String {
        Transcript {
            header: vec![],
            entries,
        }
        .render()
    }

    #[test]
    fn random_values_become_placeholders_in_order_of_first_appearance() {
        let a = render(vec![
            Entry::Response(Ok(
                json!({"id": 1, "ok": {"user_id": "Xy7AbCdEfGhIjKlMnOpQrS"}}),
            )),
            Entry::Request(
                json!({"id": 2, "op": "status", "args": {"user_id": "Xy7AbCdEfGhIjKlMnOpQrS"}}),
            ),
            Entry::Response(Ok(
                json!({"id": 2, "ok": {"codes": ["abcd-efgh-jkmn"], "at": 1_767_225_601_000u64}}),
            )),
            Entry::Request(json!({"args": {"code": "ABCD EFGH JKMN"}})),
        ]);
        let b = render(vec![
            Entry::Response(Ok(
                json!({"id": 1, "ok": {"user_id": "Q9zzzzzzzzzzzzzzzzzzzz"}}),
            )),
            Entry::Request(
                json!({"id": 2, "op": "status", "args": {"user_id": "Q9zzzzzzzzzzzzzzzzzzzz"}}),
            ),
            Entry::Response(Ok(
                json!({"id": 2, "ok": {"codes": ["2345-6789-abcd"], "at": 1_767_225_601_000u64}}),
            )),
            Entry::Request(json!({"args": {"code": "2345 6789 ABCD"}})),
        ]);
        assert_eq!(a, b);
        assert!(a.contains("<user_id#1>"), "{a}");
        assert!(a.contains("<T0+1s>"), "{a}");
        assert!(a.contains(r#"<code#1> typed as \"xxxx xxxx xxxx\""#), "{a}");
    }

    #[test]
    fn words_are_kept_and_differences_are_shown() {
        let a = render(vec![Entry::Response(Ok(
            json!({"ok": {"status": "second_factor_required", "rpId": "localhost"}}),
        ))]);
        assert!(a.contains("second_factor_required") && a.contains("localhost"));
        let diff = first_difference("x\ny\n", "core", "x\nz\n", "other").unwrap();
        assert!(diff.contains("line 2"), "{diff}");
    }
}
