//! The value language of scenario files: variables (`"$ada.user_id"`, `"$codes.codes[0]"`),
//! a few functions (`{"$repeat": ["a", 70000]}`), and the matchers of expectations
//! (`{"$len": 10}`, `{"$absent": true}`). README.md lists them all.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// Variables saved by steps, plus the predefined ones.
#[derive(Clone, Debug, Default)]
pub struct Vars {
    values: Map<String, Value>,
}

impl Vars {
    /// The predefined variables and nothing else.
    pub fn new(predefined: &[(&str, Value)]) -> Vars {
        let mut vars = Vars::default();
        for (name, value) in predefined {
            vars.set(name, value.clone());
        }
        vars
    }

    /// Saves a variable.
    pub fn set(&mut self, name: &str, value: Value) {
        self.values.insert(name.to_owned(), value);
    }

    /// The value at a reference such as `$ada.user_id` or `$codes.codes[2]` (without `$`).
    pub fn lookup(&self, reference: &str) -> Result<Value, String> {
        let (name, rest) = match reference.find(['.', '[']) {
            Some(at) => reference.split_at(at),
            None => (reference, ""),
        };
        let root = self
            .values
            .get(name)
            .ok_or_else(|| format!("no variable ${name}"))?;
        let mut current = root;
        for segment in parse_path(rest)? {
            current = match (&segment, current) {
                (Segment::Key(k), Value::Object(map)) => map.get(k),
                (Segment::Index(i), Value::Array(items)) => items.get(*i),
                _ => None,
            }
            .ok_or_else(|| format!("${reference}: nothing at {segment}"))?;
        }
        Ok(current.clone())
    }
}

enum Segment {
    Key(String),
    Index(usize),
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Segment::Key(k) => write!(f, ".{k}"),
            Segment::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// `.a.b[0].c` (or `a.b[0].c`) as segments.
fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut rest = path.strip_prefix('.').unwrap_or(path);
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let (index, tail) = after
                .split_once(']')
                .ok_or_else(|| format!("unclosed [ in path {path:?}"))?;
            let index = index
                .parse()
                .map_err(|_| format!("bad index [{index}] in path {path:?}"))?;
            segments.push(Segment::Index(index));
            rest = tail.strip_prefix('.').unwrap_or(tail);
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let (key, tail) = rest.split_at(end);
            if key.is_empty() {
                return Err(format!("empty key in path {path:?}"));
            }
            segments.push(Segment::Key(key.to_owned()));
            rest = tail.strip_prefix('.').unwrap_or(tail);
        }
    }
    Ok(segments)
}

/// The functions a scenario may use in any value.
const FUNCTIONS: &[&str] = &[
    "$concat", "$repeat", "$json", "$upper", "$lower", "$replace", "$set", "$remove", "$b64url",
];

/// The matchers an expectation may use.
const MATCHERS: &[&str] = &[
    "$absent",
    "$any",
    "$not",
    "$len",
    "$min_len",
    "$type",
    "$contains",
    "$each",
    "$distinct",
    "$gte",
    "$lte",
    "$format",
    "$min_bytes",
    "$no_text",
    "$exact",
    "$one_of",
];

/// Whether a value is a `$`-object: every key starts with `$`.
fn dollar_object(value: &Value) -> Option<&Map<String, Value>> {
    match value {
        Value::Object(map) if !map.is_empty() && map.keys().all(|k| k.starts_with('$')) => {
            Some(map)
        }
        _ => None,
    }
}

