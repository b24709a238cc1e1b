//! Throttling (S6): slows guessing without letting anyone lock the owner out or learn which
//! emails have accounts.
//!
//! Three records, all keyed by hashes and all expiring:
//! - a **pair** record per email and client (the device token when the caller has a valid one
//!   for that account, else the client id): after `free_failures` consecutive failures the pair
//!   waits `backoff_initial_secs`, doubling with each further failure up to `backoff_max_secs`;
//!   a success resets it;
//! - an **email** record counting consecutive failures from every client: past
//!   `account_failure_ceiling`, only callers with a valid device token may still try;
//! - a **client** record per client id and window: `client_failure_limit` failures across
//!   emails, or `client_signup_limit` sign-ups, refuse the client for the rest of the window.
//!
//! Unknown emails get exactly the same records and answers as known ones, so `rate_limited`
//! says nothing about whether an account exists; the caller checks refusals before spending a
//! slow hash, so a refused attempt costs nothing and reveals nothing about the password.
//! Records of unknown emails and idle clients expire; every write also sweeps a few expired
//! records found at a random place, so storage stays bounded without a background job.

use crate::config::Settings;
use crate::docs::{ClientDoc, EmailThrottleDoc, ExpiringDoc, PairDoc, SCHEMA_VERSION, keys};
use crate::error::{Error, Result};
use crate::secrets::{random, sha256_hex};
use crate::txn::Txn;

/// How long a pair or email record outlives its last failure.
const RECORD_TTL_MS: u64 = 24 * 60 * 60 * 1000;
/// Expired records a write removes, at most.
const SWEEP: u32 = 4;

