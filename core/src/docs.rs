//! The documents the engine stores, and their keys. Every document carries a schema version
//! (`v`, rule D3); the engine refuses documents of a version it does not know.
//!
//! Nothing user-supplied becomes part of a key as it is: emails, tokens, client ids and
//! credential ids are hashed (SHA-256, hex) first, so keys have a fixed alphabet and length
//! and a reader of the keys learns no email or token.

use serde::{Deserialize, Serialize};
use webauthn_rs_core::proto::{AuthenticationState, Credential, RegistrationState};

use crate::{Argon2Params, EventKind};

/// The schema version this engine writes and reads. Version 2 added device tokens,
/// throttling records, the security epoch and the keyed audit chain.
pub(crate) const SCHEMA_VERSION: u32 = 2;

/// Documents that carry a schema version.
pub(crate) trait Doc {
    fn schema_version(&self) -> u32;
}

macro_rules! versioned {
    ($($t:ty),*) => {$(impl Doc for $t { fn schema_version(&self) -> u32 { self.v } })*};
}
versioned!(
    EmailDoc,
    UserDoc,
    PasskeyDoc,
    RegistrationDoc,
    CredentialOwnerDoc,
    PendingDoc,
    DeviceDoc,
    EventDoc,
    CheckpointDoc,
    PairDoc,
    EmailThrottleDoc,
    ClientDoc
);

pub(crate) mod keys {
    //! Storage keys.

    pub(crate) fn email(email_hash: &str) -> String {
        format!("email/{email_hash}")
    }
    pub(crate) fn user(user_id: &str) -> String {
        format!("user/{user_id}")
    }
    pub(crate) fn passkeys(user_id: &str) -> String {
        format!("passkey/{user_id}/")
    }
    pub(crate) fn passkey(user_id: &str, passkey_id_hash: &str) -> String {
        format!("passkey/{user_id}/{passkey_id_hash}")
    }
    pub(crate) fn registration(user_id: &str) -> String {
        format!("registration/{user_id}")
    }
    pub(crate) fn credential_owner(credential_id_hash: &str) -> String {
        format!("credential/{credential_id_hash}")
    }
    pub(crate) fn pending_of(user_id: &str) -> String {
        format!("pending/{user_id}/")
    }
    pub(crate) fn pending(user_id: &str, token_hash: &str) -> String {
        format!("pending/{user_id}/{token_hash}")
    }
    pub(crate) fn devices_of(user_id: &str) -> String {
        format!("device/{user_id}/")
    }
    pub(crate) fn device(user_id: &str, token_hash: &str) -> String {
        format!("device/{user_id}/{token_hash}")
    }
    pub(crate) fn events(user_id: &str) -> String {
        format!("audit/{user_id}/")
    }
    /// Events sort newest first: the key holds `u64::MAX - seq`, zero-padded.
    pub(crate) fn event(user_id: &str, seq: u64) -> String {
        format!("audit/{user_id}/{:020}", u64::MAX - seq)
    }
    pub(crate) fn checkpoint(user_id: &str) -> String {
        format!("audit-checkpoint/{user_id}")
    }
    /// Where every kind of throttling record lives, for the expiry sweep.
    pub(crate) const THROTTLE: &str = "throttle/";
    pub(crate) fn pair(email_hash: &str, client_hash: &str) -> String {
        format!("throttle/pair/{email_hash}/{client_hash}")
    }
    pub(crate) fn email_throttle(email_hash: &str) -> String {
        format!("throttle/email/{email_hash}")
    }
    pub(crate) fn client(client_hash: &str) -> String {
        format!("throttle/client/{client_hash}")
    }
}

/// `email/<hash of the canonical email>`: who owns an email (A1).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct EmailDoc {
    pub v: u32,
    pub user_id: String,
}

/// `user/<id>`: the account.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UserDoc {
    pub v: u32,
    pub id: String,
    /// The email as shown: trimmed, NFC, case kept.
    pub email: String,
    /// SHA-256 of the canonical email: the key of its owner document and of its throttling
    /// records.
    pub email_hash: String,
    /// argon2id PHC string.
    pub password: String,
    /// Random WebAuthn user handle, base64url; never the email.
    pub user_handle: String,
    pub created_at: u64,
    pub two_factor: bool,
    /// The security epoch (A6): grows whenever the account's protection changes.
    pub epoch: u64,
    /// The ids (base64url) of the user's passkeys, oldest first. Authoritative: a passkey
    /// document whose id is not listed here is not the user's.
    pub passkeys: Vec<String>,
    pub backup_codes: Option<CodeSet>,
    /// The newest audit event (L3): its sequence number and MAC.
    pub audit_seq: u64,
    pub audit_mac: String,
}

