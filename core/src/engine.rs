//! The engine: every operation of SPEC.md. Each operation validates its input, then runs
//! attempts of one transaction (read, decide, write one batch), re-running from a fresh read
//! when the commit conflicts (D2).

use webauthn_rs_core::proto::{Credential, PublicKeyCredential, RegisterPublicKeyCredential};

use crate::audit::{self, details};
use crate::config::Settings;
use crate::docs::{
    CodeSet, CredentialOwnerDoc, EmailDoc, PasskeyDoc, PendingDoc, RegistrationCeremony,
    RegistrationDoc, SCHEMA_VERSION, StoredCode, UserDoc, keys,
};
use crate::error::{Error, Result};
use crate::proto::audit::*;
use crate::proto::model::*;
use crate::secrets::{self, SlowHasher, b64url, sha256_hex};
use crate::txn::Txn;
use crate::webauthn::{AssertionFailure, RelyingParty, parse_credential};
use crate::{Config, HostError};
use crate::{Environment, Host};

/// What one attempt decides: `Err` aborts with nothing written; `Ok(outcome)` commits the
/// attempt's batch, then answers `outcome` (which may itself be an error, such as a wrong
/// password whose failure count was just written).
type Attempt<T> = Result<Result<T>>;

/// Pending sign-ins one user may have at once; step one drops the oldest beyond it.
const MAX_PENDING_PER_USER: usize = 16;

/// Slow results kept across the attempts of one operation, so a conflict retry does not pay
/// for argon2 again (B5: one slow hash per code check).
#[derive(Default)]
struct Memo {
    password: Option<(String, bool)>,
    code: Option<(String, [u8; 32])>,
    fresh_codes: Option<(Vec<String>, CodeSet)>,
}

