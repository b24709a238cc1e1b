//! The engine's configuration as a host gives it. Every `None` takes the SPEC default named in
//! its documentation; the core checks ranges and refuses what is out of them (`invalid_input`).

use serde::{Deserialize, Serialize};

use crate::secret::{redacting_debug, zeroize_on_drop};

/// argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "wasmtime",
    derive(
        wasmtime::component::ComponentType,
        wasmtime::component::Lift,
        wasmtime::component::Lower
    ),
    component(record)
)]
pub struct Argon2Params {
    /// Memory in KiB.
    #[cfg_attr(feature = "wasmtime", component(name = "m-kib"))]
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Parallelism (lanes).
    pub p: u32,
}

impl Argon2Params {
    /// The password default, the OWASP minimum that SPEC.md A2 names: m=19456 KiB, t=2, p=1.
    pub const PASSWORD_DEFAULT: Argon2Params = Argon2Params {
        m_kib: 19456,
        t: 2,
        p: 1,
    };

    /// The backup-code default. A code carries about 59 random bits, so a lighter argon2id
    /// suffices: brute-forcing one stored code still takes over 10^15 hashes.
    pub const BACKUP_CODE_DEFAULT: Argon2Params = Argon2Params {
        m_kib: 4096,
        t: 1,
        p: 1,
    };
}

/// Whether passkey ceremonies must prove user verification (PIN, biometrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
pub enum UserVerification {
    /// Ask for it and refuse without it.
    #[cfg_attr(feature = "wasmtime", component(name = "required"))]
    Required,
    /// Ask for it; accept without it (once a passkey has shown it, keep requiring it).
    #[default]
    #[cfg_attr(feature = "wasmtime", component(name = "preferred"))]
    Preferred,
    /// Do not ask for it.
    #[cfg_attr(feature = "wasmtime", component(name = "discouraged"))]
    Discouraged,
}

impl UserVerification {
    /// Reads the WIT enum's discriminant; the component's generated bindings call this.
    #[doc(hidden)]
    #[allow(unsafe_code, clippy::missing_safety_doc)]
    pub unsafe fn _lift(val: u8) -> UserVerification {
        // A component host only ever passes a valid case; anything else reads as the default.
        match val {
            0 => UserVerification::Required,
            2 => UserVerification::Discouraged,
            _ => UserVerification::Preferred,
        }
    }
}

/// A key that authenticates audit events (L3). The host keeps it outside the database (a
/// secret store, an environment variable); the engine never stores it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "wasmtime",
    derive(
        wasmtime::component::ComponentType,
        wasmtime::component::Lift,
        wasmtime::component::Lower
    ),
    component(record)
)]
pub struct AuditKey {
    /// A short name for the key (1 to 32 characters of `A-Z a-z 0-9 - _ .`), written into
    /// every event it signs so that keys can rotate.
    pub id: String,
    /// The key itself: 32 to 64 random bytes as hex (64 to 128 hex digits), e.g. from
    /// `openssl rand -hex 32`.
    #[serde(deserialize_with = "crate::secret::secret")]
    pub secret: String,
}

redacting_debug!(AuditKey { id } secret { secret });
zeroize_on_drop!(AuditKey { secret });

