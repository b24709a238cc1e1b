//! What every stored state must satisfy, whichever host wrote it and wherever it was stopped.
//!
//! The engine makes one all-or-nothing commit per operation and writes each audit event in the
//! commit of the change it records (D2, L1). So any state a host leaves, even after a crash, is
//! one where every account has its email index, every audit chain is contiguous and ends at the
//! head its account names, every passkey has its global owner record, 2FA is on only with a
//! passkey and a code set, and replaying the audit events gives the stored state. A state that
//! breaks one of these holds half an operation.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use twofold_core::{Context, Engine, UserRef, VerifyAudit};
use twofold_testkit::{TestHost, fast_config};

use crate::Snapshot;

/// The prefixes the engine writes under (see `core/src/docs.rs`).
const PREFIXES: [&str; 10] = [
    "email/",
    "user/",
    "passkey/",
    "registration/",
    "credential/",
    "pending/",
    "device/",
    "audit/",
    "audit-checkpoint/",
    "throttle/",
];

/// The schema version of every document this engine writes (`core/src/docs.rs`, D3).
const SCHEMA_VERSION: u64 = 2;

/// What the checks found, per user and overall.
#[derive(Debug, Default)]
pub struct Report {
    /// Every break of a rule, as a sentence naming the key.
    pub problems: Vec<String>,
    /// The user ids found.
    pub users: Vec<String>,
    /// Audit events checked.
    pub events: usize,
}

impl Report {
    /// Panics with every problem, naming where the state came from.
    pub fn assert_ok(&self, what: &str) {
        assert!(
            self.problems.is_empty(),
            "{what}: the stored state breaks {} rule(s):\n  {}",
            self.problems.len(),
            self.problems.join("\n  ")
        );
    }
}

/// Checks every rule on `snapshot`, then asks the engine itself (over a read-only copy) for
/// each user's status and audit-chain verdict.
pub fn check(snapshot: &Snapshot) -> Report {
    let mut report = Report::default();
    let mut docs: BTreeMap<&str, Value> = BTreeMap::new();
    for (key, record) in snapshot {
        if !PREFIXES.iter().any(|p| key.starts_with(p)) {
            report.problems.push(format!("{key}: unknown key"));
        }
        if record.version == 0 {
            report.problems.push(format!("{key}: version 0"));
        }
        match serde_json::from_str::<Value>(&record.value) {
            Ok(doc) if doc.is_object() => {
                if doc["v"] != SCHEMA_VERSION {
                    report
                        .problems
                        .push(format!("{key}: schema version {}", doc["v"]));
                }
                docs.insert(key, doc);
            }
            _ => report.problems.push(format!("{key}: not a JSON object")),
        }
    }
    let users: BTreeMap<&str, &Value> = docs
        .iter()
        .filter_map(|(k, d)| k.strip_prefix("user/").map(|id| (id, d)))
        .collect();
    report.users = users.keys().map(|id| (*id).to_owned()).collect();
    let p = &mut report.problems;

    for (id, user) in &users {
        if user["id"] != *id {
            p.push(format!("user/{id}: holds id {}", user["id"]));
        }
        let index = format!("email/{}", user["email_hash"].as_str().unwrap_or_default());
        match docs.get(index.as_str()) {
            Some(owner) if owner["user_id"] == *id => {}
            Some(owner) => p.push(format!("user/{id}: {index} names {}", owner["user_id"])),
            None => p.push(format!("user/{id}: no email index {index}")),
        }
    }
    for (key, doc) in &docs {
        let owner = |field: &str| doc[field].as_str().unwrap_or_default().to_owned();
        if let Some(hash) = key.strip_prefix("email/") {
            let user_id = owner("user_id");
            match users.get(user_id.as_str()) {
                Some(user) if user["email_hash"] == hash => {}
                Some(_) => p.push(format!("{key}: user {user_id} has another email")),
                None => p.push(format!("{key}: names missing user {user_id}")),
            }
        } else if let Some(rest) = key.strip_prefix("passkey/") {
            let (user_id, id_hash) = rest.split_once('/').unwrap_or((rest, ""));
            if !users.contains_key(user_id) {
                p.push(format!("{key}: passkey of a missing user"));
            }
            match docs.get(format!("credential/{id_hash}").as_str()) {
                Some(o) if o["user_id"] == user_id => {}
                _ => p.push(format!("{key}: no credential/{id_hash} naming {user_id}")),
            }
        } else if let Some(id_hash) = key.strip_prefix("credential/") {
            let user_id = owner("user_id");
            if !docs.contains_key(format!("passkey/{user_id}/{id_hash}").as_str()) {
                p.push(format!("{key}: owner {user_id} has no such passkey"));
            }
        } else if let Some(rest) = key.strip_prefix("pending/") {
            let user_id = rest.split('/').next().unwrap_or_default();
            if !users.contains_key(user_id) || owner("user_id") != user_id {
                p.push(format!("{key}: pending sign-in of a missing or other user"));
            }
        } else if let Some(rest) = key.strip_prefix("device/") {
            let user_id = rest.split('/').next().unwrap_or_default();
            if !users.contains_key(user_id) {
                p.push(format!("{key}: device token of a missing user"));
            }
        } else if let Some(user_id) = key.strip_prefix("audit-checkpoint/") {
            if !users.contains_key(user_id) || owner("user_id") != user_id {
                p.push(format!("{key}: checkpoint of a missing or other user"));
            }
        } else if let Some(user_id) = key.strip_prefix("registration/")
            && !users.contains_key(user_id)
        {
            p.push(format!("{key}: registration of a missing user"));
        }
    }

    for (id, user) in &users {
        check_user(id, user, &docs, p, &mut report.events);
    }
    let audited: BTreeSet<&str> = docs
        .keys()
        .filter_map(|k| k.strip_prefix("audit/"))
        .filter_map(|rest| rest.split('/').next())
        .collect();
    for user_id in audited {
        if !users.contains_key(user_id) {
            p.push(format!("audit/{user_id}/: events of a missing user"));
        }
    }

    check_with_engine(snapshot, &mut report);
    report
}

