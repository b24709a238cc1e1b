//! Secrets: password hashes (A2, A3), backup codes (B1, B2, B5), random tokens (S2, S6), MACs
//! (L3), and the count of slow hashes that proves B5.
//!
//! argon2id's working memory (19 MiB at the default cost) is kept in a small pool and reused:
//! a fresh allocation of that size maps fresh pages from the kernel on every hash (about 4,900
//! page faults, most of a hash's cost beyond the arithmetic), so a host gets the speed of a warm
//! buffer without tuning its allocator.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::{Argon2Params, Environment, HostError};

/// Backup-code characters: no 0/o, 1/l/i look-alikes.
const CODE_ALPHABET: &[u8; 31] = b"23456789abcdefghjkmnpqrstuvwxyz";
/// 12 characters of 31: about 59.4 bits of entropy (B1 asks for 50).
const CODE_LEN: usize = 12;
/// argon2id output length, bytes.
const HASH_LEN: usize = 32;
/// Working buffers kept for reuse; more concurrent hashes than this allocate their own.
const POOL_BUFFERS: usize = 4;

/// Random bytes from the host. A host whose generator answers the same byte over and over is
/// broken (all zeros is the usual symptom); that is refused rather than used for a secret.
pub(crate) fn random<const N: usize>(env: &dyn Environment) -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    env.fill_random(&mut buf).map_err(Error::Storage)?;
    if N >= 16 && buf.iter().all(|b| Some(b) == buf.first()) {
        return Err(Error::Storage(HostError::Failed(format!(
            "the host's randomness returned {N} identical bytes"
        ))));
    }
    Ok(buf)
}

pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    out
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// HMAC-SHA256 of `parts` (each length-prefixed, so no two lists of parts collide), hex.
pub(crate) fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> Result<String> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .map_err(|_| Error::internal("an audit key of unusable length"))?;
    for part in parts {
        mac.update(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_le_bytes());
        mac.update(part);
    }
    Ok(hex(&mac.finalize().into_bytes()))
}

/// Constant-time comparison of two hex MACs.
pub(crate) fn mac_eq(a: &str, b: &str) -> bool {
    ct_eq(a.as_bytes(), b.as_bytes())
}

pub(crate) fn decode_b64url(s: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| Error::internal(format!("stored base64 is unreadable: {e}")))
}

/// A new token `<user id>.<256 random bits, base64url>`; the user id lets the engine find the
/// token's record without a global index. Only the token's SHA-256 is ever stored.
pub(crate) fn new_token(env: &dyn Environment, user_id: &str) -> Result<String> {
    Ok(format!("{user_id}.{}", b64url(&random::<32>(env)?)))
}

/// The user id of a token of the form [`new_token`] makes, if it has that form.
pub(crate) fn token_user(token: &str) -> Option<&str> {
    let (user, secret) = token.split_once('.')?;
    let user_ok = !user.is_empty()
        && user.len() <= 64
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let secret_ok = secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (user_ok && secret_ok).then_some(user)
}

fn argon2(params: Argon2Params) -> Result<Argon2<'static>> {
    let params = Params::new(params.m_kib, params.t, params.p, Some(HASH_LEN))
        .map_err(|e| Error::internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Runs the slow hashes, reusing their working memory, and counts them (B5 is proven by the
/// count, not by timing).
#[derive(Default)]
pub(crate) struct SlowHasher {
    count: AtomicU64,
    pool: Mutex<Vec<Vec<Block>>>,
}

impl std::fmt::Debug for SlowHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlowHasher")
            .field("count", &self.count())
            .finish_non_exhaustive()
    }
}

impl SlowHasher {
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// argon2id of `input` under `salt`, in a pooled buffer.
    fn raw(&self, params: Argon2Params, input: &[u8], salt: &[u8]) -> Result<[u8; HASH_LEN]> {
        let hasher = argon2(params)?;
        let blocks = usize::try_from(params.m_kib)
            .map_err(Error::internal)?
            .max(8 * usize::try_from(params.p).map_err(Error::internal)?);
        let mut memory = self
            .pool
            .lock()
            .map(|mut pool| pool.pop())
            .unwrap_or(None)
            .unwrap_or_default();
        if memory.len() < blocks {
            memory = vec![Block::default(); blocks];
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut out = [0u8; HASH_LEN];
        let result = hasher.hash_password_into_with_memory(
            input,
            salt,
            &mut out,
            memory.get_mut(..blocks).unwrap_or_default(),
        );
        if let Ok(mut pool) = self.pool.lock()
            && pool.len() < POOL_BUFFERS
        {
            pool.push(memory);
        }
        result.map_err(|e| Error::internal(format!("argon2: {e}")))?;
        Ok(out)
    }

    /// An argon2id PHC string for `password` with a fresh 16-byte salt.
    pub(crate) fn hash_password(
        &self,
        params: Argon2Params,
        password: &str,
        env: &dyn Environment,
    ) -> Result<String> {
        let salt = random::<16>(env)?;
        let hash = self.raw(params, password.as_bytes(), &salt)?;
        Ok(format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            params.m_kib,
            params.t,
            params.p,
            STANDARD_NO_PAD.encode(salt),
            STANDARD_NO_PAD.encode(hash)
        ))
    }

