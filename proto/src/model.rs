//! The requests and answers of the account, sign-in, passkey and backup-code operations.
//!
//! Times are milliseconds since the Unix epoch. User ids are opaque strings of up to 64
//! characters (`A-Z a-z 0-9 - _`); passkey ids are credential ids in base64url.

use serde::{Deserialize, Serialize};

use crate::secret::{redacting_debug, zeroize_on_drop};

/// Attributes shared by every wire type that wasmtime hosts lower and lift.
macro_rules! wire {
    (record $item:item) => {
        #[cfg_attr(
            feature = "wasmtime",
            derive(
                wasmtime::component::ComponentType,
                wasmtime::component::Lift,
                wasmtime::component::Lower
            ),
            component(record)
        )]
        $item
    };
}
pub(crate) use wire;

wire!(record
/// Who is calling, as the host sees it. `ip` and `user_agent` go into audit events (L1);
/// `client_id` and `device_token` decide which throttling records an attempt counts against
/// (S6).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// The client's IP address, for the audit log.
    #[serde(default)]
    pub ip: String,
    /// The client's user agent, for the audit log.
    #[serde(default)]
    #[cfg_attr(feature = "wasmtime", component(name = "user-agent"))]
    pub user_agent: String,
    /// Who the per-client limits count: the peer address, or the address a trusted proxy
    /// named. Empty means `ip`.
    #[serde(default)]
    #[cfg_attr(feature = "wasmtime", component(name = "client-id"))]
    pub client_id: String,
    /// The device token this browser was given at its last completed sign-in, if the host
    /// kept one (in a long-lived cookie). A valid one keeps its owner's attempts apart from
    /// everyone else's (S6).
    #[serde(
        default,
        deserialize_with = "crate::secret::device_token",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "wasmtime", component(name = "device-token"))]
    pub device_token: Option<String>,
});

redacting_debug!(Context { ip, user_agent, client_id } secret { device_token });
zeroize_on_drop!(Context { device_token });

impl Context {
    /// A context with an IP address (also the client id) and a user agent.
    pub fn new(ip: impl Into<String>, user_agent: impl Into<String>) -> Context {
        Context {
            ip: ip.into(),
            user_agent: user_agent.into(),
            client_id: String::new(),
            device_token: None,
        }
    }

    /// The client the throttling rules count: `client_id`, or `ip` when that is empty.
    pub fn client(&self) -> &str {
        if self.client_id.is_empty() {
            &self.ip
        } else {
            &self.client_id
        }
    }
}

wire!(record
/// Create an account (A1).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    /// The email: trimmed and put in Unicode NFC; its case is kept as given, and compared
    /// case-insensitively.
    pub email: String,
    /// The password, 8 to 1024 bytes of UTF-8.
    #[serde(deserialize_with = "crate::secret::password")]
    pub password: String,
});

redacting_debug!(CreateAccount { email } secret { password });
zeroize_on_drop!(CreateAccount { password });

wire!(record
/// A new account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountCreated {
    /// The new user's id.
    #[cfg_attr(feature = "wasmtime", component(name = "user-id"))]
    pub user_id: String,
    /// The email as stored: trimmed, NFC, case kept.
    pub email: String,
});

wire!(record
/// Sign-in step one (S1, S2).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// The email.
    pub email: String,
    /// The password.
    #[serde(deserialize_with = "crate::secret::password")]
    pub password: String,
    /// Whether the user asked to stay signed in.
    #[serde(default)]
    #[cfg_attr(feature = "wasmtime", component(name = "remember-me"))]
    pub remember_me: bool,
});

redacting_debug!(SignIn { email, remember_me } secret { password });
zeroize_on_drop!(SignIn { password });

wire!(record
/// A completed sign-in.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    /// The user now signed in.
    #[cfg_attr(feature = "wasmtime", component(name = "user-id"))]
    pub user_id: String,
    /// Whether the host may make the session persistent; always false after a second factor.
    #[cfg_attr(feature = "wasmtime", component(name = "remember-me"))]
    pub remember_me: bool,
    /// The account's security epoch (A6): keep it with the session, and end sessions whose
    /// epoch is older than the account's.
    #[cfg_attr(feature = "wasmtime", component(name = "security-epoch"))]
    pub security_epoch: u64,
    /// A fresh device token (S6): 256 random bits, valid 90 days. Keep it in a long-lived,
    /// HttpOnly cookie and pass it back in the context of later sign-ins.
    #[cfg_attr(feature = "wasmtime", component(name = "device-token"))]
    pub device_token: String,
    /// After a backup-code sign-in: unused codes left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "backup-codes-remaining"))]
    pub backup_codes_remaining: Option<u32>,
    /// After a backup-code sign-in: whether that is few enough to warn about (B6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "backup-codes-running-low"))]
    pub backup_codes_running_low: Option<bool>,
});