/// One user's passkeys, codes and audit chain, and the state its events replay to.
fn check_user(
    id: &str,
    user: &Value,
    docs: &BTreeMap<&str, Value>,
    p: &mut Vec<String>,
    events_checked: &mut usize,
) {
    let passkeys = docs
        .keys()
        .filter(|k| k.starts_with(&format!("passkey/{id}/")))
        .count();
    let listed = user["passkeys"].as_array().map_or(0, Vec::len);
    if listed != passkeys {
        p.push(format!(
            "user/{id}: lists {listed} passkey(s), {passkeys} stored"
        ));
    }
    let two_factor = user["two_factor"].as_bool();
    let codes = &user["backup_codes"];
    let remaining = codes["codes"].as_array().map(|codes| {
        codes
            .iter()
            .filter(|c| c["used"] == Value::Bool(false))
            .count()
    });
    match (two_factor, codes.is_null()) {
        (Some(true), false) if passkeys > 0 => {}
        (Some(false), true) => {}
        _ => p.push(format!(
            "user/{id}: two_factor {two_factor:?} with {passkeys} passkey(s) and codes {}",
            if codes.is_null() { "none" } else { "set" }
        )),
    }

    // The chain: seq 1..=audit_seq (or from the pruning checkpoint on), each under its inverted
    // key, linked by MACs, ending at the account's head.
    let checkpoint = docs.get(format!("audit-checkpoint/{id}").as_str());
    let first = checkpoint.and_then(|c| c["seq"].as_u64()).unwrap_or(0) + 1;
    let prefix = format!("audit/{id}/");
    let mut events: Vec<&Value> = docs
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(_, d)| d)
        .collect();
    events.reverse(); // keys hold u64::MAX - seq: oldest last
    *events_checked += events.len();
    let head = user["audit_seq"].as_u64().unwrap_or(0);
    let mut prev_mac = checkpoint
        .and_then(|c| c["mac"].as_str())
        .unwrap_or_default()
        .to_owned();
    let mut replay_passkeys: i64 = 0;
    let mut replay_two_factor = false;
    let mut replay_codes: Option<i64> = None;
    for (i, event) in events.iter().enumerate() {
        let seq = event["seq"].as_u64().unwrap_or(0);
        let expected = i as u64 + first;
        if seq != expected {
            p.push(format!(
                "{prefix}: event {expected} is seq {seq} (chain not contiguous)"
            ));
            return;
        }
        let key = format!("{prefix}{:020}", u64::MAX - seq);
        if !docs.contains_key(key.as_str()) {
            p.push(format!("{key}: missing (seq {seq} stored elsewhere)"));
        }
        if event["prev_mac"] != prev_mac.as_str() {
            p.push(format!("{key}: prev_mac does not link to seq {}", seq - 1));
        }
        prev_mac = event["mac"].as_str().unwrap_or_default().to_owned();
        if event["user_id"] != id {
            p.push(format!("{key}: event of user {}", event["user_id"]));
        }
        match event["kind"].as_str().unwrap_or_default() {
            "account_created" if seq != 1 => p.push(format!("{key}: account_created at {seq}")),
            "passkey_registered" => replay_passkeys += 1,
            "passkey_removed" => {
                replay_passkeys -= 1;
                if replay_passkeys == 0 {
                    replay_codes = None;
                }
            }
            "two_factor_enabled" => replay_two_factor = true,
            "two_factor_disabled" => {
                replay_two_factor = false;
                replay_codes = None;
            }
            "backup_codes_generated" => replay_codes = event["details"]["count"].as_i64(),
            "backup_code_ok" => replay_codes = replay_codes.map(|n| n - 1),
            _ => {}
        }
    }
    if checkpoint.is_none()
        && events
            .first()
            .is_none_or(|e| e["kind"] != "account_created")
    {
        p.push(format!(
            "{prefix}: the chain does not start with account_created"
        ));
    }
    if events.len() as u64 + first - 1 != head {
        p.push(format!(
            "user/{id}: audit_seq {head} but {} events from {first}",
            events.len()
        ));
    }
    if user["audit_mac"] != prev_mac.as_str() {
        p.push(format!(
            "user/{id}: audit_mac is not the newest event's mac"
        ));
    }
    if checkpoint.is_some() {
        return; // the pruned events held the start of the replay
    }
    if replay_passkeys != passkeys as i64 {
        p.push(format!(
            "user/{id}: {passkeys} passkey(s) stored, {replay_passkeys} by the audit log"
        ));
    }
    if Some(replay_two_factor) != two_factor {
        p.push(format!(
            "user/{id}: two_factor {two_factor:?}, {replay_two_factor} by the audit log"
        ));
    }
    if replay_codes != remaining.map(|n| n as i64) {
        p.push(format!(
            "user/{id}: {remaining:?} unused code(s), {replay_codes:?} by the audit log"
        ));
    }
}

