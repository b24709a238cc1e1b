//! The engine's settings: a host's [`Config`] checked and with every SPEC default filled in.
//! Fixed for the engine's life.

use url::Url;

use crate::error::{Error, Result};
use crate::{Argon2Params, Config, UserVerification};

/// One audit key, decoded.
pub(crate) struct AuditKeyBytes {
    pub id: String,
    pub secret: Vec<u8>,
}

impl Drop for AuditKeyBytes {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

/// A [`Config`] with its defaults resolved; see the config's field docs for each meaning.
pub(crate) struct Settings {
    pub rp_id: String,
    pub rp_name: String,
    pub origins: Vec<Url>,
    pub top_origins: Vec<String>,
    pub audit_keys: Vec<AuditKeyBytes>,
    pub password_hash: Argon2Params,
    pub backup_code_hash: Argon2Params,
    pub user_verification: UserVerification,
    pub pending_sign_in_ttl_secs: u64,
    pub registration_ttl_secs: u64,
    pub max_second_factor_attempts: u32,
    pub free_failures: u32,
    pub backoff_initial_secs: u64,
    pub backoff_max_secs: u64,
    pub account_failure_ceiling: u32,
    pub client_failure_limit: u32,
    pub client_signup_limit: u32,
    pub client_window_secs: u64,
    pub device_token_ttl_days: u32,
    pub max_passkeys: u32,
    pub backup_code_count: u32,
    pub backup_code_low_watermark: u32,
    pub audit_retention_days: u32,
    pub max_conflict_retries: u32,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("rp_id", &self.rp_id)
            .field("origins", &self.origins)
            .field("audit_keys", &self.audit_keys.len())
            .finish_non_exhaustive()
    }
}

/// `(name, value, default, lowest, highest)` of an integer setting.
fn ranged<T: Copy + PartialOrd + std::fmt::Display>(
    name: &str,
    value: Option<T>,
    default: T,
    lo: T,
    hi: T,
) -> Result<T> {
    let v = value.unwrap_or(default);
    if lo <= v && v <= hi {
        Ok(v)
    } else {
        Err(Error::invalid(format!(
            "{name} must be between {lo} and {hi}"
        )))
    }
}

fn check_argon2(what: &str, p: Argon2Params) -> Result<Argon2Params> {
    let ok = (8 * p.p..=4 * 1024 * 1024).contains(&p.m_kib)
        && (1..=16).contains(&p.t)
        && (1..=16).contains(&p.p);
    if ok {
        Ok(p)
    } else {
        Err(Error::invalid(format!(
            "{what}: argon2 parameters out of range (m_kib 8*p..=4194304, t 1..=16, p 1..=16)"
        )))
    }
}

impl Settings {
    /// Checks every field of `config`; the engine refuses a configuration that fails.
    pub(crate) fn from_config(config: &Config) -> Result<Settings> {
        let rp_id = config.rp_id.trim().to_ascii_lowercase();
        let rp_ok = !rp_id.is_empty()
            && rp_id.len() <= 253
            && rp_id
                .split('.')
                .all(|label| !label.is_empty() && label.len() <= 63)
            && rp_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if !rp_ok {
            return Err(Error::invalid(
                "rp_id must be a domain name such as example.com",
            ));
        }
        if config.rp_name.trim().is_empty() || config.rp_name.len() > 256 {
            return Err(Error::invalid("rp_name must be 1 to 256 bytes"));
        }
        if config.origins.is_empty() {
            return Err(Error::invalid("origins must name at least one origin"));
        }
        let origins = config
            .origins
            .iter()
            .map(|o| check_origin(o, &rp_id))
            .collect::<Result<Vec<_>>>()?;
        let top_origins = config
            .top_origins
            .iter()
            .map(|o| {
                let url = Url::parse(o)
                    .map_err(|_| Error::invalid(format!("top_origins: {o:?} is not a URL")))?;
                Ok(url.origin().ascii_serialization())
            })
            .collect::<Result<Vec<_>>>()?;
        let audit_keys = config
            .audit_keys
            .iter()
            .map(|k| decode_audit_key(&k.id, &k.secret))
            .collect::<Result<Vec<_>>>()?;
        if audit_keys.is_empty() {
            return Err(Error::invalid(
                "audit_keys must name at least one key (32 to 64 random bytes as hex)",
            ));
        }
        for (i, k) in audit_keys.iter().enumerate() {
            if audit_keys.iter().skip(i + 1).any(|other| other.id == k.id) {
                return Err(Error::invalid(format!(
                    "audit_keys: the id {:?} is used twice",
                    k.id
                )));
            }
        }
        let d = Argon2Params::PASSWORD_DEFAULT;
        let pending_sign_in_ttl_secs = ranged(
            "pending_sign_in_ttl_secs",
            config.pending_sign_in_ttl_secs,
            300,
            1,
            86_400,
        )?;
        let backoff_initial_secs = ranged(
            "backoff_initial_secs",
            config.backoff_initial_secs,
            1,
            1,
            3600,
        )?;
        let backoff_max_secs = ranged("backoff_max_secs", config.backoff_max_secs, 900, 1, 86_400)?;
        if backoff_max_secs < backoff_initial_secs {
            return Err(Error::invalid(
                "backoff_max_secs must be at least backoff_initial_secs",
            ));
        }
        Ok(Settings {
            rp_id,
            rp_name: config.rp_name.clone(),
            origins,
            top_origins,
            audit_keys,
            password_hash: check_argon2("password_hash", config.password_hash.unwrap_or(d))?,
            backup_code_hash: check_argon2(
                "backup_code_hash",
                config
                    .backup_code_hash
                    .unwrap_or(Argon2Params::BACKUP_CODE_DEFAULT),
            )?,
            user_verification: config.user_verification.unwrap_or_default(),
            pending_sign_in_ttl_secs,
            registration_ttl_secs: ranged(
                "registration_ttl_secs",
                config.registration_ttl_secs,
                300,
                1,
                86_400,
            )?,
            max_second_factor_attempts: ranged(
                "max_second_factor_attempts",
                config.max_second_factor_attempts,
                5,
                1,
                100,
            )?,
            free_failures: ranged("free_failures", config.free_failures, 5, 1, 1000)?,
            backoff_initial_secs,
            backoff_max_secs,
            account_failure_ceiling: ranged(
                "account_failure_ceiling",
                config.account_failure_ceiling,
                100,
                1,
                1_000_000,
            )?,
            client_failure_limit: ranged(
                "client_failure_limit",
                config.client_failure_limit,
                50,
                1,
                1_000_000,
            )?,
            client_signup_limit: ranged(
                "client_signup_limit",
                config.client_signup_limit,
                20,
                1,
                1_000_000,
            )?,
            client_window_secs: ranged(
                "client_window_secs",
                config.client_window_secs,
                3600,
                1,
                7 * 86_400,
            )?,
            device_token_ttl_days: ranged(
                "device_token_ttl_days",
                config.device_token_ttl_days,
                90,
                1,
                400,
            )?,
            max_passkeys: ranged("max_passkeys", config.max_passkeys, 32, 1, 100)?,
            backup_code_count: ranged("backup_code_count", config.backup_code_count, 10, 1, 100)?,
            backup_code_low_watermark: ranged(
                "backup_code_low_watermark",
                config.backup_code_low_watermark,
                3,
                0,
                100,
            )?,
            audit_retention_days: ranged(
                "audit_retention_days",
                config.audit_retention_days,
                2190,
                1,
                36_500,
            )?,
            max_conflict_retries: ranged(
                "max_conflict_retries",
                config.max_conflict_retries,
                8,
                0,
                100,
            )?,
        })
    }