redacting_debug!(SignedIn {
    user_id, remember_me, security_epoch, backup_codes_remaining, backup_codes_running_low
} secret { device_token });

wire!(record
/// Sign-in step one succeeded, and a second factor is needed (S2).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondFactorRequired {
    /// The pending sign-in: `<user id>.<43 characters of base64url>` (256 random bits). Keep
    /// it server-side and give it back with the second factor. A string of another form is
    /// `invalid_input`; a well-formed one that is unknown, used or past its 5 minutes is
    /// `expired`.
    #[cfg_attr(feature = "wasmtime", component(name = "pending-token"))]
    pub pending_token: String,
    /// WebAuthn request options (the `publicKey` member, Level 3 JSON) for
    /// `PublicKeyCredential.parseRequestOptionsFromJSON`; JSON text.
    #[serde(with = "crate::json::text")]
    pub options: String,
});

redacting_debug!(SecondFactorRequired { options } secret { pending_token });

/// The answer to sign-in step one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[cfg_attr(
    feature = "wasmtime",
    derive(
        wasmtime::component::ComponentType,
        wasmtime::component::Lift,
        wasmtime::component::Lower
    ),
    component(variant)
)]
pub enum SignInOutcome {
    /// 2FA is off: the user is signed in.
    #[cfg_attr(feature = "wasmtime", component(name = "signed-in"))]
    SignedIn(SignedIn),
    /// 2FA is on: the second step is needed.
    #[cfg_attr(feature = "wasmtime", component(name = "second-factor-required"))]
    SecondFactorRequired(SecondFactorRequired),
}

wire!(record
/// Sign-in step two with a passkey (S3).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeySignIn {
    /// The token from step one.
    #[serde(deserialize_with = "crate::secret::pending_token")]
    #[cfg_attr(feature = "wasmtime", component(name = "pending-token"))]
    pub pending_token: String,
    /// The browser's `credential.toJSON()`: JSON text (in a JSON document, the object itself
    /// or that object as a string).
    #[serde(with = "crate::json::text")]
    pub credential: String,
});

redacting_debug!(PasskeySignIn { credential } secret { pending_token });
zeroize_on_drop!(PasskeySignIn { pending_token });

wire!(record
/// Sign-in step two with a backup code (S4).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupCodeSignIn {
    /// The token from step one.
    #[serde(deserialize_with = "crate::secret::pending_token")]
    #[cfg_attr(feature = "wasmtime", component(name = "pending-token"))]
    pub pending_token: String,
    /// The code as typed: case, spaces and hyphens do not matter (at most 64 characters).
    #[serde(deserialize_with = "crate::secret::code")]
    pub code: String,
});

redacting_debug!(BackupCodeSignIn {} secret { pending_token, code });
zeroize_on_drop!(BackupCodeSignIn {
    pending_token,
    code
});

wire!(record
/// Start registering a passkey (P1).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRegistration {
    /// The signed-in user.
    #[cfg_attr(feature = "wasmtime", component(name = "user-id"))]
    pub user_id: String,
    /// A name for the passkey: 1 to 64 characters after trimming, no control or format
    /// characters.
    pub name: String,
    /// The user's current password.
    #[serde(deserialize_with = "crate::secret::password")]
    pub password: String,
});

redacting_debug!(StartRegistration { user_id, name } secret { password });
zeroize_on_drop!(StartRegistration { password });

wire!(record
/// Creation options for `navigator.credentials.create`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationStarted {
    /// WebAuthn creation options (the `publicKey` member, Level 3 JSON) for
    /// `PublicKeyCredential.parseCreationOptionsFromJSON`; JSON text.
    #[serde(with = "crate::json::text")]
    pub options: String,
});

