//! The JSON forms of the WIT records: the same member names and shapes as
//! `twofold_core::api` answers (tests/conformance/PROTOCOL.md), so this host's transcripts
//! compare equal to the in-process core's. Absent optionals are left out, except
//! `last_used_at`, which is `null` until first use; WebAuthn options and audit details, which
//! travel through WIT as JSON text, are embedded as JSON objects.
//!
//! Also the other direction for the driver: operation arguments as the core's `api` parses
//! them (unknown members refused, `credential` as an object or as JSON text).

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::wit;

/// The limit the core puts on a call's JSON (SPEC E1).
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// The stable name of an error code, as in SPEC.md.
pub fn code_name(code: wit::ErrorCode) -> &'static str {
    use wit::ErrorCode as C;
    match code {
        C::InvalidInput => "invalid_input",
        C::InvalidCredentials => "invalid_credentials",
        C::RateLimited => "rate_limited",
        C::SecondFactorRequired => "second_factor_required",
        C::InvalidPasskey => "invalid_passkey",
        C::InvalidBackupCode => "invalid_backup_code",
        C::Expired => "expired",
        C::NotFound => "not_found",
        C::AlreadyExists => "already_exists",
        C::AlreadyEnabled => "already_enabled",
        C::NotEnabled => "not_enabled",
        C::NoPasskey => "no_passkey",
        C::Conflict => "conflict",
        C::Storage => "storage",
        C::Internal => "internal",
    }
}

/// `{"code", "message"}` plus `retry_after_secs` when the engine gave one.
pub fn error(e: &wit::Error) -> Value {
    let mut v = json!({ "code": code_name(e.code), "message": e.message });
    if let (Some(secs), Some(map)) = (e.retry_after_secs, v.as_object_mut()) {
        map.insert("retry_after_secs".into(), secs.into());
    }
    v
}

/// An error the host makes itself (bad JSON, a trap, ...), in the engine's shape.
pub fn host_error(code: wit::ErrorCode, message: impl Into<String>) -> wit::Error {
    wit::Error {
        code,
        message: message.into(),
        retry_after_secs: None,
    }
}

/// JSON text from the component (options, audit details) as a value; `internal` if it is
/// not JSON.
pub fn embedded(what: &str, text: &str) -> Result<Value, wit::Error> {
    serde_json::from_str(text).map_err(|e| {
        host_error(
            wit::ErrorCode::Internal,
            format!("the component returned {what} that is not JSON: {e}"),
        )
    })
}

fn object(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<Map<_, _>>(),
    )
}

/// Inserts `value` under `key` when it is present.
fn put_some(v: &mut Value, key: &str, value: Option<Value>) {
    if let (Some(value), Some(map)) = (value, v.as_object_mut()) {
        map.insert(key.into(), value);
    }
}

/// `{user_id, email}`
pub fn account_created(a: &wit::AccountCreated) -> Value {
    json!({ "user_id": a.user_id, "email": a.email })
}

/// `{user_id, remember_me}` plus the backup-code counts after a backup-code sign-in.
pub fn signed_in(s: &wit::SignedIn) -> Value {
    let mut v = json!({ "user_id": s.user_id, "remember_me": s.remember_me });
    put_some(
        &mut v,
        "backup_codes_remaining",
        s.backup_codes_remaining.map(Value::from),
    );
    put_some(
        &mut v,
        "backup_codes_running_low",
        s.backup_codes_running_low.map(Value::from),
    );
    v
}

/// Tagged with `status`: `signed_in` (the [`signed_in`] members) or
/// `second_factor_required` (`pending_token`, `options`).
pub fn sign_in_outcome(o: &wit::SignInOutcome) -> Result<Value, wit::Error> {
    Ok(match o {
        wit::SignInOutcome::SignedIn(s) => {
            let mut v = json!({ "status": "signed_in" });
            if let (Some(map), Value::Object(members)) = (v.as_object_mut(), signed_in(s)) {
                map.extend(members);
            }
            v
        }
        wit::SignInOutcome::SecondFactorRequired(s) => json!({
            "status": "second_factor_required",
            "pending_token": s.pending_token,
            "options": embedded("request options", &s.options)?,
        }),
    })
}

