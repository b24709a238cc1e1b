//! The audit log's requests and answers (L1 to L5).

use serde::{Deserialize, Serialize};

use crate::model::wire;

/// What an audit event records (L1). The `details` members of each kind are listed in the
/// README's audit table; `notify` (L4) marks the kinds a user should hear about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
#[cfg_attr(
    feature = "wasmtime",
    derive(
        wasmtime::component::ComponentType,
        wasmtime::component::Lift,
        wasmtime::component::Lower
    ),
    component(enum)
)]
pub enum EventKind {
    /// An account was created.
    #[cfg_attr(feature = "wasmtime", component(name = "account-created"))]
    AccountCreated,
    /// A password was checked and was right (`step`: which operation asked).
    #[cfg_attr(feature = "wasmtime", component(name = "password-ok"))]
    PasswordOk,
    /// A password was checked and was wrong (`step`).
    #[cfg_attr(feature = "wasmtime", component(name = "password-failed"))]
    PasswordFailed,
    /// Sign-in step one passed and a second factor was asked for.
    #[cfg_attr(feature = "wasmtime", component(name = "second-factor-required"))]
    SecondFactorRequired,
    /// A passkey assertion verified (`passkey_id`, `counter`, `backed_up`, and
    /// `backup_eligible_changed` when the flag changed, P7).
    #[cfg_attr(feature = "wasmtime", component(name = "passkey-ok"))]
    PasskeyOk,
    /// A passkey assertion failed (`passkey_id`, `reason`).
    #[cfg_attr(feature = "wasmtime", component(name = "passkey-failed"))]
    PasskeyFailed,
    /// A backup code was accepted and consumed (`remaining`).
    #[cfg_attr(feature = "wasmtime", component(name = "backup-code-ok"))]
    BackupCodeOk,
    /// A backup code was refused.
    #[cfg_attr(feature = "wasmtime", component(name = "backup-code-failed"))]
    BackupCodeFailed,
    /// Attempts on the account were slowed down (`scope`, `retry_after_secs`).
    #[cfg_attr(feature = "wasmtime", component(name = "throttled"))]
    Throttled,
    /// A passkey was registered (`passkey_id`, `name`).
    #[cfg_attr(feature = "wasmtime", component(name = "passkey-registered"))]
    PasskeyRegistered,
    /// A passkey was renamed (`passkey_id`, `old_name`, `name`).
    #[cfg_attr(feature = "wasmtime", component(name = "passkey-renamed"))]
    PasskeyRenamed,
    /// A passkey was removed (`passkey_id`).
    #[cfg_attr(feature = "wasmtime", component(name = "passkey-removed"))]
    PasskeyRemoved,
    /// 2FA was turned on (`reason`: `user` or `first_passkey`).
    #[cfg_attr(feature = "wasmtime", component(name = "two-factor-enabled"))]
    TwoFactorEnabled,
    /// 2FA was turned off (`reason`: `user` or `last_passkey_removed`).
    #[cfg_attr(feature = "wasmtime", component(name = "two-factor-disabled"))]
    TwoFactorDisabled,
    /// A backup-code set was generated (`count`, `reason`); the codes never appear.
    #[cfg_attr(feature = "wasmtime", component(name = "backup-codes-generated"))]
    BackupCodesGenerated,
    /// The password was changed by its owner (A4).
    #[cfg_attr(feature = "wasmtime", component(name = "password-changed"))]
    PasswordChanged,
    /// The password was reset by the host after its own proof of email ownership (A5).
    #[cfg_attr(feature = "wasmtime", component(name = "password-reset"))]
    PasswordReset,
    /// Events older than the retention age were pruned (`pruned`, `through_seq`, L5).
    #[cfg_attr(feature = "wasmtime", component(name = "audit-pruned"))]
    AuditPruned,
}

wire!(record
/// Read a page of audit events, newest first (L2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The user.
    #[cfg_attr(feature = "wasmtime", component(name = "user-id"))]
    pub user_id: String,
    /// Only events with a sequence number below this (the previous page's `next_before`).
    #[serde(default)]
    pub before: Option<u64>,
    /// Page size, 1 to 200; default 50.
    #[serde(default)]
    pub limit: Option<u32>,
});

wire!(record
/// One audit event (L1, L3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the user's chain, from 1.
    pub seq: u64,
    /// When it happened.
    pub at: u64,
    /// The user it concerns.
    #[cfg_attr(feature = "wasmtime", component(name = "user-id"))]
    pub user_id: String,
    /// What happened.
    pub kind: EventKind,
    /// Facts about it (names, ids, reasons) as a JSON object; never a secret or a hash of one.
    #[serde(with = "crate::json::text")]
    pub details: String,
    /// The host's client IP.
    pub ip: String,
    /// The host's client user agent.
    #[cfg_attr(feature = "wasmtime", component(name = "user-agent"))]
    pub user_agent: String,
    /// Whether the user should be told (L4).
    pub notify: bool,
    /// A digest of the account's security state after this event (2FA on, passkey ids,
    /// backup-code set, password hash), hex; lets verification see state changed without an
    /// event.
    pub state: String,
    /// The id of the audit key that made `mac`.
    #[cfg_attr(feature = "wasmtime", component(name = "key-id"))]
    pub key_id: String,
    /// The previous event's `mac` (empty for the first event, or the checkpoint's after a
    /// prune).
    #[cfg_attr(feature = "wasmtime", component(name = "prev-mac"))]
    pub prev_mac: String,
    /// HMAC-SHA256, under the audit key, of this event and `prev_mac`, hex.
    pub mac: String,
});

