//! A world in which every operation has something to work on, built through any boundary
//! (the core's JSON API, the C library, the component), and every operation of the table with
//! arguments that make it do its work there (the fault tests run each).

use serde_json::{Value, json};
use twofold_core::Op;
use twofold_testkit::ORIGIN;
use twofold_testkit::authenticator::{Authenticator, Tweaks};

/// Every account's password.
pub const PASSWORD: &str = "correct horse battery staple";

/// Runs one operation with JSON arguments: the result, or the error code.
pub type Call<'a> = dyn FnMut(Op, Value) -> Result<Value, String> + 'a;

/// What the world holds.
#[derive(Clone, Debug)]
pub struct World {
    /// ada: 2FA on through one passkey.
    pub user: String,
    /// ada's backup codes.
    pub codes: Vec<String>,
    /// ada's pending sign-in.
    pub pending_token: String,
    /// Its request options.
    pub request_options: Value,
    /// ada's authenticator, as it was after signing `assertion`.
    pub authenticator: Authenticator,
    /// A valid assertion for that pending sign-in.
    pub assertion: Value,
    /// ada's registration in flight ("Phone").
    pub creation_options: Value,
    /// A valid registration response for it.
    pub registration: Value,
    /// ada's passkey.
    pub passkey_id: String,
    /// bob: a passkey, 2FA off.
    pub off: String,
}

fn ok(call: &mut Call<'_>, op: Op, args: Value) -> Value {
    call(op, args).unwrap_or_else(|code| panic!("building the world: {} failed: {code}", op.name()))
}

impl World {
    /// Builds the world through `call`.
    pub fn build(call: &mut Call<'_>) -> World {
        let mut auth = Authenticator::new(11);
        let user = create_account(call, "ada@example.com");
        let options = start_registration(call, &user, "Laptop");
        let credential = auth
            .register(&options, ORIGIN, &Tweaks::default())
            .expect("the authenticator registers");
        let registered = ok(
            call,
            Op::FinishPasskeyRegistration,
            json!({ "user_id": user, "credential": credential }),
        );
        let codes: Vec<String> = serde_json::from_value(registered["backup_codes"].clone())
            .expect("the first passkey comes with codes");
        let passkey_id = registered["passkey"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();

        let pending = ok(
            call,
            Op::SignIn,
            json!({ "email": "ada@example.com", "password": PASSWORD, "remember_me": true }),
        );
        assert_eq!(pending["status"], "second_factor_required");
        let pending_token = pending["pending_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let assertion = auth
            .authenticate(&pending["options"], ORIGIN, &Tweaks::default())
            .expect("the authenticator signs");

        let creation_options = start_registration(call, &user, "Phone");
        let registration = Authenticator::new(42)
            .register(&creation_options, ORIGIN, &Tweaks::default())
            .expect("a second authenticator registers");

        let off = create_account(call, "bob@example.com");
        let options = start_registration(call, &off, "Key");
        let credential = Authenticator::new(43)
            .register(&options, ORIGIN, &Tweaks::default())
            .expect("a third authenticator registers");
        ok(
            call,
            Op::FinishPasskeyRegistration,
            json!({ "user_id": off, "credential": credential }),
        );
        ok(
            call,
            Op::DisableTwoFactor,
            json!({ "user_id": off, "password": PASSWORD }),
        );
        World {
            user,
            codes,
            pending_token,
            request_options: pending["options"].clone(),
            authenticator: auth,
            assertion,
            creation_options,
            registration,
            passkey_id,
            off,
        }
    }

    /// Every operation, named, with arguments that make it do its work on this world; the
    /// sign-in steps also once as a failure.
    pub fn steps(&self) -> Vec<(&'static str, Op, Value)> {
        let confirm = |user: &str| json!({ "user_id": user, "password": PASSWORD });
        let user = json!({ "user_id": self.user });
        let wrong = json!({ "email": "ada@example.com", "password": "wrong password" });
        let steps = vec![
            (
                "create_account",
                Op::CreateAccount,
                json!({ "email": "cy@example.com", "password": PASSWORD }),
            ),
            (
                "sign_in",
                Op::SignIn,
                json!({ "email": "ada@example.com", "password": PASSWORD, "remember_me": true }),
            ),
            ("sign_in wrong password", Op::SignIn, wrong),
            (
                "sign_in_passkey",
                Op::SignInPasskey,
                json!({ "pending_token": self.pending_token, "credential": self.assertion }),
            ),
            (
                "sign_in_backup_code",
                Op::SignInBackupCode,
                json!({ "pending_token": self.pending_token, "code": self.codes[0] }),
            ),
            (
                "sign_in_backup_code wrong",
                Op::SignInBackupCode,
                json!({ "pending_token": self.pending_token, "code": "2222-2222-2222" }),
            ),
            (
                "start_passkey_registration",
                Op::StartPasskeyRegistration,
                json!({ "user_id": self.user, "name": "Tablet", "password": PASSWORD }),
            ),
            (
                "finish_passkey_registration",
                Op::FinishPasskeyRegistration,
                json!({ "user_id": self.user, "credential": self.registration }),
            ),
            ("list_passkeys", Op::ListPasskeys, user.clone()),
            (
                "rename_passkey",
                Op::RenamePasskey,
                json!({ "user_id": self.user, "passkey_id": self.passkey_id, "name": "Desk" }),
            ),
            (
                "remove_passkey",
                Op::RemovePasskey,
                json!({ "user_id": self.user, "passkey_id": self.passkey_id, "password": PASSWORD }),
            ),
            ("enable_two_factor", Op::EnableTwoFactor, confirm(&self.off)),
            (
                "disable_two_factor",
                Op::DisableTwoFactor,
                confirm(&self.user),
            ),
            (
                "regenerate_backup_codes",
                Op::RegenerateBackupCodes,
                confirm(&self.user),
            ),
            (
                "change_password",
                Op::ChangePassword,
                json!({
                    "user_id": self.user, "current_password": PASSWORD,
                    "new_password": "a new password, longer"
                }),
            ),
            (
                "reset_password",
                Op::ResetPassword,
                json!({ "email": "bob@example.com", "new_password": "a reset password" }),
            ),
            ("status", Op::Status, user.clone()),
            ("audit_events", Op::AuditEvents, user.clone()),
            ("audit_anchor", Op::AuditAnchor, user.clone()),
            ("verify_audit_chain", Op::VerifyAuditChain, user),
            (
                "prune_audit_events",
                Op::PruneAuditEvents,
                json!({ "user_id": self.user, "older_than_days": 1 }),
            ),
        ];
        assert!(Op::ALL.iter().all(|op| steps.iter().any(|s| s.1 == *op)));
        steps
    }
}

/// A new account with the world's password; its user id.
fn create_account(call: &mut Call<'_>, email: &str) -> String {
    let created = ok(
        call,
        Op::CreateAccount,
        json!({ "email": email, "password": PASSWORD }),
    );
    created["user_id"].as_str().unwrap_or_default().to_owned()
}

fn start_registration(call: &mut Call<'_>, user: &str, name: &str) -> Value {
    let started = ok(
        call,
        Op::StartPasskeyRegistration,
        json!({ "user_id": user, "name": name, "password": PASSWORD }),
    );
    started["options"].clone()
}
