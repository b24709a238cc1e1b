//! The software authenticator against the real verifier, webauthn-rs-core: honest ceremonies
//! pass, and each tweak is caught for the reason it simulates.

use std::error::Error;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Verifier as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use twofold_testkit::authenticator::{
    Algorithm, AttestationFormat, Authenticator, AuthenticatorError, CounterMode, Tweaks,
};
use url::Url;
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AuthenticationResult, COSEAlgorithm, Credential, PublicKeyCredential,
    RegisterPublicKeyCredential,
};

type TestResult<T = ()> = Result<T, Box<dyn Error>>;

const ORIGIN: &str = "http://localhost:8080";

/// A tweak and a test for the verifier error it must cause.
type Case = (Tweaks, fn(&WebauthnError) -> bool);

fn verifier() -> TestResult<WebauthnCore> {
    Ok(WebauthnCore::new_unsafe_experts_only(
        "Example",
        "localhost",
        vec![Url::parse(ORIGIN)?],
        Duration::from_secs(300),
        None,
        None,
    ))
}

/// One registration ceremony; the outer error is plumbing, the inner one the verifier's verdict.
fn register(
    wa: &WebauthnCore,
    authenticator: &mut Authenticator,
    tweaks: &Tweaks,
) -> TestResult<Result<Credential, WebauthnError>> {
    let builder = wa
        .new_challenge_register_builder(b"user-0001", "ada", "Ada Lovelace")?
        .credential_algorithms(vec![
            COSEAlgorithm::ES256,
            COSEAlgorithm::RS256,
            COSEAlgorithm::EDDSA,
        ]);
    let (challenge, state) = wa.generate_challenge_register(builder)?;
    let options = serde_json::to_value(&challenge)?;
    let response = authenticator.register(&options, ORIGIN, tweaks)?;
    let reg: RegisterPublicKeyCredential = serde_json::from_value(response)?;
    Ok(wa.register_credential(&reg, &state, None))
}

fn authenticate(
    wa: &WebauthnCore,
    authenticator: &mut Authenticator,
    credential: &Credential,
    tweaks: &Tweaks,
) -> TestResult<Result<AuthenticationResult, WebauthnError>> {
    let builder = wa.new_challenge_authenticate_builder(vec![credential.clone()], None)?;
    let (challenge, state) = wa.generate_challenge_authenticate(builder)?;
    let options = serde_json::to_value(&challenge)?;
    let response = authenticator.authenticate(&options, ORIGIN, tweaks)?;
    let assertion: PublicKeyCredential = serde_json::from_value(response)?;
    Ok(wa.authenticate_credential(&assertion, &state))
}

/// Registers with defaults and returns the verifier, the authenticator and the credential.
fn registered(
    authenticator: Authenticator,
) -> TestResult<(WebauthnCore, Authenticator, Credential)> {
    let wa = verifier()?;
    let mut authenticator = authenticator;
    let credential = register(&wa, &mut authenticator, &Tweaks::default())??;
    Ok((wa, authenticator, credential))
}

fn full_round_trip(authenticator: Authenticator) -> TestResult {
    let (wa, mut authenticator, mut credential) = registered(authenticator)?;
    assert_eq!(credential.counter, 0);
    assert!(credential.user_verified);
    assert!(!credential.backup_eligible && !credential.backup_state);
    assert_eq!(
        authenticator.credential_ids(),
        vec![credential.cred_id.to_vec()]
    );

    for expected in 1..=3 {
        let result = authenticate(&wa, &mut authenticator, &credential, &Tweaks::default())??;
        assert_eq!(result.counter(), expected);
        assert!(result.user_verified());
        credential.counter = result.counter();
    }
    Ok(())
}

#[test]
fn es256_with_fmt_none_registers_and_authenticates() -> TestResult {
    full_round_trip(Authenticator::new(1))
}

#[test]
fn es256_with_packed_self_attestation_registers_and_authenticates() -> TestResult {
    full_round_trip(Authenticator::new(2).attestation(AttestationFormat::Packed))
}

#[test]
fn rs256_registers_and_authenticates() -> TestResult {
    full_round_trip(Authenticator::new(3).algorithms(&[Algorithm::Rs256]))?;
    full_round_trip(
        Authenticator::new(4)
            .algorithms(&[Algorithm::Rs256])
            .attestation(AttestationFormat::Packed),
    )
}

#[test]
fn corrupted_packed_attestation_signature_is_rejected() -> TestResult {
    let wa = verifier()?;
    let mut authenticator = Authenticator::new(5).attestation(AttestationFormat::Packed);
    for tweaks in [
        Tweaks {
            corrupt_signature: true,
            ..Tweaks::default()
        },
        Tweaks {
            alter_client_data_after_signing: true,
            ..Tweaks::default()
        },
    ] {
        let verdict = register(&wa, &mut authenticator, &tweaks)?;
        assert!(
            matches!(verdict, Err(WebauthnError::AttestationStatementSigInvalid)),
            "{tweaks:?}: {verdict:?}"
        );
    }
    Ok(())
}