/// Evaluates variables and functions in a value.
pub fn resolve(value: &Value, vars: &Vars) -> Result<Value, String> {
    match value {
        Value::String(s) => resolve_str(s, vars),
        Value::Array(items) => items.iter().map(|v| resolve(v, vars)).collect(),
        Value::Object(map) => {
            if let Some(call) = dollar_object(value) {
                let (name, arg) = match call.iter().next() {
                    Some(entry) if call.len() == 1 => entry,
                    _ => return Err(format!("a function object has one key: {value}")),
                };
                return call_function(name, arg, vars);
            }
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.clone(), resolve(v, vars)?);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

fn resolve_str(s: &str, vars: &Vars) -> Result<Value, String> {
    if let Some(literal) = s.strip_prefix("$$") {
        return Ok(Value::String(format!("${literal}")));
    }
    match s.strip_prefix('$') {
        Some(reference) => vars.lookup(reference),
        None => Ok(Value::String(s.to_owned())),
    }
}

fn call_function(name: &str, arg: &Value, vars: &Vars) -> Result<Value, String> {
    let arg = resolve(arg, vars)?;
    let args = |n: usize| -> Result<Vec<Value>, String> {
        match &arg {
            Value::Array(items) if items.len() == n => Ok(items.clone()),
            _ => Err(format!("{name} takes an array of {n}: {arg}")),
        }
    };
    let text = |v: &Value| -> Result<String, String> {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{name}: {v} is not a string"))
    };
    Ok(match name {
        "$concat" => {
            let Value::Array(items) = &arg else {
                return Err(format!("$concat takes an array: {arg}"));
            };
            Value::String(
                items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect(),
            )
        }
        "$repeat" => {
            let a = args(2)?;
            let times = a[1]
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or("$repeat: the count is not a number")?;
            Value::String(text(&a[0])?.repeat(times))
        }
        "$json" => Value::String(arg.to_string()),
        "$upper" => Value::String(text(&arg)?.to_uppercase()),
        "$lower" => Value::String(text(&arg)?.to_lowercase()),
        "$replace" => {
            let a = args(3)?;
            Value::String(text(&a[0])?.replace(&text(&a[1])?, &text(&a[2])?))
        }
        "$b64url" => Value::String(URL_SAFE_NO_PAD.encode(text(&arg)?)),
        "$set" => {
            let mut a = args(3)?;
            let value = a.pop().unwrap_or(Value::Null);
            let path = text(&a[1])?;
            let mut base = a.swap_remove(0);
            edit_path(&mut base, &path, Some(value))?;
            base
        }
        "$remove" => {
            let a = args(2)?;
            let path = text(&a[1])?;
            let mut base = a[0].clone();
            edit_path(&mut base, &path, None)?;
            base
        }
        _ if MATCHERS.contains(&name) => {
            return Err(format!("the matcher {name} is only for expectations"));
        }
        _ => return Err(format!("unknown function {name}")),
    })
}

/// Sets (or with `None` removes) the member at `path` inside `base`.
fn edit_path(base: &mut Value, path: &str, value: Option<Value>) -> Result<(), String> {
    let mut segments = parse_path(path)?;
    let last = segments.pop().ok_or("empty path")?;
    let mut current = base;
    for segment in &segments {
        current = match (segment, current) {
            (Segment::Key(k), Value::Object(map)) => map.get_mut(k),
            (Segment::Index(i), Value::Array(items)) => items.get_mut(*i),
            _ => None,
        }
        .ok_or_else(|| format!("{path}: nothing at {segment}"))?;
    }
    match (last, current, value) {
        (Segment::Key(k), Value::Object(map), Some(v)) => {
            map.insert(k, v);
        }
        (Segment::Key(k), Value::Object(map), None) => {
            map.remove(&k);
        }
        (Segment::Index(i), Value::Array(items), Some(v)) if i < items.len() => items[i] = v,
        (Segment::Index(i), Value::Array(items), None) if i < items.len() => {
            items.remove(i);
        }
        (segment, _, _) => return Err(format!("{path}: cannot edit {segment}")),
    }
    Ok(())
}

/// Why a check failed: the value did not match, or the expectation itself is broken (an
/// unknown variable or matcher), which `$not` must not turn into a pass.
enum Why {
    Mismatch(String),
    Bad(String),
}

impl From<String> for Why {
    fn from(e: String) -> Why {
        Why::Bad(e)
    }
}

impl From<&str> for Why {
    fn from(e: &str) -> Why {
        Why::Bad(e.to_owned())
    }
}

type Checked = Result<(), Why>;

/// Checks `actual` (absent: `None`) against an expectation. `at` names the place for messages.
pub fn check(
    expected: &Value,
    actual: Option<&Value>,
    vars: &Vars,
    at: &str,
) -> Result<(), String> {
    matches(expected, actual, vars, at).map_err(|why| match why {
        Why::Mismatch(m) => m,
        Why::Bad(m) => format!("{at}: the expectation is broken: {m}"),
    })
}

fn mismatch(at: &str, what: impl std::fmt::Display, actual: Option<&Value>) -> Checked {
    Err(Why::Mismatch(format!(
        "{at}: expected {what}, got {}",
        show(actual)
    )))
}

fn matches(expected: &Value, actual: Option<&Value>, vars: &Vars, at: &str) -> Checked {
    if let Some(matchers) = dollar_object(expected) {
        let single = matchers.keys().next().map(String::as_str);
        if matchers.len() == 1 && single.is_some_and(|k| FUNCTIONS.contains(&k)) {
            let value = resolve(expected, vars)?;
            return equal(&value, actual, at);
        }
        for (name, arg) in matchers {
            apply_matcher(name, arg, actual, vars, at)?;
        }
        return Ok(());
    }
    match expected {
        Value::String(s) if s.starts_with('$') => {
            let value = resolve_str(s, vars)?;
            equal(&value, actual, at)
        }
        Value::Object(map) => {
            let Some(Value::Object(got)) = actual else {
                return mismatch(at, "an object", actual);
            };
            // Plain keys check members; `$` keys are matchers on the whole object.
            for (k, v) in map {
                if k.starts_with('$') {
                    apply_matcher(k, v, actual, vars, at)?;
                } else {
                    matches(v, got.get(k), vars, &format!("{at}.{k}"))?;
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            let Some(Value::Array(got)) = actual else {
                return mismatch(at, "an array", actual);
            };
            if got.len() != items.len() {
                return mismatch(at, format!("{} items", items.len()), actual);
            }
            for (i, (e, g)) in items.iter().zip(got).enumerate() {
                matches(e, Some(g), vars, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        scalar => equal(scalar, actual, at),
    }
}

fn equal(expected: &Value, actual: Option<&Value>, at: &str) -> Checked {
    if actual == Some(expected) {
        Ok(())
    } else {
        mismatch(at, expected, actual)
    }
}

/// Whether any of `options` matches; a broken option is an error, not a miss.
fn any_matches<'v>(
    options: impl IntoIterator<Item = &'v Value>,
    actual: Option<&Value>,
    vars: &Vars,
    at: &str,
) -> Result<bool, Why> {
    for option in options {
        match matches(option, actual, vars, at) {
            Ok(()) => return Ok(true),
            Err(Why::Mismatch(_)) => {}
            Err(bad) => return Err(bad),
        }
    }
    Ok(false)
}

fn show(actual: Option<&Value>) -> String {
    match actual {
        None => "nothing (absent)".into(),
        Some(v) => {
            let text = v.to_string();
            if text.len() > 300 {
                format!("{}… ({} bytes)", truncate(&text, 300), text.len())
            } else {
                text
            }
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn apply_matcher(
    name: &str,
    arg: &Value,
    actual: Option<&Value>,
    vars: &Vars,
    at: &str,
) -> Checked {
    let fail = |what: String| mismatch(at, what, actual);
    match name {
        "$absent" => match (arg.as_bool(), actual) {
            (Some(true), None) | (Some(false), Some(_)) => Ok(()),
            (Some(true), Some(_)) => fail("no such member".into()),
            _ => fail("a member".into()),
        },
        "$any" => match actual {
            Some(_) => Ok(()),
            None => fail("a member".into()),
        },
        "$not" => match matches(arg, actual, vars, at) {
            Ok(()) => fail(format!("anything but {arg}")),
            Err(Why::Mismatch(_)) => Ok(()),
            Err(bad) => Err(bad),
        },
        "$one_of" => {
            // Either a list of matchers, or a variable holding a list of values.
            let found = match arg {
                Value::Array(options) => any_matches(options, actual, vars, at)?,
                Value::String(s) if s.starts_with('$') => match resolve_str(s, vars)? {
                    Value::Array(values) => actual.is_some_and(|a| values.contains(a)),
                    other => return Err(format!("$one_of: {s} is not a list: {other}").into()),
                },
                _ => return Err("$one_of takes an array or a variable holding one".into()),
            };
            if found {
                Ok(())
            } else {
                fail(format!("one of {arg}"))
            }
        }
        "$exact" => {
            let Value::Object(want) = arg else {
                return Err("$exact takes an object".into());
            };
            matches(arg, actual, vars, at)?;
            let Some(Value::Object(got)) = actual else {
                return fail("an object".into());
            };
            match got.keys().find(|k| !want.contains_key(*k)) {
                Some(extra) => fail(format!("no member {extra:?}")),
                None => Ok(()),
            }
        }
        "$len" => {
            let want = resolve(arg, vars)?.as_u64().ok_or("$len takes a number")?;
            let len = match actual {
                Some(Value::Array(a)) => a.len(),
                Some(Value::String(s)) => s.chars().count(),
                Some(Value::Object(m)) => m.len(),
                _ => return fail(format!("something of length {want}")),
            };
            if len as u64 == want {
                Ok(())
            } else {
                fail(format!("length {want} (it is {len})"))
            }
        }
        "$min_len" => {
            let min = arg.as_u64().ok_or("$min_len takes a number")?;
            match actual {
                Some(Value::String(s)) if s.chars().count() as u64 >= min => Ok(()),
                _ => fail(format!("a string of at least {min} characters")),
            }
        }
        "$type" => {
            let want = arg.as_str().ok_or("$type takes a string")?;
            let is = match actual {
                Some(Value::Null) => "null",
                Some(Value::Bool(_)) => "boolean",
                Some(Value::Number(_)) => "number",
                Some(Value::String(_)) => "string",
                Some(Value::Array(_)) => "array",
                Some(Value::Object(_)) => "object",
                None => "absent",
            };
            if is == want {
                Ok(())
            } else {
                fail(format!("a {want}"))
            }
        }
        "$contains" => match actual {
            Some(Value::Array(items)) => {
                let mut found = false;
                for item in items {
                    if any_matches([arg], Some(item), vars, at)? {
                        found = true;
                        break;
                    }
                }
                if found {
                    Ok(())
                } else {
                    fail(format!("an item matching {arg}"))
                }
            }
            Some(Value::String(s)) => {
                let want = resolve(arg, vars)?;
                let want = want
                    .as_str()
                    .ok_or("$contains on a string takes a string")?;
                if s.contains(want) {
                    Ok(())
                } else {
                    fail(format!("text containing {want:?}"))
                }
            }
            _ => fail("an array or a string".into()),
        },
        "$each" => match actual {
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    matches(arg, Some(item), vars, &format!("{at}[{i}]"))?;
                }
                Ok(())
            }
            _ => fail("an array".into()),
        },
        "$distinct" => match actual {
            Some(Value::Array(items)) => {
                let mut seen: Vec<String> = items.iter().map(Value::to_string).collect();
                seen.sort();
                seen.dedup();
                if seen.len() == items.len() {
                    Ok(())
                } else {
                    fail("distinct items".into())
                }
            }
            _ => fail("an array".into()),
        },
        "$gte" | "$lte" => {
            let bound = resolve(arg, vars)?
                .as_f64()
                .ok_or_else(|| format!("{name} takes a number"))?;
            let Some(n) = actual.and_then(Value::as_f64) else {
                return fail("a number".into());
            };
            let ok = if name == "$gte" {
                n >= bound
            } else {
                n <= bound
            };
            if ok {
                Ok(())
            } else {
                fail(format!(
                    "{} {bound}",
                    if name == "$gte" { ">=" } else { "<=" }
                ))
            }
        }
        "$format" => {
            let format = arg.as_str().ok_or("$format takes a string")?;
            let Some(Value::String(s)) = actual else {
                return fail(format!("a {format} string"));
            };
            let ok = match format {
                "backup_code" => is_backup_code(s),
                "base64url" => is_base64url(s),
                "hex_sha256" => s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()),
                other => return Err(format!("unknown $format {other:?}").into()),
            };
            if ok {
                Ok(())
            } else {
                fail(format!("a {format} string"))
            }
        }
        "$min_bytes" => {
            let min = arg.as_u64().ok_or("$min_bytes takes a number")?;
            let Some(Value::String(s)) = actual else {
                return fail("a base64url string".into());
            };
            match URL_SAFE_NO_PAD.decode(s) {
                Ok(bytes) if bytes.len() as u64 >= min => Ok(()),
                Ok(bytes) => fail(format!("at least {min} bytes (it has {})", bytes.len())),
                Err(_) => fail("a base64url string".into()),
            }
        }
        "$no_text" => {
            let forbidden = resolve(arg, vars)?;
            let forbidden: Vec<&str> = match &forbidden {
                Value::String(s) => vec![s.as_str()],
                Value::Array(items) if items.iter().all(Value::is_string) => {
                    items.iter().filter_map(Value::as_str).collect()
                }
                _ => return Err("$no_text takes a string or an array of strings".into()),
            };
            let text = actual.map(Value::to_string).unwrap_or_default();
            match forbidden
                .iter()
                .find(|f| !f.is_empty() && text.contains(*f))
            {
                Some(found) => Err(Why::Mismatch(format!(
                    "{at}: {found:?} must not appear, but it does"
                ))),
                None => Ok(()),
            }
        }
        _ if FUNCTIONS.contains(&name) => {
            Err(format!("the function {name} cannot be combined with other $-keys").into())
        }
        other => Err(format!("unknown matcher {other}").into()),
    }
}

/// The backup-code alphabet of the engine: digits and letters without 0, 1, i, l, o.
pub const CODE_ALPHABET: &str = "23456789abcdefghjkmnpqrstuvwxyz";

/// `xxxx-xxxx-xxxx` over [`CODE_ALPHABET`].
pub fn is_backup_code(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 3
        && groups
            .iter()
            .all(|g| g.len() == 4 && g.chars().all(|c| CODE_ALPHABET.contains(c)))
}

/// Unpadded base64url, non-empty.
pub fn is_base64url(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && URL_SAFE_NO_PAD.decode(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Vars {
        let mut v = Vars::new(&[("password", json!("pw"))]);
        v.set("ada", json!({"user_id": "u1", "codes": ["a", "b"]}));
        v
    }

    #[test]
    fn references_functions_and_escapes_resolve() {
        let v = vars();
        assert_eq!(resolve(&json!("$ada.codes[1]"), &v).unwrap(), json!("b"));
        assert_eq!(resolve(&json!("$$ada"), &v).unwrap(), json!("$ada"));
        assert_eq!(
            resolve(&json!({"$concat": ["x", "$ada.user_id", 3]}), &v).unwrap(),
            json!("xu13")
        );
        assert_eq!(
            resolve(&json!({"$repeat": ["ab", 2]}), &v).unwrap(),
            json!("abab")
        );
        assert_eq!(
            resolve(&json!({"$set": [{"a": {"b": 1}}, "a.b", 2]}), &v).unwrap(),
            json!({"a": {"b": 2}})
        );
        assert!(resolve(&json!("$nobody"), &v).is_err());
    }

    #[test]
    fn matchers_check_partially_and_report_the_place() {
        let v = vars();
        let actual = json!({"user_id": "u1", "n": 3, "list": ["x", "y"]});
        assert!(check(&json!({"user_id": "$ada.user_id"}), Some(&actual), &v, "ok").is_ok());
        assert!(check(&json!({"gone": {"$absent": true}}), Some(&actual), &v, "ok").is_ok());
        assert!(
            check(
                &json!({"list": {"$len": 2, "$distinct": true}}),
                Some(&actual),
                &v,
                "ok"
            )
            .is_ok()
        );
        let err = check(&json!({"n": 4}), Some(&actual), &v, "ok").unwrap_err();
        assert!(err.starts_with("ok.n:"), "{err}");
        assert!(check(&json!({"$exact": {"n": 3}}), Some(&actual), &v, "ok").is_err());
        assert!(check(&json!({"$no_text": ["u1"]}), Some(&actual), &v, "ok").is_err());
        // A broken expectation inside $not is an error, not a pass.
        let err = check(&json!({"n": {"$not": "$nobody"}}), Some(&actual), &v, "ok").unwrap_err();
        assert!(err.contains("broken"), "{err}");
        assert!(
            check(
                &json!({"user_id": {"$one_of": "$ada.codes"}}),
                Some(&actual),
                &v,
                "ok"
            )
            .is_err()
        );
        assert!(check(&json!({"n": {"$one_of": [1, 3]}}), Some(&actual), &v, "ok").is_ok());
    }
}
