//! The engine: every operation of SPEC.md. Each operation validates its input, then runs
//! attempts of one transaction (read, decide, write one batch), re-running from a fresh read
//! when the commit conflicts (D2).
//!
//! The operations live by subject: [`accounts`] (A1, A4, A5), [`sign_in`] (S1 to S6),
//! [`passkeys`] (P1 to P7), [`two_factor`] (T1 to T3, B1 to B6), [`audit_ops`] (L2, L3, L5).

mod accounts;
mod audit_ops;
mod passkeys;
mod sign_in;
mod two_factor;

use crate::audit::{Account, details};
use crate::config::Settings;
use crate::devices;
use crate::docs::{PasskeyDoc, UserDoc, keys};
use crate::error::{Error, Result};
use crate::secrets::{self, SlowHasher, b64url, sha256_hex};
use crate::throttle::{Caller, Gate};
use crate::txn::Txn;
use crate::webauthn::RelyingParty;
use crate::{Config, Context, EventKind, Host, HostError, Passkey};

/// What one attempt decides: `Err` aborts with nothing written; `Ok(outcome)` commits the
/// attempt's batch, then answers `outcome` (which may itself be an error, such as a wrong
/// password whose failure count was just written).
type Attempt<T> = Result<Result<T>>;

/// Slow results kept across the attempts of one operation, so a conflict retry does not pay
/// for argon2 again (B5: one slow hash per code check).
#[derive(Default)]
struct Memo {
    password: Option<(String, bool)>,
    new_password: Option<String>,
    code: Option<(String, [u8; 32])>,
    fresh_codes: Option<(Vec<String>, crate::docs::CodeSet)>,
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
    /// An engine for one relying party. Refuses a configuration that fails the checks of its
    /// fields' documentation (`invalid_input` names the field).
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

    /// How many slow hashes (argon2id) this engine has computed; tests use it to prove B5 and
    /// that refused attempts cost none (S6).
    pub fn slow_hash_count(&self) -> u64 {
        self.hasher.count()
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

    /// The password check of a signed-in user's settings change (P1, P4, T1, T2, B4, A4),
    /// under the same throttling as sign-in (S6): a refused attempt costs no slow hash; a
    /// wrong password is counted and audited, and the account is written by the caller either
    /// way.
    #[allow(clippy::too_many_arguments)]
    fn confirm_password(
        &self,
        txn: &mut Txn<'_>,
        account: &mut Account,
        ctx: &Context,
        now: u64,
        password: &str,
        memo: &mut Memo,
        step: &str,
    ) -> Attempt<()> {
        let (mut gate, _) = self.gate_for(txn, &account.doc, ctx, now)?;
        if let Some(refused) = gate.refusal(&self.settings, now) {
            return Ok(Err(refused));
        }
        if self.verify_password(memo, &account.doc.password, password)? {
            gate.succeed(txn)?;
            account.record(EventKind::PasswordOk, details!("step" => step));
            return Ok(Ok(()));
        }
        self.count_failure(
            txn,
            &mut gate,
            Some(account),
            now,
            EventKind::PasswordFailed,
            details!("step" => step),
        )?;
        Ok(Err(Error::InvalidCredentials))
    }

    /// The throttling records of an attempt on `user`'s account from this caller, and the
    /// hash of the caller's device token when it is a live one of this account.
    fn gate_for(
        &self,
        txn: &mut Txn<'_>,
        user: &UserDoc,
        ctx: &Context,
        now: u64,
    ) -> Result<(Gate, Option<String>)> {
        let device = devices::valid(txn, ctx.device_token.as_deref(), &user.id, now)?;
        let caller = match &device {
            Some(hash) => Caller::Device(hash),
            None => Caller::Client(ctx.client()),
        };
        let gate = Gate::open(txn, &user.email_hash, caller, ctx.client(), now)?;
        Ok((gate, device))
    }

    /// Counts a failed attempt (S6) and, for a known account, audits it (L1), with a
    /// `throttled` event when it starts a wait or reaches the account-wide ceiling.
    fn count_failure(
        &self,
        txn: &mut Txn<'_>,
        gate: &mut Gate,
        account: Option<&mut Account>,
        now: u64,
        kind: EventKind,
        details: serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        let failed = gate.fail(txn, &self.settings, now)?;
        if let Some(account) = account {
            account.record(kind, details);
            if let Some(secs) = failed.pair_blocked_secs
                && secs == self.settings.backoff_initial_secs
            {
                account.record(
                    EventKind::Throttled,
                    details!("scope" => "client", "retry_after_secs" => secs),
                );
            }
            if failed.ceiling_reached {
                account.record(
                    EventKind::Throttled,
                    details!("scope" => "account", "failures" => self.settings.account_failure_ceiling),
                );
            }
        }
        Ok(())
    }

    /// Writes what a refused attempt recorded (a counted failure), if anything.
    fn save_refused(
        &self,
        txn: &mut Txn<'_>,
        account: Account,
        ctx: &Context,
        now: u64,
    ) -> Result<()> {
        if account.has_events() {
            account.save(txn, &self.settings, ctx, now)?;
        }
        Ok(())
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

    /// A new password's hash, once per operation whatever the retries.
    fn hash_new_password(
        &self,
        memo: &mut Memo,
        host: &dyn Host,
        password: &str,
    ) -> Result<String> {
        if let Some(hash) = &memo.new_password {
            return Ok(hash.clone());
        }
        let hash = self
            .hasher
            .hash_password(self.settings.password_hash, password, host)?;
        memo.new_password = Some(hash.clone());
        Ok(hash)
    }

    fn running_low(&self, remaining: u32) -> bool {
        remaining <= self.settings.backup_code_low_watermark
    }
}

/// The host's clock; a clock that answers `conflict` breaks the contract like a read does.
fn now(host: &dyn Host) -> Result<u64> {
    host.now_ms().map_err(crate::txn::read_error)
}

/// The user's passkey documents, oldest first: those the account lists (a document the
/// account does not list is not the user's, L3).
fn passkeys_of(txn: &mut Txn<'_>, user: &UserDoc) -> Result<Vec<PasskeyDoc>> {
    let mut docs: Vec<PasskeyDoc> = txn
        .scan_all::<PasskeyDoc>(&keys::passkeys(&user.id))?
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| user.passkeys.contains(&b64url(&d.credential.cred_id)))
        .collect();
    docs.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.credential.cred_id.cmp(&b.credential.cred_id))
    });
    Ok(docs)
}

fn to_passkey(doc: &PasskeyDoc) -> Passkey {
    let c = &doc.credential;
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

/// The key of a passkey document.
fn passkey_key(user_id: &str, passkey_id: &str) -> String {
    keys::passkey(user_id, &sha256_hex(passkey_id.as_bytes()))
}

fn check_context(ctx: &Context) -> Result<()> {
    let device_ok = ctx.device_token.as_deref().is_none_or(|t| t.len() <= 160);
    if ctx.ip.len() > 256 || ctx.user_agent.len() > 1024 || ctx.client_id.len() > 256 || !device_ok
    {
        return Err(Error::invalid(
            "context: ip and client_id are at most 256 bytes, user_agent 1024, device_token 160",
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
