//! Engine configuration: set once, then fixed for the engine's life. Defaults are SPEC.md's.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Parallelism (lanes).
    pub p: u32,
}

impl Argon2Params {
    /// The OWASP minimum that SPEC.md A2 names: m=19456 KiB, t=2, p=1.
    pub const PASSWORD_DEFAULT: Argon2Params = Argon2Params {
        m_kib: 19456,
        t: 2,
        p: 1,
    };

    /// Backup codes carry about 59 bits of entropy each, so a lighter argon2id suffices:
    /// brute-forcing one stored code still takes over 10^15 hashes.
    pub const BACKUP_CODE_DEFAULT: Argon2Params = Argon2Params {
        m_kib: 4096,
        t: 1,
        p: 1,
    };

    fn check(&self, what: &str) -> Result<()> {
        let ok = (8 * self.p..=4 * 1024 * 1024).contains(&self.m_kib)
            && (1..=16).contains(&self.t)
            && (1..=16).contains(&self.p);
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "{what}: argon2 parameters out of range (m_kib 8*p..=4194304, t 1..=16, p 1..=16)"
            )))
        }
    }
}

/// Whether assertions and registrations must prove user verification (PIN, biometrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserVerification {
    /// Ask for it and refuse without it.
    Required,
    /// Ask for it; accept without it (but once a passkey has shown it, keep requiring it).
    #[default]
    Preferred,
    /// Do not ask for it.
    Discouraged,
}

/// Engine configuration. Every field but the relying party has a SPEC.md default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The WebAuthn relying party id: the site's registrable domain, e.g. `example.com`.
    pub rp_id: String,
    /// The relying party name shown by authenticators.
    pub rp_name: String,
    /// Origins allowed in clientDataJSON, e.g. `https://example.com`.
    pub origins: Vec<String>,
    /// argon2id parameters for new password hashes (A2).
    pub password_hash: Argon2Params,
    /// argon2id parameters for backup-code hashes (B2, B5).
    pub backup_code_hash: Argon2Params,
    /// User verification policy for both ceremonies.
    pub user_verification: UserVerification,
    /// Lifetime of a pending second-factor sign-in, seconds (S2).
    pub pending_sign_in_ttl_secs: u64,
    /// Lifetime of a registration ceremony, seconds (P2).
    pub registration_ttl_secs: u64,
    /// Failed second-factor attempts a pending sign-in survives (S5).
    pub max_second_factor_attempts: u32,
    /// Consecutive failures that lock an account (S6).
    pub lockout_threshold: u32,
    /// How long a lock lasts, seconds (S6).
    pub lockout_secs: u64,
    /// Codes in a backup-code set (B1).
    pub backup_code_count: u32,
    /// "Running low" is flagged at this many unused codes or fewer (B6).
    pub backup_code_low_watermark: u32,
    /// How often an operation that met a write conflict is re-run from a fresh read.
    pub max_conflict_retries: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            rp_id: "localhost".into(),
            rp_name: "twofold".into(),
            origins: vec!["http://localhost:8080".into()],
            password_hash: Argon2Params::PASSWORD_DEFAULT,
            backup_code_hash: Argon2Params::BACKUP_CODE_DEFAULT,
            user_verification: UserVerification::Preferred,
            pending_sign_in_ttl_secs: 300,
            registration_ttl_secs: 300,
            max_second_factor_attempts: 5,
            lockout_threshold: 10,
            lockout_secs: 15 * 60,
            backup_code_count: 10,
            backup_code_low_watermark: 3,
            max_conflict_retries: 8,
        }
    }
}

impl Config {
    /// A default configuration for one relying party and origin.
    pub fn new(
        rp_id: impl Into<String>,
        rp_name: impl Into<String>,
        origin: impl Into<String>,
    ) -> Config {
        Config {
            rp_id: rp_id.into(),
            rp_name: rp_name.into(),
            origins: vec![origin.into()],
            ..Config::default()
        }
    }

    /// Checks every field; the engine refuses a configuration that fails.
    pub fn validate(&self) -> Result<()> {
        let rp_ok = !self.rp_id.is_empty()
            && self.rp_id.len() <= 253
            && self
                .rp_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if !rp_ok {
            return Err(Error::invalid(
                "rp_id must be a domain name such as example.com",
            ));
        }
        if self.rp_name.trim().is_empty() || self.rp_name.len() > 256 {
            return Err(Error::invalid("rp_name must be 1 to 256 bytes"));
        }
        if self.origins.is_empty() {
            return Err(Error::invalid("origins must name at least one origin"));
        }
        self.password_hash.check("password_hash")?;
        self.backup_code_hash.check("backup_code_hash")?;
        let ranges = [
            (
                "pending_sign_in_ttl_secs",
                self.pending_sign_in_ttl_secs,
                1,
                86_400,
            ),
            (
                "registration_ttl_secs",
                self.registration_ttl_secs,
                1,
                86_400,
            ),
            (
                "max_second_factor_attempts",
                self.max_second_factor_attempts.into(),
                1,
                100,
            ),
            ("lockout_threshold", self.lockout_threshold.into(), 1, 1000),
            ("lockout_secs", self.lockout_secs, 1, 30 * 86_400),
            ("backup_code_count", self.backup_code_count.into(), 1, 100),
            (
                "backup_code_low_watermark",
                self.backup_code_low_watermark.into(),
                0,
                100,
            ),
            (
                "max_conflict_retries",
                self.max_conflict_retries.into(),
                0,
                100,
            ),
        ];
        for (name, value, lo, hi) in ranges {
            if !(lo..=hi).contains(&value) {
                return Err(Error::invalid(format!(
                    "{name} must be between {lo} and {hi}"
                )));
            }
        }
        Ok(())
    }
}
