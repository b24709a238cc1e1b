//! The audit log (L1 to L5): events written in the same commit as the change they describe,
//! read newest first, chained and authenticated with a key the host keeps outside the
//! database, and marked for notification by rule.
//!
//! Each event carries `mac` = HMAC-SHA256 under an audit key (named by `key_id`) over the event
//! with `mac` empty, which includes `prev_mac` (so the events form a chain), `state_before` (a
//! digest of the account's security state the operation found) and `state` (the digest of the
//! state it left). The state digest is SHA-256 over the 2FA flag, the security epoch, the
//! password hash's SHA-256, the backup-code set (its salt and which codes are used) and the
//! passkey ids: it is inside the MAC, so it cannot be edited, and it lets verification see a
//! state that changed without an event (between two events, or after the newest).
//!
//! What verification reports, with the key alone: an edited or forged event (`altered`), a
//! dropped event inside the chain (`missing`), reordered events (`out_of_order`,
//! `broken_link`), an event signed by a key the engine does not hold (`unknown_key`), account
//! state changed without an event (`state_changed`), a forged or stale pruning checkpoint
//! (`bad_checkpoint` or `missing`). With an anchor `(seq, mac)` the host kept outside the
//! database: events removed from the end, the whole log deleted, or the user deleted
//! (`truncated`). What no design can see: events removed from the end after the newest anchor
//! when nothing else changed, by someone who also rewrote the head pointer; and anything done
//! by someone who holds the key.

use serde_json::{Map, Value};

use crate::config::Settings;
use crate::docs::{CheckpointDoc, EventDoc, SCHEMA_VERSION, UserDoc, keys};
use crate::error::{Error, Result};
use crate::secrets::{hmac_hex, mac_eq, sha256_hex};
use crate::txn::{Txn, read_error};
use crate::{
    AuditAnchor, AuditEvent, ChainProblem, ChainProblemKind, ChainReport, Context, EventKind,
    Storage,
};

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
        | EventKind::Throttled
        | EventKind::PasswordChanged
        | EventKind::PasswordReset => true,
        EventKind::BackupCodesGenerated => {
            details.get("reason").and_then(Value::as_str) == Some("regenerated")
        }
        EventKind::AccountCreated
        | EventKind::PasswordOk
        | EventKind::PasswordFailed
        | EventKind::SecondFactorRequired
        | EventKind::PasskeyOk
        | EventKind::PasskeyFailed
        | EventKind::BackupCodeFailed
        | EventKind::PasskeyRenamed
        | EventKind::TwoFactorEnabled
        | EventKind::AuditPruned => false,
    }
}

/// The digest of an account's security state (see the module documentation).
pub(crate) fn state_digest(user: &UserDoc) -> Result<String> {
    let codes = user.backup_codes.as_ref().map(|set| {
        let used: String = set
            .codes
            .iter()
            .map(|c| if c.used { '1' } else { '0' })
            .collect();
        serde_json::json!({ "set": set.salt, "used": used })
    });
    let state = serde_json::json!({
        "two_factor": user.two_factor,
        "epoch": user.epoch,
        "password": sha256_hex(user.password.as_bytes()),
        "codes": codes,
        "passkeys": user.passkeys,
    });
    let bytes = serde_json::to_vec(&state).map_err(Error::internal)?;
    Ok(sha256_hex(
        &[b"twofold/state/v1\n".as_slice(), &bytes].concat(),
    ))
}

fn event_mac(key: &[u8], event: &EventDoc) -> Result<String> {
    let mut copy = event.clone();
    copy.mac = String::new();
    let bytes = serde_json::to_vec(&copy).map_err(Error::internal)?;
    hmac_hex(key, &[b"twofold/event/v1", &bytes])
}

fn checkpoint_check(key: &[u8], cp: &CheckpointDoc) -> Result<String> {
    hmac_hex(
        key,
        &[
            b"twofold/checkpoint/v1",
            cp.user_id.as_bytes(),
            &cp.seq.to_le_bytes(),
            cp.mac.as_bytes(),
            cp.state.as_bytes(),
            &cp.at.to_le_bytes(),
        ],
    )
}

/// An account read in an attempt, with the events the attempt records about it. `save`
/// seals the events onto the chain and writes the account, in the attempt's one batch.
pub(crate) struct Account {
    pub doc: UserDoc,
    before: String,
    created: bool,
    events: Vec<(EventKind, Map<String, Value>)>,
}

impl Account {
    /// The account `user_id`, or `not_found`.
    pub(crate) fn load(txn: &mut Txn<'_>, user_id: &str) -> Result<Account> {
        let doc = txn
            .get::<UserDoc>(&keys::user(user_id))?
            .ok_or_else(|| Error::NotFound("user".into()))?;
        Ok(Account {
            before: state_digest(&doc)?,
            doc,
            created: false,
            events: Vec::new(),
        })
    }

    /// A new account, written by the first `save`.
    pub(crate) fn create(doc: UserDoc) -> Account {
        Account {
            doc,
            before: String::new(),
            created: true,
            events: Vec::new(),
        }
    }

