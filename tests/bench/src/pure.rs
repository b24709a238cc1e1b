//! The slow parts alone, natively: argon2id with the SPEC parameters, WebAuthn assertion
//! verification (webauthn-rs-core's `authenticate_credential`), and the raw ES256 verification
//! underneath it (RustCrypto `p256`).

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use serde_json::{Value, json};
use twofold_core::Argon2Params;
use twofold_testkit::authenticator::{Authenticator, Tweaks};
use url::Url;
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AuthenticationState, COSEAlgorithm, PublicKeyCredential,
    RegisterPublicKeyCredential, UserVerificationPolicy,
};

use twofold_testkit::{ORIGIN, RP_ID};

/// One argon2id hash with these parameters, as the engine computes it (32-byte output).
pub struct Argon2Alone {
    hasher: Argon2<'static>,
}

impl Argon2Alone {
    pub fn new(p: Argon2Params) -> Argon2Alone {
        let params = Params::new(p.m_kib, p.t, p.p, Some(32)).expect("argon2 parameters");
        Argon2Alone {
            hasher: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
        }
    }

    pub fn run(&self) -> Duration {
        let mut out = [0u8; 32];
        let started = Instant::now();
        self.hasher
            .hash_password_into(
                b"correct horse battery staple",
                b"sixteen byte salt",
                &mut out,
            )
            .expect("argon2");
        let d = started.elapsed();
        std::hint::black_box(out);
        d
    }
}

/// Removes `null` members (the browser-side JSON parsers refuse them; so does the testkit).
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// One registered ES256 credential and one assertion for it, verified with webauthn-rs-core
/// configured as the engine configures it. The same assertion goes to the peer.
pub struct Verification {
    core: WebauthnCore,
    state: AuthenticationState,
    assertion: PublicKeyCredential,
    /// What the peer needs to verify the same assertion.
    pub peer_input: Value,
}

impl Verification {
    pub fn new() -> Result<Verification, String> {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        let origin = Url::parse(ORIGIN).map_err(|x| e(&x))?;
        let core = WebauthnCore::new_unsafe_experts_only(
            &crate::world::spec_config().rp_name,
            RP_ID,
            vec![origin],
            Duration::from_secs(300),
            None,
            None,
        );
        let policy = UserVerificationPolicy::Preferred;
        let builder = core
            .new_challenge_register_builder(b"bench-user-handle", "ada@example.com", "Ada")
            .map_err(|x| e(&x))?
            .attestation(AttestationConveyancePreference::None)
            .user_verification_policy(policy)
            .credential_algorithms(vec![COSEAlgorithm::ES256])
            .require_resident_key(false);
        let (creation, reg_state) = core
            .generate_challenge_register(builder)
            .map_err(|x| e(&x))?;
        let mut options = serde_json::to_value(&creation.public_key).map_err(|x| e(&x))?;
        strip_nulls(&mut options);
        let mut authenticator = Authenticator::new(42);
        let registration = authenticator
            .register(&options, ORIGIN, &Tweaks::default())
            .map_err(|x| e(&x))?;
        let reg: RegisterPublicKeyCredential =
            serde_json::from_value(registration.clone()).map_err(|x| e(&x))?;
        let credential = core
            .register_credential(&reg, &reg_state, None)
            .map_err(|x| e(&x))?;

        let builder = core
            .new_challenge_authenticate_builder(vec![credential], Some(policy))
            .map_err(|x| e(&x))?
            .allow_backup_eligible_upgrade(true);
        let (request, state) = core
            .generate_challenge_authenticate(builder)
            .map_err(|x| e(&x))?;
        let mut request_options = serde_json::to_value(&request.public_key).map_err(|x| e(&x))?;
        strip_nulls(&mut request_options);
        let assertion_json = authenticator
            .authenticate(&request_options, ORIGIN, &Tweaks::default())
            .map_err(|x| e(&x))?;
        let assertion: PublicKeyCredential =
            serde_json::from_value(assertion_json.clone()).map_err(|x| e(&x))?;
        let peer_input = json!({
            "rp_id": RP_ID,
            "origin": ORIGIN,
            "registration": registration,
            "registration_challenge": options["challenge"],
            "assertion": assertion_json.to_string(),
            "assertion_challenge": request_options["challenge"],
        });
        let v = Verification {
            core,
            state,
            assertion,
            peer_input,
        };
        v.verify()?;
        Ok(v)
    }

    fn verify(&self) -> Result<(), String> {
        self.core
            .authenticate_credential(&self.assertion, &self.state)
            .map(|r| {
                std::hint::black_box(r);
            })
            .map_err(|e| e.to_string())
    }

    /// `authenticate_credential` on the parsed assertion: checks and signature.
    pub fn run(&self) -> Duration {
        let started = Instant::now();
        let ok = self.verify();
        let d = started.elapsed();
        assert!(ok.is_ok(), "the assertion stopped verifying: {ok:?}");
        d
    }

    /// The same from the assertion's JSON text (parsing included), as the engine gets it.
    pub fn run_from_json(&self, text: &str) -> Duration {
        let started = Instant::now();
        let parsed: PublicKeyCredential = serde_json::from_str(text).expect("assertion JSON");
        let ok = self.core.authenticate_credential(&parsed, &self.state);
        let d = started.elapsed();
        assert!(ok.is_ok(), "the assertion stopped verifying");
        d
    }

    pub fn assertion_json(&self) -> String {
        self.peer_input["assertion"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// A raw ES256 verification with RustCrypto `p256`: the floor under WebAuthn verification.
pub struct RawEs256 {
    key: p256::ecdsa::VerifyingKey,
    message: Vec<u8>,
    signature: p256::ecdsa::Signature,
}

impl RawEs256 {
    pub fn new() -> RawEs256 {
        let signing = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).expect("a valid scalar");
        // authenticatorData (37 bytes) || SHA-256(clientDataJSON), as WebAuthn signs.
        let message = vec![0x5au8; 37 + 32];
        let signature: p256::ecdsa::Signature = signing.sign(&message);
        RawEs256 {
            key: *signing.verifying_key(),
            message,
            signature,
        }
    }

    pub fn run(&self) -> Duration {
        let started = Instant::now();
        let ok = self.key.verify(&self.message, &self.signature);
        let d = started.elapsed();
        assert!(ok.is_ok());
        d
    }
}