/// `{options}` with the creation options as an object.
pub fn registration_started(r: &wit::RegistrationStarted) -> Result<Value, wit::Error> {
    Ok(json!({ "options": embedded("creation options", &r.options)? }))
}

/// `{id, name, created_at, last_used_at (null until used), backup_eligible, backed_up,
/// transports}`
pub fn passkey(p: &wit::Passkey) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "created_at": p.created_at,
        "last_used_at": p.last_used_at,
        "backup_eligible": p.backup_eligible,
        "backed_up": p.backed_up,
        "transports": p.transports,
    })
}

/// An array of [`passkey`]s.
pub fn passkeys(list: &[wit::Passkey]) -> Value {
    Value::Array(list.iter().map(passkey).collect())
}

/// `{passkey, two_factor_enabled, backup_codes (when made), backup_codes_remaining,
/// backup_codes_running_low}`
pub fn passkey_registered(r: &wit::PasskeyRegistered) -> Value {
    let mut v = object(vec![
        ("passkey", passkey(&r.passkey)),
        ("two_factor_enabled", r.two_factor_enabled.into()),
    ]);
    put_some(
        &mut v,
        "backup_codes",
        r.backup_codes.as_ref().map(|codes| json!(codes)),
    );
    put_some(
        &mut v,
        "backup_codes_remaining",
        Some(r.backup_codes_remaining.into()),
    );
    put_some(
        &mut v,
        "backup_codes_running_low",
        Some(r.backup_codes_running_low.into()),
    );
    v
}

/// `{passkeys}`
pub fn passkey_list(list: &[wit::Passkey]) -> Value {
    json!({ "passkeys": passkeys(list) })
}

/// `{codes}`
pub fn backup_codes(c: &wit::BackupCodes) -> Value {
    json!({ "codes": c.codes })
}

/// `{user_id, email, two_factor_enabled, passkeys, backup_codes_remaining,
/// backup_codes_running_low}`
pub fn status(s: &wit::Status) -> Value {
    json!({
        "user_id": s.user_id,
        "email": s.email,
        "two_factor_enabled": s.two_factor_enabled,
        "passkeys": passkeys(&s.passkeys),
        "backup_codes_remaining": s.backup_codes_remaining,
        "backup_codes_running_low": s.backup_codes_running_low,
    })
}

/// The snake_case name of an event kind.
pub fn event_kind(kind: wit::EventKind) -> &'static str {
    use wit::EventKind as K;
    match kind {
        K::AccountCreated => "account_created",
        K::PasswordOk => "password_ok",
        K::PasswordFailed => "password_failed",
        K::SecondFactorRequired => "second_factor_required",
        K::PasskeyOk => "passkey_ok",
        K::PasskeyFailed => "passkey_failed",
        K::BackupCodeOk => "backup_code_ok",
        K::BackupCodeFailed => "backup_code_failed",
        K::Throttled => "throttled",
        K::PasskeyRegistered => "passkey_registered",
        K::PasskeyRenamed => "passkey_renamed",
        K::PasskeyRemoved => "passkey_removed",
        K::TwoFactorEnabled => "two_factor_enabled",
        K::TwoFactorDisabled => "two_factor_disabled",
        K::BackupCodesGenerated => "backup_codes_generated",
    }
}

/// `{seq, at, user_id, kind, details (an object), ip, user_agent, notify, prev_hash, hash}`
pub fn audit_event(e: &wit::AuditEvent) -> Result<Value, wit::Error> {
    Ok(json!({
        "seq": e.seq,
        "at": e.at,
        "user_id": e.user_id,
        "kind": event_kind(e.kind),
        "details": embedded("audit details", &e.details)?,
        "ip": e.ip,
        "user_agent": e.user_agent,
        "notify": e.notify,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    }))
}

/// `{events, next_before (absent on the last page)}`
pub fn audit_page(p: &wit::AuditPage) -> Result<Value, wit::Error> {
    let events = p
        .events
        .iter()
        .map(audit_event)
        .collect::<Result<Vec<_>, _>>()?;
    let mut v = json!({ "events": events });
    put_some(&mut v, "next_before", p.next_before.map(Value::from));
    Ok(v)
}

