//! A world in which every operation has something to work on, built through any boundary
//! (the core's JSON API, the C library, the component), and the list of operations the fault
//! tests run on it: the op list of `core/tests/storage.rs`, plus `list_passkeys`.

use serde_json::{Value, json};
use twofold_testkit::ORIGIN;
use twofold_testkit::authenticator::{Authenticator, Tweaks};

/// Every account's password.
pub const PASSWORD: &str = "correct horse battery staple";

/// Runs one operation by name with JSON arguments: the result, or the error code.
pub type Call<'a> = dyn FnMut(&str, Value) -> Result<Value, String> + 'a;

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

fn ok(call: &mut Call<'_>, op: &str, args: Value) -> Value {
    call(op, args).unwrap_or_else(|code| panic!("building the world: {op} failed: {code}"))
}

impl World {
    /// Builds the world through `call`.
    pub fn build(call: &mut Call<'_>) -> World {
        let mut auth = Authenticator::new(11);
        let created = ok(
            call,
            "create_account",
            json!({ "email": "ada@example.com", "password": PASSWORD }),
        );
        let user = created["user_id"].as_str().unwrap_or_default().to_owned();
        let options = start_registration(call, &user, "Laptop");
        let credential = auth
            .register(&options, ORIGIN, &Tweaks::default())
            .expect("the authenticator registers");
        let registered = ok(
            call,
            "finish_passkey_registration",
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
            "sign_in",
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

        let created = ok(
            call,
            "create_account",
            json!({ "email": "bob@example.com", "password": PASSWORD }),
        );
        let off = created["user_id"].as_str().unwrap_or_default().to_owned();
        let options = start_registration(call, &off, "Key");
        let credential = Authenticator::new(43)
            .register(&options, ORIGIN, &Tweaks::default())
            .expect("a third authenticator registers");
        ok(
            call,
            "finish_passkey_registration",
            json!({ "user_id": off, "credential": credential }),
        );
        ok(
            call,
            "disable_two_factor",
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

    /// Every operation, named, with arguments that make it do its work on this world.
    pub fn steps(&self) -> Vec<(&'static str, &'static str, Value)> {
        let confirm = |user: &str| json!({ "user_id": user, "password": PASSWORD });
        vec![
            (
                "create_account",
                "create_account",
                json!({ "email": "cy@example.com", "password": PASSWORD }),
            ),
            (
                "sign_in",
                "sign_in",
                json!({ "email": "ada@example.com", "password": PASSWORD, "remember_me": true }),
            ),
            (
                "sign_in wrong password",
                "sign_in",
                json!({ "email": "ada@example.com", "password": "wrong password" }),
            ),
            (
                "sign_in_passkey",
                "sign_in_passkey",
                json!({ "pending_token": self.pending_token, "credential": self.assertion }),
            ),
            (
                "sign_in_backup_code",
                "sign_in_backup_code",
                json!({ "pending_token": self.pending_token, "code": self.codes[0] }),
            ),
            (
                "sign_in_backup_code wrong",
                "sign_in_backup_code",
                json!({ "pending_token": self.pending_token, "code": "2222-2222-2222" }),
            ),
            (
                "start_passkey_registration",
                "start_passkey_registration",
                json!({ "user_id": self.user, "name": "Tablet", "password": PASSWORD }),
            ),
            (
                "finish_passkey_registration",
                "finish_passkey_registration",
                json!({ "user_id": self.user, "credential": self.registration }),
            ),
            (
                "list_passkeys",
                "list_passkeys",
                json!({ "user_id": self.user }),
            ),
            (
                "rename_passkey",
                "rename_passkey",
                json!({ "user_id": self.user, "passkey_id": self.passkey_id, "name": "Desk" }),
            ),
            (
                "remove_passkey",
                "remove_passkey",
                json!({ "user_id": self.user, "passkey_id": self.passkey_id, "password": PASSWORD }),
            ),
            ("enable_two_factor", "enable_two_factor", confirm(&self.off)),
            (
                "disable_two_factor",
                "disable_two_factor",
                confirm(&self.user),
            ),
            (
                "regenerate_backup_codes",
                "regenerate_backup_codes",
                confirm(&self.user),
            ),
            ("status", "status", json!({ "user_id": self.user })),
            (
                "audit_events",
                "audit_events",
                json!({ "user_id": self.user }),
            ),
            (
                "verify_audit_chain",
                "verify_audit_chain",
                json!({ "user_id": self.user }),
            ),
        ]
    }
}

fn start_registration(call: &mut Call<'_>, user: &str, name: &str) -> Value {
    let started = ok(
        call,
        "start_passkey_registration",
        json!({ "user_id": user, "name": name, "password": PASSWORD }),
    );
    started["options"].clone()
}