/// A configured engine. Cheap to share: it is `Send + Sync` and holds no per-user state.
pub struct Engine {
    config: Config,
    settings: Settings,
    rp: RelyingParty,
    hasher: SlowHasher,
    dummy_hash: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine for one relying party. Refuses a configuration that fails
    /// the checks of its fields' documentation (`invalid_input` names the field).
    pub fn new(config: Config) -> Result<Engine> {
        let settings = Settings::from_config(&config)?;
        let rp = RelyingParty::new(&settings)?;
        let dummy_hash = secrets::dummy_password_hash(settings.password_hash);
        Ok(Engine {
            config,
            settings,
            rp,
            hasher: SlowHasher::default(),
            dummy_hash,
        })
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How many slow hashes (argon2id) this engine has computed; tests use it to prove B5.
    pub fn slow_hash_count(&self) -> u64 {
        self.hasher.count()
    }

    /// Creates an account (A1, A2). Answers `already_exists` for an email in use.
    #[must_use = "the outcome says what changed"]
    pub fn create_account(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: CreateAccount,
    ) -> Result<AccountCreated> {
        check_context(ctx)?;
        let (email, email_key) = normalise_email(&req.email)?;
        check_password_length(&req.password)?;
        let password =
            self.hasher
                .hash_password(self.settings.password_hash, &req.password, host)?;
        let user_id = b64url(&secrets::random::<16>(host)?);
        let user_handle = b64url(&secrets::random::<16>(host)?);
        self.run(host, |txn| {
            let now = host.now_ms()?;
            if txn.get::<EmailDoc>(&email_key)?.is_some() {
                return Ok(Err(Error::AlreadyExists(
                    "an account for this email".into(),
                )));
            }
            let mut user = UserDoc {
                v: SCHEMA_VERSION,
                id: user_id.clone(),
                email: email.clone(),
                password: password.clone(),
                user_handle: user_handle.clone(),
                created_at: now,
                two_factor: false,
                epoch: 1,
                failures: 0,
                locked_until: None,
                backup_codes: None,
                audit_seq: 0,
                audit_hash: String::new(),
            };
            txn.put_new(
                &email_key,
                &EmailDoc {
                    v: SCHEMA_VERSION,
                    user_id: user_id.clone(),
                },
            )?;
            audit::append(
                txn,
                &mut user,
                ctx,
                now,
                EventKind::AccountCreated,
                details!(),
            )?;
            txn.put_new(&keys::user(&user_id), &user)?;
            Ok(Ok(AccountCreated {
                user_id: user_id.clone(),
                email: email.clone(),
            }))
        })
    }

    /// Sign-in step one (S1, S2, A2, A3, S6).
    #[must_use = "the outcome says whether a second factor is needed"]
    pub fn sign_in(&self, host: &dyn Host, ctx: &Context, req: SignIn) -> Result<SignInOutcome> {
        check_context(ctx)?;
        let (_, email_key) = normalise_email(&req.email)?;
        check_password_length(&req.password)?;
        let mut memo = Memo::default();
        self.run(host, |txn| {
            let now = host.now_ms()?;
            let Some(owner) = txn.get::<EmailDoc>(&email_key)? else {
                // Same cost as a wrong password (A3).
                self.verify_password(&mut memo, &self.dummy_hash, &req.password)?;
                return Ok(Err(Error::InvalidCredentials));
            };
            let user_key = keys::user(&owner.user_id);
            let mut user = load_user(txn, &owner.user_id)?;
            if let Err(e) = self.check_lock(&user, now) {
                return Ok(Err(e));
            }
            if !self.verify_password(&mut memo, &user.password, &req.password)? {
                let step = details!("step" => "sign_in");
                self.record_failure(txn, &mut user, ctx, now, EventKind::PasswordFailed, step)?;
                txn.put(&user_key, &user)?;
                return Ok(Err(Error::InvalidCredentials));
            }
            if secrets::needs_rehash(&user.password, self.settings.password_hash) {
                user.password =
                    self.hasher
                        .hash_password(self.settings.password_hash, &req.password, host)?;
            }
            audit::append(txn, &mut user, ctx, now, EventKind::PasswordOk, details!())?;
            if !user.two_factor {
                // With 2FA off the password completes sign-in, so it resets the count (S6).
                user.failures = 0;
                txn.put(&user_key, &user)?;
                return Ok(Ok(SignInOutcome::SignedIn(SignedIn {
                    user_id: user.id.clone(),
                    remember_me: req.remember_me,
                    security_epoch: user.epoch,
                    device_token: String::new(),
                    backup_codes_remaining: None,
                    backup_codes_running_low: None,
                })));
            }
            let credentials = passkeys_of(txn, &user.id)?
                .into_iter()
                .map(|p| p.credential)
                .collect();
            let (options, state) = self.rp.start_authentication(host, credentials)?;
            self.sweep_pending(txn, &user.id, now)?;
            let token = format!("{}.{}", user.id, secrets::new_token(host)?);
            let pending = PendingDoc {
                v: SCHEMA_VERSION,
                user_id: user.id.clone(),
                expires_at: now + self.settings.pending_sign_in_ttl_secs * 1000,
                failures: 0,
                state,
            };
            txn.put_new(&pending_key(&token)?, &pending)?;
            audit::append(
                txn,
                &mut user,
                ctx,
                now,
                EventKind::SecondFactorRequired,
                details!(),
            )?;
            txn.put(&user_key, &user)?;
            Ok(Ok(SignInOutcome::SecondFactorRequired(
                SecondFactorRequired {
                    pending_token: token,
                    options,
                },
            )))
        })
    }

    /// Sign-in step two with a passkey (S3, S5, S6, P6, P7).
    #[must_use = "the outcome names the signed-in user"]
    pub fn sign_in_with_passkey(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: PasskeySignIn,
    ) -> Result<SignedIn> {
        check_context(ctx)?;
        let pending_key = pending_key(&req.pending_token)?;
        let assertion: PublicKeyCredential = parse_credential(&req.credential)?;
        if assertion.type_ != "public-key" {
            return Err(Error::invalid("credential type is not public-key"));
        }
        let passkey_id = b64url(&assertion.raw_id);
        self.run(host, |txn| {
            let now = host.now_ms()?;
            let (mut pending, mut user) = match self.load_pending(txn, &pending_key, now)? {
                Ok(found) => found,
                Err(e) => return Ok(Err(e)),
            };
            let user_key = keys::user(&user.id);
            let passkey_key = keys::passkey(&user.id, &sha256_hex(passkey_id.as_bytes()));
            let stored = txn.get::<PasskeyDoc>(&passkey_key)?;
            let verdict = match &stored {
                None => Err(AssertionFailure::Invalid("the credential is not one of this user's passkeys".into())),
                Some(doc) => self.rp.finish_authentication(&assertion, &pending.state, &doc.credential),
            };
            match (verdict, stored) {
                (Ok(result), Some(mut doc)) => {
                    doc.credential.counter = result.counter();
                    doc.credential.backup_eligible = result.backup_eligible();
                    doc.credential.backup_state = result.backup_state();
                    doc.last_used_at = Some(now);
                    txn.put(&passkey_key, &doc)?;
                    txn.delete(&pending_key)?;
                    user.failures = 0;
                    let d = details!("passkey_id" => passkey_id, "counter" => result.counter(), "backed_up" => result.backup_state());
                    audit::append(txn, &mut user, ctx, now, EventKind::PasskeyOk, d)?;
                    txn.put(&user_key, &user)?;
                    Ok(Ok(SignedIn {
                        user_id: user.id.clone(),
                        remember_me: false,
                        security_epoch: user.epoch,
                        device_token: String::new(),
                        backup_codes_remaining: None,
                        backup_codes_running_low: None,
                    }))
                }
                (verdict, _) => {
                    let (reason, message) = match verdict {
                        Err(AssertionFailure::CounterRegression) => (
                            "possible_cloned_authenticator",
                            "the signature counter did not increase: possibly a cloned authenticator".to_string(),
                        ),
                        Err(AssertionFailure::Invalid(m)) => ("invalid_assertion", m),
                        Ok(_) => ("unknown_credential", "the credential is not one of this user's passkeys".into()),
                    };
                    self.fail_pending(txn, &pending_key, &mut pending)?;
                    let d = details!("passkey_id" => passkey_id, "reason" => reason);
                    self.record_failure(txn, &mut user, ctx, now, EventKind::PasskeyFailed, d)?;
                    txn.put(&user_key, &user)?;
                    Ok(Err(Error::InvalidPasskey(message)))
                }
            }
        })
    }

    /// Sign-in step two with a backup code (S4, S5, S6, B3, B5, B6).
    #[must_use = "the outcome names the signed-in user and the codes left"]
    pub fn sign_in_with_backup_code(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: BackupCodeSignIn,
    ) -> Result<SignedIn> {
        check_context(ctx)?;
        let pending_key = pending_key(&req.pending_token)?;
        if req.code.len() > 64 {
            return Err(Error::invalid("a backup code is at most 64 characters"));
        }
        let code = secrets::normalise_code(&req.code);
        let mut memo = Memo::default();
        self.run(host, |txn| {
            let now = host.now_ms()?;
            let (mut pending, mut user) = match self.load_pending(txn, &pending_key, now)? {
                Ok(found) => found,
                Err(e) => return Ok(Err(e)),
            };
            let user_key = keys::user(&user.id);
            let matched = match (
                &code,
                user.backup_codes.as_ref().filter(|_| user.two_factor),
            ) {
                (Some(code), Some(set)) => self.match_code(&mut memo, set, code)?,
                _ => None,
            };
            match (matched, user.backup_codes.clone()) {
                (Some(index), Some(mut set)) => {
                    if let Some(slot) = set.codes.get_mut(index) {
                        slot.used = true;
                    }
                    let remaining = set.remaining();
                    user.backup_codes = Some(set);
                    txn.delete(&pending_key)?;
                    user.failures = 0;
                    let d = details!("remaining" => remaining);
                    audit::append(txn, &mut user, ctx, now, EventKind::BackupCodeOk, d)?;
                    txn.put(&user_key, &user)?;
                    Ok(Ok(SignedIn {
                        user_id: user.id.clone(),
                        remember_me: false,
                        security_epoch: user.epoch,
                        device_token: String::new(),
                        backup_codes_remaining: Some(remaining),
                        backup_codes_running_low: Some(self.running_low(remaining)),
                    }))
                }
                _ => {
                    self.fail_pending(txn, &pending_key, &mut pending)?;
                    self.record_failure(
                        txn,
                        &mut user,
                        ctx,
                        now,
                        EventKind::BackupCodeFailed,
                        details!(),
                    )?;
                    txn.put(&user_key, &user)?;
                    Ok(Err(Error::InvalidBackupCode))
                }
            }
        })
    }

    /// Starts registering a passkey (P1).
    #[must_use = "the options go to navigator.credentials.create"]
    pub fn start_passkey_registration(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: StartRegistration,
    ) -> Result<RegistrationStarted> {
        check_context(ctx)?;
        check_user_id(&req.user_id)?;
        let name = check_passkey_name(&req.name)?;
        check_password_length(&req.password)?;
        let mut memo = Memo::default();
        self.run(host, |txn| {
            let now = host.now_ms()?;
            let mut user = load_user(txn, &req.user_id)?;
            if let Err(e) = self.confirm_password(
                txn,
                &mut user,
                ctx,
                now,
                &req.password,
                &mut memo,
                "register_passkey",
            )? {
                return Ok(Err(e));
            }
            let exclude = passkeys_of(txn, &user.id)?
                .into_iter()
                .map(|p| p.credential.cred_id)
                .collect();
            let handle = secrets::decode_b64url(&user.user_handle)?;
            let (options, state) =
                self.rp
                    .start_registration(host, &handle, &user.email, exclude)?;
            let reg_key = keys::registration(&user.id);
            let ceremony = Some(RegistrationCeremony {
                name: name.clone(),
                expires_at: now + self.settings.registration_ttl_secs * 1000,
                state,
            });
            let doc = RegistrationDoc {
                v: SCHEMA_VERSION,
                ceremony,
            };
            match txn.get::<RegistrationDoc>(&reg_key)? {
                Some(_) => txn.put(&reg_key, &doc)?,
                None => txn.put_new(&reg_key, &doc)?,
            }
            txn.put(&keys::user(&user.id), &user)?;
            Ok(Ok(RegistrationStarted { options }))
        })
    }

    /// Finishes registering a passkey (P2, P3). The ceremony is single use: any answer but
    /// `invalid_input` ends it.
    #[must_use = "the outcome may carry the only copy of new backup codes"]
    pub fn finish_passkey_registration(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: FinishRegistration,
    ) -> Result<PasskeyRegistered> {
        check_context(ctx)?;
        check_user_id(&req.user_id)?;
        let response: RegisterPublicKeyCredential = parse_credential(&req.credential)?;
        let mut memo = Memo::default();
        self.run(host, |txn| {
            let now = host.now_ms()?;
            let mut user = load_user(txn, &req.user_id)?;
            let reg_key = keys::registration(&user.id);
            let Some(RegistrationDoc {
                ceremony: Some(ceremony),
                ..
            }) = txn.get::<RegistrationDoc>(&reg_key)?
            else {
                return Ok(Err(Error::Expired(
                    "no passkey registration is in progress; start again".into(),
                )));
            };
            txn.put(
                &reg_key,
                &RegistrationDoc {
                    v: SCHEMA_VERSION,
                    ceremony: None,
                },
            )?;
            if now >= ceremony.expires_at {
                return Ok(Err(Error::Expired(
                    "the passkey registration expired; start again".into(),
                )));
            }
            // The id the browser names is checked before verification too: the verifier
            // refuses the user's own ids (excludeCredentials) with a vaguer error.
            let claimed = sha256_hex(b64url(&response.raw_id).as_bytes());
            if txn
                .get::<CredentialOwnerDoc>(&keys::credential_owner(&claimed))?
                .is_some()
            {
                return Ok(Err(Error::AlreadyExists(
                    "this passkey is registered already".into(),
                )));
            }
            let credential = match self.rp.finish_registration(&response, &ceremony.state) {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            };
            let passkey_id = b64url(&credential.cred_id);
            let id_hash = sha256_hex(passkey_id.as_bytes());
            let owner_key = keys::credential_owner(&id_hash);
            if txn.get::<CredentialOwnerDoc>(&owner_key)?.is_some() {
                return Ok(Err(Error::AlreadyExists(
                    "this passkey is registered already".into(),
                )));
            }
            let first = passkeys_of(txn, &user.id)?.is_empty();
            txn.put_new(
                &owner_key,
                &CredentialOwnerDoc {
                    v: SCHEMA_VERSION,
                    user_id: user.id.clone(),
                },
            )?;
            let doc = PasskeyDoc {
                v: SCHEMA_VERSION,
                name: ceremony.name.clone(),
                created_at: now,
                last_used_at: None,
                credential,
            };
            txn.put_new(&keys::passkey(&user.id, &id_hash), &doc)?;
            let d = details!("passkey_id" => passkey_id, "name" => ceremony.name);
            audit::append(txn, &mut user, ctx, now, EventKind::PasskeyRegistered, d)?;
            let mut backup_codes = None;
            if first && !user.two_factor {
                // P3: the first passkey turns 2FA on and makes the first code set.
                let codes =
                    self.install_fresh_codes(txn, &mut user, ctx, now, &mut memo, "first_passkey")?;
                user.two_factor = true;
                audit::append(
                    txn,
                    &mut user,
                    ctx,
                    now,
                    EventKind::TwoFactorEnabled,
                    details!("reason" => "first_passkey"),
                )?;
                backup_codes = Some(codes);
            }
            let remaining = self.codes_remaining(&user);
            txn.put(&keys::user(&user.id), &user)?;
            Ok(Ok(PasskeyRegistered {
                passkey: to_passkey(&doc),
                two_factor_enabled: user.two_factor,
                backup_codes,
                backup_codes_remaining: remaining,
                backup_codes_running_low: user.two_factor && self.running_low(remaining),
            }))
        })
    }

    /// The user's passkeys, oldest first (P4).
    pub fn list_passkeys(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: UserRef,
    ) -> Result<PasskeyList> {
        Ok(PasskeyList {
            passkeys: self.status(host, ctx, req)?.passkeys,
        })
    }

    /// Renames a passkey (P4).
    #[must_use = "the outcome is the renamed passkey"]
    pub fn rename_passkey(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: RenamePasskey,
    ) -> Result<Passkey> {
        check_context(ctx)?;
        check_user_id(&req.user_id)?;
        let name = check_passkey_name(&req.name)?;
        let passkey_key = keys::passkey(&req.user_id, &sha256_hex(req.passkey_id.as_bytes()));
        self.run(host, |txn| {
            let now = host.now_ms()?;
            let mut user = load_user(txn, &req.user_id)?;
            let Some(mut doc) = txn.get::<PasskeyDoc>(&passkey_key)? else {
                return Ok(Err(Error::NotFound("passkey".into())));
            };
            let d =
                details!("passkey_id" => req.passkey_id, "old_name" => doc.name, "name" => name);
            doc.name = name.clone();
            txn.put(&passkey_key, &doc)?;
            audit::append(txn, &mut user, ctx, now, EventKind::PasskeyRenamed, d)?;
            txn.put(&keys::user(&user.id), &user)?;
            Ok(Ok(to_passkey(&doc)))
        })
    }

    /// Removes a passkey (P4); removing the last one turns 2FA off and voids the codes (P5).
    #[must_use = "the outcome is the new two-factor status"]
    pub fn remove_passkey(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: RemovePasskey,
    ) -> Result<Status> {
        check_context(ctx)?;
        check_user_id(&req.user_id)?;
        check_password_length(&req.password)?;
        let id_hash = sha256_hex(req.passkey_id.as_bytes());
        let passkey_key = keys::passkey(&req.user_id, &id_hash);
        let owner_key = keys::credential_owner(&id_hash);
        let mut memo = Memo::default();
        self.run(host, |txn| {
            let now = host.now_ms()?;
            let mut user = load_user(txn, &req.user_id)?;
            if txn.get::<PasskeyDoc>(&passkey_key)?.is_none() {
                return Ok(Err(Error::NotFound("passkey".into())));
            }
            if let Err(e) = self.confirm_password(
                txn,
                &mut user,
                ctx,
                now,
                &req.password,
                &mut memo,
                "remove_passkey",
            )? {
                return Ok(Err(e));
            }
            txn.delete(&passkey_key)?;
            if txn.get::<CredentialOwnerDoc>(&owner_key)?.is_some() {
                txn.delete(&owner_key)?;
            }
            audit::append(
                txn,
                &mut user,
                ctx,
                now,
                EventKind::PasskeyRemoved,
                details!("passkey_id" => req.passkey_id),
            )?;
            let left: Vec<PasskeyDoc> = passkeys_of(txn, &user.id)?
                .into_iter()
                .filter(|p| b64url(&p.credential.cred_id) != req.passkey_id)
                .collect();
            if left.is_empty() {
                user.backup_codes = None;
                if user.two_factor {
                    user.two_factor = false;
                    let d = details!("reason" => "last_passkey_removed");
                    audit::append(txn, &mut user, ctx, now, EventKind::TwoFactorDisabled, d)?;
                }
            }
            txn.put(&keys::user(&user.id), &user)?;
            Ok(Ok(self.status_of(&user, &left)))
        })
    }

    /// Turns 2FA on (T1): needs the password and a passkey; answers a fresh code set.
    #[must_use = "the outcome is the only copy of the new backup codes"]
    pub fn enable_two_factor(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: PasswordConfirmed,
    ) -> Result<BackupCodes> {
        self.with_password(
            host,
            ctx,
            &req,
            "enable_two_factor",
            |txn, user| {
                if user.two_factor {
                    return Ok(Err(Error::AlreadyEnabled));
                }
                if passkeys_of(txn, &user.id)?.is_empty() {
                    return Ok(Err(Error::NoPasskey));
                }
                Ok(Ok(()))
            },
            |txn, user, now, memo| {
                let codes = self.install_fresh_codes(txn, user, ctx, now, memo, "enabled")?;
                user.two_factor = true;
                audit::append(
                    txn,
                    user,
                    ctx,
                    now,
                    EventKind::TwoFactorEnabled,
                    details!("reason" => "user"),
                )?;
                Ok(BackupCodes {
                    codes,
                    security_epoch: user.epoch,
                })
            },
        )
    }

    /// Turns 2FA off (T2): passkeys stay, backup codes are voided.
    #[must_use = "the outcome is the new two-factor status"]
    pub fn disable_two_factor(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: PasswordConfirmed,
    ) -> Result<Status> {
        self.with_password(
            host,
            ctx,
            &req,
            "disable_two_factor",
            two_factor_on,
            |txn, user, now, _memo| {
                user.two_factor = false;
                user.backup_codes = None;
                audit::append(
                    txn,
                    user,
                    ctx,
                    now,
                    EventKind::TwoFactorDisabled,
                    details!("reason" => "user"),
                )?;
                Ok(self.status_of(user, &passkeys_of(txn, &user.id)?))
            },
        )
    }

    /// Replaces the backup codes (B4): the old set is void in the same commit.
    #[must_use = "the outcome is the only copy of the new backup codes"]
    pub fn regenerate_backup_codes(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: PasswordConfirmed,
    ) -> Result<BackupCodes> {
        self.with_password(
            host,
            ctx,
            &req,
            "regenerate_backup_codes",
            two_factor_on,
            |txn, user, now, memo| {
                let codes = self.install_fresh_codes(txn, user, ctx, now, memo, "regenerated")?;
                Ok(BackupCodes {
                    codes,
                    security_epoch: user.epoch,
                })
            },
        )
    }

    /// The user's two-factor state (T3).
    pub fn status(&self, host: &dyn Host, ctx: &Context, req: UserRef) -> Result<Status> {
        check_context(ctx)?;
        check_user_id(&req.user_id)?;
        let mut txn = Txn::new(host);
        let user = load_user(&mut txn, &req.user_id)?;
        let passkeys = passkeys_of(&mut txn, &user.id)?;
        Ok(self.status_of(&user, &passkeys))
    }

    /// A page of the user's audit events, newest first (L2).
    pub fn audit_events(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: AuditQuery,
    ) -> Result<AuditPage> {
        check_context(ctx)?;
        check_user_id(&req.user_id)?;
        let limit = req.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(Error::invalid("limit must be between 1 and 200"));
        }
        let mut txn = Txn::new(host);
        load_user(&mut txn, &req.user_id)?;
        let after = req.before.map(|seq| keys::event(&req.user_id, seq));
        let page = txn.scan::<crate::docs::EventDoc>(
            &keys::events(&req.user_id),
            after.as_deref(),
            limit,
        )?;
        let full = page.len() == limit as usize;
        let events = page
            .into_iter()
            .map(|(_, e)| audit::to_public(e))
            .collect::<Result<Vec<AuditEvent>>>()?;
        let next_before = events.last().filter(|e| full && e.seq > 1).map(|e| e.seq);
        Ok(AuditPage {
            events,
            next_before,
        })
    }