    /// Whether events wait to be written.
    pub(crate) fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Records an event, written by `save`.
    pub(crate) fn record(&mut self, kind: EventKind, details: Map<String, Value>) {
        self.events.push((kind, details));
    }

    /// Seals the recorded events onto the user's chain and writes the account.
    pub(crate) fn save(
        mut self,
        txn: &mut Txn<'_>,
        s: &Settings,
        ctx: &Context,
        now: u64,
    ) -> Result<UserDoc> {
        let key = s.signing_key()?;
        let after = state_digest(&self.doc)?;
        let mut before = self.before.clone();
        for (kind, details) in std::mem::take(&mut self.events) {
            let seq = self.doc.audit_seq + 1;
            let mut event = EventDoc {
                v: SCHEMA_VERSION,
                seq,
                at: now,
                user_id: self.doc.id.clone(),
                kind,
                notify: notify(kind, &details),
                details,
                ip: ctx.ip.clone(),
                user_agent: ctx.user_agent.clone(),
                state_before: before,
                state: after.clone(),
                key_id: key.id.clone(),
                prev_mac: self.doc.audit_mac.clone(),
                mac: String::new(),
            };
            event.mac = event_mac(&key.secret, &event)?;
            txn.put_new(&keys::event(&self.doc.id, seq), &event)?;
            self.doc.audit_seq = seq;
            self.doc.audit_mac = event.mac;
            before = after.clone();
        }
        let user_key = keys::user(&self.doc.id);
        if self.created {
            txn.put_new(&user_key, &self.doc)?;
        } else {
            txn.put(&user_key, &self.doc)?;
        }
        Ok(self.doc)
    }
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
        state: e.state,
        key_id: e.key_id,
        prev_mac: e.prev_mac,
        mac: e.mac,
    })
}

/// The newest event of a chain, for an anchor.
pub(crate) fn anchor(user: &UserDoc) -> AuditAnchor {
    AuditAnchor {
        user_id: user.id.clone(),
        seq: user.audit_seq,
        mac: user.audit_mac.clone(),
    }
}

/// Where the chain starts: after the pruning checkpoint if there is one. A checkpoint that is
/// not the engine's reports `bad_checkpoint`, and verification then starts at the beginning.
fn start_of(
    s: &Settings,
    user_id: &str,
    checkpoint: Option<CheckpointDoc>,
    problems: &mut Vec<ChainProblem>,
) -> Result<(u64, String, String)> {
    let Some(cp) = checkpoint else {
        return Ok((0, String::new(), String::new()));
    };
    let genuine = match s.audit_key(&cp.key_id) {
        Some(key) => {
            cp.user_id == user_id && mac_eq(&checkpoint_check(&key.secret, &cp)?, &cp.check)
        }
        None => false,
    };
    if genuine {
        Ok((cp.seq, cp.mac, cp.state))
    } else {
        problems.push(ChainProblem {
            seq: cp.seq,
            problem: ChainProblemKind::BadCheckpoint,
        });
        Ok((0, String::new(), String::new()))
    }
}

/// Every event of a user, oldest first, as stored (key and document, or the key alone when
/// the document cannot be read).
fn read_events(storage: &dyn Storage, user_id: &str) -> Result<Vec<(String, Option<EventDoc>)>> {
    const PAGE: u32 = 256;
    let prefix = keys::events(user_id);
    let mut raw = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = storage
            .scan(&prefix, after.as_deref(), PAGE)
            .map_err(read_error)?;
        let full = page.len() == PAGE as usize;
        after = page.last().map(|e| e.key.clone());
        for entry in page {
            let event = serde_json::from_str::<EventDoc>(&entry.value.value).ok();
            raw.push((entry.key, event));
        }
        if !full {
            break;
        }
    }
    // Keys sort newest first; walk oldest first.
    raw.reverse();
    Ok(raw)
}

/// What verification needs besides the events: the account as stored (absent if deleted),
/// the ids of the passkey documents stored under it, and the caller's anchor.
pub(crate) struct Subject<'a> {
    pub user_id: &'a str,
    pub user: Option<&'a UserDoc>,
    pub stored_passkeys: Vec<String>,
    pub anchor: Option<&'a AuditAnchor>,
    pub checkpoint: Option<CheckpointDoc>,
}

