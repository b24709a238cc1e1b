//! The WebAuthn relying party, over webauthn-rs-core. Options leave as WebAuthn Level 3 JSON
//! (the `publicKey` member); credentials arrive as the browser's `credential.toJSON()`.
//!
//! Challenges: webauthn-rs-core draws them from its own RNG; every challenge is replaced here
//! with bytes from the host's [`Environment`] before options or state leave this module, so
//! the engine's output depends only on what the host gives it.

use std::time::Duration;

use serde_json::Value;
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AuthenticationResult, AuthenticationState, COSEAlgorithm,
    Credential, CredentialID, PublicKeyCredential, RegisterPublicKeyCredential, RegistrationState,
    UserVerificationPolicy,
};

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::secrets::{b64url, random};
use crate::{Environment, UserVerification};

/// Why an assertion failed, for the audit log.
pub(crate) enum AssertionFailure {
    /// A non-zero counter that did not increase (P6).
    CounterRegression,
    /// Made inside a cross-origin frame whose top origin the configuration does not name (S3).
    CrossOrigin(String),
    /// Anything else: signature, challenge, origin, RP ID, flags.
    Invalid(String),
}

pub(crate) struct RelyingParty {
    core: WebauthnCore,
    policy: UserVerificationPolicy,
    top_origins: Vec<String>,
}

impl RelyingParty {
    pub(crate) fn new(config: &Settings) -> Result<RelyingParty> {
        let origins = config.origins.clone();
        let timeout = Duration::from_secs(
            config
                .registration_ttl_secs
                .min(config.pending_sign_in_ttl_secs),
        );
        let core = WebauthnCore::new_unsafe_experts_only(
            &config.rp_name,
            &config.rp_id,
            origins,
            timeout,
            None,
            None,
        );
        let policy = match config.user_verification {
            UserVerification::Required => UserVerificationPolicy::Required,
            UserVerification::Preferred => UserVerificationPolicy::Preferred,
            UserVerification::Discouraged => UserVerificationPolicy::Discouraged_DO_NOT_USE,
        };
        Ok(RelyingParty {
            core,
            policy,
            top_origins: config.top_origins.clone(),
        })
    }

    /// Creation options (P1) and the state to keep until finish.
    pub(crate) fn start_registration(
        &self,
        env: &dyn Environment,
        user_handle: &[u8],
        user_name: &str,
        exclude: Vec<CredentialID>,
    ) -> Result<(String, RegistrationState)> {
        let builder = self
            .core
            .new_challenge_register_builder(user_handle, user_name, user_name)
            .map_err(|e| Error::internal(format!("webauthn: {e}")))?
            .attestation(AttestationConveyancePreference::None)
            .user_verification_policy(self.policy)
            .exclude_credentials(Some(exclude))
            // P1: only what registration can verify. webauthn-rs-core 0.6.2 refuses Ed25519
            // keys (SshPublicKeyEDUnsupported), so EdDSA is not offered.
            .credential_algorithms(vec![COSEAlgorithm::ES256, COSEAlgorithm::RS256])
            .require_resident_key(false);
        let (mut options, state) = self
            .core
            .generate_challenge_register(builder)
            .map_err(|e| Error::internal(format!("webauthn: {e}")))?;
        let challenge = random::<32>(env)?;
        options.public_key.challenge = challenge.to_vec();
        let state = rewrite_state(&state, &challenge, false)?;
        let mut json = serde_json::to_value(&options.public_key).map_err(Error::internal)?;
        strip_nulls(&mut json);
        if let Some(selection) = json
            .get_mut("authenticatorSelection")
            .and_then(Value::as_object_mut)
        {
            selection.insert("residentKey".into(), "preferred".into());
            selection.insert("requireResidentKey".into(), false.into());
        }
        Ok((json.to_string(), state))
    }

    /// Verifies an attestation against its ceremony (P2).
    pub(crate) fn finish_registration(
        &self,
        reg: &RegisterPublicKeyCredential,
        state: &RegistrationState,
    ) -> Result<Credential> {
        if reg.type_ != "public-key" {
            return Err(Error::InvalidPasskey(
                "credential type is not public-key".into(),
            ));
        }
        let mut credential =
            self.core
                .register_credential(reg, state, None)
                .map_err(|e| match e {
                    WebauthnError::CredentialAlreadyExists => {
                        Error::AlreadyExists("this passkey is registered already".into())
                    }
                    other => Error::InvalidPasskey(describe(&other)),
                })?;
        // Transports are hints for allowCredentials (P4 lists them); the library keeps them
        // only from trusted attestation, so keep what the browser reported.
        if credential.transports.is_none() {
            credential.transports = reg.response.transports.clone();
        }
        Ok(credential)
    }