    /// Verifies the user's audit hash chain (L3).
    pub fn verify_audit_chain(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: VerifyAudit,
    ) -> Result<ChainReport> {
        check_context(ctx)?;
        check_user_id(&req.user_id)?;
        let mut txn = Txn::new(host);
        let user = load_user(&mut txn, &req.user_id)?;
        audit::verify_chain(host, &user)
    }

    /// Changes a signed-in user's password (A4).
    pub fn change_password(
        &self,
        _host: &dyn Host,
        _ctx: &Context,
        _req: ChangePassword,
    ) -> Result<PasswordChanged> {
        Err(Error::internal("change_password: not built yet"))
    }

    /// Resets a password after the host's own proof of email ownership (A5).
    pub fn reset_password(
        &self,
        _host: &dyn Host,
        _ctx: &Context,
        _req: ResetPassword,
    ) -> Result<PasswordChanged> {
        Err(Error::internal("reset_password: not built yet"))
    }

    /// The newest event of a user's chain (L3).
    pub fn audit_anchor(
        &self,
        _host: &dyn Host,
        _ctx: &Context,
        _req: UserRef,
    ) -> Result<AuditAnchor> {
        Err(Error::internal("audit_anchor: not built yet"))
    }

    /// Prunes old audit events (L5).
    pub fn prune_audit_events(
        &self,
        _host: &dyn Host,
        _ctx: &Context,
        _req: PruneAudit,
    ) -> Result<AuditPruned> {
        Err(Error::internal("prune_audit_events: not built yet"))
    }