/// Who an attempt comes from, as the throttling records see it.
pub(crate) enum Caller<'a> {
    /// A valid device token for the account tried: its hash.
    Device(&'a str),
    /// Anyone else: the client id.
    Client(&'a str),
}

/// The throttling records of one attempt: read once, decided, written back.
pub(crate) struct Gate {
    pair_key: String,
    email_key: String,
    client_key: String,
    device: bool,
    pair: PairDoc,
    email: EmailThrottleDoc,
    client: ClientDoc,
}

/// What a counted failure changed, for the audit log.
pub(crate) struct Failed {
    /// The pair now waits this long before its next attempt.
    pub pair_blocked_secs: Option<u64>,
    /// This failure reached the account-wide ceiling.
    pub ceiling_reached: bool,
}

fn secs_until(until: u64, now: u64) -> u64 {
    until.saturating_sub(now).div_ceil(1000).max(1)
}

impl Gate {
    /// Reads the records of an attempt on `email_hash` by `caller` from `client_id`.
    pub(crate) fn open(
        txn: &mut Txn<'_>,
        email_hash: &str,
        caller: Caller<'_>,
        client_id: &str,
        now: u64,
    ) -> Result<Gate> {
        let (who, device) = match caller {
            Caller::Device(hash) => (format!("d:{hash}"), true),
            Caller::Client(id) => (format!("c:{id}"), false),
        };
        let pair_key = keys::pair(email_hash, &sha256_hex(who.as_bytes()));
        let email_key = keys::email_throttle(email_hash);
        let client_key = keys::client(&sha256_hex(client_id.as_bytes()));
        let pair = txn
            .get::<PairDoc>(&pair_key)?
            .filter(|d| d.expires_at > now)
            .unwrap_or(PairDoc {
                v: SCHEMA_VERSION,
                failures: 0,
                blocked_until: 0,
                expires_at: 0,
            });
        let email = txn
            .get::<EmailThrottleDoc>(&email_key)?
            .filter(|d| d.expires_at > now)
            .unwrap_or(EmailThrottleDoc {
                v: SCHEMA_VERSION,
                failures: 0,
                expires_at: 0,
            });
        let client = Self::read_client(txn, &client_key)?;
        Ok(Gate {
            pair_key,
            email_key,
            client_key,
            device,
            pair,
            email,
            client,
        })
    }

    fn read_client(txn: &mut Txn<'_>, key: &str) -> Result<ClientDoc> {
        Ok(txn.get::<ClientDoc>(key)?.unwrap_or(ClientDoc {
            v: SCHEMA_VERSION,
            window_start: 0,
            failures: 0,
            signups: 0,
            expires_at: 0,
        }))
    }

    /// `rate_limited` when this attempt may not be tried now. Checked before any slow hash.
    pub(crate) fn refusal(&self, s: &Settings, now: u64) -> Option<Error> {
        let limited = |until: u64| Error::RateLimited {
            retry_after_secs: secs_until(until, now),
        };
        let window_end = self.client.window_start + s.client_window_secs * 1000;
        if !self.device && now < window_end && self.client.failures >= s.client_failure_limit {
            return Some(limited(window_end));
        }
        if self.pair.blocked_until > now {
            return Some(limited(self.pair.blocked_until));
        }
        if !self.device && self.email.failures >= s.account_failure_ceiling {
            return Some(Error::RateLimited {
                retry_after_secs: s.backoff_max_secs,
            });
        }
        None
    }

    /// Counts a failed attempt in all three records and writes them.
    pub(crate) fn fail(&mut self, txn: &mut Txn<'_>, s: &Settings, now: u64) -> Result<Failed> {
        self.pair.failures = self.pair.failures.saturating_add(1);
        let mut pair_blocked_secs = None;
        if self.pair.failures >= s.free_failures {
            let doublings = (self.pair.failures - s.free_failures).min(40);
            let wait = s
                .backoff_initial_secs
                .saturating_mul(1u64 << doublings)
                .min(s.backoff_max_secs);
            self.pair.blocked_until = now + wait * 1000;
            pair_blocked_secs = Some(wait);
        }
        self.pair.expires_at = self.pair.blocked_until.max(now) + RECORD_TTL_MS;
        self.email.failures = self.email.failures.saturating_add(1);
        self.email.expires_at = now + RECORD_TTL_MS;
        let ceiling_reached = self.email.failures == s.account_failure_ceiling;
        self.roll_window(s, now);
        self.client.failures = self.client.failures.saturating_add(1);
        txn.upsert(&self.pair_key, &self.pair)?;
        txn.upsert(&self.email_key, &self.email)?;
        txn.upsert(&self.client_key, &self.client)?;
        sweep(txn, now)?;
        Ok(Failed {
            pair_blocked_secs,
            ceiling_reached,
        })
    }

    /// A success: the pair and the account-wide count start again.
    pub(crate) fn succeed(&mut self, txn: &mut Txn<'_>) -> Result<()> {
        for key in [&self.pair_key, &self.email_key] {
            if txn.was_present(key) {
                txn.delete(key)?;
            }
        }
        Ok(())
    }

    fn roll_window(&mut self, s: &Settings, now: u64) {
        let window = s.client_window_secs * 1000;
        if now >= self.client.window_start + window {
            self.client.window_start = now;
            self.client.failures = 0;
            self.client.signups = 0;
        }
        self.client.expires_at = self.client.window_start + window;
    }
}

/// The sign-up limit of one client (S6): refused past `client_signup_limit` a window,
/// otherwise counted. Every attempt counts, whether or not the email is taken, so sign-up
/// cannot be used to test many emails quickly.
pub(crate) fn count_signup(
    txn: &mut Txn<'_>,
    s: &Settings,
    client_id: &str,
    now: u64,
) -> Result<Option<Error>> {
    let key = keys::client(&sha256_hex(client_id.as_bytes()));
    let mut gate = Gate {
        pair_key: String::new(),
        email_key: String::new(),
        client_key: key.clone(),
        device: false,
        pair: PairDoc {
            v: SCHEMA_VERSION,
            failures: 0,
            blocked_until: 0,
            expires_at: 0,
        },
        email: EmailThrottleDoc {
            v: SCHEMA_VERSION,
            failures: 0,
            expires_at: 0,
        },
        client: Gate::read_client(txn, &key)?,
    };
    let window_end = gate.client.window_start + s.client_window_secs * 1000;
    if now < window_end && gate.client.signups >= s.client_signup_limit {
        return Ok(Some(Error::RateLimited {
            retry_after_secs: secs_until(window_end, now),
        }));
    }
    gate.roll_window(s, now);
    gate.client.signups = gate.client.signups.saturating_add(1);
    txn.upsert(&key, &gate.client)?;
    sweep(txn, now)?;
    Ok(None)
}

/// Deletes a few expired throttling records found after a random key.
fn sweep(txn: &mut Txn<'_>, now: u64) -> Result<()> {
    let from = random::<8>(txn.host())?;
    let kind = match from.first().map(|b| b % 3) {
        Some(0) => "pair/",
        Some(1) => "email/",
        _ => "client/",
    };
    let prefix = format!("{}{kind}", keys::THROTTLE);
    let after = format!("{prefix}{}", sha256_hex(&from));
    for (key, doc) in txn.scan_loose::<ExpiringDoc>(&prefix, Some(&after), SWEEP)? {
        if doc.expires_at <= now {
            txn.delete(&key)?;
        }
    }
    Ok(())
}
