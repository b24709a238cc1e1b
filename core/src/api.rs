//! The JSON boundary: every operation by name, with JSON arguments and a JSON answer. The C
//! library and the conformance drivers use it, so argument parsing, size limits and result
//! shapes live here once (E1). Shapes are documented in `tests/conformance/PROTOCOL.md`.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::MAX_JSON_BYTES;
use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::*;
use crate::storage::Host;

/// Every operation, by its stable snake_case name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// `create_account`
    CreateAccount,
    /// `sign_in`
    SignIn,
    /// `sign_in_passkey`
    SignInPasskey,
    /// `sign_in_backup_code`
    SignInBackupCode,
    /// `start_passkey_registration`
    StartPasskeyRegistration,
    /// `finish_passkey_registration`
    FinishPasskeyRegistration,
    /// `list_passkeys`
    ListPasskeys,
    /// `rename_passkey`
    RenamePasskey,
    /// `remove_passkey`
    RemovePasskey,
    /// `enable_two_factor`
    EnableTwoFactor,
    /// `disable_two_factor`
    DisableTwoFactor,
    /// `regenerate_backup_codes`
    RegenerateBackupCodes,
    /// `status`
    Status,
    /// `audit_events`
    AuditEvents,
    /// `verify_audit_chain`
    VerifyAuditChain,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 15] = [
        Op::CreateAccount,
        Op::SignIn,
        Op::SignInPasskey,
        Op::SignInBackupCode,
        Op::StartPasskeyRegistration,
        Op::FinishPasskeyRegistration,
        Op::ListPasskeys,
        Op::RenamePasskey,
        Op::RemovePasskey,
        Op::EnableTwoFactor,
        Op::DisableTwoFactor,
        Op::RegenerateBackupCodes,
        Op::Status,
        Op::AuditEvents,
        Op::VerifyAuditChain,
    ];

    /// The operation's name.
    pub fn name(self) -> &'static str {
        match self {
            Op::CreateAccount => "create_account",
            Op::SignIn => "sign_in",
            Op::SignInPasskey => "sign_in_passkey",
            Op::SignInBackupCode => "sign_in_backup_code",
            Op::StartPasskeyRegistration => "start_passkey_registration",
            Op::FinishPasskeyRegistration => "finish_passkey_registration",
            Op::ListPasskeys => "list_passkeys",
            Op::RenamePasskey => "rename_passkey",
            Op::RemovePasskey => "remove_passkey",
            Op::EnableTwoFactor => "enable_two_factor",
            Op::DisableTwoFactor => "disable_two_factor",
            Op::RegenerateBackupCodes => "regenerate_backup_codes",
            Op::Status => "status",
            Op::AuditEvents => "audit_events",
            Op::VerifyAuditChain => "verify_audit_chain",
        }
    }

    /// The operation with this name.
    pub fn parse(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// Parses a JSON document within the size limit, naming what was wrong.
pub fn parse_json<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    if bytes.len() > MAX_JSON_BYTES {
        return Err(Error::invalid(format!("{what} is larger than 64 KiB")));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))?;
    serde_json::from_str(text).map_err(|e| Error::invalid(format!("{what}: {e}")))
}

/// A configuration from JSON; absent fields take their defaults.
pub fn config_from_json(bytes: &[u8]) -> Result<Config> {
    let value: Value = parse_json("config", bytes)?;
    if !value.is_object() {
        return Err(Error::invalid("config must be a JSON object"));
    }
    let config: Config =
        serde_json::from_value(value).map_err(|e| Error::invalid(format!("config: {e}")))?;
    config.validate()?;
    Ok(config)
}

/// A context from JSON (`{"ip": "...", "user_agent": "..."}`).
pub fn context_from_json(bytes: &[u8]) -> Result<Context> {
    let value: Value = parse_json("context", bytes)?;
    if !value.is_object() {
        return Err(Error::invalid("context must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| Error::invalid(format!("context: {e}")))
}

/// Runs one operation: `args_json` holds its arguments, the answer is its JSON result.
pub fn call(
    engine: &Engine,
    host: &dyn Host,
    ctx: &Context,
    op: Op,
    args_json: &[u8],
) -> Result<String> {
    let args: Value = parse_json("arguments", args_json)?;
    if !args.is_object() {
        return Err(Error::invalid("arguments must be a JSON object"));
    }
    match op {
        Op::CreateAccount => answer(engine.create_account(host, ctx, args_of(args)?)),
        Op::SignIn => answer(engine.sign_in(host, ctx, args_of(args)?)),
        Op::SignInPasskey => {
            answer(engine.sign_in_with_passkey(host, ctx, args_of(credential_as_text(args)?)?))
        }
        Op::SignInBackupCode => answer(engine.sign_in_with_backup_code(host, ctx, args_of(args)?)),
        Op::StartPasskeyRegistration => {
            answer(engine.start_passkey_registration(host, ctx, args_of(args)?))
        }
        Op::FinishPasskeyRegistration => answer(engine.finish_passkey_registration(
            host,
            ctx,
            args_of(credential_as_text(args)?)?,
        )),
        Op::ListPasskeys => {
            let passkeys = engine.list_passkeys(host, ctx, args_of(args)?)?;
            answer(Ok(serde_json::json!({ "passkeys": passkeys })))
        }
        Op::RenamePasskey => answer(engine.rename_passkey(host, ctx, args_of(args)?)),
        Op::RemovePasskey => answer(engine.remove_passkey(host, ctx, args_of(args)?)),
        Op::EnableTwoFactor => answer(engine.enable_two_factor(host, ctx, args_of(args)?)),
        Op::DisableTwoFactor => answer(engine.disable_two_factor(host, ctx, args_of(args)?)),
        Op::RegenerateBackupCodes => {
            answer(engine.regenerate_backup_codes(host, ctx, args_of(args)?))
        }
        Op::Status => answer(engine.status(host, ctx, args_of(args)?)),
        Op::AuditEvents => answer(engine.audit_events(host, ctx, args_of(args)?)),
        Op::VerifyAuditChain => answer(engine.verify_audit_chain(host, ctx, args_of(args)?)),
    }
}

/// The JSON form of an error: `{"code": "...", "message": "..."}`, plus `retry_after_secs`
/// for `rate_limited`.
pub fn error_json(error: &Error) -> Value {
    let mut v = serde_json::json!({ "code": error.code().as_str(), "message": error.to_string() });
    if let (Some(secs), Some(map)) = (error.retry_after_secs(), v.as_object_mut()) {
        map.insert("retry_after_secs".into(), secs.into());
    }
    v
}

fn args_of<T: DeserializeOwned>(args: Value) -> Result<T> {
    serde_json::from_value(args).map_err(|e| Error::invalid(format!("arguments: {e}")))
}

/// `credential` may be the browser's object itself or that object as JSON text.
fn credential_as_text(mut args: Value) -> Result<Value> {
    if let Some(slot) = args.get_mut("credential")
        && slot.is_object()
    {
        *slot = Value::String(slot.to_string());
    }
    Ok(args)
}

fn answer<T: Serialize>(outcome: Result<T>) -> Result<String> {
    serde_json::to_string(&outcome?).map_err(Error::internal)
}
