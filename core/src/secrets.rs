//! Secrets: password hashes (A2, A3), backup codes (B1, B2, B5), sign-in tokens (S2), and the
//! count of slow hashes that proves B5.

use std::sync::atomic::{AtomicU64, Ordering};

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Argon2Params;
use crate::Environment;
use crate::error::{Error, Result};

/// Backup-code characters: no 0/o, 1/l/i look-alikes.
const CODE_ALPHABET: &[u8; 31] = b"23456789abcdefghjkmnpqrstuvwxyz";
/// 12 characters of 31: about 59.4 bits of entropy (B1 asks for 50).
const CODE_LEN: usize = 12;

/// Random bytes from the host.
pub(crate) fn random<const N: usize>(env: &dyn Environment) -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    env.fill_random(&mut buf)?;
    Ok(buf)
}

pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for b in digest {
        for nibble in [b >> 4, b & 0x0f] {
            hex.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    hex
}

pub(crate) fn decode_b64url(s: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| Error::internal(format!("stored base64 is unreadable: {e}")))
}

/// A new opaque token with 256 random bits, base64url.
pub(crate) fn new_token(env: &dyn Environment) -> Result<String> {
    Ok(b64url(&random::<32>(env)?))
}

fn argon2(params: Argon2Params) -> Result<Argon2<'static>> {
    let params = Params::new(params.m_kib, params.t, params.p, None)
        .map_err(|e| Error::internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Runs the slow hashes and counts them (B5 is proven by the count, not by timing).
#[derive(Debug, Default)]
pub(crate) struct SlowHasher {
    count: AtomicU64,
}

impl SlowHasher {
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn tick(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// An argon2id PHC string for `password` with a fresh 16-byte salt.
    pub(crate) fn hash_password(
        &self,
        params: Argon2Params,
        password: &str,
        env: &dyn Environment,
    ) -> Result<String> {
        let salt = random::<16>(env)?;
        self.tick();
        let hash = argon2(params)?
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map_err(|e| Error::internal(format!("argon2: {e}")))?;
        Ok(hash.to_string())
    }

    /// Whether `password` matches the PHC string. Costs one slow hash whatever the answer.
    pub(crate) fn verify_password(&self, phc: &str, password: &str) -> Result<bool> {
        let hash = PasswordHash::new(phc)
            .map_err(|e| Error::internal(format!("stored password hash unreadable: {e}")))?;
        self.tick();
        match Argon2::default().verify_password(password.as_bytes(), &hash) {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
            Err(e) => Err(Error::internal(format!("argon2: {e}"))),
        }
    }

    /// The hash of one normalised backup code under a set's salt.
    pub(crate) fn hash_code(
        &self,
        params: Argon2Params,
        salt: &[u8],
        code: &str,
    ) -> Result<[u8; 32]> {
        let mut out = [0u8; 32];
        self.tick();
        argon2(params)?
            .hash_password_into(code.as_bytes(), salt, &mut out)
            .map_err(|e| Error::internal(format!("argon2: {e}")))?;
        Ok(out)
    }
}

/// Whether a stored PHC string was made with other parameters than `params` (A2).
pub(crate) fn needs_rehash(phc: &str, params: Argon2Params) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return true;
    };
    let same_alg = hash.algorithm.as_str() == "argon2id";
    match Params::try_from(&hash) {
        Ok(p) => {
            !(same_alg
                && p.m_cost() == params.m_kib
                && p.t_cost() == params.t
                && p.p_cost() == params.p)
        }
        Err(_) => true,
    }
}

/// A PHC string no password matches, with the configured cost, so that an unknown email costs
/// the same time as a wrong password (A3). Its output is all zeros: finding a password that
/// hashes to it means breaking argon2id.
pub(crate) fn dummy_password_hash(params: Argon2Params) -> String {
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_kib,
        params.t,
        params.p,
        STANDARD_NO_PAD.encode(b"twofold-dummy-01"),
        STANDARD_NO_PAD.encode([0u8; 32]),
    )
}

/// Fresh codes for people: `xxxx-xxxx-xxxx`, from the host's CSPRNG by rejection sampling.
pub(crate) fn generate_codes(env: &dyn Environment, count: u32) -> Result<Vec<String>> {
    let mut codes = Vec::new();
    for _ in 0..count {
        let mut chars = Vec::with_capacity(CODE_LEN);
        while chars.len() < CODE_LEN {
            for byte in random::<32>(env)? {
                // 248 = 8 * 31: accepting only bytes below it keeps every character equally likely.
                if byte < 248
                    && chars.len() < CODE_LEN
                    && let Some(c) = CODE_ALPHABET.get(usize::from(byte % 31))
                {
                    chars.push(char::from(*c));
                }
            }
        }
        let s: String = chars.into_iter().collect();
        let (a, rest) = s.split_at(4);
        let (b, c) = rest.split_at(4);
        codes.push(format!("{a}-{b}-{c}"));
    }
    Ok(codes)
}

/// A code as typed, normalised: case, spaces and hyphens do not matter (B1). `None` when it
/// cannot be a code at all.
pub(crate) fn normalise_code(input: &str) -> Option<String> {
    let s: String = input
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '\t'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let ok = s.len() == CODE_LEN && s.bytes().all(|b| CODE_ALPHABET.contains(&b));
    ok.then_some(s)
}

/// Constant-time equality of two byte strings.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_hash_parses_and_matches_nothing() {
        let h = SlowHasher::default();
        let params = Argon2Params {
            m_kib: 64,
            t: 1,
            p: 1,
        };
        let dummy = dummy_password_hash(params);
        assert!(!h.verify_password(&dummy, "password").unwrap());
        assert!(!needs_rehash(&dummy, params));
        assert!(needs_rehash(
            &dummy,
            Argon2Params {
                m_kib: 128,
                t: 1,
                p: 1
            }
        ));
    }

    #[test]
    fn codes_normalise() {
        assert_eq!(
            normalise_code(" ABCD-efgh 2345 ").as_deref(),
            Some("abcdefgh2345")
        );
        assert_eq!(normalise_code("abcd-efgh-234"), None);
        assert_eq!(
            normalise_code("abcd-efgh-2340"),
            None,
            "0 is not in the alphabet"
        );
    }
}