/// Verifies a user's chain (L3); see the module documentation for what is reported.
pub(crate) fn verify(
    storage: &dyn Storage,
    s: &Settings,
    subject: Subject<'_>,
) -> Result<ChainReport> {
    let mut problems = Vec::new();
    let prefix = keys::events(subject.user_id);
    let (checkpoint_seq, mut prev_mac, mut prev_state) =
        start_of(s, subject.user_id, subject.checkpoint, &mut problems)?;
    let raw = read_events(storage, subject.user_id)?;
    let mut expected_seq = checkpoint_seq + 1;
    let mut events_checked = 0u64;
    let mut macs = Vec::new();
    for (key, event) in raw {
        let key_seq = key
            .strip_prefix(&prefix)
            .and_then(|s| s.parse::<u64>().ok())
            .map(|inverted| u64::MAX - inverted);
        if key_seq.is_some_and(|seq| seq <= checkpoint_seq) {
            // Left behind by a prune that committed its checkpoint: outside the chain.
            continue;
        }
        events_checked += 1;
        let Some(event) = event else {
            let seq = key_seq.unwrap_or(expected_seq);
            problems.push(ChainProblem {
                seq,
                problem: ChainProblemKind::Unreadable,
            });
            expected_seq = seq + 1;
            prev_mac = String::new();
            prev_state = String::new();
            continue;
        };
        if key_seq != Some(event.seq) {
            problems.push(ChainProblem {
                seq: event.seq,
                problem: ChainProblemKind::OutOfOrder,
            });
        }
        for missing in expected_seq..event.seq {
            problems.push(ChainProblem {
                seq: missing,
                problem: ChainProblemKind::Missing,
            });
        }
        match s.audit_key(&event.key_id) {
            None => problems.push(ChainProblem {
                seq: event.seq,
                problem: ChainProblemKind::UnknownKey,
            }),
            Some(k) if !mac_eq(&event_mac(&k.secret, &event)?, &event.mac) => {
                problems.push(ChainProblem {
                    seq: event.seq,
                    problem: ChainProblemKind::Altered,
                });
            }
            Some(_) => {
                if event.prev_mac != prev_mac {
                    problems.push(ChainProblem {
                        seq: event.seq,
                        problem: ChainProblemKind::BrokenLink,
                    });
                } else if event.state_before != prev_state {
                    problems.push(ChainProblem {
                        seq: event.seq,
                        problem: ChainProblemKind::StateChanged,
                    });
                }
            }
        }
        expected_seq = event.seq.max(expected_seq) + 1;
        macs.push((event.seq, event.mac.clone()));
        prev_mac = event.mac;
        prev_state = event.state;
    }
    let last_seq = expected_seq - 1;
    match subject.user {
        Some(user) => {
            for missing in expected_seq..=user.audit_seq {
                problems.push(ChainProblem {
                    seq: missing,
                    problem: ChainProblemKind::Missing,
                });
            }
            if user.audit_seq == last_seq && user.audit_mac != prev_mac {
                problems.push(ChainProblem {
                    seq: last_seq,
                    problem: ChainProblemKind::Altered,
                });
            }
            let mut stored = subject.stored_passkeys;
            let mut listed = user.passkeys.clone();
            stored.sort();
            listed.sort();
            if state_digest(user)? != prev_state || stored != listed {
                problems.push(ChainProblem {
                    seq: last_seq,
                    problem: ChainProblemKind::StateChanged,
                });
            }
        }
        None => problems.push(ChainProblem {
            seq: last_seq,
            problem: ChainProblemKind::Truncated,
        }),
    }
    if let Some(anchor) = subject.anchor
        && anchor.seq > checkpoint_seq
    {
        let kept = macs.iter().find(|(seq, _)| *seq == anchor.seq);
        if !kept.is_some_and(|(_, mac)| mac_eq(mac, &anchor.mac)) {
            problems.push(ChainProblem {
                seq: anchor.seq,
                problem: ChainProblemKind::Truncated,
            });
        }
    }
    problems.sort_by_key(|p| p.seq);
    problems.dedup();
    Ok(ChainReport {
        intact: problems.is_empty(),
        events_checked,
        checkpoint_seq,
        problems,
    })
}

/// Pruning (L5): at most this many events a call, so one commit stays small.
pub(crate) const PRUNE_BATCH: u32 = 500;

/// The oldest events after the checkpoint, oldest first, at most [`PRUNE_BATCH`].
pub(crate) fn oldest_events(
    txn: &mut Txn<'_>,
    user_id: &str,
    after_seq: u64,
) -> Result<Vec<(String, EventDoc)>> {
    let bound = keys::event(
        user_id,
        after_seq.saturating_add(u64::from(PRUNE_BATCH) + 1),
    );
    let mut page = txn.scan::<EventDoc>(&keys::events(user_id), Some(&bound), PRUNE_BATCH)?;
    page.reverse();
    Ok(page
        .into_iter()
        .filter(|(_, e)| e.seq > after_seq)
        .collect())
}

/// A checkpoint after `last`, the newest event pruned.
pub(crate) fn checkpoint_after(
    s: &Settings,
    user_id: &str,
    last: &EventDoc,
    now: u64,
) -> Result<CheckpointDoc> {
    let key = s.signing_key()?;
    let mut cp = CheckpointDoc {
        v: SCHEMA_VERSION,
        user_id: user_id.to_owned(),
        seq: last.seq,
        mac: last.mac.clone(),
        state: last.state.clone(),
        at: now,
        key_id: key.id.clone(),
        check: String::new(),
    };
    cp.check = checkpoint_check(&key.secret, &cp)?;
    Ok(cp)
}