/// Engine configuration, fixed for the engine's life.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[cfg_attr(
    feature = "wasmtime",
    derive(
        wasmtime::component::ComponentType,
        wasmtime::component::Lift,
        wasmtime::component::Lower
    ),
    component(record)
)]
pub struct Config {
    /// The WebAuthn relying party id: the site's registrable domain, e.g. `example.com`.
    #[cfg_attr(feature = "wasmtime", component(name = "rp-id"))]
    pub rp_id: String,
    /// The relying party name shown by authenticators.
    #[cfg_attr(feature = "wasmtime", component(name = "rp-name"))]
    pub rp_name: String,
    /// Origins allowed in clientDataJSON, at least one: `https://` and the RP id or one of its
    /// subdomains (`http://` only for `localhost`).
    pub origins: Vec<String>,
    /// Top-level origins allowed to frame a passkey sign-in (S3). Empty (the default) refuses
    /// every assertion made in a cross-origin frame.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "wasmtime", component(name = "top-origins"))]
    pub top_origins: Vec<String>,
    /// Keys that authenticate the audit log, at least one. The first signs new events; the
    /// others still verify events signed before a rotation.
    #[cfg_attr(feature = "wasmtime", component(name = "audit-keys"))]
    pub audit_keys: Vec<AuditKey>,
    /// argon2id parameters for new password hashes (default m=19456 KiB, t=2, p=1).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "password-hash"))]
    pub password_hash: Option<Argon2Params>,
    /// argon2id parameters for backup-code hashes (default m=4096 KiB, t=1, p=1: a code has 59
    /// random bits, so a lighter hash keeps brute force out of reach).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "backup-code-hash"))]
    pub backup_code_hash: Option<Argon2Params>,
    /// User verification policy for both ceremonies (default `preferred`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "user-verification"))]
    pub user_verification: Option<UserVerification>,
    /// Lifetime of a pending second-factor sign-in, seconds (default 300).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "pending-sign-in-ttl-secs"))]
    pub pending_sign_in_ttl_secs: Option<u64>,
    /// Lifetime of a passkey registration ceremony, seconds (default 300).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "registration-ttl-secs"))]
    pub registration_ttl_secs: Option<u64>,
    /// Failed second-factor attempts a pending sign-in survives (default 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "max-second-factor-attempts"))]
    pub max_second_factor_attempts: Option<u32>,
    /// Consecutive failures of one email from one client before it must wait (default 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "free-failures"))]
    pub free_failures: Option<u32>,
    /// The first wait after those, seconds; each further failure doubles it (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "backoff-initial-secs"))]
    pub backoff_initial_secs: Option<u64>,
    /// The longest wait, seconds (default 900).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "backoff-max-secs"))]
    pub backoff_max_secs: Option<u64>,
    /// Consecutive failures on one email, from all clients, after which only clients with a
    /// valid device token may try (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "account-failure-ceiling"))]
    pub account_failure_ceiling: Option<u32>,
    /// Failures from one client id, across all emails, that refuse it for the rest of the
    /// window (default 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "client-failure-limit"))]
    pub client_failure_limit: Option<u32>,
    /// Accounts one client id may create per window (default 20).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "client-signup-limit"))]
    pub client_signup_limit: Option<u32>,
    /// The window of both per-client limits, seconds (default 3600).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "client-window-secs"))]
    pub client_window_secs: Option<u64>,
    /// Lifetime of a device token, days (default 90).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "device-token-ttl-days"))]
    pub device_token_ttl_days: Option<u32>,
    /// Passkeys one user may have (default 32).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "max-passkeys"))]
    pub max_passkeys: Option<u32>,
    /// Codes in a backup-code set (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "backup-code-count"))]
    pub backup_code_count: Option<u32>,
    /// "Running low" is flagged at this many unused codes or fewer (default 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "backup-code-low-watermark"))]
    pub backup_code_low_watermark: Option<u32>,
    /// Age after which `prune_audit_events` removes events, days (default 2190: six years,
    /// as HIPAA keeps documentation).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "audit-retention-days"))]
    pub audit_retention_days: Option<u32>,
    /// How often an operation that met a write conflict is re-run (default 8).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "max-conflict-retries"))]
    pub max_conflict_retries: Option<u32>,
}

redacting_debug!(Config {
    rp_id, rp_name, origins, top_origins, password_hash, backup_code_hash, user_verification,
    pending_sign_in_ttl_secs, registration_ttl_secs, max_second_factor_attempts, free_failures,
    backoff_initial_secs, backoff_max_secs, account_failure_ceiling, client_failure_limit,
    client_signup_limit, client_window_secs, device_token_ttl_days, max_passkeys,
    backup_code_count, backup_code_low_watermark, audit_retention_days, max_conflict_retries
} secret { audit_keys });

impl Default for Config {
    /// The relying party `localhost` (name `twofold`, origin `http://localhost:8080`), no audit
    /// key (the engine refuses that: set one), every other setting at its SPEC default.
    fn default() -> Config {
        Config {
            rp_id: "localhost".into(),
            rp_name: "twofold".into(),
            origins: vec!["http://localhost:8080".into()],
            top_origins: Vec::new(),
            audit_keys: Vec::new(),
            password_hash: None,
            backup_code_hash: None,
            user_verification: None,
            pending_sign_in_ttl_secs: None,
            registration_ttl_secs: None,
            max_second_factor_attempts: None,
            free_failures: None,
            backoff_initial_secs: None,
            backoff_max_secs: None,
            account_failure_ceiling: None,
            client_failure_limit: None,
            client_signup_limit: None,
            client_window_secs: None,
            device_token_ttl_days: None,
            max_passkeys: None,
            backup_code_count: None,
            backup_code_low_watermark: None,
            audit_retention_days: None,
            max_conflict_retries: None,
        }
    }
}

impl Config {
    /// A configuration for one relying party, one origin and one audit key, with SPEC
    /// defaults for everything else.
    pub fn new(
        rp_id: impl Into<String>,
        rp_name: impl Into<String>,
        origin: impl Into<String>,
        audit_key: AuditKey,
    ) -> Config {
        Config {
            rp_id: rp_id.into(),
            rp_name: rp_name.into(),
            origins: vec![origin.into()],
            audit_keys: vec![audit_key],
            ..Config::default()
        }
    }
}

impl AuditKey {
    /// A key from its id and hex secret.
    pub fn new(id: impl Into<String>, secret_hex: impl Into<String>) -> AuditKey {
        AuditKey {
            id: id.into(),
            secret: secret_hex.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_audit_key() {
        let c = Config::new(
            "example.com",
            "Example",
            "https://example.com",
            AuditKey::new("k1", "ab".repeat(32)),
        );
        let shown = format!("{c:?}");
        assert!(!shown.contains("abab"), "{shown}");
        assert!(shown.contains("example.com"), "{shown}");
    }

    #[test]
    fn absent_settings_are_left_out_of_json() {
        let json = serde_json::to_value(Config::default()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "rp_id": "localhost", "rp_name": "twofold",
                "origins": ["http://localhost:8080"], "audit_keys": []
            })
        );
    }
}
