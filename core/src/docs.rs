//! The documents the engine stores, and their keys. Every document carries a schema version
//! (`v`, rule D3); the engine refuses documents of a version it does not know.

use serde::{Deserialize, Serialize};
use webauthn_rs_core::proto::{AuthenticationState, Credential, RegistrationState};

use crate::Argon2Params;
use crate::EventKind;

/// The schema version this engine writes and reads.
pub(crate) const SCHEMA_VERSION: u32 = 1;

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
    EventDoc
);

pub(crate) mod keys {
    //! Storage keys. Anything user-supplied is hashed or encoded before it becomes part of a key.

    pub(crate) fn email(normalised_email_hash: &str) -> String {
        format!("email/{normalised_email_hash}")
    }
    pub(crate) fn user(user_id: &str) -> String {
        format!("user/{user_id}")
    }
    pub(crate) fn passkeys(user_id: &str) -> String {
        format!("passkey/{user_id}/")
    }
    pub(crate) fn passkey(user_id: &str, passkey_id: &str) -> String {
        format!("passkey/{user_id}/{passkey_id}")
    }
    pub(crate) fn registration(user_id: &str) -> String {
        format!("registration/{user_id}")
    }
    pub(crate) fn credential_owner(credential_id: &str) -> String {
        format!("credential/{credential_id}")
    }
    pub(crate) fn pending_of(user_id: &str) -> String {
        format!("pending/{user_id}/")
    }
    pub(crate) fn pending(user_id: &str, token_hash: &str) -> String {
        format!("pending/{user_id}/{token_hash}")
    }
    pub(crate) fn events(user_id: &str) -> String {
        format!("audit/{user_id}/")
    }
    /// Events sort newest first: the key holds `u64::MAX - seq`, zero-padded.
    pub(crate) fn event(user_id: &str, seq: u64) -> String {
        format!("audit/{user_id}/{:020}", u64::MAX - seq)
    }
}

/// `email/<sha256 of the normalised email>`: who owns an email (A1).
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
    pub email: String,
    /// argon2id PHC string.
    pub password: String,
    /// Random WebAuthn user handle, base64url; never the email.
    pub user_handle: String,
    pub created_at: u64,
    pub two_factor: bool,
    /// The security epoch (A6).
    #[serde(default = "first_epoch")]
    pub epoch: u64,
    /// Consecutive failed password or second-factor attempts (S6).
    pub failures: u32,
    pub locked_until: Option<u64>,
    pub backup_codes: Option<CodeSet>,
    /// The newest audit event (L3): its sequence number and hash.
    pub audit_seq: u64,
    pub audit_hash: String,
}

fn first_epoch() -> u64 {
    1
}

/// A backup-code set: one salt, one argon2id hash per code (B2).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CodeSet {
    /// The argon2id parameters the set was hashed with.
    pub hash_params: Argon2Params,
    /// The set's salt, base64url.
    pub salt: String,
    pub created_at: u64,
    pub codes: Vec<StoredCode>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredCode {
    /// The hash output, base64.
    pub hash: String,
    pub used: bool,
}

impl CodeSet {
    pub(crate) fn remaining(&self) -> u32 {
        u32::try_from(self.codes.iter().filter(|c| !c.used).count()).unwrap_or(u32::MAX)
    }
}

/// `passkey/<user id>/<credential id>`.
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

/// `credential/<credential id>`: who owns a credential id, globally (P2).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CredentialOwnerDoc {
    pub v: u32,
    pub user_id: String,
}

/// `pending/<user id>/<sha256 of token>`: a sign-in waiting for its second factor (S2, S5).
/// Keyed under the user so that step one can sweep the user's stale ones.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PendingDoc {
    pub v: u32,
    pub user_id: String,
    pub expires_at: u64,
    pub failures: u32,
    pub state: AuthenticationState,
}

/// `audit/<user id>/<inverted seq>`: one audit event (L1, L3).
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
    pub prev_hash: String,
    pub hash: String,
}