    // ----- the machinery shared by the operations -----

    /// Runs attempts until one commits, a hard error stops them, or the retries run out.
    fn run<T>(
        &self,
        host: &dyn Host,
        mut attempt: impl FnMut(&mut Txn<'_>) -> Attempt<T>,
    ) -> Result<T> {
        for _ in 0..=self.settings.max_conflict_retries {
            let mut txn = Txn::new(host);
            let outcome = attempt(&mut txn)?;
            let writes = txn.into_writes();
            if writes.is_empty() {
                return outcome;
            }
            match host.commit(&writes) {
                Ok(()) => return outcome,
                Err(HostError::Conflict) => continue,
                Err(e) => return Err(Error::Storage(e)),
            }
        }
        Err(Error::Conflict)
    }

    /// The shape of T1, T2 and B4: load the user; refuse a wrong state (`precheck`, no
    /// password spent and nothing written); confirm the password; run `change` on the user
    /// and write it.
    fn with_password<T>(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: &PasswordConfirmed,
        step: &str,
        precheck: impl Fn(&mut Txn<'_>, &UserDoc) -> Attempt<()>,
        mut change: impl FnMut(&mut Txn<'_>, &mut UserDoc, u64, &mut Memo) -> Result<T>,
    ) -> Result<T> {
        check_context(ctx)?;
        check_user_id(&req.user_id)?;
        check_password_length(&req.password)?;
        let mut memo = Memo::default();
        self.run(host, |txn| {
            let now = host.now_ms()?;
            let mut user = load_user(txn, &req.user_id)?;
            if let Err(e) = precheck(txn, &user)? {
                return Ok(Err(e));
            }
            if let Err(e) =
                self.confirm_password(txn, &mut user, ctx, now, &req.password, &mut memo, step)?
            {
                return Ok(Err(e));
            }
            let outcome = change(txn, &mut user, now, &mut memo)?;
            txn.put(&keys::user(&user.id), &user)?;
            Ok(Ok(outcome))
        })
    }

    fn verify_password(&self, memo: &mut Memo, phc: &str, password: &str) -> Result<bool> {
        if let Some((seen, ok)) = &memo.password
            && seen == phc
        {
            return Ok(*ok);
        }
        let ok = self.hasher.verify_password(phc, password)?;
        memo.password = Some((phc.to_owned(), ok));
        Ok(ok)
    }

    /// Refuses a locked account (S6) without looking at the password.
    fn check_lock(&self, user: &UserDoc, now: u64) -> Result<()> {
        match user.locked_until {
            Some(until) if until > now => Err(Error::RateLimited {
                retry_after_secs: (until - now).div_ceil(1000),
            }),
            _ => Ok(()),
        }
    }

    /// Confirms the current password of a signed-in user. On a wrong password the failure is
    /// counted and the user written; the inner error is the answer.
    #[allow(clippy::too_many_arguments)]
    fn confirm_password(
        &self,
        txn: &mut Txn<'_>,
        user: &mut UserDoc,
        ctx: &Context,
        now: u64,
        password: &str,
        memo: &mut Memo,
        step: &str,
    ) -> Attempt<()> {
        if let Err(e) = self.check_lock(user, now) {
            return Ok(Err(e));
        }
        if self.verify_password(memo, &user.password, password)? {
            user.failures = 0;
            audit::append(
                txn,
                user,
                ctx,
                now,
                EventKind::PasswordOk,
                details!("step" => step),
            )?;
            return Ok(Ok(()));
        }
        self.record_failure(
            txn,
            user,
            ctx,
            now,
            EventKind::PasswordFailed,
            details!("step" => step),
        )?;
        txn.put(&keys::user(&user.id), user)?;
        Ok(Err(Error::InvalidCredentials))
    }

    /// Counts a failed attempt, audits it, and locks the account at the threshold (S6).
    fn record_failure(
        &self,
        txn: &mut Txn<'_>,
        user: &mut UserDoc,
        ctx: &Context,
        now: u64,
        kind: EventKind,
        details: serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        user.failures += 1;
        audit::append(txn, user, ctx, now, kind, details)?;
        if user.failures >= 10 {
            let until = now + 900 * 1000;
            user.failures = 0;
            user.locked_until = Some(until);
            audit::append(
                txn,
                user,
                ctx,
                now,
                EventKind::Throttled,
                details!("until" => until),
            )?;
        }
        Ok(())
    }

    /// The pending sign-in for a token, if it is still usable (S5), and its user.
    fn load_pending(
        &self,
        txn: &mut Txn<'_>,
        key: &str,
        now: u64,
    ) -> Attempt<(PendingDoc, UserDoc)> {
        let gone =
            || Error::Expired("this sign-in attempt is no longer valid; sign in again".into());
        let Some(pending) = txn.get::<PendingDoc>(key)? else {
            return Ok(Err(gone()));
        };
        if now >= pending.expires_at {
            txn.delete(key)?;
            return Ok(Err(gone()));
        }
        let user = load_user(txn, &pending.user_id)?;
        if let Err(e) = self.check_lock(&user, now) {
            return Ok(Err(e));
        }
        Ok(Ok((pending, user)))
    }

    /// Deletes the user's expired pending sign-ins, and the oldest live ones beyond
    /// [`MAX_PENDING_PER_USER`] - 1, so abandoned sign-ins do not pile up in storage.
    fn sweep_pending(&self, txn: &mut Txn<'_>, user_id: &str, now: u64) -> Result<()> {
        let mut live = Vec::new();
        for (key, doc) in txn.scan_all::<PendingDoc>(&keys::pending_of(user_id))? {
            if now >= doc.expires_at {
                txn.delete(&key)?;
            } else {
                live.push((doc.expires_at, key));
            }
        }
        live.sort();
        let excess = live.len().saturating_sub(MAX_PENDING_PER_USER - 1);
        for (_, key) in live.into_iter().take(excess) {
            txn.delete(&key)?;
        }
        Ok(())
    }

    /// Counts a failed second-factor attempt against the pending sign-in; voids it at the limit.
    fn fail_pending(&self, txn: &mut Txn<'_>, key: &str, pending: &mut PendingDoc) -> Result<()> {
        pending.failures += 1;
        if pending.failures >= self.settings.max_second_factor_attempts {
            txn.delete(key)
        } else {
            txn.put(key, pending)
        }
    }

    /// The index of the unused code matching `code`: one slow hash, then constant-time
    /// comparisons against every code of the set (B5).
    fn match_code(&self, memo: &mut Memo, set: &CodeSet, code: &str) -> Result<Option<usize>> {
        let hash = match &memo.code {
            Some((salt, hash)) if *salt == set.salt => *hash,
            _ => {
                let salt = secrets::decode_b64url(&set.salt)?;
                let hash = self.hasher.hash_code(set.hash_params, &salt, code)?;
                memo.code = Some((set.salt.clone(), hash));
                hash
            }
        };
        let mut found = None;
        for (i, stored) in set.codes.iter().enumerate() {
            let stored_hash = secrets::decode_b64url(&stored.hash)?;
            if secrets::ct_eq(&stored_hash, &hash) && !stored.used && found.is_none() {
                found = Some(i);
            }
        }
        Ok(found)
    }

    /// Makes a new code set (once per operation, whatever the retries), installs it on the
    /// user in place of the old one, audits it, and answers the plaintext codes.
    fn install_fresh_codes(
        &self,
        txn: &mut Txn<'_>,
        user: &mut UserDoc,
        ctx: &Context,
        now: u64,
        memo: &mut Memo,
        reason: &str,
    ) -> Result<Vec<String>> {
        let (codes, set) = match memo.fresh_codes.take() {
            Some(made) => made,
            None => self.make_code_set(txn.host(), now)?,
        };
        memo.fresh_codes = Some((codes.clone(), set.clone()));
        user.backup_codes = Some(set);
        let d = details!("count" => codes.len(), "reason" => reason);
        audit::append(txn, user, ctx, now, EventKind::BackupCodesGenerated, d)?;
        Ok(codes)
    }

    fn make_code_set(&self, env: &dyn Environment, now: u64) -> Result<(Vec<String>, CodeSet)> {
        let codes = secrets::generate_codes(env, self.settings.backup_code_count)?;
        let salt = secrets::random::<16>(env)?;
        let params = self.settings.backup_code_hash;
        let mut stored = Vec::with_capacity(codes.len());
        for code in &codes {
            let normalised = secrets::normalise_code(code)
                .ok_or_else(|| Error::internal("generated code does not normalise"))?;
            let hash = self.hasher.hash_code(params, &salt, &normalised)?;
            stored.push(StoredCode {
                hash: b64url(&hash),
                used: false,
            });
        }
        Ok((
            codes,
            CodeSet {
                hash_params: params,
                salt: b64url(&salt),
                created_at: now,
                codes: stored,
            },
        ))
    }

    fn codes_remaining(&self, user: &UserDoc) -> u32 {
        match (&user.backup_codes, user.two_factor) {
            (Some(set), true) => set.remaining(),
            _ => 0,
        }
    }

    fn running_low(&self, remaining: u32) -> bool {
        remaining <= self.settings.backup_code_low_watermark
    }

    fn status_of(&self, user: &UserDoc, passkeys: &[PasskeyDoc]) -> Status {
        let remaining = self.codes_remaining(user);
        Status {
            user_id: user.id.clone(),
            email: user.email.clone(),
            two_factor_enabled: user.two_factor,
            passkeys: passkeys.iter().map(to_passkey).collect(),
            backup_codes_remaining: remaining,
            backup_codes_running_low: user.two_factor && self.running_low(remaining),
            security_epoch: user.epoch,
        }
    }
}

fn two_factor_on(_: &mut Txn<'_>, user: &UserDoc) -> Attempt<()> {
    Ok(if user.two_factor {
        Ok(())
    } else {
        Err(Error::NotEnabled)
    })
}

fn load_user(txn: &mut Txn<'_>, user_id: &str) -> Result<UserDoc> {
    txn.get::<UserDoc>(&keys::user(user_id))?
        .ok_or_else(|| Error::NotFound("user".into()))
}

/// The user's passkeys, oldest first.
fn passkeys_of(txn: &mut Txn<'_>, user_id: &str) -> Result<Vec<PasskeyDoc>> {
    let mut docs: Vec<PasskeyDoc> = txn
        .scan_all::<PasskeyDoc>(&keys::passkeys(user_id))?
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    docs.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.credential.cred_id.cmp(&b.credential.cred_id))
    });
    Ok(docs)
}

