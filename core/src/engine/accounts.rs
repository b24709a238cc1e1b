//! Accounts: creating one (A1, A2), changing its password (A4), and the host's reset (A5).

use super::{Engine, Memo, check_context, check_password_length, check_user_id, now};
use crate::audit::{Account, details};
use crate::docs::{EmailDoc, EmailThrottleDoc, PendingDoc, SCHEMA_VERSION, UserDoc, keys};
use crate::error::{Error, Result};
use crate::secrets::{self, b64url, sha256_hex};
use crate::txn::Txn;
use crate::{
    AccountCreated, ChangePassword, Context, CreateAccount, EventKind, Host, PasswordChanged,
    ResetPassword, text, throttle,
};

impl Engine {
    /// Creates an account (A1, A2). Answers `already_exists` for an email in use, and
    /// `rate_limited` past the client's sign-up limit (S6).
    #[must_use = "the outcome says what changed"]
    pub fn create_account(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: CreateAccount,
    ) -> Result<AccountCreated> {
        check_context(ctx)?;
        let email = text::email(&req.email)?;
        check_password_length(&req.password)?;
        let email_hash = sha256_hex(email.canonical.as_bytes());
        let user_id = b64url(&secrets::random::<16>(host)?);
        let user_handle = b64url(&secrets::random::<16>(host)?);
        let mut memo = Memo::default();
        self.run(host, |txn| {
            let now = now(host)?;
            if let Some(refused) = throttle::count_signup(txn, &self.settings, ctx.client(), now)? {
                return Ok(Err(refused));
            }
            let email_key = keys::email(&email_hash);
            if txn.get::<EmailDoc>(&email_key)?.is_some() {
                return Ok(Err(Error::AlreadyExists(
                    "an account for this email".into(),
                )));
            }
            let password = self.hash_new_password(&mut memo, host, &req.password)?;
            let mut account = Account::create(UserDoc {
                v: SCHEMA_VERSION,
                id: user_id.clone(),
                email: email.display.clone(),
                email_hash: email_hash.clone(),
                password,
                user_handle: user_handle.clone(),
                created_at: now,
                two_factor: false,
                epoch: 1,
                passkeys: Vec::new(),
                backup_codes: None,
                audit_seq: 0,
                audit_mac: String::new(),
            });
            txn.put_new(
                &email_key,
                &EmailDoc {
                    v: SCHEMA_VERSION,
                    user_id: user_id.clone(),
                },
            )?;
            account.record(EventKind::AccountCreated, details!());
            account.save(txn, &self.settings, ctx, now)?;
            Ok(Ok(AccountCreated {
                user_id: user_id.clone(),
                email: email.display.clone(),
            }))
        })
    }

    /// Changes a signed-in user's password (A4): the current one is checked under the same
    /// throttling as sign-in; the epoch grows (A6) and pending sign-ins made with the old
    /// password are voided. Audited, `notify`.
    #[must_use = "the new security epoch ends the user's other sessions"]
    pub fn change_password(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: ChangePassword,
    ) -> Result<PasswordChanged> {
        check_context(ctx)?;
        check_user_id(&req.user_id)?;
        check_password_length(&req.current_password)?;
        check_password_length(&req.new_password)
            .map_err(|_| Error::invalid("the new password must be 8 to 1024 bytes"))?;
        let mut memo = Memo::default();
        self.run(host, |txn| {
            let now = now(host)?;
            let mut account = Account::load(txn, &req.user_id)?;
            if let Err(e) = self.confirm_password(
                txn,
                &mut account,
                ctx,
                now,
                &req.current_password,
                &mut memo,
                "change_password",
            )? {
                self.save_refused(txn, account, ctx, now)?;
                return Ok(Err(e));
            }
            account.doc.password = self.hash_new_password(&mut memo, host, &req.new_password)?;
            account.doc.epoch += 1;
            void_pending(txn, &account.doc.id)?;
            account.record(EventKind::PasswordChanged, details!());
            let user = account.save(txn, &self.settings, ctx, now)?;
            Ok(Ok(PasswordChanged {
                user_id: user.id,
                security_epoch: user.epoch,
            }))
        })
    }

    /// Sets a new password without the old one (A5): the host has proved ownership of the
    /// email by its own means (a reset link). Two-factor authentication is left exactly as it
    /// was, so the next sign-in still asks for the second factor. The epoch grows (A6),
    /// pending sign-ins are voided and the account-wide failure count starts again. Audited,
    /// `notify`. An email with no account is `not_found` (the host asked, not a visitor).
    #[must_use = "the new security epoch ends the user's sessions"]
    pub fn reset_password(
        &self,
        host: &dyn Host,
        ctx: &Context,
        req: ResetPassword,
    ) -> Result<PasswordChanged> {
        check_context(ctx)?;
        let email = text::email(&req.email)?;
        check_password_length(&req.new_password)
            .map_err(|_| Error::invalid("the new password must be 8 to 1024 bytes"))?;
        let email_hash = sha256_hex(email.canonical.as_bytes());
        let mut memo = Memo::default();
        self.run(host, |txn| {
            let now = now(host)?;
            let Some(owner) = txn.get::<EmailDoc>(&keys::email(&email_hash))? else {
                return Ok(Err(Error::NotFound("an account for this email".into())));
            };
            let mut account = Account::load(txn, &owner.user_id)?;
            account.doc.password = self.hash_new_password(&mut memo, host, &req.new_password)?;
            account.doc.epoch += 1;
            void_pending(txn, &account.doc.id)?;
            let ceiling = keys::email_throttle(&email_hash);
            if txn.get::<EmailThrottleDoc>(&ceiling)?.is_some() {
                txn.delete(&ceiling)?;
            }
            account.record(
                EventKind::PasswordReset,
                details!("two_factor_enabled" => account.doc.two_factor),
            );
            let user = account.save(txn, &self.settings, ctx, now)?;
            Ok(Ok(PasswordChanged {
                user_id: user.id,
                security_epoch: user.epoch,
            }))
        })
    }
}

/// Deletes every pending sign-in of the user: they were started with a password that no
/// longer holds.
fn void_pending(txn: &mut Txn<'_>, user_id: &str) -> Result<()> {
    for (key, _) in txn.scan_all::<PendingDoc>(&keys::pending_of(user_id))? {
        txn.delete(&key)?;
    }
    Ok(())
}