#[test]
fn registration_tweaks_are_rejected_for_their_reason() -> TestResult {
    let wa = verifier()?;
    let mut authenticator = Authenticator::new(6);
    let cases: Vec<Case> = vec![
        (
            Tweaks {
                origin: Some("https://evil.example".into()),
                ..Tweaks::default()
            },
            |e| matches!(e, WebauthnError::InvalidRPOrigin),
        ),
        (
            Tweaks {
                rp_id: Some("evil.example".into()),
                ..Tweaks::default()
            },
            |e| matches!(e, WebauthnError::InvalidRPIDHash),
        ),
        (
            Tweaks {
                challenge: Some(vec![7; 32]),
                ..Tweaks::default()
            },
            |e| matches!(e, WebauthnError::MismatchedChallenge),
        ),
        (
            Tweaks {
                client_data_type: Some("webauthn.get".into()),
                ..Tweaks::default()
            },
            |e| matches!(e, WebauthnError::InvalidClientDataType),
        ),
        (
            Tweaks {
                user_present: Some(false),
                ..Tweaks::default()
            },
            |e| matches!(e, WebauthnError::UserNotPresent),
        ),
    ];
    for (tweaks, expected) in cases {
        let error = register(&wa, &mut authenticator, &tweaks)?
            .err()
            .ok_or_else(|| format!("accepted a registration with {tweaks:?}"))?;
        assert!(expected(&error), "{tweaks:?} failed with {error:?}");
    }
    Ok(())
}

#[test]
fn assertion_tweaks_are_rejected_for_their_reason() -> TestResult {
    let (wa, mut authenticator, mut credential) = registered(Authenticator::new(7))?;
    let first = authenticate(&wa, &mut authenticator, &credential, &Tweaks::default())??;
    credential.counter = first.counter();

    let cases: Vec<Case> = vec![
        (
            Tweaks {
                corrupt_signature: true,
                ..Tweaks::default()
            },
            |e| matches!(e, WebauthnError::AuthenticationFailure),
        ),
        (
            Tweaks {
                alter_client_data_after_signing: true,
                ..Tweaks::default()
            },
            |e| matches!(e, WebauthnError::AuthenticationFailure),
        ),
        (
            Tweaks {
                origin: Some("http://localhost:8081".into()),
                ..Tweaks::default()
            },
            |e| matches!(e, WebauthnError::InvalidRPOrigin),
        ),
        (
            Tweaks {
                rp_id: Some("example.com".into()),
                ..Tweaks::default()
            },
            |e| matches!(e, WebauthnError::InvalidRPIDHash),
        ),
        (
            Tweaks {
                challenge: Some(b"an old challenge, replayed".to_vec()),
                ..Tweaks::default()
            },
            |e| matches!(e, WebauthnError::MismatchedChallenge),
        ),
        (
            Tweaks {
                client_data_type: Some("webauthn.create".into()),
                ..Tweaks::default()
            },
            |e| matches!(e, WebauthnError::InvalidClientDataType),
        ),
        (
            Tweaks {
                user_present: Some(false),
                ..Tweaks::default()
            },
            |e| matches!(e, WebauthnError::UserNotPresent),
        ),
        (
            Tweaks {
                counter: Some(first.counter()),
                ..Tweaks::default()
            },
            |e| matches!(e, WebauthnError::CredentialPossibleCompromise),
        ),
    ];
    for (tweaks, expected) in cases {
        let error = authenticate(&wa, &mut authenticator, &credential, &tweaks)?
            .err()
            .ok_or_else(|| format!("accepted an assertion with {tweaks:?}"))?;
        assert!(expected(&error), "{tweaks:?} failed with {error:?}");
    }

    // Refused assertions still used the authenticator, so its counter moved on: the next honest
    // one verifies.
    let honest = authenticate(&wa, &mut authenticator, &credential, &Tweaks::default())??;
    assert!(honest.counter() > first.counter());
    Ok(())
}

#[test]
fn a_cloned_authenticator_is_caught_by_the_counter() -> TestResult {
    let (wa, mut original, mut credential) = registered(Authenticator::new(8))?;
    let mut clone = original.clone();

    let by_clone = authenticate(&wa, &mut clone, &credential, &Tweaks::default())??;
    credential.counter = by_clone.counter();
    let by_original = authenticate(&wa, &mut original, &credential, &Tweaks::default())?;
    assert!(matches!(
        by_original,
        Err(WebauthnError::CredentialPossibleCompromise)
    ));
    Ok(())
}

