//! Device tokens (S6): a completed sign-in gives the browser a token, kept by the host in a
//! long-lived cookie, that marks later attempts from that browser as the owner's own. It
//! replaces no factor: it only keeps the owner's devices out of the account-wide limit and
//! apart from everyone else's backoff. Stored only as a SHA-256 under the user, valid
//! `device_token_ttl_days`.

use crate::config::Settings;
use crate::docs::{DeviceDoc, SCHEMA_VERSION, keys};
use crate::error::Result;
use crate::secrets::{new_token, sha256_hex, token_user};
use crate::txn::Txn;

/// Device tokens one user keeps; the oldest are dropped beyond it.
const MAX_PER_USER: usize = 32;

/// The hash of `token` when it is a live device token of `user_id`.
pub(crate) fn valid(
    txn: &mut Txn<'_>,
    token: Option<&str>,
    user_id: &str,
    now: u64,
) -> Result<Option<String>> {
    let Some(token) = token else {
        return Ok(None);
    };
    if token_user(token) != Some(user_id) {
        return Ok(None);
    }
    let hash = sha256_hex(token.as_bytes());
    let live = txn
        .get::<DeviceDoc>(&keys::device(user_id, &hash))?
        .is_some_and(|d| d.expires_at > now);
    Ok(live.then_some(hash))
}

/// Issues a fresh token for `user_id` at a completed sign-in. The token the caller presented
/// (`replacing`, already checked by [`valid`]) is retired; expired tokens and those beyond
/// [`MAX_PER_USER`] are deleted.
pub(crate) fn issue(
    txn: &mut Txn<'_>,
    s: &Settings,
    user_id: &str,
    replacing: Option<&str>,
    now: u64,
) -> Result<String> {
    let mut live = Vec::new();
    for (key, doc) in txn.scan_all::<DeviceDoc>(&keys::devices_of(user_id))? {
        let retired = replacing.is_some_and(|hash| key == keys::device(user_id, hash));
        if retired || doc.expires_at <= now {
            txn.delete(&key)?;
        } else {
            live.push((doc.created_at, key));
        }
    }
    live.sort();
    let excess = live.len().saturating_sub(MAX_PER_USER - 1);
    for (_, key) in live.into_iter().take(excess) {
        txn.delete(&key)?;
    }
    let token = new_token(txn.host(), user_id)?;
    let doc = DeviceDoc {
        v: SCHEMA_VERSION,
        created_at: now,
        expires_at: now + u64::from(s.device_token_ttl_days) * 86_400_000,
    };
    txn.put_new(&keys::device(user_id, &sha256_hex(token.as_bytes())), &doc)?;
    Ok(token)
}