wire!(record
/// Finish registering a passkey (P2, P3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinishRegistration {
    /// The signed-in user who started the ceremony.
    #[cfg_attr(feature = "wasmtime", component(name = "user-id"))]
    pub user_id: String,
    /// The browser's `credential.toJSON()`: JSON text (in a JSON document, the object itself
    /// or that object as a string).
    #[serde(with = "crate::json::text")]
    pub credential: String,
});

wire!(record
/// A registered passkey (P4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passkey {
    /// The credential id, base64url.
    pub id: String,
    /// The user's name for it.
    pub name: String,
    /// When it was registered.
    #[cfg_attr(feature = "wasmtime", component(name = "created-at"))]
    pub created_at: u64,
    /// When it last signed the user in; `null` until then.
    #[cfg_attr(feature = "wasmtime", component(name = "last-used-at"))]
    pub last_used_at: Option<u64>,
    /// Whether it may be synced to other devices.
    #[cfg_attr(feature = "wasmtime", component(name = "backup-eligible"))]
    pub backup_eligible: bool,
    /// Whether it is synced now.
    #[cfg_attr(feature = "wasmtime", component(name = "backed-up"))]
    pub backed_up: bool,
    /// Transports the browser reported (`internal`, `usb`, `hybrid`, ...).
    pub transports: Vec<String>,
});

wire!(record
/// A user's passkeys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyList {
    /// Oldest first.
    pub passkeys: Vec<Passkey>,
});

wire!(record
/// A registered passkey, and what it changed (P3).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyRegistered {
    /// The new passkey.
    pub passkey: Passkey,
    /// Whether 2FA is on now.
    #[cfg_attr(feature = "wasmtime", component(name = "two-factor-enabled"))]
    pub two_factor_enabled: bool,
    /// The new backup codes, when this registration turned 2FA on; shown only here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "wasmtime", component(name = "backup-codes"))]
    pub backup_codes: Option<Vec<String>>,
    /// Unused backup codes now.
    #[cfg_attr(feature = "wasmtime", component(name = "backup-codes-remaining"))]
    pub backup_codes_remaining: u32,
    /// Whether that is few enough to warn about.
    #[cfg_attr(feature = "wasmtime", component(name = "backup-codes-running-low"))]
    pub backup_codes_running_low: bool,
});

redacting_debug!(PasskeyRegistered {
    passkey, two_factor_enabled, backup_codes_remaining, backup_codes_running_low
} secret { backup_codes });

wire!(record
/// Rename a passkey (P4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenamePasskey {
    /// The signed-in user.
    #[cfg_attr(feature = "wasmtime", component(name = "user-id"))]
    pub user_id: String,
    /// The passkey's id.
    #[cfg_attr(feature = "wasmtime", component(name = "passkey-id"))]
    pub passkey_id: String,
    /// The new name: 1 to 64 characters after trimming, no control or format characters.
    pub name: String,
});

wire!(record
/// Remove a passkey (P4, P5).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemovePasskey {
    /// The signed-in user.
    #[cfg_attr(feature = "wasmtime", component(name = "user-id"))]
    pub user_id: String,
    /// The passkey's id.
    #[cfg_attr(feature = "wasmtime", component(name = "passkey-id"))]
    pub passkey_id: String,
    /// The user's current password.
    #[serde(deserialize_with = "crate::secret::password")]
    pub password: String,
});

redacting_debug!(RemovePasskey { user_id, passkey_id } secret { password });
zeroize_on_drop!(RemovePasskey { password });

wire!(record
/// A user id and the current password: enable or disable 2FA, regenerate codes (T1, T2, B4).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfirmed {
    /// The signed-in user.
    #[cfg_attr(feature = "wasmtime", component(name = "user-id"))]
    pub user_id: String,
    /// The user's current password.
    #[serde(deserialize_with = "crate::secret::password")]
    pub password: String,
});

redacting_debug!(PasswordConfirmed { user_id } secret { password });
zeroize_on_drop!(PasswordConfirmed { password });

wire!(record
/// A fresh backup-code set: the only time the codes can be read (B2).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupCodes {
    /// The codes: 12 characters from `23456789abcdefghjkmnpqrstuvwxyz` (no look-alikes), in
    /// groups of four (`xxxx-xxxx-xxxx`); about 59 random bits each.
    pub codes: Vec<String>,
    /// The account's security epoch after this change (A6).
    #[cfg_attr(feature = "wasmtime", component(name = "security-epoch"))]
    pub security_epoch: u64,
});