#[test]
fn counter_modes() -> TestResult {
    let (wa, mut authenticator, credential) =
        registered(Authenticator::new(9).counter_mode(CounterMode::AlwaysZero))?;
    for _ in 0..2 {
        let result = authenticate(&wa, &mut authenticator, &credential, &Tweaks::default())??;
        assert_eq!(result.counter(), 0);
    }

    let (wa, mut authenticator, credential) =
        registered(Authenticator::new(10).initial_counter(1))?;
    assert_eq!(credential.counter, 1);
    let result = authenticate(&wa, &mut authenticator, &credential, &Tweaks::default())??;
    assert_eq!(result.counter(), 2);
    Ok(())
}

#[test]
fn backup_flags_are_reported_and_can_flip() -> TestResult {
    let (wa, mut authenticator, credential) =
        registered(Authenticator::new(11).backup_flags(true, false))?;
    assert!(credential.backup_eligible && !credential.backup_state);

    let synced = Tweaks {
        backup_state: Some(true),
        ..Tweaks::default()
    };
    let result = authenticate(&wa, &mut authenticator, &credential, &synced)??;
    assert!(result.backup_state() && result.needs_update());

    // BE must never change after registration.
    let not_eligible = Tweaks {
        backup_eligible: Some(false),
        ..Tweaks::default()
    };
    assert!(matches!(
        authenticate(&wa, &mut authenticator, &credential, &not_eligible)?,
        Err(WebauthnError::CredentialBackupEligibilityInconsistent)
    ));
    Ok(())
}

#[test]
fn user_verification_flag_follows_the_tweak() -> TestResult {
    let (wa, mut authenticator, credential) = registered(Authenticator::new(12))?;
    let no_uv = Tweaks {
        user_verified: Some(false),
        ..Tweaks::default()
    };
    // The credential was registered with UV under the "preferred" policy, so UV is now required.
    assert!(matches!(
        authenticate(&wa, &mut authenticator, &credential, &no_uv)?,
        Err(WebauthnError::UserNotVerified)
    ));
    Ok(())
}

#[test]
fn explicit_credential_not_in_allow_list_is_rejected() -> TestResult {
    let wa = verifier()?;
    let mut authenticator = Authenticator::new(13);
    let first = register(&wa, &mut authenticator, &Tweaks::default())??;
    let second = register(&wa, &mut authenticator, &Tweaks::default())??;
    assert_eq!(authenticator.credential_ids().len(), 2);

    let use_second = Tweaks {
        credential_id: Some(second.cred_id.to_vec()),
        ..Tweaks::default()
    };
    assert!(matches!(
        authenticate(&wa, &mut authenticator, &first, &use_second)?,
        Err(WebauthnError::CredentialNotFound)
    ));
    authenticate(&wa, &mut authenticator, &second, &use_second)??;
    Ok(())
}

fn fixed_creation_options(exclude: &[&[u8]]) -> Value {
    let exclude: Vec<Value> = exclude
        .iter()
        .map(|id| json!({"type": "public-key", "id": URL_SAFE_NO_PAD.encode(id)}))
        .collect();
    json!({
        "rp": {"id": "localhost", "name": "Example"},
        "user": {"id": URL_SAFE_NO_PAD.encode(b"user-1"), "name": "ada", "displayName": "Ada"},
        "challenge": URL_SAFE_NO_PAD.encode([1u8; 32]),
        "pubKeyCredParams": [{"type": "public-key", "alg": -8}, {"type": "public-key", "alg": -7}],
        "excludeCredentials": exclude,
    })
}

fn fixed_request_options(allow: &[&[u8]]) -> Value {
    let allow: Vec<Value> = allow
        .iter()
        .map(|id| json!({"type": "public-key", "id": URL_SAFE_NO_PAD.encode(id)}))
        .collect();
    json!({"publicKey": {
        "rpId": "localhost",
        "challenge": URL_SAFE_NO_PAD.encode([2u8; 32]),
        "allowCredentials": allow,
    }})
}

#[test]
fn same_seed_same_bytes() -> TestResult {
    let run = |seed| -> TestResult<(Value, Value)> {
        let mut authenticator = Authenticator::new(seed);
        let created =
            authenticator.register(&fixed_creation_options(&[]), ORIGIN, &Tweaks::default())?;
        let asserted =
            authenticator.authenticate(&fixed_request_options(&[]), ORIGIN, &Tweaks::default())?;
        Ok((created, asserted))
    };
    assert_eq!(run(42)?, run(42)?);
    assert_ne!(run(42)?.0["id"], run(43)?.0["id"]);
    Ok(())
}

fn b64_field(value: &Value, pointer: &str) -> TestResult<Vec<u8>> {
    let text = value
        .pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{pointer} missing"))?;
    Ok(URL_SAFE_NO_PAD.decode(text)?)
}

