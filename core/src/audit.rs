//! The audit log: events written in the same commit as the change they describe (L1), read
//! newest first (L2), chained by hashes so that an altered, dropped or reordered event shows
//! (L3), and marked for notification by rule (L4).

use serde_json::{Map, Value};

use crate::docs::{EventDoc, SCHEMA_VERSION, UserDoc, keys};
use crate::error::{Error, Result};
use crate::secrets::sha256_hex;
use crate::txn::Txn;
use crate::txn::read_error;
use crate::{AuditEvent, ChainProblem, ChainProblemKind, ChainReport, Context, EventKind, Storage};

/// Details of an event, built inline: `details! { "passkey_id" => id }`.
macro_rules! details {
    () => { serde_json::Map::new() };
    ($($k:literal => $v:expr),+ $(,)?) => {{
        let mut m = serde_json::Map::new();
        $(m.insert($k.to_string(), serde_json::json!($v));)+
        m
    }};
}
pub(crate) use details;

/// Whether users hear about an event of this kind (L4).
fn notify(kind: EventKind, details: &Map<String, Value>) -> bool {
    match kind {
        EventKind::TwoFactorDisabled
        | EventKind::PasskeyRegistered
        | EventKind::PasskeyRemoved
        | EventKind::BackupCodeOk
        | EventKind::Throttled => true,
        EventKind::BackupCodesGenerated => {
            details.get("reason").and_then(Value::as_str) == Some("regenerated")
        }
        _ => false,
    }
}

/// The hash of an event: SHA-256 over its JSON with `hash` empty. Object keys serialize in a
/// fixed order, so the same event always hashes the same.
fn event_hash(event: &EventDoc) -> Result<String> {
    let mut copy = event.clone();
    copy.hash = String::new();
    let bytes = serde_json::to_vec(&copy).map_err(Error::internal)?;
    Ok(sha256_hex(&bytes))
}

/// Appends an event to the user's chain in this attempt's batch. The caller writes `user`.
pub(crate) fn append(
    txn: &mut Txn<'_>,
    user: &mut UserDoc,
    ctx: &Context,
    now: u64,
    kind: EventKind,
    details: Map<String, Value>,
) -> Result<()> {
    let seq = user.audit_seq + 1;
    let mut event = EventDoc {
        v: SCHEMA_VERSION,
        seq,
        at: now,
        user_id: user.id.clone(),
        kind,
        notify: notify(kind, &details),
        details,
        ip: ctx.ip.clone(),
        user_agent: ctx.user_agent.clone(),
        prev_hash: user.audit_hash.clone(),
        hash: String::new(),
    };
    event.hash = event_hash(&event)?;
    txn.put_new(&keys::event(&user.id, seq), &event)?;
    user.audit_seq = seq;
    user.audit_hash = event.hash;
    Ok(())
}

pub(crate) fn to_public(e: EventDoc) -> Result<AuditEvent> {
    Ok(AuditEvent {
        seq: e.seq,
        at: e.at,
        user_id: e.user_id,
        kind: e.kind,
        details: serde_json::to_string(&e.details).map_err(Error::internal)?,
        ip: e.ip,
        user_agent: e.user_agent,
        notify: e.notify,
        state: String::new(),
        key_id: String::new(),
        prev_mac: e.prev_hash,
        mac: e.hash,
    })
}

/// Checks a user's whole chain against the head kept in the user document.
pub(crate) fn verify_chain(storage: &dyn Storage, user: &UserDoc) -> Result<ChainReport> {
    const PAGE: u32 = 256;
    let prefix = keys::events(&user.id);
    let mut raw = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = storage
            .scan(&prefix, after.as_deref(), PAGE)
            .map_err(read_error)?;
        let full = page.len() == PAGE as usize;
        after = page.last().map(|e| e.key.clone());
        raw.extend(page);
        if !full {
            break;
        }
    }
    // Keys sort newest first; walk oldest first.
    raw.reverse();
    let mut problems = Vec::new();
    let mut expected_seq = 1u64;
    let mut prev_hash = String::new();
    let events_checked = u64::try_from(raw.len()).unwrap_or(u64::MAX);
    for crate::Entry { key, value: record } in raw {
        let key_seq = key
            .strip_prefix(&prefix)
            .and_then(|s| s.parse::<u64>().ok())
            .map(|inverted| u64::MAX - inverted);
        let Ok(event) = serde_json::from_str::<EventDoc>(&record.value) else {
            let seq = key_seq.unwrap_or(expected_seq);
            problems.push(ChainProblem {
                seq,
                problem: ChainProblemKind::Unreadable,
            });
            expected_seq = seq + 1;
            prev_hash = String::new();
            continue;
        };
        if key_seq != Some(event.seq) {
            problems.push(ChainProblem {
                seq: event.seq,
                problem: ChainProblemKind::OutOfOrder,
            });
        }
        if event.seq > expected_seq {
            for missing in expected_seq..event.seq {
                problems.push(ChainProblem {
                    seq: missing,
                    problem: ChainProblemKind::Missing,
                });
            }
        }
        if event_hash(&event)? != event.hash {
            problems.push(ChainProblem {
                seq: event.seq,
                problem: ChainProblemKind::Altered,
            });
        } else if event.prev_hash != prev_hash {
            problems.push(ChainProblem {
                seq: event.seq,
                problem: ChainProblemKind::BrokenLink,
            });
        }
        expected_seq = event.seq.max(expected_seq) + 1;
        prev_hash = event.hash;
    }
    if user.audit_seq >= expected_seq {
        for missing in expected_seq..=user.audit_seq {
            problems.push(ChainProblem {
                seq: missing,
                problem: ChainProblemKind::Missing,
            });
        }
    } else if user.audit_hash != prev_hash {
        problems.push(ChainProblem {
            seq: user.audit_seq,
            problem: ChainProblemKind::Altered,
        });
    }
    problems.sort_by_key(|p| p.seq);
    Ok(ChainReport {
        intact: problems.is_empty(),
        events_checked,
        checkpoint_seq: 0,
        problems,
    })
}
