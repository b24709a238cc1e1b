//! The inputs and outcomes of every operation. They serialize to the JSON documented in
//! `tests/conformance/PROTOCOL.md`, which the C library and the conformance drivers use.
//!
//! Times are milliseconds since the Unix epoch. User ids are opaque strings; passkey ids are
//! the credential ids, base64url.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who is calling, as the host sees it; written into audit events (L1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Context {
    /// The client's IP address.
    pub ip: String,
    /// The client's user agent.
    pub user_agent: String,
}

impl Context {
    /// A context with an IP address and a user agent.
    pub fn new(ip: impl Into<String>, user_agent: impl Into<String>) -> Context {
        Context {
            ip: ip.into(),
            user_agent: user_agent.into(),
        }
    }
}

/// Create an account (A1).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    /// Email; trimmed, compared case-insensitively.
    pub email: String,
    /// Password, 8 to 1024 bytes.
    pub password: String,
}

/// A new account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountCreated {
    /// The new user's id.
    pub user_id: String,
    /// The email as stored (trimmed).
    pub email: String,
}

/// Sign-in step one (S1, S2).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
    /// Whether the user asked to stay signed in.
    #[serde(default)]
    pub remember_me: bool,
}

/// A completed sign-in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    /// The user now signed in.
    pub user_id: String,
    /// Whether the host may make the session persistent; always false after a second factor.
    pub remember_me: bool,
    /// After a backup-code sign-in: unused codes left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_codes_remaining: Option<u32>,
    /// After a backup-code sign-in: whether that is few enough to warn about (B6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_codes_running_low: Option<bool>,
}

/// The answer to sign-in step one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SignInOutcome {
    /// 2FA is off: the user is signed in.
    SignedIn(SignedIn),
    /// 2FA is on: the second step is needed.
    SecondFactorRequired(SecondFactorRequired),
}

/// Sign-in step one succeeded, and a second factor is needed (S2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecondFactorRequired {
    /// Opaque token naming this pending sign-in; give it back with the second factor.
    pub pending_token: String,
    /// WebAuthn request options (the `publicKey` member, Level 3 JSON) for
    /// `PublicKeyCredential.parseRequestOptionsFromJSON`.
    pub options: Value,
}

/// Sign-in step two with a passkey (S3).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeySignIn {
    /// The token from step one.
    pub pending_token: String,
    /// The browser's `credential.toJSON()`, as JSON text.
    pub credential: String,
}

/// Sign-in step two with a backup code (S4).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupCodeSignIn {
    /// The token from step one.
    pub pending_token: String,
    /// The code as typed; case, spaces and hyphens do not matter.
    pub code: String,
}

/// Start registering a passkey (P1).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRegistration {
    /// The signed-in user.
    pub user_id: String,
    /// A name for the passkey, 1 to 64 characters after trimming.
    pub name: String,
    /// The user's current password.
    pub password: String,
}

/// Creation options for `navigator.credentials.create`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegistrationStarted {
    /// WebAuthn creation options (the `publicKey` member, Level 3 JSON) for
    /// `PublicKeyCredential.parseCreationOptionsFromJSON`.
    pub options: Value,
}

/// Finish registering a passkey (P2, P3).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinishRegistration {
    /// The signed-in user who started the ceremony.
    pub user_id: String,
    /// The browser's `credential.toJSON()`, as JSON text.
    pub credential: String,
}

/// A registered passkey (P4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passkey {
    /// The credential id, base64url.
    pub id: String,
    /// The user's name for it.
    pub name: String,
    /// When it was registered.
    pub created_at: u64,
    /// When it last signed the user in.
    pub last_used_at: Option<u64>,
    /// Whether it may be synced to other devices.
    pub backup_eligible: bool,
    /// Whether it is synced now.
    pub backed_up: bool,
    /// Transports the browser reported (`internal`, `usb`, `hybrid`, ...).
    pub transports: Vec<String>,
}

/// A fresh backup-code set: the only time the codes can be read (B2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupCodes {
    /// The codes, formatted for people (`xxxx-xxxx-xxxx`).
    pub codes: Vec<String>,
}

