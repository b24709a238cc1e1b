//! Two-factor state (T1, T2, T3) and backup codes (B1 to B6).

use super::{
    Attempt, Engine, Memo, check_context, check_password_length, check_user_id, now, passkeys_of,
    to_passkey,
};
use crate::audit::{Account, details};
use crate::docs::{CodeSet, PasskeyDoc, StoredCode, UserDoc};
use crate::error::{Error, Result};
use crate::secrets::{self, b64url};
use crate::txn::Txn;
use crate::{BackupCodes, Context, EventKind, Host, PasswordConfirmed, Status, UserRef};

impl Engine {
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
            |user| {
                if user.two_factor {
                    Err(Error::AlreadyEnabled)
                } else if user.passkeys.is_empty() {
                    Err(Error::NoPasskey)
                } else {
                    Ok(())
                }
            },
            |txn, account, now, memo| {
                let codes = self.install_fresh_codes(txn, account, now, memo, "enabled")?;
                account.doc.two_factor = true;
                account.record(EventKind::TwoFactorEnabled, details!("reason" => "user"));
                Ok(codes)
            },
            |user, codes| BackupCodes {
                codes,
                security_epoch: user.epoch,
            },
        )
    }

    /// Turns 2FA off (T2): passkeys stay, backup codes are voided, the epoch grows (A6).
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
            |txn, account, _now, _memo| {
                account.doc.two_factor = false;
                account.doc.backup_codes = None;
                account.doc.epoch += 1;
                account.record(EventKind::TwoFactorDisabled, details!("reason" => "user"));
                passkeys_of(txn, &account.doc)
            },
            |user, passkeys| self.status_of(user, &passkeys),
        )
    }

    /// Replaces the backup codes (B4): the old set is void in the same commit; the epoch
    /// grows (A6).
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
            |txn, account, now, memo| {
                let codes = self.install_fresh_codes(txn, account, now, memo, "regenerated")?;
                account.doc.epoch += 1;
                Ok(codes)
            },
            |user, codes| BackupCodes {
                codes,
                security_epoch: user.epoch,
            },
        )
    }

    /// The user's two-factor state (T3) and security epoch (A6).
    pub fn status(&self, host: &dyn Host, ctx: &Context, req: UserRef) -> Result<Status> {
        check_context(ctx)?;
        check_user_id(&req.user_id)?;
        let mut txn = Txn::new(host);
        let account = Account::load(&mut txn, &req.user_id)?;
        let passkeys = passkeys_of(&mut txn, &account.doc)?;
        Ok(self.status_of(&account.doc, &passkeys))
    }

    /// The shape of T1, T2 and B4: load the account; refuse a wrong state (`precheck`: no
    /// password spent and nothing written); confirm the password; `change` the account; write
    /// it; answer `answer` of the written account.
    #[allow(clippy::too_many_arguments)]
    fn with_password<T, A>(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: &PasswordConfirmed,
        step: &str,
        precheck: impl Fn(&UserDoc) -> Result<()>,
        mut change: impl FnMut(&mut Txn<'_>, &mut Account, u64, &mut Memo) -> Result<T>,
        answer: impl FnOnce(&UserDoc, T) -> A,
    ) -> Result<A> {
        check_context(ctx)?;
        check_user_id(&req.user_id)?;
        check_password_length(&req.password)?;
        let mut memo = Memo::default();
        let (user, outcome) = self.run(host, |txn| -> Attempt<(UserDoc, T)> {
            let now = now(host)?;
            let mut account = Account::load(txn, &req.user_id)?;
            if let Err(e) = precheck(&account.doc) {
                return Ok(Err(e));
            }
            if let Err(e) =
                self.confirm_password(txn, &mut account, ctx, now, &req.password, &mut memo, step)?
            {
                self.save_refused(txn, account, ctx, now)?;
                return Ok(Err(e));
            }
            let outcome = change(txn, &mut account, now, &mut memo)?;
            let user = account.save(txn, &self.settings, ctx, now)?;
            Ok(Ok((user, outcome)))
        })?;
        Ok(answer(&user, outcome))
    }

    /// Makes a new code set (once per operation, whatever the retries), installs it on the
    /// account in place of the old one, records it, and answers the plaintext codes.
    pub(super) fn install_fresh_codes(
        &self,
        txn: &mut Txn<'_>,
        account: &mut Account,
        now: u64,
        memo: &mut Memo,
        reason: &str,
    ) -> Result<Vec<String>> {
        let (codes, set) = match memo.fresh_codes.take() {
            Some(made) => made,
            None => self.make_code_set(txn, now)?,
        };
        memo.fresh_codes = Some((codes.clone(), set.clone()));
        account.doc.backup_codes = Some(set);
        account.record(
            EventKind::BackupCodesGenerated,
            details!("count" => codes.len(), "reason" => reason),
        );
        Ok(codes)
    }

    fn make_code_set(&self, txn: &Txn<'_>, now: u64) -> Result<(Vec<String>, CodeSet)> {
        let env = txn.host();
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

    pub(super) fn codes_remaining(&self, user: &UserDoc) -> u32 {
        match (&user.backup_codes, user.two_factor) {
            (Some(set), true) => set.remaining(),
            _ => 0,
        }
    }

    pub(super) fn status_of(&self, user: &UserDoc, passkeys: &[PasskeyDoc]) -> Status {
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

fn two_factor_on(user: &UserDoc) -> Result<()> {
    if user.two_factor {
        Ok(())
    } else {
        Err(Error::NotEnabled)
    }
}