/// `{intact, events_checked, problems: [{seq, problem}]}`
pub fn chain_report(r: &wit::ChainReport) -> Value {
    json!({
        "intact": r.intact,
        "events_checked": r.events_checked,
        "problems": r.problems.iter().map(|p| json!({ "seq": p.seq, "problem": p.problem })).collect::<Vec<_>>(),
    })
}

// ------------------------------------------------------------------ arguments

/// `credential` as the browser's `toJSON()` object or as that object's JSON text.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Credential {
    /// JSON text.
    Text(String),
    /// The object itself.
    Object(Map<String, Value>),
}

impl Credential {
    /// The credential as JSON text, for the WIT record.
    pub fn into_text(self) -> String {
        match self {
            Credential::Text(text) => text,
            Credential::Object(map) => Value::Object(map).to_string(),
        }
    }
}

/// The arguments of an engine operation, parsed like the core's `api::call` does: an object,
/// within 64 KiB, with exactly the operation's members.
pub fn args<T: DeserializeOwned>(args: &Value) -> Result<T, wit::Error> {
    let invalid = |message: String| host_error(wit::ErrorCode::InvalidInput, message);
    if !args.is_object() {
        return Err(invalid("arguments must be a JSON object".into()));
    }
    if args.to_string().len() > MAX_JSON_BYTES {
        return Err(invalid("arguments is larger than 64 KiB".into()));
    }
    T::deserialize(args).map_err(|e| invalid(format!("arguments: {e}")))
}

/// Argument records of the driver's engine operations, member for member the core's.
pub mod request {
    use serde::Deserialize;

    use super::Credential;
    use crate::wit;

    /// `create_account`
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CreateAccount {
        email: String,
        password: String,
    }

    impl From<CreateAccount> for wit::CreateAccount {
        fn from(a: CreateAccount) -> Self {
            wit::CreateAccount {
                email: a.email,
                password: a.password,
            }
        }
    }

    /// `sign_in`
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SignIn {
        email: String,
        password: String,
        #[serde(default)]
        remember_me: bool,
    }

    impl From<SignIn> for wit::SignIn {
        fn from(a: SignIn) -> Self {
            wit::SignIn {
                email: a.email,
                password: a.password,
                remember_me: a.remember_me,
            }
        }
    }

    /// `sign_in_passkey`
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct PasskeySignIn {
        pending_token: String,
        credential: Credential,
    }

    impl From<PasskeySignIn> for wit::PasskeySignIn {
        fn from(a: PasskeySignIn) -> Self {
            wit::PasskeySignIn {
                pending_token: a.pending_token,
                credential: a.credential.into_text(),
            }
        }
    }

    /// `sign_in_backup_code`
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct BackupCodeSignIn {
        pending_token: String,
        code: String,
    }

    impl From<BackupCodeSignIn> for wit::BackupCodeSignIn {
        fn from(a: BackupCodeSignIn) -> Self {
            wit::BackupCodeSignIn {
                pending_token: a.pending_token,
                code: a.code,
            }
        }
    }

    /// `start_passkey_registration`
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct StartRegistration {
        user_id: String,
        name: String,
        password: String,
    }

    impl From<StartRegistration> for wit::StartRegistration {
        fn from(a: StartRegistration) -> Self {
            wit::StartRegistration {
                user_id: a.user_id,
                name: a.name,
                password: a.password,
            }
        }
    }

    /// `finish_passkey_registration`
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct FinishRegistration {
        user_id: String,
        credential: Credential,
    }

    impl From<FinishRegistration> for wit::FinishRegistration {
        fn from(a: FinishRegistration) -> Self {
            wit::FinishRegistration {
                user_id: a.user_id,
                credential: a.credential.into_text(),
            }
        }
    }

    /// `list_passkeys`, `status`, `verify_audit_chain`
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct UserRef {
        user_id: String,
    }

    impl From<UserRef> for wit::UserRef {
        fn from(a: UserRef) -> Self {
            wit::UserRef { user_id: a.user_id }
        }
    }

    /// `rename_passkey`
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RenamePasskey {
        user_id: String,
        passkey_id: String,
        name: String,
    }

