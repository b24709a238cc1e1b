//! Passkeys: registering (P1, P2, P3), listing, renaming and removing (P4, P5).

use webauthn_rs_core::proto::RegisterPublicKeyCredential;

use super::{
    Engine, Memo, check_context, check_password_length, check_user_id, now, passkey_key,
    passkeys_of, to_passkey,
};
use crate::audit::{Account, details};
use crate::docs::{
    CredentialOwnerDoc, PasskeyDoc, RegistrationCeremony, RegistrationDoc, SCHEMA_VERSION, keys,
};
use crate::error::{Error, Result};
use crate::secrets::{self, b64url, sha256_hex};
use crate::webauthn::parse_credential;
use crate::{
    Context, EventKind, FinishRegistration, Host, Passkey, PasskeyList, PasskeyRegistered,
    RegistrationStarted, RemovePasskey, RenamePasskey, StartRegistration, Status, UserRef, text,
};

/// WebAuthn Level 3: a relying party should refuse credential ids longer than this (P2).
const MAX_CREDENTIAL_ID_BYTES: usize = 1023;

impl Engine {
    fn check_room(&self, account: &Account) -> Result<()> {
        if account.doc.passkeys.len() >= self.settings.max_passkeys as usize {
            return Err(Error::invalid(format!(
                "a user has at most {} passkeys; remove one before adding another",
                self.settings.max_passkeys
            )));
        }
        Ok(())
    }

