//! Fixtures shared by the core's tests: an engine on a deterministic host, a software
//! authenticator, and short-hands for the common steps.
#![allow(dead_code)]

use serde_json::Value;
use twofold_core::*;
use twofold_testkit::authenticator::{Authenticator, Tweaks};
use twofold_testkit::{ORIGIN, TestHost, fast_config};

pub const PASSWORD: &str = "correct horse battery staple";

pub struct World {
    pub engine: Engine,
    pub host: TestHost,
    pub ctx: Context,
    pub auth: Authenticator,
}

pub fn world() -> World {
    world_with(fast_config())
}

pub fn world_with(config: Config) -> World {
    World {
        engine: Engine::new(config).unwrap(),
        host: TestHost::new(7),
        ctx: Context::new("198.51.100.4", "test-agent/1.0"),
        auth: Authenticator::new(11),
    }
}

impl World {
    pub fn signup(&self, email: &str) -> String {
        self.engine
            .create_account(
                &self.host,
                &self.ctx,
                CreateAccount {
                    email: email.into(),
                    password: PASSWORD.into(),
                },
            )
            .unwrap()
            .user_id
    }

    pub fn start_registration(&self, user_id: &str, name: &str) -> Value {
        self.engine
            .start_passkey_registration(
                &self.host,
                &self.ctx,
                StartRegistration {
                    user_id: user_id.into(),
                    name: name.into(),
                    password: PASSWORD.into(),
                },
            )
            .unwrap()
            .options
            .parse()
            .unwrap()
    }

    pub fn finish_registration(
        &self,
        user_id: &str,
        credential: &Value,
    ) -> Result<PasskeyRegistered> {
        self.engine.finish_passkey_registration(
            &self.host,
            &self.ctx,
            FinishRegistration {
                user_id: user_id.into(),
                credential: credential.to_string(),
            },
        )
    }

    /// Registers a passkey from `self.auth`.
    pub fn register(&mut self, user_id: &str, name: &str) -> PasskeyRegistered {
        let options = self.start_registration(user_id, name);
        let credential = self
            .auth
            .register(&options, ORIGIN, &Tweaks::default())
            .unwrap();
        self.finish_registration(user_id, &credential).unwrap()
    }

    /// Registers a passkey from a new authenticator, which it answers too.
    pub fn register_other(
        &self,
        user_id: &str,
        name: &str,
        seed: u64,
    ) -> (PasskeyRegistered, Authenticator) {
        let mut other = Authenticator::new(seed);
        let options = self.start_registration(user_id, name);
        let credential = other
            .register(&options, ORIGIN, &Tweaks::default())
            .unwrap();
        (
            self.finish_registration(user_id, &credential).unwrap(),
            other,
        )
    }

    pub fn sign_in(&self, email: &str, password: &str, remember_me: bool) -> Result<SignInOutcome> {
        self.sign_in_as(&self.ctx, email, password, remember_me)
    }

    /// Step one from another client.
    pub fn sign_in_as(
        &self,
        ctx: &Context,
        email: &str,
        password: &str,
        remember_me: bool,
    ) -> Result<SignInOutcome> {
        self.engine.sign_in(
            &self.host,
            ctx,
            SignIn {
                email: email.into(),
                password: password.into(),
                remember_me,
            },
        )
    }

    /// Step one for a user with 2FA on.
    pub fn pending(&self, email: &str) -> SecondFactorRequired {
        match self.sign_in(email, PASSWORD, true).unwrap() {
            SignInOutcome::SecondFactorRequired(p) => p,
            other => panic!("expected a second factor, got {other:?}"),
        }
    }

    pub fn assertion(&mut self, pending: &SecondFactorRequired, tweaks: &Tweaks) -> Value {
        self.auth
            .authenticate(&pending.options.parse().unwrap(), ORIGIN, tweaks)
            .unwrap()
    }

    pub fn passkey_step(&self, token: &str, credential: &Value) -> Result<SignedIn> {
        self.engine.sign_in_with_passkey(
            &self.host,
            &self.ctx,
            PasskeySignIn {
                pending_token: token.into(),
                credential: credential.to_string(),
            },
        )
    }

    pub fn code_step(&self, token: &str, code: &str) -> Result<SignedIn> {
        self.engine.sign_in_with_backup_code(
            &self.host,
            &self.ctx,
            BackupCodeSignIn {
                pending_token: token.into(),
                code: code.into(),
            },
        )
    }

    pub fn status(&self, user_id: &str) -> Status {
        self.engine
            .status(
                &self.host,
                &self.ctx,
                UserRef {
                    user_id: user_id.into(),
                },
            )
            .unwrap()
    }

    pub fn confirm(&self, user_id: &str) -> PasswordConfirmed {
        PasswordConfirmed {
            user_id: user_id.into(),
            password: PASSWORD.into(),
        }
    }

    pub fn events(&self, user_id: &str) -> Vec<AuditEvent> {
        self.engine
            .audit_events(
                &self.host,
                &self.ctx,
                AuditQuery {
                    user_id: user_id.into(),
                    before: None,
                    limit: Some(200),
                },
            )
            .unwrap()
            .events
    }

    /// A user with 2FA on through one passkey; answers (user id, backup codes).
    pub fn user_with_2fa(&mut self, email: &str) -> (String, Vec<String>) {
        let user = self.signup(email);
        let registered = self.register(&user, "Laptop");
        (user, registered.backup_codes.unwrap())
    }

    /// Everything stored, as text, to grep for secrets.
    pub fn storage_text(&self) -> String {
        self.host
            .storage
            .snapshot()
            .iter()
            .map(|(k, r)| format!("{k} {}\n", r.value))
            .collect()
    }
}

pub fn code_of<T: std::fmt::Debug>(r: Result<T>) -> ErrorCode {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code(),
    }
}

/// An audit event's details as a JSON value.
pub fn details(event: &AuditEvent) -> Value {
    serde_json::from_str(&event.details).unwrap()
}

/// The WebAuthn request options of a pending sign-in as a JSON value.
pub fn request_options(pending: &SecondFactorRequired) -> Value {
    serde_json::from_str(&pending.options).unwrap()
}

/// A context from client `client`, with a device token when given.
pub fn client(client: &str, device_token: Option<&str>) -> Context {
    Context {
        ip: client.into(),
        user_agent: "test-agent/1.0".into(),
        client_id: client.into(),
        device_token: device_token.map(str::to_owned),
    }
}

/// The outcome's error as (code, retry-after), or `ok`.
pub fn answer_of<T>(r: &Result<T>) -> (String, Option<u64>) {
    match r {
        Ok(_) => ("ok".into(), None),
        Err(e) => (e.code().as_str().into(), e.retry_after_secs()),
    }
}
