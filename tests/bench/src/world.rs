//! The shared storage and the untimed setup around each timed call: accounts, pending
//! sign-ins, assertions, registrations and backup codes.
//!
//! Setup runs on native engines over the same storage as the targets. Accounts that only need
//! to *start* ceremonies cheaply get a password hashed with cheap argon2 parameters (the
//! `fast` engine), because argon2 verifies with the parameters stored in the hash; anything a
//! timed operation hashes or verifies uses the SPEC defaults (the `spec` engine), so the timed
//! numbers are the realistic ones.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use twofold_core::{
    Config, Context, CreateAccount, Engine, PasskeySignIn, PasswordConfirmed, SignIn,
    SignInOutcome, StartRegistration,
};
use twofold_testkit::TestHost;
use twofold_testkit::authenticator::{Authenticator, Tweaks};

pub use twofold_testkit::ORIGIN;

/// The per-client limits out of the way (S6): the benchmark makes thousands of sign-ups and
/// failed sign-ins from one address, which a real site gets from many clients.
fn unthrottled(config: Config) -> Config {
    Config {
        client_failure_limit: Some(1_000_000),
        client_signup_limit: Some(1_000_000),
        ..config
    }
}

/// The SPEC configuration, argon2 costs included.
pub fn spec_config() -> Config {
    unthrottled(twofold_testkit::spec_config())
}

/// Cheap argon2, for accounts that only start ceremonies.
pub fn fast_config() -> Config {
    unthrottled(twofold_testkit::fast_config())
}

/// The SPEC configuration (argon2id m=19456 KiB t=2 for passwords, m=4096 KiB t=1 for codes)
/// as the C library's configuration JSON.
pub fn spec_config_json() -> String {
    serde_json::to_string(&spec_config()).unwrap_or_default()
}

fn options(text: &str) -> Res<Value> {
    serde_json::from_str(text).map_err(err)
}

pub fn real_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A user of the benchmark and the authenticator that holds their passkeys.
pub struct Account {
    pub email: String,
    pub password: String,
    pub user_id: String,
    pub authenticator: Authenticator,
    /// Unused backup codes known to the benchmark.
    pub codes: Vec<String>,
}

pub struct World {
    pub host: Arc<TestHost>,
    fast: Engine,
    spec: Engine,
    ctx: Context,
    next: u64,
}

type Res<T> = Result<T, String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl World {
    pub fn new() -> Res<World> {
        let host = Arc::new(TestHost::new(7));
        Ok(World {
            host,
            fast: Engine::new(fast_config()).map_err(err)?,
            spec: Engine::new(spec_config()).map_err(err)?,
            ctx: Context::new("198.51.100.1", "twofold-bench setup"),
            next: 0,
        })
    }

    /// The component's clock is the real one; keep the testkit clock on it too, so ceremonies
    /// started natively are live for the component and the other way round.
    pub fn sync_clock(&self) {
        self.host.clock.set_ms(real_now_ms());
    }

    fn seq(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// An email no account has.
    pub fn unknown_email(&mut self) -> String {
        format!("nobody-{}@example.com", self.seq())
    }

    /// A new account; `spec_hash` gives it a password hashed with the SPEC cost (what a timed
    /// sign-in verifies), otherwise a cheap one (for accounts that only start ceremonies).
    pub fn account(&mut self, spec_hash: bool) -> Res<Account> {
        self.sync_clock();
        let n = self.seq();
        let email = format!("user-{n}@example.com");
        let password = format!("correct horse battery {n}");
        let engine = if spec_hash { &self.spec } else { &self.fast };
        let created = engine
            .create_account(
                &*self.host,
                &self.ctx,
                CreateAccount {
                    email: email.clone(),
                    password: password.clone(),
                },
            )
            .map_err(err)?;
        Ok(Account {
            email,
            password,
            user_id: created.user_id,
            authenticator: Authenticator::new(1_000_000 + n),
            codes: Vec::new(),
        })
    }

    /// Starts a passkey registration and has the account's authenticator answer it; answers
    /// the credential JSON for `finish_passkey_registration`. Verifies the password with the
    /// account's own hash parameters.
    pub fn registration(&mut self, account: &mut Account) -> Res<String> {
        self.sync_clock();
        let started = self
            .fast
            .start_passkey_registration(
                &*self.host,
                &self.ctx,
                StartRegistration {
                    user_id: account.user_id.clone(),
                    name: "Laptop".into(),
                    password: account.password.clone(),
                },
            )
            .map_err(err)?;
        let credential = account
            .authenticator
            .register(&options(&started.options)?, ORIGIN, &Tweaks::default())
            .map_err(err)?;
        Ok(credential.to_string())
    }

    /// Gives the account a second authenticator (a second device), so a further registration
    /// is not refused for a credential in `excludeCredentials`.
    pub fn second_device(&mut self, account: &mut Account) {
        account.authenticator = Authenticator::new(2_000_000 + self.seq());
    }

    /// Registers a passkey now (the first turns 2FA on and makes backup codes, kept).
    pub fn add_passkey(&mut self, account: &mut Account) -> Res<()> {
        let credential = self.registration(account)?;
        let done = self
            .fast
            .finish_passkey_registration(
                &*self.host,
                &self.ctx,
                twofold_core::FinishRegistration {
                    user_id: account.user_id.clone(),
                    credential,
                },
            )
            .map_err(err)?;
        if let Some(codes) = done.backup_codes {
            account.codes = codes;
        }
        Ok(())
    }

    /// Replaces the account's backup codes with a set hashed at the SPEC cost.
    pub fn spec_codes(&mut self, account: &mut Account) -> Res<()> {
        self.sync_clock();
        let fresh = self
            .spec
            .regenerate_backup_codes(
                &*self.host,
                &self.ctx,
                PasswordConfirmed {
                    user_id: account.user_id.clone(),
                    password: account.password.clone(),
                },
            )
            .map_err(err)?;
        account.codes = fresh.codes;
        Ok(())
    }

    /// Sign-in step one for a cheap-hash account with 2FA on: the pending token and options.
    pub fn pending(&mut self, account: &Account) -> Res<(String, Value)> {
        self.sync_clock();
        let outcome = self
            .fast
            .sign_in(
                &*self.host,
                &self.ctx,
                SignIn {
                    email: account.email.clone(),
                    password: account.password.clone(),
                    remember_me: false,
                },
            )
            .map_err(err)?;
        match outcome {
            SignInOutcome::SecondFactorRequired(s) => Ok((s.pending_token, options(&s.options)?)),
            _ => Err("expected a second factor to be required".into()),
        }
    }

    /// The account's authenticator answering request options: the assertion JSON.
    pub fn assertion(&mut self, account: &mut Account, options: &Value) -> Res<String> {
        let credential = account
            .authenticator
            .authenticate(options, ORIGIN, &Tweaks::default())
            .map_err(err)?;
        Ok(credential.to_string())
    }

    /// Finishes a pending sign-in with a passkey (untimed clean-up after a timed step one).
    pub fn complete(&mut self, account: &mut Account, token: &str, options: &Value) -> Res<()> {
        let credential = self.assertion(account, options)?;
        self.sync_clock();
        self.fast
            .sign_in_with_passkey(
                &*self.host,
                &self.ctx,
                PasskeySignIn {
                    pending_token: token.to_owned(),
                    credential,
                },
            )
            .map_err(err)?;
        Ok(())
    }
}