/// The engine's own view (with the test audit key every host here signs with): `status`
/// answers and `verify_audit_chain` finds the chain intact.
fn check_with_engine(snapshot: &Snapshot, report: &mut Report) {
    let engine = match Engine::new(fast_config()) {
        Ok(engine) => engine,
        Err(e) => {
            report.problems.push(format!("the test engine: {e}"));
            return;
        }
    };
    let host = TestHost::with_data(snapshot.clone(), 0);
    let ctx = Context::new("127.0.0.1", "twofold-reliability");
    for user_id in &report.users {
        let user = || UserRef {
            user_id: user_id.clone(),
        };
        match engine.status(&host, &ctx, user()) {
            Ok(status) if status.two_factor_enabled && status.passkeys.is_empty() => report
                .problems
                .push(format!("status of {user_id}: 2FA on without a passkey")),
            Ok(status) if !status.two_factor_enabled && status.backup_codes_remaining > 0 => report
                .problems
                .push(format!("status of {user_id}: codes left with 2FA off")),
            Ok(_) => {}
            Err(e) => report.problems.push(format!("status of {user_id}: {e}")),
        }
        let verify = VerifyAudit {
            user_id: user_id.clone(),
            anchor: None,
        };
        match engine.verify_audit_chain(&host, &ctx, verify) {
            Ok(chain) if chain.intact => {}
            Ok(chain) => report.problems.push(format!(
                "verify_audit_chain of {user_id}: {:?}",
                chain.problems
            )),
            Err(e) => report
                .problems
                .push(format!("verify_audit_chain of {user_id}: {e}")),
        }
    }
}