/// A registered passkey, and what it changed (P3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyRegistered {
    /// The new passkey.
    pub passkey: Passkey,
    /// Whether 2FA is on now.
    pub two_factor_enabled: bool,
    /// The new backup codes, when this registration enabled 2FA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_codes: Option<Vec<String>>,
    /// Unused backup codes now.
    pub backup_codes_remaining: u32,
    /// Whether that is few enough to warn about.
    pub backup_codes_running_low: bool,
}

/// Rename a passkey (P4).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenamePasskey {
    /// The signed-in user.
    pub user_id: String,
    /// The passkey's id.
    pub passkey_id: String,
    /// The new name, 1 to 64 characters after trimming.
    pub name: String,
}

/// Remove a passkey (P4, P5).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemovePasskey {
    /// The signed-in user.
    pub user_id: String,
    /// The passkey's id.
    pub passkey_id: String,
    /// The user's current password.
    pub password: String,
}

/// A user id and a password: enable or disable 2FA, regenerate codes (T1, T2, B4).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfirmed {
    /// The signed-in user.
    pub user_id: String,
    /// The user's current password.
    pub password: String,
}

/// Names a user.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRef {
    /// The user.
    pub user_id: String,
}

/// A user's two-factor state (T3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The user.
    pub user_id: String,
    /// The account's email.
    pub email: String,
    /// Whether 2FA is on.
    pub two_factor_enabled: bool,
    /// The user's passkeys, oldest first.
    pub passkeys: Vec<Passkey>,
    /// Unused backup codes (0 when 2FA is off).
    pub backup_codes_remaining: u32,
    /// Whether 2FA is on and the unused codes are few enough to warn about (B6).
    pub backup_codes_running_low: bool,
}

/// Read a page of audit events, newest first (L2).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The user.
    pub user_id: String,
    /// Only events with a sequence number below this (the previous page's `next_before`).
    #[serde(default)]
    pub before: Option<u64>,
    /// Page size, 1 to 200; default 50.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// What an audit event records (L1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// An account was created.
    AccountCreated,
    /// A password was checked and was right.
    PasswordOk,
    /// A password was checked and was wrong.
    PasswordFailed,
    /// Sign-in step one passed and a second factor was asked for.
    SecondFactorRequired,
    /// A passkey assertion verified.
    PasskeyOk,
    /// A passkey assertion failed.
    PasskeyFailed,
    /// A backup code was accepted (and consumed).
    BackupCodeOk,
    /// A backup code was refused.
    BackupCodeFailed,
    /// The account was locked after too many failures.
    Throttled,
    /// A passkey was registered.
    PasskeyRegistered,
    /// A passkey was renamed.
    PasskeyRenamed,
    /// A passkey was removed.
    PasskeyRemoved,
    /// 2FA was turned on.
    TwoFactorEnabled,
    /// 2FA was turned off (`details.reason`: `user` or `last_passkey_removed`).
    TwoFactorDisabled,
    /// A backup-code set was generated (the codes themselves never appear).
    BackupCodesGenerated,
}

/// One audit event (L1, L3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the user's chain, from 1.
    pub seq: u64,
    /// When it happened.
    pub at: u64,
    /// The user it concerns.
    pub user_id: String,
    /// What happened.
    pub kind: EventKind,
    /// Facts about it (names, ids, reasons); never a secret or a hash of one.
    pub details: serde_json::Map<String, Value>,
    /// The host's client IP.
    pub ip: String,
    /// The host's client user agent.
    pub user_agent: String,
    /// Whether the user should be told (L4).
    pub notify: bool,
    /// The previous event's hash (empty for the first).
    pub prev_hash: String,
    /// SHA-256 over this event's other fields, hex.
    pub hash: String,
}

/// A page of audit events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    /// Events, newest first.
    pub events: Vec<AuditEvent>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<u64>,
}

/// One break in a user's audit chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainProblem {
    /// The sequence number where the chain breaks.
    pub seq: u64,
    /// `altered`, `missing`, `out_of_order`, `broken_link` or `unreadable`.
    pub problem: String,
}

/// The result of verifying a user's audit chain (L3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    /// True when no problem was found.
    pub intact: bool,
    /// Events read.
    pub events_checked: u64,
    /// Every problem found, oldest first.
    pub problems: Vec<ChainProblem>,
}