    impl From<RenamePasskey> for wit::RenamePasskey {
        fn from(a: RenamePasskey) -> Self {
            wit::RenamePasskey {
                user_id: a.user_id,
                passkey_id: a.passkey_id,
                name: a.name,
            }
        }
    }

    /// `remove_passkey`
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RemovePasskey {
        user_id: String,
        passkey_id: String,
        password: String,
    }

    impl From<RemovePasskey> for wit::RemovePasskey {
        fn from(a: RemovePasskey) -> Self {
            wit::RemovePasskey {
                user_id: a.user_id,
                passkey_id: a.passkey_id,
                password: a.password,
            }
        }
    }

    /// `enable_two_factor`, `disable_two_factor`, `regenerate_backup_codes`
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct PasswordConfirmed {
        user_id: String,
        password: String,
    }

    impl From<PasswordConfirmed> for wit::PasswordConfirmed {
        fn from(a: PasswordConfirmed) -> Self {
            wit::PasswordConfirmed {
                user_id: a.user_id,
                password: a.password,
            }
        }
    }

    /// `audit_events`
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AuditQuery {
        user_id: String,
        #[serde(default)]
        before: Option<u64>,
        #[serde(default)]
        limit: Option<u32>,
    }

    impl From<AuditQuery> for wit::AuditQuery {
        fn from(a: AuditQuery) -> Self {
            wit::AuditQuery {
                user_id: a.user_id,
                before: a.before,
                limit: a.limit,
            }
        }
    }

    /// argon2id parameters in a configuration.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Argon2Params {
        m_kib: u32,
        t: u32,
        p: u32,
    }

    impl From<Argon2Params> for wit::Argon2Params {
        fn from(a: Argon2Params) -> Self {
            wit::Argon2Params {
                m_kib: a.m_kib,
                t: a.t,
                p: a.p,
            }
        }
    }

    /// The user-verification policy in a configuration.
    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum UserVerification {
        /// `required`
        Required,
        /// `preferred`
        Preferred,
        /// `discouraged`
        Discouraged,
    }

    impl From<UserVerification> for wit::UserVerification {
        fn from(u: UserVerification) -> Self {
            match u {
                UserVerification::Required => wit::UserVerification::Required,
                UserVerification::Preferred => wit::UserVerification::Preferred,
                UserVerification::Discouraged => wit::UserVerification::Discouraged,
            }
        }
    }

    /// The core's `Config` JSON: every member optional, absent ones take their defaults.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Config {
        rp_id: Option<String>,
        rp_name: Option<String>,
        origins: Option<Vec<String>>,
        password_hash: Option<Argon2Params>,
        backup_code_hash: Option<Argon2Params>,
        user_verification: Option<UserVerification>,
        pending_sign_in_ttl_secs: Option<u64>,
        registration_ttl_secs: Option<u64>,
        max_second_factor_attempts: Option<u32>,
        lockout_threshold: Option<u32>,
        lockout_secs: Option<u64>,
        backup_code_count: Option<u32>,
        backup_code_low_watermark: Option<u32>,
        max_conflict_retries: Option<u32>,
    }

    impl Config {
        /// The WIT configuration: the given members over `defaults`' relying party and the
        /// SPEC defaults for the rest.
        pub fn over(self, defaults: &wit::Config) -> wit::Config {
            wit::Config {
                rp_id: self.rp_id.unwrap_or_else(|| defaults.rp_id.clone()),
                rp_name: self.rp_name.unwrap_or_else(|| defaults.rp_name.clone()),
                origins: self.origins.unwrap_or_else(|| defaults.origins.clone()),
                password_hash: self.password_hash.map(Into::into),
                backup_code_hash: self.backup_code_hash.map(Into::into),
                user_verification: self.user_verification.map(Into::into),
                pending_sign_in_ttl_secs: self.pending_sign_in_ttl_secs,
                registration_ttl_secs: self.registration_ttl_secs,
                max_second_factor_attempts: self.max_second_factor_attempts,
                lockout_threshold: self.lockout_threshold,
                lockout_secs: self.lockout_secs,
                backup_code_count: self.backup_code_count,
                backup_code_low_watermark: self.backup_code_low_watermark,
                max_conflict_retries: self.max_conflict_retries,
            }
        }
    }
}