wire!(record
/// A page of audit events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    /// Events, newest first.
    pub events: Vec<AuditEvent>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "next-before"))]
    pub next_before: Option<u64>,
});

wire!(record
/// The newest event of a user's chain, to keep outside the database (a log shipper, WORM
/// storage, a timestamping service). Given back to `verify_audit_chain`, it lets
/// verification see a truncated or deleted log (L3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditAnchor {
    /// The user.
    #[cfg_attr(feature = "wasmtime", component(name = "user-id"))]
    pub user_id: String,
    /// The newest event's sequence number (0: the user has no event yet).
    pub seq: u64,
    /// That event's `mac`.
    pub mac: String,
});

wire!(record
/// Verify a user's audit chain (L3), optionally against an anchor kept outside the database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyAudit {
    /// The user.
    #[cfg_attr(feature = "wasmtime", component(name = "user-id"))]
    pub user_id: String,
    /// An anchor taken earlier with `audit_anchor`.
    #[serde(default)]
    pub anchor: Option<AuditAnchor>,
});

/// What is wrong at one place of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
#[cfg_attr(
    feature = "wasmtime",
    derive(
        wasmtime::component::ComponentType,
        wasmtime::component::Lift,
        wasmtime::component::Lower
    ),
    component(enum)
)]
pub enum ChainProblemKind {
    /// The event's MAC does not match its contents: it was edited, or forged without the key.
    #[cfg_attr(feature = "wasmtime", component(name = "altered"))]
    Altered,
    /// An event in the chain's range is not there.
    #[cfg_attr(feature = "wasmtime", component(name = "missing"))]
    Missing,
    /// The event is stored under another sequence number than its own.
    #[cfg_attr(feature = "wasmtime", component(name = "out-of-order"))]
    OutOfOrder,
    /// The event's `prev_mac` is not the previous event's MAC.
    #[cfg_attr(feature = "wasmtime", component(name = "broken-link"))]
    BrokenLink,
    /// The stored event cannot be read.
    #[cfg_attr(feature = "wasmtime", component(name = "unreadable"))]
    Unreadable,
    /// The event names an audit key the engine is not configured with.
    #[cfg_attr(feature = "wasmtime", component(name = "unknown-key"))]
    UnknownKey,
    /// The account's security state is not what the newest event recorded: it was changed
    /// without an event.
    #[cfg_attr(feature = "wasmtime", component(name = "state-changed"))]
    StateChanged,
    /// The chain ends before the anchor's event, or the anchor's event is not the one anchored:
    /// events were removed from the end, or the whole log was deleted.
    #[cfg_attr(feature = "wasmtime", component(name = "truncated"))]
    Truncated,
    /// The pruning checkpoint is not one the engine made, or does not match the chain.
    #[cfg_attr(feature = "wasmtime", component(name = "bad-checkpoint"))]
    BadCheckpoint,
}

wire!(record
/// One problem in a user's audit chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainProblem {
    /// The sequence number where it is.
    pub seq: u64,
    /// What it is.
    pub problem: ChainProblemKind,
});

wire!(record
/// The result of verifying a user's audit chain (L3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    /// True when no problem was found.
    pub intact: bool,
    /// Events read.
    #[cfg_attr(feature = "wasmtime", component(name = "events-checked"))]
    pub events_checked: u64,
    /// Verification started after this sequence number: the last event pruned (L5), 0 when
    /// nothing was pruned.
    #[cfg_attr(feature = "wasmtime", component(name = "checkpoint-seq"))]
    pub checkpoint_seq: u64,
    /// Every problem found, oldest first.
    pub problems: Vec<ChainProblem>,
});

wire!(record
/// Prune a user's events older than the retention age (L5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneAudit {
    /// The user.
    #[cfg_attr(feature = "wasmtime", component(name = "user-id"))]
    pub user_id: String,
    /// Remove events older than this many days; default the configured retention (2190).
    #[serde(default)]
    #[cfg_attr(feature = "wasmtime", component(name = "older-than-days"))]
    pub older_than_days: Option<u32>,
});

wire!(record
/// What a prune removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPruned {
    /// Events removed by this call (at most 500 a call).
    pub pruned: u32,
    /// The checkpoint now: the sequence number of the newest event pruned so far (0 when none).
    #[cfg_attr(feature = "wasmtime", component(name = "checkpoint-seq"))]
    pub checkpoint_seq: u64,
    /// Whether old events remain: call again.
    pub more: bool,
});