    /// Starts registering a passkey (P1): needs the current password (throttled like
    /// sign-in, S6) and room for one more passkey (P2).
    #[must_use = "the options go to navigator.credentials.create"]
    pub fn start_passkey_registration(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: StartRegistration,
    ) -> Result<RegistrationStarted> {
        check_context(ctx)?;
        check_user_id(&req.user_id)?;
        let name = text::passkey_name(&req.name)?;
        check_password_length(&req.password)?;
        let mut memo = Memo::default();
        self.run(host, |txn| {
            let now = now(host)?;
            let mut account = Account::load(txn, &req.user_id)?;
            if let Err(e) = self.check_room(&account) {
                return Ok(Err(e));
            }
            if let Err(e) = self.confirm_password(
                txn,
                &mut account,
                ctx,
                now,
                &req.password,
                &mut memo,
                "register_passkey",
            )? {
                self.save_refused(txn, account, ctx, now)?;
                return Ok(Err(e));
            }
            let exclude = passkeys_of(txn, &account.doc)?
                .into_iter()
                .map(|p| p.credential.cred_id)
                .collect();
            let handle = secrets::decode_b64url(&account.doc.user_handle)?;
            let (options, state) =
                self.rp
                    .start_registration(host, &handle, &account.doc.email, exclude)?;
            let reg_key = keys::registration(&account.doc.id);
            let doc = RegistrationDoc {
                v: SCHEMA_VERSION,
                ceremony: Some(RegistrationCeremony {
                    name: name.clone(),
                    expires_at: now + self.settings.registration_ttl_secs * 1000,
                    state,
                }),
            };
            txn.get::<RegistrationDoc>(&reg_key)?;
            txn.upsert(&reg_key, &doc)?;
            account.save(txn, &self.settings, ctx, now)?;
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
            let now = now(host)?;
            let mut account = Account::load(txn, &req.user_id)?;
            let reg_key = keys::registration(&account.doc.id);
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
            if response.raw_id.len() > MAX_CREDENTIAL_ID_BYTES {
                return Ok(Err(Error::InvalidPasskey(format!(
                    "the credential id is longer than {MAX_CREDENTIAL_ID_BYTES} bytes"
                ))));
            }
            if let Err(e) = self.check_room(&account) {
                return Ok(Err(e));
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
            if credential.cred_id.len() > MAX_CREDENTIAL_ID_BYTES {
                return Ok(Err(Error::InvalidPasskey(format!(
                    "the credential id is longer than {MAX_CREDENTIAL_ID_BYTES} bytes"
                ))));
            }
            let passkey_id = b64url(&credential.cred_id);
            let owner_key = keys::credential_owner(&sha256_hex(passkey_id.as_bytes()));
            if txn.get::<CredentialOwnerDoc>(&owner_key)?.is_some() {
                return Ok(Err(Error::AlreadyExists(
                    "this passkey is registered already".into(),
                )));
            }
            let first = account.doc.passkeys.is_empty();
            txn.put_new(
                &owner_key,
                &CredentialOwnerDoc {
                    v: SCHEMA_VERSION,
                    user_id: account.doc.id.clone(),
                },
            )?;
            let doc = PasskeyDoc {
                v: SCHEMA_VERSION,
                name: ceremony.name.clone(),
                created_at: now,
                last_used_at: None,
                credential,
            };
            let doc_key = passkey_key(&account.doc.id, &passkey_id);
            txn.get::<PasskeyDoc>(&doc_key)?;
            txn.upsert(&doc_key, &doc)?;
            account.doc.passkeys.push(passkey_id.clone());
            account.record(
                EventKind::PasskeyRegistered,
                details!("passkey_id" => passkey_id, "name" => ceremony.name),
            );
            let mut backup_codes = None;
            if first && !account.doc.two_factor {
                // P3: the first passkey turns 2FA on and makes the first code set.
                let codes =
                    self.install_fresh_codes(txn, &mut account, now, &mut memo, "first_passkey")?;
                account.doc.two_factor = true;
                account.record(
                    EventKind::TwoFactorEnabled,
                    details!("reason" => "first_passkey"),
                );
                backup_codes = Some(codes);
            }
            let user = account.save(txn, &self.settings, ctx, now)?;
            let remaining = self.codes_remaining(&user);
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
        let name = text::passkey_name(&req.name)?;
        let doc_key = passkey_key(&req.user_id, &req.passkey_id);
        self.run(host, |txn| {
            let now = now(host)?;
            let mut account = Account::load(txn, &req.user_id)?;
            let doc = match txn.get::<PasskeyDoc>(&doc_key)? {
                Some(doc) if account.doc.passkeys.contains(&req.passkey_id) => doc,
                _ => return Ok(Err(Error::NotFound("passkey".into()))),
            };
            let mut doc = doc;
            account.record(
                EventKind::PasskeyRenamed,
                details!("passkey_id" => req.passkey_id, "old_name" => doc.name, "name" => name),
            );
            doc.name = name.clone();
            txn.put(&doc_key, &doc)?;
            account.save(txn, &self.settings, ctx, now)?;
            Ok(Ok(to_passkey(&doc)))
        })
    }

    /// Removes a passkey (P4): needs the current password. The epoch grows (A6); removing
    /// the last one turns 2FA off and voids the codes (P5).
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
        let doc_key = passkey_key(&req.user_id, &req.passkey_id);
        let owner_key = keys::credential_owner(&sha256_hex(req.passkey_id.as_bytes()));
        let mut memo = Memo::default();
        self.run(host, |txn| {
            let now = now(host)?;
            let mut account = Account::load(txn, &req.user_id)?;
            let listed = account.doc.passkeys.contains(&req.passkey_id);
            if !listed || txn.get::<PasskeyDoc>(&doc_key)?.is_none() {
                return Ok(Err(Error::NotFound("passkey".into())));
            }
            if let Err(e) = self.confirm_password(
                txn,
                &mut account,
                ctx,
                now,
                &req.password,
                &mut memo,
                "remove_passkey",
            )? {
                self.save_refused(txn, account, ctx, now)?;
                return Ok(Err(e));
            }
            txn.delete(&doc_key)?;
            if txn.get::<CredentialOwnerDoc>(&owner_key)?.is_some() {
                txn.delete(&owner_key)?;
            }
            account.doc.passkeys.retain(|id| *id != req.passkey_id);
            account.doc.epoch += 1;
            account.record(
                EventKind::PasskeyRemoved,
                details!("passkey_id" => req.passkey_id),
            );
            if account.doc.passkeys.is_empty() {
                account.doc.backup_codes = None;
                if account.doc.two_factor {
                    account.doc.two_factor = false;
                    account.record(
                        EventKind::TwoFactorDisabled,
                        details!("reason" => "last_passkey_removed"),
                    );
                }
            }
            let user = account.save(txn, &self.settings, ctx, now)?;
            let left = passkeys_of(txn, &user)?;
            Ok(Ok(self.status_of(&user, &left)))
        })
    }
}