    /// Request options for the user's passkeys (S2) and the state to keep until step two.
    pub(crate) fn start_authentication(
        &self,
        env: &dyn Environment,
        credentials: Vec<Credential>,
    ) -> Result<(String, AuthenticationState)> {
        let builder = self
            .core
            .new_challenge_authenticate_builder(credentials, Some(self.policy))
            .map_err(|e| Error::internal(format!("webauthn: {e}")))?
            .allow_backup_eligible_upgrade(true);
        let (mut options, state) = self
            .core
            .generate_challenge_authenticate(builder)
            .map_err(|e| Error::internal(format!("webauthn: {e}")))?;
        let challenge = random::<32>(env)?;
        options.public_key.challenge = challenge.to_vec();
        // Verification takes the one credential the assertion names, so the stored state
        // keeps none: a pending sign-in stays small however many passkeys the user has.
        let state = rewrite_state(&state, &challenge, true)?;
        let mut json = serde_json::to_value(&options.public_key).map_err(Error::internal)?;
        strip_nulls(&mut json);
        Ok((json.to_string(), state))
    }

    /// Verifies an assertion against the stored credential it names (S3, P6, P7).
    ///
    /// Synced passkeys may flip their backup-eligible flag after registration; P7 accepts
    /// that, so the stored flag is aligned with the assertion's before verification, and the
    /// caller stores the new flags.
    pub(crate) fn finish_authentication(
        &self,
        assertion: &PublicKeyCredential,
        state: &AuthenticationState,
        stored: &Credential,
    ) -> std::result::Result<AuthenticationResult, AssertionFailure> {
        if let Some(refused) = self.cross_origin_refusal(assertion) {
            return Err(AssertionFailure::CrossOrigin(refused));
        }
        let mut credential = stored.clone();
        if let Some(flags) = assertion.response.authenticator_data.get(32) {
            credential.backup_eligible = flags & 0x08 != 0;
        }
        match self
            .core
            .authenticate_single_credential(assertion, state, &credential)
        {
            Ok(result) => Ok(result),
            Err(WebauthnError::CredentialPossibleCompromise) => {
                Err(AssertionFailure::CounterRegression)
            }
            Err(e) => Err(AssertionFailure::Invalid(describe(&e))),
        }
    }
}

impl RelyingParty {
    /// S3: an assertion made inside a cross-origin frame (`crossOrigin: true`, or any
    /// `topOrigin`) is refused unless the configuration names its top origin. webauthn-rs-core
    /// 0.6.2 checks `crossOrigin` at registration only, so the engine reads clientDataJSON.
    fn cross_origin_refusal(&self, assertion: &PublicKeyCredential) -> Option<String> {
        let client_data: Value =
            match serde_json::from_slice(assertion.response.client_data_json.as_ref()) {
                Ok(v) => v,
                // Unreadable client data is the verifier's to refuse, with its own reason.
                Err(_) => return None,
            };
        let cross = client_data.get("crossOrigin").and_then(Value::as_bool) == Some(true);
        let top = client_data.get("topOrigin");
        if !cross && top.is_none() {
            return None;
        }
        match top.and_then(Value::as_str) {
            Some(top) if self.top_origins.iter().any(|allowed| allowed == top) => None,
            Some(top) => Some(format!(
                "the passkey was used inside a frame on {top:?}, which is not allowed"
            )),
            None => Some("the passkey was used inside a cross-origin frame".into()),
        }
    }
}

/// Parses a browser credential; extra fields are ignored, as the browser adds some.
pub(crate) fn parse_credential<T: serde::de::DeserializeOwned>(json: &str) -> Result<T> {
    if json.len() > crate::MAX_JSON_BYTES {
        return Err(Error::invalid("credential JSON is larger than 64 KiB"));
    }
    serde_json::from_str(json)
        .map_err(|e| Error::invalid(format!("credential is not a WebAuthn credential JSON: {e}")))
}

fn describe(e: &WebauthnError) -> String {
    match e {
        WebauthnError::InvalidRPOrigin => "the origin is not allowed".into(),
        WebauthnError::InvalidRPIDHash => "the RP ID hash does not match".into(),
        WebauthnError::MismatchedChallenge => "the challenge does not match this ceremony".into(),
        WebauthnError::UserNotVerified => "user verification is required".into(),
        WebauthnError::UserNotPresent => "user presence is required".into(),
        WebauthnError::CredentialNotFound => {
            "the credential is not one of this user's passkeys".into()
        }
        other => other.to_string(),
    }
}

/// A copy of a webauthn-rs-core state with our challenge in place of the library's, and,
/// when `drop_credentials`, without the credentials it carries.
fn rewrite_state<T: serde::Serialize + serde::de::DeserializeOwned>(
    state: &T,
    challenge: &[u8],
    drop_credentials: bool,
) -> Result<T> {
    let mut json = serde_json::to_value(state).map_err(Error::internal)?;
    match json.get_mut("challenge") {
        Some(slot) => *slot = Value::String(b64url(challenge)),
        None => return Err(Error::internal("webauthn state has no challenge")),
    }
    if drop_credentials {
        match json.get_mut("credentials") {
            Some(slot) => *slot = Value::Array(Vec::new()),
            None => return Err(Error::internal("webauthn state has no credentials")),
        }
    }
    serde_json::from_value(json).map_err(Error::internal)
}

/// Removes `null` members, which `parse*OptionsFromJSON` does not accept for absent options.
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