    /// The key that signs new audit events.
    pub(crate) fn signing_key(&self) -> Result<&AuditKeyBytes> {
        self.audit_keys
            .first()
            .ok_or_else(|| Error::internal("no audit key"))
    }

    /// The key with this id, for verification.
    pub(crate) fn audit_key(&self, id: &str) -> Option<&AuditKeyBytes> {
        self.audit_keys.iter().find(|k| k.id == id)
    }
}

/// An origin must be https (http only for localhost), name the RP id or one of its
/// subdomains, and be nothing but an origin (no path, query or credentials).
fn check_origin(origin: &str, rp_id: &str) -> Result<Url> {
    let bad = |why: &str| Error::invalid(format!("origin {origin:?} {why}"));
    let url = Url::parse(origin).map_err(|_| bad("is not a URL"))?;
    let host = url
        .host_str()
        .ok_or_else(|| bad("has no host"))?
        .to_ascii_lowercase();
    let local = host == "localhost" || host.ends_with(".localhost");
    match url.scheme() {
        "https" => {}
        "http" if local => {}
        _ => return Err(bad("must use https (http is allowed only for localhost)")),
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
        || !matches!(url.path(), "" | "/")
    {
        return Err(bad("must be an origin only: scheme, host and port"));
    }
    if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
        return Err(bad(&format!(
            "is neither the RP id {rp_id:?} nor one of its subdomains"
        )));
    }
    Ok(url)
}

fn decode_audit_key(id: &str, secret_hex: &str) -> Result<AuditKeyBytes> {
    let id_ok = (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !id_ok {
        return Err(Error::invalid(
            "audit key id must be 1 to 32 characters of A-Z a-z 0-9 - _ .",
        ));
    }
    let bad = || {
        Error::invalid(format!(
            "audit key {id:?}: the secret must be 32 to 64 bytes as hex (64 to 128 hex digits)"
        ))
    };
    if !(64..=128).contains(&secret_hex.len()) || !secret_hex.len().is_multiple_of(2) {
        return Err(bad());
    }
    let mut secret = Vec::with_capacity(secret_hex.len() / 2);
    for pair in secret_hex.as_bytes().chunks(2) {
        let digit = |b: u8| char::from(b).to_digit(16);
        match pair {
            [hi, lo] => match (digit(*hi), digit(*lo)) {
                (Some(h), Some(l)) => secret.push(u8::try_from(h * 16 + l).map_err(|_| bad())?),
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        }
    }
    if secret.iter().all(|b| Some(b) == secret.first()) {
        return Err(Error::invalid(format!(
            "audit key {id:?}: the secret is one byte repeated; use random bytes"
        )));
    }
    Ok(AuditKeyBytes {
        id: id.to_owned(),
        secret,
    })
}