#[test]
fn json_shape_matches_a_browser() -> TestResult {
    let mut authenticator = Authenticator::new(14);
    let created =
        authenticator.register(&fixed_creation_options(&[]), ORIGIN, &Tweaks::default())?;
    assert_eq!(created["type"], "public-key");
    assert_eq!(created["id"], created["rawId"]);
    assert_eq!(created["authenticatorAttachment"], "platform");
    assert_eq!(created["clientExtensionResults"], json!({}));
    assert_eq!(created["response"]["transports"], json!(["internal"]));
    assert_eq!(created["response"]["publicKeyAlgorithm"], -7);

    let client_data: Value =
        serde_json::from_slice(&b64_field(&created, "/response/clientDataJSON")?)?;
    assert_eq!(
        client_data,
        json!({
            "type": "webauthn.create",
            "challenge": URL_SAFE_NO_PAD.encode([1u8; 32]),
            "origin": ORIGIN,
            "crossOrigin": false,
            "other_keys_can_be_added_here":
                "do not compare clientDataJSON against a template. See https://goo.gl/yabPex",
        })
    );
    let auth_data = b64_field(&created, "/response/authenticatorData")?;
    assert_eq!(&auth_data[..32], Sha256::digest(b"localhost").as_slice());
    assert_eq!(auth_data[32], 0x01 | 0x04 | 0x40);
    assert_eq!(&auth_data[33..37], &[0, 0, 0, 0]);
    let id = b64_field(&created, "/rawId")?;
    assert!((16..=32).contains(&id.len()));
    assert_eq!(&auth_data[53..55], &(id.len() as u16).to_be_bytes());
    assert_eq!(&auth_data[55..55 + id.len()], id.as_slice());
    let spki = b64_field(&created, "/response/publicKey")?;
    assert_eq!(spki.len(), 91);

    let asserted = authenticator.authenticate(
        &fixed_request_options(&[&id]),
        ORIGIN,
        &Tweaks {
            drop_chromium_key: true,
            ..Tweaks::default()
        },
    )?;
    assert_eq!(asserted["id"], created["id"]);
    assert_eq!(
        b64_field(&asserted, "/response/userHandle")?,
        b"user-1".to_vec()
    );
    let client_data = b64_field(&asserted, "/response/clientDataJSON")?;
    assert_eq!(
        String::from_utf8(client_data)?,
        format!(
            r#"{{"type":"webauthn.get","challenge":"{}","origin":"{ORIGIN}","crossOrigin":false}}"#,
            URL_SAFE_NO_PAD.encode([2u8; 32])
        )
    );
    Ok(())
}

#[test]
fn eddsa_signatures_verify_with_ed25519() -> TestResult {
    let mut authenticator = Authenticator::new(15).algorithms(&[Algorithm::EdDsa]);
    let created =
        authenticator.register(&fixed_creation_options(&[]), ORIGIN, &Tweaks::default())?;
    assert_eq!(created["response"]["publicKeyAlgorithm"], -8);
    let spki = b64_field(&created, "/response/publicKey")?;
    let key: [u8; 32] = spki[12..].try_into()?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key)?;

    let asserted =
        authenticator.authenticate(&fixed_request_options(&[]), ORIGIN, &Tweaks::default())?;
    let mut message = b64_field(&asserted, "/response/authenticatorData")?;
    message.extend_from_slice(&Sha256::digest(b64_field(
        &asserted,
        "/response/clientDataJSON",
    )?));
    let signature: [u8; 64] = b64_field(&asserted, "/response/signature")?
        .as_slice()
        .try_into()?;
    key.verify(&message, &ed25519_dalek::Signature::from_bytes(&signature))?;
    Ok(())
}

#[test]
fn authenticator_refusals() -> TestResult {
    let mut authenticator = Authenticator::new(16);
    let created =
        authenticator.register(&fixed_creation_options(&[]), ORIGIN, &Tweaks::default())?;
    let id = b64_field(&created, "/rawId")?;

    assert_eq!(
        authenticator.register(&fixed_creation_options(&[&id]), ORIGIN, &Tweaks::default()),
        Err(AuthenticatorError::Excluded)
    );
    assert_eq!(
        authenticator.authenticate(
            &fixed_request_options(&[b"unknown"]),
            ORIGIN,
            &Tweaks::default()
        ),
        Err(AuthenticatorError::NoCredential)
    );
    let mut rsa_only = Authenticator::new(17).algorithms(&[Algorithm::Rs256]);
    assert_eq!(
        rsa_only.register(&fixed_creation_options(&[]), ORIGIN, &Tweaks::default()),
        Err(AuthenticatorError::UnsupportedAlgorithm)
    );
    assert!(matches!(
        authenticator.register(&json!({"challenge": 5}), ORIGIN, &Tweaks::default()),
        Err(AuthenticatorError::InvalidOptions(_))
    ));
    Ok(())
}