fn to_passkey(doc: &PasskeyDoc) -> Passkey {
    let c: &Credential = &doc.credential;
    let transports = c
        .transports
        .iter()
        .flatten()
        .filter_map(|t| serde_json::to_value(t).ok())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    Passkey {
        id: b64url(&c.cred_id),
        name: doc.name.clone(),
        created_at: doc.created_at,
        last_used_at: doc.last_used_at,
        backup_eligible: c.backup_eligible,
        backed_up: c.backup_state,
        transports,
    }
}

/// Where a pending sign-in lives. The token is `<user id>.<256 random bits>`; only its hash
/// is stored (S2).
fn pending_key(token: &str) -> Result<String> {
    let malformed = || Error::invalid("pending_token is not a token this engine issued");
    if token.len() > 160 {
        return Err(malformed());
    }
    let (user_id, _) = token.split_once('.').ok_or_else(malformed)?;
    check_user_id(user_id).map_err(|_| malformed())?;
    Ok(keys::pending(user_id, &sha256_hex(token.as_bytes())))
}

fn check_context(ctx: &Context) -> Result<()> {
    if ctx.ip.len() > 256 || ctx.user_agent.len() > 1024 {
        return Err(Error::invalid(
            "context: ip is at most 256 bytes, user_agent at most 1024",
        ));
    }
    Ok(())
}

