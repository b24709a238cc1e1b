//! Conversions between the WIT records of `twofold:engine/types` and `twofold-core`'s types.
//!
//! Requests always convert; answers can fail only if core grows a variant this WIT version
//! cannot express, which becomes an `internal` error rather than a trap.

use serde_json::Value;
use twofold_core as tf;

use crate::bindings::exports::twofold::engine::types as wit;

/// A WIT request record that becomes a core request.
pub(crate) trait IntoCore {
    /// The core request.
    type Core;
    /// Converts; every WIT value has a core counterpart.
    fn into_core(self) -> Self::Core;
}

/// A core answer that becomes a WIT record.
pub(crate) trait IntoWit {
    /// The WIT record.
    type Wit;
    /// Converts, or reports an answer this WIT version cannot express.
    fn into_wit(self) -> Result<Self::Wit, wit::Error>;
}

/// The WIT error for a core error: its stable code, message and retry-after.
pub(crate) fn error(e: tf::Error) -> wit::Error {
    wit::Error {
        code: error_code(e.code()),
        message: e.to_string(),
        retry_after_secs: e.retry_after_secs(),
    }
}

fn error_code(code: tf::ErrorCode) -> wit::ErrorCode {
    use tf::ErrorCode as C;
    use wit::ErrorCode as W;
    match code {
        C::InvalidInput => W::InvalidInput,
        C::InvalidCredentials => W::InvalidCredentials,
        C::RateLimited => W::RateLimited,
        C::SecondFactorRequired => W::SecondFactorRequired,
        C::InvalidPasskey => W::InvalidPasskey,
        C::InvalidBackupCode => W::InvalidBackupCode,
        C::Expired => W::Expired,
        C::NotFound => W::NotFound,
        C::AlreadyExists => W::AlreadyExists,
        C::AlreadyEnabled => W::AlreadyEnabled,
        C::NotEnabled => W::NotEnabled,
        C::NoPasskey => W::NoPasskey,
        C::Conflict => W::Conflict,
        C::Storage => W::Storage,
        C::Internal => W::Internal,
        // A code added to core after this WIT version; the WIT enum changes with the package
        // version, so until then it is reported as internal.
        _ => W::Internal,
    }
}

fn unexpressible(what: &str) -> wit::Error {
    wit::Error {
        code: wit::ErrorCode::Internal,
        message: format!(
            "internal error: the engine answered with a {what} this component cannot express"
        ),
        retry_after_secs: None,
    }
}

/// The core configuration: the WIT fields given, SPEC defaults for the rest.
pub(crate) fn config(c: wit::Config) -> tf::Config {
    let d = tf::Config::default();
    tf::Config {
        rp_id: c.rp_id,
        rp_name: c.rp_name,
        origins: c.origins,
        password_hash: c.password_hash.map_or(d.password_hash, argon2),
        backup_code_hash: c.backup_code_hash.map_or(d.backup_code_hash, argon2),
        user_verification: c
            .user_verification
            .map_or(d.user_verification, |uv| match uv {
                wit::UserVerification::Required => tf::UserVerification::Required,
                wit::UserVerification::Preferred => tf::UserVerification::Preferred,
                wit::UserVerification::Discouraged => tf::UserVerification::Discouraged,
            }),
        pending_sign_in_ttl_secs: c
            .pending_sign_in_ttl_secs
            .unwrap_or(d.pending_sign_in_ttl_secs),
        registration_ttl_secs: c.registration_ttl_secs.unwrap_or(d.registration_ttl_secs),
        max_second_factor_attempts: c
            .max_second_factor_attempts
            .unwrap_or(d.max_second_factor_attempts),
        lockout_threshold: c.lockout_threshold.unwrap_or(d.lockout_threshold),
        lockout_secs: c.lockout_secs.unwrap_or(d.lockout_secs),
        backup_code_count: c.backup_code_count.unwrap_or(d.backup_code_count),
        backup_code_low_watermark: c
            .backup_code_low_watermark
            .unwrap_or(d.backup_code_low_watermark),
        max_conflict_retries: c.max_conflict_retries.unwrap_or(d.max_conflict_retries),
    }
}

fn argon2(p: wit::Argon2Params) -> tf::Argon2Params {
    tf::Argon2Params {
        m_kib: p.m_kib,
        t: p.t,
        p: p.p,
    }
}

