//! The table of operations, written once. Everything that lists the operations (the [`Op`]
//! enum, the component's exported methods, the core's JSON dispatch, the drivers, the wasmtime
//! host's typed calls) expands [`for_each_op!`] instead of writing them out again.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Calls `$callback!` with one line per operation:
///
/// ```text
/// /// doc
/// Variant, method_name, "json_name", "wit-name", Request => Answer;
/// ```
///
/// `Variant` names the [`Op`] and the marker type in [`op`]; `method_name` is the Rust method
/// (core `Engine`, component, hosts); `"json_name"` the operation's name in JSON (the C
/// library's `twofold_engine_call`, the driver protocol); `"wit-name"` the method of the WIT
/// resource `engine`.
#[macro_export]
macro_rules! for_each_op {
    ($callback:ident) => {
        $callback! {
            /// Creates an account from an email and a password (A1, A2).
            CreateAccount, create_account, "create_account", "create-account",
                $crate::CreateAccount => $crate::AccountCreated;
            /// Sign-in step one: with 2FA off the user is signed in (remember-me honoured);
            /// with it on, the answer carries a pending token and WebAuthn request options
            /// (S1, S2, S6).
            SignIn, sign_in, "sign_in", "sign-in",
                $crate::SignIn => $crate::SignInOutcome;
            /// Sign-in step two with a passkey assertion; remember-me is always false (S3).
            SignInPasskey, sign_in_with_passkey, "sign_in_passkey", "sign-in-with-passkey",
                $crate::PasskeySignIn => $crate::SignedIn;
            /// Sign-in step two with a backup code, which is consumed (S4).
            SignInBackupCode, sign_in_with_backup_code, "sign_in_backup_code",
                "sign-in-with-backup-code",
                $crate::BackupCodeSignIn => $crate::SignedIn;
            /// Starts registering a passkey: checks the password, returns creation options (P1).
            StartPasskeyRegistration, start_passkey_registration, "start_passkey_registration",
                "start-passkey-registration",
                $crate::StartRegistration => $crate::RegistrationStarted;
            /// Finishes registering a passkey; the first one turns 2FA on and returns a
            /// backup-code set, shown only here (P2, P3).
            FinishPasskeyRegistration, finish_passkey_registration,
                "finish_passkey_registration", "finish-passkey-registration",
                $crate::FinishRegistration => $crate::PasskeyRegistered;
            /// Lists a user's passkeys, oldest first (P4).
            ListPasskeys, list_passkeys, "list_passkeys", "list-passkeys",
                $crate::UserRef => $crate::PasskeyList;
            /// Renames a passkey (P4).
            RenamePasskey, rename_passkey, "rename_passkey", "rename-passkey",
                $crate::RenamePasskey => $crate::Passkey;
            /// Removes a passkey (needs the password); the last one turns 2FA off (P4, P5).
            RemovePasskey, remove_passkey, "remove_passkey", "remove-passkey",
                $crate::RemovePasskey => $crate::Status;
            /// Turns 2FA on (needs the password and a passkey); returns a fresh code set (T1).
            EnableTwoFactor, enable_two_factor, "enable_two_factor", "enable-two-factor",
                $crate::PasswordConfirmed => $crate::BackupCodes;
            /// Turns 2FA off (needs the password); passkeys are kept, codes voided (T2).
            DisableTwoFactor, disable_two_factor, "disable_two_factor", "disable-two-factor",
                $crate::PasswordConfirmed => $crate::Status;
            /// Replaces the backup-code set (needs the password and 2FA on) (B4).
            RegenerateBackupCodes, regenerate_backup_codes, "regenerate_backup_codes",
                "regenerate-backup-codes",
                $crate::PasswordConfirmed => $crate::BackupCodes;
            /// Changes the password of a signed-in user (needs the current one) (A4).
            ChangePassword, change_password, "change_password", "change-password",
                $crate::ChangePassword => $crate::PasswordChanged;
            /// Sets a new password after the host's own proof of email ownership; 2FA is left
            /// as it was (A5).
            ResetPassword, reset_password, "reset_password", "reset-password",
                $crate::ResetPassword => $crate::PasswordChanged;
            /// A user's two-factor state: enabled or not, passkeys, codes left, epoch (T3, A6).
            Status, status, "status", "status",
                $crate::UserRef => $crate::Status;
            /// A page of a user's audit events, newest first (L2).
            AuditEvents, audit_events, "audit_events", "audit-events",
                $crate::AuditQuery => $crate::AuditPage;
            /// The newest event of a user's chain, to keep outside the database (L3).
            AuditAnchor, audit_anchor, "audit_anchor", "audit-anchor",
                $crate::UserRef => $crate::AuditAnchor;
            /// Verifies a user's audit chain, optionally against an anchor (L3).
            VerifyAuditChain, verify_audit_chain, "verify_audit_chain", "verify-audit-chain",
                $crate::VerifyAudit => $crate::ChainReport;
            /// Removes a user's events older than the retention age, keeping the chain
            /// verifiable from a checkpoint (L5).
            PruneAuditEvents, prune_audit_events, "prune_audit_events", "prune-audit-events",
                $crate::PruneAudit => $crate::AuditPruned;
        }
    };
}

/// One operation: its names and its request and answer types.
pub trait Operation {
    /// Which operation.
    const OP: Op;
    /// What it takes.
    type Request: Serialize + DeserializeOwned;
    /// What it answers.
    type Answer: Serialize + DeserializeOwned;
}

macro_rules! define_ops {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident, $method:ident, $name:literal, $wit:literal, $req:path => $answer:path;
    )+) => {
        /// Every operation, by name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Op {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl Op {
            /// Every operation, in the table's order.
            pub const ALL: &'static [Op] = &[$(Op::$variant),+];

            /// The operation's name in JSON (`sign_in_passkey`).
            pub fn name(self) -> &'static str {
                match self { $(Op::$variant => $name,)+ }
            }

            /// The method of the WIT resource `engine` (`sign-in-with-passkey`).
            pub fn wit_name(self) -> &'static str {
                match self { $(Op::$variant => $wit,)+ }
            }

            /// What the operation does, one sentence.
            pub fn description(self) -> &'static str {
                match self { $(Op::$variant => concat!($($doc),+).trim_ascii(),)+ }
            }
        }

        /// A marker type per operation, for typed calls: `instance.call::<op::SignIn>(...)`.
        pub mod op {
            $(
                $(#[doc = $doc])+
                #[derive(Clone, Copy, Debug)]
                pub struct $variant;

                impl super::Operation for $variant {
                    const OP: super::Op = super::Op::$variant;
                    type Request = $req;
                    type Answer = $answer;
                }
            )+
        }
    };
}

for_each_op!(define_ops);

impl Op {
    /// The operation with this JSON name.
    pub fn parse(name: &str) -> Option<Op> {
        Op::ALL.iter().copied().find(|op| op.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_wit_names_are_kebab_case() {
        let mut names: Vec<_> = Op::ALL.iter().map(|o| o.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Op::ALL.len());
        for op in Op::ALL {
            assert!(
                op.wit_name()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-')
            );
            assert_eq!(Op::parse(op.name()), Some(*op));
        }
    }
}
