//! Sign-in: step one with email and password (S1, S2, A2, A3), step two with a passkey (S3,
//! S5, P6, P7) or a backup code (S4, S5, B3, B5, B6), all under the throttling of S6.

use webauthn_rs_core::proto::PublicKeyCredential;

use super::{
    Attempt, Engine, Memo, check_context, check_password_length, now, passkey_key, passkeys_of,
};
use crate::audit::{Account, details};
use crate::devices;
use crate::docs::{CodeSet, EmailDoc, PasskeyDoc, PendingDoc, SCHEMA_VERSION, keys};
use crate::error::{Error, Result};
use crate::secrets::{self, b64url, sha256_hex};
use crate::throttle::{Caller, Gate};
use crate::txn::Txn;
use crate::webauthn::{AssertionFailure, parse_credential};
use crate::{
    BackupCodeSignIn, Context, EventKind, Host, PasskeySignIn, SecondFactorRequired, SignIn,
    SignInOutcome, SignedIn, text,
};

/// Pending sign-ins one user may have at once; step one drops the oldest beyond it (S2).
const MAX_PENDING_PER_USER: usize = 16;

impl Engine {
    /// Sign-in step one (S1, S2, A2, A3, S6). An unknown email is answered exactly like a wrong
    /// password: the same error, the same slow hash, the same throttling records.
    #[must_use = "the outcome says whether a second factor is needed"]
    pub fn sign_in(&self, host: &dyn Host, ctx: &Context, req: SignIn) -> Result<SignInOutcome> {
        check_context(ctx)?;
        let email = text::email(&req.email)?;
        check_password_length(&req.password)?;
        let email_hash = sha256_hex(email.canonical.as_bytes());
        let mut memo = Memo::default();
        self.run(host, |txn| {
            let now = now(host)?;
            let owner = txn.get::<EmailDoc>(&keys::email(&email_hash))?;
            let Some(owner) = owner else {
                let mut gate = Gate::open(
                    txn,
                    &email_hash,
                    Caller::Client(ctx.client()),
                    ctx.client(),
                    now,
                )?;
                if let Some(refused) = gate.refusal(&self.settings, now) {
                    return Ok(Err(refused));
                }
                // Same cost and same records as a wrong password (A3, S6).
                self.verify_password(&mut memo, &self.dummy_hash, &req.password)?;
                self.count_failure(
                    txn,
                    &mut gate,
                    None,
                    now,
                    EventKind::PasswordFailed,
                    details!(),
                )?;
                return Ok(Err(Error::InvalidCredentials));
            };
            let mut account = Account::load(txn, &owner.user_id)?;
            let (mut gate, device) = self.gate_for(txn, &account.doc, ctx, now)?;
            if let Some(refused) = gate.refusal(&self.settings, now) {
                return Ok(Err(refused));
            }
            if !self.verify_password(&mut memo, &account.doc.password, &req.password)? {
                let step = details!("step" => "sign_in");
                self.count_failure(
                    txn,
                    &mut gate,
                    Some(&mut account),
                    now,
                    EventKind::PasswordFailed,
                    step,
                )?;
                account.save(txn, &self.settings, ctx, now)?;
                return Ok(Err(Error::InvalidCredentials));
            }
            if secrets::needs_rehash(&account.doc.password, self.settings.password_hash) {
                account.doc.password = self.hash_new_password(&mut memo, host, &req.password)?;
            }
            account.record(EventKind::PasswordOk, details!("step" => "sign_in"));
            if !account.doc.two_factor {
                // With 2FA off the password completes sign-in: a success (S6).
                gate.succeed(txn)?;
                let device_token =
                    devices::issue(txn, &self.settings, &account.doc.id, device.as_deref(), now)?;
                let user = account.save(txn, &self.settings, ctx, now)?;
                return Ok(Ok(SignInOutcome::SignedIn(SignedIn {
                    user_id: user.id,
                    remember_me: req.remember_me,
                    security_epoch: user.epoch,
                    device_token,
                    backup_codes_remaining: None,
                    backup_codes_running_low: None,
                })));
            }
            // With 2FA on, the right password alone is no success: the counts stay, so knowing
            // the password gives no extra second-factor guesses (S6).
            let credentials = passkeys_of(txn, &account.doc)?
                .into_iter()
                .map(|p| p.credential)
                .collect();
            let (options, state) = self.rp.start_authentication(host, credentials)?;
            self.sweep_pending(txn, &account.doc.id, now)?;
            let token = secrets::new_token(host, &account.doc.id)?;
            account.record(EventKind::SecondFactorRequired, details!());
            let user = account.save(txn, &self.settings, ctx, now)?;
            let pending = PendingDoc {
                v: SCHEMA_VERSION,
                user_id: user.id,
                serial: user.audit_seq,
                expires_at: now + self.settings.pending_sign_in_ttl_secs * 1000,
                failures: 0,
                state,
            };
            txn.put_new(&pending_key(&token)?, &pending)?;
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
            let now = now(host)?;
            let (mut pending, mut account) = match self.load_pending(txn, &pending_key, now)? {
                Ok(found) => found,
                Err(e) => return Ok(Err(e)),
            };
            let (mut gate, device) = self.gate_for(txn, &account.doc, ctx, now)?;
            if let Some(refused) = gate.refusal(&self.settings, now) {
                return Ok(Err(refused));
            }
            let listed = account.doc.passkeys.contains(&passkey_id);
            let doc_key = passkey_key(&account.doc.id, &passkey_id);
            let stored = if listed {
                txn.get::<PasskeyDoc>(&doc_key)?
            } else {
                None
            };
            let verdict = match &stored {
                None => Err(AssertionFailure::Invalid(
                    "the credential is not one of this user's passkeys".into(),
                )),
                Some(doc) => {
                    self.rp
                        .finish_authentication(&assertion, &pending.state, &doc.credential)
                }
            };
            match (verdict, stored) {
                (Ok(result), Some(mut doc)) => {
                    let eligible_was = doc.credential.backup_eligible;
                    doc.credential.counter = result.counter();
                    doc.credential.backup_eligible = result.backup_eligible();
                    doc.credential.backup_state = result.backup_state();
                    doc.last_used_at = Some(now);
                    txn.put(&doc_key, &doc)?;
                    txn.delete(&pending_key)?;
                    let mut d = details!(
                        "passkey_id" => passkey_id,
                        "counter" => result.counter(),
                        "backed_up" => result.backup_state()
                    );
                    if eligible_was != result.backup_eligible() {
                        // P7: synced passkeys flip this flag; accepted, stored and recorded.
                        d.insert(
                            "backup_eligible_changed".into(),
                            serde_json::json!({"from": eligible_was, "to": result.backup_eligible()}),
                        );
                    }
                    account.record(EventKind::PasskeyOk, d);
                    let signed_in =
                        self.complete_sign_in(txn, account, &mut gate, device, ctx, now, None)?;
                    Ok(Ok(signed_in))
                }
                (verdict, _) => {
                    let (reason, message) = match verdict {
                        Err(AssertionFailure::CounterRegression) => (
                            "possible_cloned_authenticator",
                            "the signature counter did not increase: possibly a cloned authenticator".to_string(),
                        ),
                        Err(AssertionFailure::CrossOrigin(m)) => ("cross_origin", m),
                        Err(AssertionFailure::Invalid(m)) => ("invalid_assertion", m),
                        Ok(_) => (
                            "unknown_credential",
                            "the credential is not one of this user's passkeys".into(),
                        ),
                    };
                    let reason = if listed { reason } else { "unknown_credential" };
                    fail_pending(txn, &self.settings, &pending_key, &mut pending)?;
                    let d = details!("passkey_id" => passkey_id, "reason" => reason);
                    self.count_failure(
                        txn,
                        &mut gate,
                        Some(&mut account),
                        now,
                        EventKind::PasskeyFailed,
                        d,
                    )?;
                    account.save(txn, &self.settings, ctx, now)?;
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
        if req.code.chars().count() > 64 {
            return Err(Error::invalid("a backup code is at most 64 characters"));
        }
        let code = secrets::normalise_code(&req.code);
        let mut memo = Memo::default();
        self.run(host, |txn| {
            let now = now(host)?;
            let (mut pending, mut account) = match self.load_pending(txn, &pending_key, now)? {
                Ok(found) => found,
                Err(e) => return Ok(Err(e)),
            };
            let (mut gate, device) = self.gate_for(txn, &account.doc, ctx, now)?;
            if let Some(refused) = gate.refusal(&self.settings, now) {
                return Ok(Err(refused));
            }
            let set = account
                .doc
                .backup_codes
                .clone()
                .filter(|_| account.doc.two_factor);
            let matched = match (&code, &set) {
                (Some(code), Some(set)) => self.match_code(&mut memo, set, code)?,
                _ => None,
            };
            match (matched, set) {
                (Some(index), Some(mut set)) => {
                    if let Some(slot) = set.codes.get_mut(index) {
                        slot.used = true;
                    }
                    let remaining = set.remaining();
                    account.doc.backup_codes = Some(set);
                    txn.delete(&pending_key)?;
                    account.record(EventKind::BackupCodeOk, details!("remaining" => remaining));
                    let signed_in = self.complete_sign_in(
                        txn,
                        account,
                        &mut gate,
                        device,
                        ctx,
                        now,
                        Some(remaining),
                    )?;
                    Ok(Ok(signed_in))
                }
                _ => {
                    fail_pending(txn, &self.settings, &pending_key, &mut pending)?;
                    self.count_failure(
                        txn,
                        &mut gate,
                        Some(&mut account),
                        now,
                        EventKind::BackupCodeFailed,
                        details!(),
                    )?;
                    account.save(txn, &self.settings, ctx, now)?;
                    Ok(Err(Error::InvalidBackupCode))
                }
            }
        })
    }

    /// A completed second step: the throttling counts start again, a fresh device token
    /// replaces the one presented, and the account is written.
    #[allow(clippy::too_many_arguments)]
    fn complete_sign_in(
        &self,
        txn: &mut Txn<'_>,
        account: Account,
        gate: &mut Gate,
        device: Option<String>,
        ctx: &Context,
        now: u64,
        codes_remaining: Option<u32>,
    ) -> Result<SignedIn> {
        gate.succeed(txn)?;
        let device_token =
            devices::issue(txn, &self.settings, &account.doc.id, device.as_deref(), now)?;
        let user = account.save(txn, &self.settings, ctx, now)?;
        Ok(SignedIn {
            user_id: user.id,
            remember_me: false,
            security_epoch: user.epoch,
            device_token,
            backup_codes_remaining: codes_remaining,
            backup_codes_running_low: codes_remaining.map(|r| self.running_low(r)),
        })
    }

    /// The pending sign-in for a token, if it is still usable (S5), and its account.
    fn load_pending(
        &self,
        txn: &mut Txn<'_>,
        key: &str,
        now: u64,
    ) -> Attempt<(PendingDoc, Account)> {
        let gone =
            || Error::Expired("this sign-in attempt is no longer valid; sign in again".into());
        let Some(pending) = txn.get::<PendingDoc>(key)? else {
            return Ok(Err(gone()));
        };
        if now >= pending.expires_at {
            txn.delete(key)?;
            return Ok(Err(gone()));
        }
        let account = Account::load(txn, &pending.user_id)?;
        Ok(Ok((pending, account)))
    }

    /// Deletes the user's expired pending sign-ins, and the oldest live ones beyond
    /// [`MAX_PENDING_PER_USER`] - 1, so abandoned sign-ins do not pile up in storage (S2).
    fn sweep_pending(&self, txn: &mut Txn<'_>, user_id: &str, now: u64) -> Result<()> {
        let mut live = Vec::new();
        for (key, doc) in txn.scan_all::<PendingDoc>(&keys::pending_of(user_id))? {
            if now >= doc.expires_at {
                txn.delete(&key)?;
            } else {
                live.push((doc.expires_at, doc.serial, key));
            }
        }
        live.sort();
        let excess = live.len().saturating_sub(MAX_PENDING_PER_USER - 1);
        for (_, _, key) in live.into_iter().take(excess) {
            txn.delete(&key)?;
        }
        Ok(())
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
}

/// Counts a failed second-factor attempt against the pending sign-in; voids it at the limit.
fn fail_pending(
    txn: &mut Txn<'_>,
    s: &crate::config::Settings,
    key: &str,
    pending: &mut PendingDoc,
) -> Result<()> {
    pending.failures += 1;
    if pending.failures >= s.max_second_factor_attempts {
        txn.delete(key)
    } else {
        txn.put(key, pending)
    }
}

/// Where a pending sign-in lives. The token is `<user id>.<256 random bits>`; only its hash
/// is stored (S2). A string of another form cannot be a token this engine issued.
fn pending_key(token: &str) -> Result<String> {
    let user_id = secrets::token_user(token)
        .ok_or_else(|| Error::invalid("pending_token is not a token this engine issued"))?;
    Ok(keys::pending(user_id, &sha256_hex(token.as_bytes())))
}