impl IntoCore for wit::CreateAccount {
    type Core = tf::CreateAccount;
    fn into_core(self) -> tf::CreateAccount {
        tf::CreateAccount {
            email: self.email,
            password: self.password,
        }
    }
}

impl IntoCore for wit::SignIn {
    type Core = tf::SignIn;
    fn into_core(self) -> tf::SignIn {
        tf::SignIn {
            email: self.email,
            password: self.password,
            remember_me: self.remember_me,
        }
    }
}

impl IntoCore for wit::PasskeySignIn {
    type Core = tf::PasskeySignIn;
    fn into_core(self) -> tf::PasskeySignIn {
        tf::PasskeySignIn {
            pending_token: self.pending_token,
            credential: self.credential,
        }
    }
}

impl IntoCore for wit::BackupCodeSignIn {
    type Core = tf::BackupCodeSignIn;
    fn into_core(self) -> tf::BackupCodeSignIn {
        tf::BackupCodeSignIn {
            pending_token: self.pending_token,
            code: self.code,
        }
    }
}

impl IntoCore for wit::StartRegistration {
    type Core = tf::StartRegistration;
    fn into_core(self) -> tf::StartRegistration {
        tf::StartRegistration {
            user_id: self.user_id,
            name: self.name,
            password: self.password,
        }
    }
}

impl IntoCore for wit::FinishRegistration {
    type Core = tf::FinishRegistration;
    fn into_core(self) -> tf::FinishRegistration {
        tf::FinishRegistration {
            user_id: self.user_id,
            credential: self.credential,
        }
    }
}

impl IntoCore for wit::RenamePasskey {
    type Core = tf::RenamePasskey;
    fn into_core(self) -> tf::RenamePasskey {
        tf::RenamePasskey {
            user_id: self.user_id,
            passkey_id: self.passkey_id,
            name: self.name,
        }
    }
}

impl IntoCore for wit::RemovePasskey {
    type Core = tf::RemovePasskey;
    fn into_core(self) -> tf::RemovePasskey {
        tf::RemovePasskey {
            user_id: self.user_id,
            passkey_id: self.passkey_id,
            password: self.password,
        }
    }
}

impl IntoCore for wit::PasswordConfirmed {
    type Core = tf::PasswordConfirmed;
    fn into_core(self) -> tf::PasswordConfirmed {
        tf::PasswordConfirmed {
            user_id: self.user_id,
            password: self.password,
        }
    }
}

impl IntoCore for wit::UserRef {
    type Core = tf::UserRef;
    fn into_core(self) -> tf::UserRef {
        tf::UserRef {
            user_id: self.user_id,
        }
    }
}

impl IntoCore for wit::AuditQuery {
    type Core = tf::AuditQuery;
    fn into_core(self) -> tf::AuditQuery {
        tf::AuditQuery {
            user_id: self.user_id,
            before: self.before,
            limit: self.limit,
        }
    }
}

impl IntoWit for tf::AccountCreated {
    type Wit = wit::AccountCreated;
    fn into_wit(self) -> Result<wit::AccountCreated, wit::Error> {
        Ok(wit::AccountCreated {
            user_id: self.user_id,
            email: self.email,
        })
    }
}

impl IntoWit for tf::SignedIn {
    type Wit = wit::SignedIn;
    fn into_wit(self) -> Result<wit::SignedIn, wit::Error> {
        Ok(wit::SignedIn {
            user_id: self.user_id,
            remember_me: self.remember_me,
            backup_codes_remaining: self.backup_codes_remaining,
            backup_codes_running_low: self.backup_codes_running_low,
        })
    }
}

impl IntoWit for tf::SignInOutcome {
    type Wit = wit::SignInOutcome;
    fn into_wit(self) -> Result<wit::SignInOutcome, wit::Error> {
        match self {
            tf::SignInOutcome::SignedIn(s) => Ok(wit::SignInOutcome::SignedIn(s.into_wit()?)),
            tf::SignInOutcome::SecondFactorRequired(s) => Ok(
                wit::SignInOutcome::SecondFactorRequired(wit::SecondFactorRequired {
                    pending_token: s.pending_token,
                    options: json_text(&s.options),
                }),
            ),
            _ => Err(unexpressible("sign-in outcome")),
        }
    }
}

impl IntoWit for tf::RegistrationStarted {
    type Wit = wit::RegistrationStarted;
    fn into_wit(self) -> Result<wit::RegistrationStarted, wit::Error> {
        Ok(wit::RegistrationStarted {
            options: json_text(&self.options),
        })
    }
}