fn check_user_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("user_id is malformed"))
    }
}

/// A1: 8 to 1024 bytes, nothing else.
fn check_password_length(password: &str) -> Result<()> {
    if (8..=1024).contains(&password.len()) {
        Ok(())
    } else {
        Err(Error::invalid("a password is 8 to 1024 bytes"))
    }
}

/// P1: 1 to 64 characters after trimming, no control characters.
fn check_passkey_name(name: &str) -> Result<String> {
    let name = name.trim();
    let chars = name.chars().count();
    if (1..=64).contains(&chars) && !name.chars().any(char::is_control) {
        Ok(name.to_owned())
    } else {
        Err(Error::invalid("a passkey name is 1 to 64 characters"))
    }
}

/// A1: the email as stored (trimmed) and the key of its owner document (case-insensitive).
fn normalise_email(email: &str) -> Result<(String, String)> {
    let trimmed = email.trim();
    let valid = (3..=254).contains(&trimmed.len())
        && !trimmed.chars().any(|c| c.is_whitespace() || c.is_control())
        && trimmed
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
    if !valid {
        return Err(Error::invalid("email must look like name@example.com"));
    }
    let key = keys::email(&sha256_hex(trimmed.to_lowercase().as_bytes()));
    Ok((trimmed.to_owned(), key))
}