redacting_debug!(BackupCodes { security_epoch } secret { codes });

wire!(record
/// Names a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRef {
    /// The user.
    #[cfg_attr(feature = "wasmtime", component(name = "user-id"))]
    pub user_id: String,
});

wire!(record
/// A user's two-factor state (T3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The user.
    #[cfg_attr(feature = "wasmtime", component(name = "user-id"))]
    pub user_id: String,
    /// The account's email as stored.
    pub email: String,
    /// Whether 2FA is on.
    #[cfg_attr(feature = "wasmtime", component(name = "two-factor-enabled"))]
    pub two_factor_enabled: bool,
    /// The user's passkeys, oldest first.
    pub passkeys: Vec<Passkey>,
    /// Unused backup codes (0 when 2FA is off).
    #[cfg_attr(feature = "wasmtime", component(name = "backup-codes-remaining"))]
    pub backup_codes_remaining: u32,
    /// Whether 2FA is on and the unused codes are few enough to warn about (B6).
    #[cfg_attr(feature = "wasmtime", component(name = "backup-codes-running-low"))]
    pub backup_codes_running_low: bool,
    /// The account's security epoch (A6).
    #[cfg_attr(feature = "wasmtime", component(name = "security-epoch"))]
    pub security_epoch: u64,
});

wire!(record
/// Change the password of a signed-in user (A4).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// The signed-in user.
    #[cfg_attr(feature = "wasmtime", component(name = "user-id"))]
    pub user_id: String,
    /// The password now.
    #[serde(deserialize_with = "crate::secret::current_password")]
    #[cfg_attr(feature = "wasmtime", component(name = "current-password"))]
    pub current_password: String,
    /// The new password, 8 to 1024 bytes.
    #[serde(deserialize_with = "crate::secret::new_password")]
    #[cfg_attr(feature = "wasmtime", component(name = "new-password"))]
    pub new_password: String,
});

redacting_debug!(ChangePassword { user_id } secret { current_password, new_password });
zeroize_on_drop!(ChangePassword {
    current_password,
    new_password
});

wire!(record
/// A password changed (A4) or reset (A5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordChanged {
    /// The user.
    #[cfg_attr(feature = "wasmtime", component(name = "user-id"))]
    pub user_id: String,
    /// The account's security epoch after the change (A6): end the user's other sessions.
    #[cfg_attr(feature = "wasmtime", component(name = "security-epoch"))]
    pub security_epoch: u64,
});

wire!(record
/// Set a new password without the old one, after the host has proved by its own means (a
/// reset link sent to the address) that the caller owns the email (A5). Two-factor
/// authentication is left exactly as it was.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    /// The account's email, in any case or normalisation form.
    pub email: String,
    /// The new password, 8 to 1024 bytes.
    #[serde(deserialize_with = "crate::secret::new_password")]
    #[cfg_attr(feature = "wasmtime", component(name = "new-password"))]
    pub new_password: String,
});

redacting_debug!(ResetPassword { email } secret { new_password });
zeroize_on_drop!(ResetPassword { new_password });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_requests_and_answers_shows_no_secret() {
        let secret = "correct horse battery staple";
        let shown = [
            format!(
                "{:?}",
                CreateAccount {
                    email: "ada@example.com".into(),
                    password: secret.into()
                }
            ),
            format!(
                "{:?}",
                SignedIn {
                    user_id: "u".into(),
                    remember_me: false,
                    security_epoch: 1,
                    device_token: secret.into(),
                    backup_codes_remaining: None,
                    backup_codes_running_low: None
                }
            ),
            format!(
                "{:?}",
                BackupCodes {
                    codes: vec![secret.into()],
                    security_epoch: 2
                }
            ),
        ];
        for s in shown {
            assert!(!s.contains(secret), "{s}");
            assert!(s.contains("<redacted>"), "{s}");
        }
    }

    #[test]
    fn sign_in_outcome_is_tagged_by_status() {
        let outcome = SignInOutcome::SecondFactorRequired(SecondFactorRequired {
            pending_token: "u.t".into(),
            options: r#"{"challenge":"c"}"#.into(),
        });
        assert_eq!(
            serde_json::to_value(&outcome).unwrap(),
            serde_json::json!({
                "status": "second_factor_required",
                "pending_token": "u.t",
                "options": {"challenge": "c"}
            })
        );
    }
}