/// A backup-code set: one salt, one argon2id hash per code (B2).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CodeSet {
    /// The argon2id parameters the set was hashed with.
    pub hash_params: Argon2Params,
    /// The set's salt, base64url; also the set's identity in the security state.
    pub salt: String,
    pub created_at: u64,
    pub codes: Vec<StoredCode>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredCode {
    /// The hash output, base64url.
    pub hash: String,
    pub used: bool,
}

impl CodeSet {
    pub(crate) fn remaining(&self) -> u32 {
        u32::try_from(self.codes.iter().filter(|c| !c.used).count()).unwrap_or(u32::MAX)
    }
}

/// `passkey/<user id>/<hash of the credential id>`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PasskeyDoc {
    pub v: u32,
    pub name: String,
    pub created_at: u64,
    pub last_used_at: Option<u64>,
    pub credential: Credential,
}

/// `registration/<user id>`: the user's registration ceremony in flight, if any. The key is
/// never deleted, only emptied, so its version keeps growing (no ABA, see `Storage`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RegistrationDoc {
    pub v: u32,
    pub ceremony: Option<RegistrationCeremony>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RegistrationCeremony {
    pub name: String,
    pub expires_at: u64,
    pub state: RegistrationState,
}

/// `credential/<hash of the credential id>`: who owns a credential id, globally (P2).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CredentialOwnerDoc {
    pub v: u32,
    pub user_id: String,
}

/// `pending/<user id>/<hash of the token>`: a sign-in waiting for its second factor (S2, S5).
/// Keyed under the user so that step one can sweep the user's stale ones. The WebAuthn state
/// is kept without the credentials (verification takes the one credential the assertion
/// names), so the document stays small however many passkeys the user has.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PendingDoc {
    pub v: u32,
    pub user_id: String,
    /// The sequence number of its `second_factor_required` event: orders pending sign-ins
    /// made within one millisecond.
    pub serial: u64,
    pub expires_at: u64,
    pub failures: u32,
    pub state: AuthenticationState,
}

/// `device/<user id>/<hash of the token>`: a device token (S6), valid until `expires_at`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DeviceDoc {
    pub v: u32,
    pub created_at: u64,
    pub expires_at: u64,
}

/// `audit/<user id>/<inverted seq>`: one audit event (L1, L3). `mac` is HMAC-SHA256 under the
/// key `key_id` over the event's JSON with `mac` empty, which includes `prev_mac` (the chain),
/// `state_before` (the account's security state the operation found) and `state` (the state
/// it left).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct EventDoc {
    pub v: u32,
    pub seq: u64,
    pub at: u64,
    pub user_id: String,
    pub kind: EventKind,
    pub details: serde_json::Map<String, serde_json::Value>,
    pub ip: String,
    pub user_agent: String,
    pub notify: bool,
    pub state_before: String,
    pub state: String,
    pub key_id: String,
    pub prev_mac: String,
    pub mac: String,
}

/// `audit-checkpoint/<user id>`: where the chain continues after pruning (L5): the last pruned
/// event's sequence number, MAC and state. `check` is HMAC-SHA256 under `key_id` over the
/// rest, so a checkpoint cannot be forged without the key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CheckpointDoc {
    pub v: u32,
    pub user_id: String,
    pub seq: u64,
    pub mac: String,
    pub state: String,
    pub at: u64,
    pub key_id: String,
    pub check: String,
}

/// `throttle/pair/<email hash>/<client hash>`: consecutive failures of one email from one
/// client (the device token when valid, else the client id), S6.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PairDoc {
    pub v: u32,
    pub failures: u32,
    pub blocked_until: u64,
    pub expires_at: u64,
}

/// `throttle/email/<email hash>`: consecutive failures of one email from every client (S6),
/// for known and unknown emails alike.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct EmailThrottleDoc {
    pub v: u32,
    pub failures: u32,
    pub expires_at: u64,
}

/// `throttle/client/<client hash>`: one client id's failures and sign-ups in its current
/// window (S6).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ClientDoc {
    pub v: u32,
    pub window_start: u64,
    pub failures: u32,
    pub signups: u32,
    pub expires_at: u64,
}

/// Any throttling record, for the expiry sweep.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ExpiringDoc {
    pub v: u32,
    pub expires_at: u64,
}
versioned!(ExpiringDoc);