impl IntoWit for tf::Passkey {
    type Wit = wit::Passkey;
    fn into_wit(self) -> Result<wit::Passkey, wit::Error> {
        Ok(wit::Passkey {
            id: self.id,
            name: self.name,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            backup_eligible: self.backup_eligible,
            backed_up: self.backed_up,
            transports: self.transports,
        })
    }
}

impl<T: IntoWit> IntoWit for Vec<T> {
    type Wit = Vec<T::Wit>;
    fn into_wit(self) -> Result<Vec<T::Wit>, wit::Error> {
        self.into_iter().map(IntoWit::into_wit).collect()
    }
}

impl IntoWit for tf::PasskeyRegistered {
    type Wit = wit::PasskeyRegistered;
    fn into_wit(self) -> Result<wit::PasskeyRegistered, wit::Error> {
        Ok(wit::PasskeyRegistered {
            passkey: self.passkey.into_wit()?,
            two_factor_enabled: self.two_factor_enabled,
            backup_codes: self.backup_codes,
            backup_codes_remaining: self.backup_codes_remaining,
            backup_codes_running_low: self.backup_codes_running_low,
        })
    }
}

impl IntoWit for tf::BackupCodes {
    type Wit = wit::BackupCodes;
    fn into_wit(self) -> Result<wit::BackupCodes, wit::Error> {
        Ok(wit::BackupCodes { codes: self.codes })
    }
}

impl IntoWit for tf::Status {
    type Wit = wit::Status;
    fn into_wit(self) -> Result<wit::Status, wit::Error> {
        Ok(wit::Status {
            user_id: self.user_id,
            email: self.email,
            two_factor_enabled: self.two_factor_enabled,
            passkeys: self.passkeys.into_wit()?,
            backup_codes_remaining: self.backup_codes_remaining,
            backup_codes_running_low: self.backup_codes_running_low,
        })
    }
}

impl IntoWit for tf::AuditEvent {
    type Wit = wit::AuditEvent;
    fn into_wit(self) -> Result<wit::AuditEvent, wit::Error> {
        Ok(wit::AuditEvent {
            seq: self.seq,
            at: self.at,
            user_id: self.user_id,
            kind: event_kind(self.kind)?,
            details: json_text(&Value::Object(self.details)),
            ip: self.ip,
            user_agent: self.user_agent,
            notify: self.notify,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

fn event_kind(kind: tf::EventKind) -> Result<wit::EventKind, wit::Error> {
    use tf::EventKind as C;
    use wit::EventKind as W;
    Ok(match kind {
        C::AccountCreated => W::AccountCreated,
        C::PasswordOk => W::PasswordOk,
        C::PasswordFailed => W::PasswordFailed,
        C::SecondFactorRequired => W::SecondFactorRequired,
        C::PasskeyOk => W::PasskeyOk,
        C::PasskeyFailed => W::PasskeyFailed,
        C::BackupCodeOk => W::BackupCodeOk,
        C::BackupCodeFailed => W::BackupCodeFailed,
        C::Throttled => W::Throttled,
        C::PasskeyRegistered => W::PasskeyRegistered,
        C::PasskeyRenamed => W::PasskeyRenamed,
        C::PasskeyRemoved => W::PasskeyRemoved,
        C::TwoFactorEnabled => W::TwoFactorEnabled,
        C::TwoFactorDisabled => W::TwoFactorDisabled,
        C::BackupCodesGenerated => W::BackupCodesGenerated,
        _ => return Err(unexpressible("audit event kind")),
    })
}

impl IntoWit for tf::AuditPage {
    type Wit = wit::AuditPage;
    fn into_wit(self) -> Result<wit::AuditPage, wit::Error> {
        Ok(wit::AuditPage {
            events: self.events.into_wit()?,
            next_before: self.next_before,
        })
    }
}

impl IntoWit for tf::ChainReport {
    type Wit = wit::ChainReport;
    fn into_wit(self) -> Result<wit::ChainReport, wit::Error> {
        Ok(wit::ChainReport {
            intact: self.intact,
            events_checked: self.events_checked,
            problems: self
                .problems
                .into_iter()
                .map(|p| wit::ChainProblem {
                    seq: p.seq,
                    problem: p.problem,
                })
                .collect(),
        })
    }
}

/// JSON text of a value; serialising a `serde_json::Value` cannot fail.
fn json_text(value: &Value) -> String {
    value.to_string()
}