    /// Whether `password` matches the PHC string. Costs one slow hash whatever the answer.
    pub(crate) fn verify_password(&self, phc: &str, password: &str) -> Result<bool> {
        let stored =
            Phc::parse(phc).ok_or_else(|| Error::internal("stored password hash is unreadable"))?;
        let hash = self.raw(stored.params, password.as_bytes(), &stored.salt)?;
        Ok(ct_eq(&hash, &stored.hash))
    }

    /// The hash of one normalised backup code under a set's salt.
    pub(crate) fn hash_code(
        &self,
        params: Argon2Params,
        salt: &[u8],
        code: &str,
    ) -> Result<[u8; HASH_LEN]> {
        self.raw(params, code.as_bytes(), salt)
    }
}

impl Drop for SlowHasher {
    fn drop(&mut self) {
        if let Ok(pool) = self.pool.get_mut() {
            for memory in pool.iter_mut() {
                for block in memory.iter_mut() {
                    zeroize::Zeroize::zeroize(block);
                }
            }
        }
    }
}

/// An argon2id PHC string, parsed: `$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>`.
struct Phc {
    params: Argon2Params,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl Phc {
    fn parse(phc: &str) -> Option<Phc> {
        let mut parts = phc.split('$');
        let (Some(""), Some("argon2id"), Some("v=19"), Some(params), Some(salt), Some(hash), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let (mut m, mut t, mut p) = (None, None, None);
        for pair in params.split(',') {
            let (k, v) = pair.split_once('=')?;
            let v: u32 = v.parse().ok()?;
            match k {
                "m" => m = Some(v),
                "t" => t = Some(v),
                "p" => p = Some(v),
                _ => return None,
            }
        }
        let hash = STANDARD_NO_PAD.decode(hash).ok()?;
        (hash.len() == HASH_LEN).then_some(())?;
        Some(Phc {
            params: Argon2Params {
                m_kib: m?,
                t: t?,
                p: p?,
            },
            salt: STANDARD_NO_PAD.decode(salt).ok()?,
            hash,
        })
    }
}

/// Whether a stored PHC string was made with other parameters than `params` (A2).
pub(crate) fn needs_rehash(phc: &str, params: Argon2Params) -> bool {
    Phc::parse(phc).is_none_or(|stored| stored.params != params)
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
        STANDARD_NO_PAD.encode([0u8; HASH_LEN]),
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

    const CHEAP: Argon2Params = Argon2Params {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    struct Counter(std::sync::atomic::AtomicU8);

    impl Environment for Counter {
        fn now_ms(&self) -> std::result::Result<u64, HostError> {
            Ok(0)
        }
        fn fill_random(&self, buf: &mut [u8]) -> std::result::Result<(), HostError> {
            for b in buf {
                *b = self.0.fetch_add(7, Ordering::Relaxed);
            }
            Ok(())
        }
    }

    struct Zeros;

    impl Environment for Zeros {
        fn now_ms(&self) -> std::result::Result<u64, HostError> {
            Ok(0)
        }
        fn fill_random(&self, buf: &mut [u8]) -> std::result::Result<(), HostError> {
            buf.fill(0);
            Ok(())
        }
    }

    #[test]
    fn dummy_hash_parses_and_matches_nothing() {
        let h = SlowHasher::default();
        let dummy = dummy_password_hash(CHEAP);
        assert!(!h.verify_password(&dummy, "password").unwrap());
        assert!(!needs_rehash(&dummy, CHEAP));
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
    fn a2_pooled_hashes_verify_and_match_the_reference_argon2() {
        let h = SlowHasher::default();
        let env = Counter(Default::default());
        let phc = h.hash_password(CHEAP, "correct horse", &env).unwrap();
        assert!(h.verify_password(&phc, "correct horse").unwrap());
        assert!(!h.verify_password(&phc, "correct horsE").unwrap());
        // The same string through the argon2 crate's own verifier: our PHC is standard.
        use argon2::password_hash::PasswordVerifier;
        let parsed = argon2::PasswordHash::new(&phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        // A larger cost after a smaller one reuses nothing too small.
        let bigger = Argon2Params {
            m_kib: 256,
            t: 1,
            p: 2,
        };
        let phc2 = h.hash_password(bigger, "x", &env).unwrap();
        assert!(h.verify_password(&phc2, "x").unwrap());
        assert_eq!(h.count(), 5);
    }

    #[test]
    fn randomness_that_repeats_one_byte_is_refused() {
        assert!(random::<16>(&Zeros).is_err());
        assert!(random::<32>(&Counter(Default::default())).is_ok());
    }

    #[test]
    fn tokens_name_their_user() {
        let env = Counter(Default::default());
        let token = new_token(&env, "u_1-x").unwrap();
        assert_eq!(token_user(&token), Some("u_1-x"));
        assert_eq!(token_user("u.short"), None);
        assert_eq!(token_user(&format!("u!.{}", "a".repeat(43))), None);
        assert_eq!(token_user(&"a".repeat(44)), None);
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

    #[test]
    fn hmac_parts_are_length_prefixed() {
        let k = [7u8; 32];
        assert_ne!(
            hmac_hex(&k, &[b"ab", b"c"]).unwrap(),
            hmac_hex(&k, &[b"a", b"bc"]).unwrap()
        );
        assert_eq!(hmac_hex(&k, &[b"x"]).unwrap().len(), 64);
    }
}
