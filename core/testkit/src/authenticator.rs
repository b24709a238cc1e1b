//! A software WebAuthn authenticator and browser client, for tests.
//!
//! [`Authenticator`] plays both the browser and the authenticator: it takes the options JSON a
//! relying party sends to `navigator.credentials.create()` / `.get()` and returns what a browser's
//! `PublicKeyCredential.toJSON()` returns (WebAuthn Level 3 JSON). Everything it draws at random
//! (keys, credential ids) comes from a ChaCha20 stream seeded with a `u64`, and every signature
//! scheme it uses is deterministic, so a test replays byte for byte.
//!
//! [`Tweaks`] bend one ceremony the way a buggy or hostile client would (wrong origin, wrong RP ID
//! hash, corrupted signature, replayed counter, ...) so adversarial tests can check that the
//! relying party notices. Cloning an authenticator clones its keys and counters, which is how a
//! cloned-authenticator test is set up.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer as _;
use p256::elliptic_curve::Generate as _;
use p256::pkcs8::EncodePublicKey as _;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng as _, SeedableRng as _};
use rsa::traits::PublicKeyParts as _;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

/// What Chromium adds to some clientDataJSON to stop relying parties comparing it with a template.
const CHROMIUM_EXTRA_KEY: &str = "other_keys_can_be_added_here";
const CHROMIUM_EXTRA_VALUE: &str =
    "do not compare clientDataJSON against a template. See https://goo.gl/yabPex";

/// The RSA modulus size used for RS256 credentials.
const RSA_BITS: usize = 2048;

const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_BE: u8 = 0x08;
const FLAG_BS: u8 = 0x10;
const FLAG_AT: u8 = 0x40;

/// Why a ceremony could not produce a credential, the way a browser's promise would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthenticatorError {
    /// The options JSON lacks a required field or has one of the wrong type or encoding.
    #[error("malformed options: {0}")]
    InvalidOptions(String),
    /// None of the algorithms in `pubKeyCredParams` is one this authenticator uses.
    #[error("no algorithm in pubKeyCredParams is supported by this authenticator")]
    UnsupportedAlgorithm,
    /// The authenticator already holds a credential listed in `excludeCredentials`.
    #[error("the authenticator already holds an excluded credential for this relying party")]
    Excluded,
    /// No held credential is usable for this request.
    #[error("the authenticator holds no usable credential for this request")]
    NoCredential,
    /// Key generation or signing failed.
    #[error("crypto failure: {0}")]
    Crypto(String),
}

/// A COSE signature algorithm the authenticator can create credentials with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA on P-256 with SHA-256 (COSE -7).
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit modulus (COSE -257).
    Rs256,
    /// Ed25519 (COSE -8).
    EdDsa,
}

impl Algorithm {
    /// The COSE algorithm identifier, as in `pubKeyCredParams[].alg`.
    pub fn cose_id(self) -> i64 {
        match self {
            Algorithm::Es256 => -7,
            Algorithm::Rs256 => -257,
            Algorithm::EdDsa => -8,
        }
    }
}

/// The attestation statement format of registrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttestationFormat {
    /// `fmt: "none"`, `attStmt: {}`.
    #[default]
    None,
    /// `fmt: "packed"` self attestation: `attStmt: {alg, sig}` signed with the credential key.
    Packed,
}

/// How the signature counter moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CounterMode {
    /// Each assertion adds one to the credential's counter and reports it (Chromium-like).
    #[default]
    Incrementing,
    /// Every response reports 0, as synced passkeys do.
    AlwaysZero,
}

/// Deviations from a well-behaved client and authenticator, for one ceremony.
///
/// `Tweaks::default()` changes nothing. `None` flag fields keep the authenticator's setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tweaks {
    /// Put this origin in clientDataJSON instead of the one passed to the call.
    pub origin: Option<String>,
    /// Hash this RP ID into authenticatorData instead of the requested one.
    pub rp_id: Option<String>,
    /// Put this challenge (raw bytes) in clientDataJSON instead of the requested one.
    pub challenge: Option<Vec<u8>>,
    /// Put this `type` in clientDataJSON instead of `webauthn.create` / `webauthn.get`.
    pub client_data_type: Option<String>,
    /// Flip one bit of the signature (the attestation signature when registering) after signing.
    pub corrupt_signature: bool,
    /// Sign a clientDataJSON whose challenge differs in one character, then return the true
    /// one: the response looks right but its signature covers other data.
    pub alter_client_data_after_signing: bool,
    /// Set or clear the UP flag.
    pub user_present: Option<bool>,
    /// Set or clear the UV flag.
    pub user_verified: Option<bool>,
    /// Set or clear the BE flag.
    pub backup_eligible: Option<bool>,
    /// Set or clear the BS flag.
    pub backup_state: Option<bool>,
    /// Report this signature counter; the stored counter does not move.
    pub counter: Option<u32>,
    /// Leave Chromium's extra clientDataJSON key out.
    pub drop_chromium_key: bool,
    /// Assert with this held credential, whatever the RP ID and `allowCredentials` say.
    pub credential_id: Option<Vec<u8>>,
    /// Report `crossOrigin: true`, as a browser does inside a cross-origin iframe.
    pub cross_origin: bool,
    /// Report this `topOrigin` (the page that framed the ceremony).
    pub top_origin: Option<String>,
    /// Register a credential id of exactly this many bytes.
    pub credential_id_len: Option<usize>,
}

#[derive(Debug, Clone)]
enum CredentialKey {
    Es256(p256::ecdsa::SigningKey),
    Rs256(Box<rsa::RsaPrivateKey>),
    EdDsa(ed25519_dalek::SigningKey),
}

impl CredentialKey {
    fn generate(algorithm: Algorithm, rng: &mut ChaCha20Rng) -> Result<Self, AuthenticatorError> {
        Ok(match algorithm {
            Algorithm::Es256 => {
                CredentialKey::Es256(p256::ecdsa::SigningKey::generate_from_rng(rng))
            }
            Algorithm::Rs256 => CredentialKey::Rs256(Box::new(
                rsa::RsaPrivateKey::new(rng, RSA_BITS).map_err(crypto_error)?,
            )),
            Algorithm::EdDsa => {
                let mut secret = [0u8; 32];
                rng.fill_bytes(&mut secret);
                CredentialKey::EdDsa(ed25519_dalek::SigningKey::from_bytes(&secret))
            }
        })
    }

    /// ES256 signatures are DER encoded, as WebAuthn requires; the others are raw.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, AuthenticatorError> {
        Ok(match self {
            CredentialKey::Es256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
            CredentialKey::Rs256(key) => key
                .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message))
                .map_err(crypto_error)?,
            CredentialKey::EdDsa(key) => key.sign(message).to_bytes().to_vec(),
        })
    }

    /// The credential public key in COSE_Key form, map keys in CTAP2 canonical order.
    fn cose_public_key(&self) -> Result<Vec<u8>, AuthenticatorError> {
        let entries = match self {
            CredentialKey::Es256(key) => {
                let point = key.verifying_key().to_sec1_point(false);
                let (Some(x), Some(y)) = (point.x(), point.y()) else {
                    return Err(crypto_error("P-256 public key has no affine coordinates"));
                };
                vec![
                    (Cbor::Int(1), Cbor::Int(2)),
                    (Cbor::Int(3), Cbor::Int(-7)),
                    (Cbor::Int(-1), Cbor::Int(1)),
                    (Cbor::Int(-2), Cbor::Bytes(x.to_vec())),
                    (Cbor::Int(-3), Cbor::Bytes(y.to_vec())),
                ]
            }
            CredentialKey::Rs256(key) => {
                let public = key.as_public_key();
                vec![
                    (Cbor::Int(1), Cbor::Int(3)),
                    (Cbor::Int(3), Cbor::Int(-257)),
                    (Cbor::Int(-1), Cbor::Bytes(public.n_bytes().to_vec())),
                    (Cbor::Int(-2), Cbor::Bytes(public.e_bytes().to_vec())),
                ]
            }
            CredentialKey::EdDsa(key) => vec![
                (Cbor::Int(1), Cbor::Int(1)),
                (Cbor::Int(3), Cbor::Int(-8)),
                (Cbor::Int(-1), Cbor::Int(6)),
                (
                    Cbor::Int(-2),
                    Cbor::Bytes(key.verifying_key().to_bytes().to_vec()),
                ),
            ],
        };
        Ok(Cbor::Map(entries).to_vec())
    }

    /// The public key as DER SubjectPublicKeyInfo, as `getPublicKey()` returns it.
    fn spki_der(&self) -> Result<Vec<u8>, AuthenticatorError> {
        match self {
            CredentialKey::Es256(key) => Ok(key
                .verifying_key()
                .to_public_key_der()
                .map_err(crypto_error)?
                .into_vec()),
            CredentialKey::Rs256(key) => Ok(key
                .as_public_key()
                .to_public_key_der()
                .map_err(crypto_error)?
                .into_vec()),
            CredentialKey::EdDsa(key) => {
                // SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING { key } } (RFC 8410).
                let mut der = vec![
                    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
                ];
                der.extend_from_slice(&key.verifying_key().to_bytes());
                Ok(der)
            }
        }
    }
}

#[derive(Debug, Clone)]
struct HeldCredential {
    id: Vec<u8>,
    rp_id: String,
    user_handle: Vec<u8>,
    key: CredentialKey,
    sign_count: u32,
}

/// A deterministic software authenticator behind a browser-like client. See the module docs.
#[derive(Debug, Clone)]
pub struct Authenticator {
    rng: ChaCha20Rng,
    algorithms: Vec<Algorithm>,
    attestation: AttestationFormat,
    counter_mode: CounterMode,
    initial_counter: u32,
    backup_eligible: bool,
    backup_state: bool,
    chromium_extra_key: bool,
    credentials: Vec<HeldCredential>,
}

impl Authenticator {
    /// An authenticator with the defaults: ES256, fmt `none`, UP and UV set, BE and BS clear,
    /// counter incrementing from 0 at registration, Chromium's extra clientDataJSON key present.
    pub fn new(seed: u64) -> Self {
        Authenticator {
            rng: ChaCha20Rng::seed_from_u64(seed),
            algorithms: vec![Algorithm::Es256],
            attestation: AttestationFormat::None,
            counter_mode: CounterMode::Incrementing,
            initial_counter: 0,
            backup_eligible: false,
            backup_state: false,
            chromium_extra_key: true,
            credentials: Vec::new(),
        }
    }

    /// The algorithms this authenticator can create credentials with. Registration takes the
    /// first entry of `pubKeyCredParams` that is in this set (the relying party's preference).
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = algorithms.to_vec();
        self
    }

    /// The attestation statement format of registrations.
    pub fn attestation(mut self, format: AttestationFormat) -> Self {
        self.attestation = format;
        self
    }

    /// How the signature counter moves.
    pub fn counter_mode(mut self, mode: CounterMode) -> Self {
        self.counter_mode = mode;
        self
    }

    /// The counter a new credential starts at and reports at registration (0 or 1 in practice).
    pub fn initial_counter(mut self, counter: u32) -> Self {
        self.initial_counter = counter;
        self
    }

    /// The BE and BS flags this authenticator reports, e.g. `(true, true)` for a synced passkey.
    pub fn backup_flags(mut self, eligible: bool, state: bool) -> Self {
        self.backup_eligible = eligible;
        self.backup_state = state;
        self
    }

    /// Whether clientDataJSON carries Chromium's `other_keys_can_be_added_here` key.
    pub fn chromium_extra_key(mut self, include: bool) -> Self {
        self.chromium_extra_key = include;
        self
    }

    /// The ids of the credentials held, oldest first.
    pub fn credential_ids(&self) -> Vec<Vec<u8>> {
        self.credentials.iter().map(|c| c.id.clone()).collect()
    }

    /// `navigator.credentials.create()`: creates and keeps a credential, and returns the
    /// registration's `toJSON()` form. `options` is `{"publicKey": {...}}` or the inner object.
    pub fn register(
        &mut self,
        options: &Value,
        origin: &str,
        tweaks: &Tweaks,
    ) -> Result<Value, AuthenticatorError> {
        let options = public_key_options(options)?;
        let rp_id = match options.get("rp").and_then(|rp| rp.get("id")) {
            Some(id) => as_str(id, "rp.id")?.to_owned(),
            None => effective_domain(origin)?,
        };
        let user = options.get("user").ok_or_else(|| missing("user"))?;
        let user_handle = decode_field(user.get("id"), "user.id")?;
        let challenge = decode_field(options.get("challenge"), "challenge")?;

        let algorithm = self.choose_algorithm(options.get("pubKeyCredParams"))?;
        for excluded in descriptor_ids(options.get("excludeCredentials"), "excludeCredentials")? {
            if self
                .credentials
                .iter()
                .any(|c| c.id == excluded && c.rp_id == rp_id)
            {
                return Err(AuthenticatorError::Excluded);
            }
        }

        let key = CredentialKey::generate(algorithm, &mut self.rng)?;
        let random_len = 16 + (self.rng.next_u32() % 17) as usize;
        let id_len = tweaks.credential_id_len.unwrap_or(random_len);
        let mut id = vec![0u8; id_len];
        self.rng.fill_bytes(&mut id);
        let cose_key = key.cose_public_key()?;
        let public_key = key.spki_der()?;

        let credential = HeldCredential {
            id: id.clone(),
            rp_id,
            user_handle,
            key,
            sign_count: self.initial_counter,
        };
        let reported_count = match self.counter_mode {
            CounterMode::Incrementing => credential.sign_count,
            CounterMode::AlwaysZero => 0,
        };
        let mut attested = vec![0u8; 16]; // AAGUID: none claimed
        attested.extend_from_slice(&(id.len() as u16).to_be_bytes());
        attested.extend_from_slice(&id);
        attested.extend_from_slice(&cose_key);
        let auth_data =
            self.authenticator_data(&credential.rp_id, reported_count, Some(&attested), tweaks);

        let client_data = self.client_data("webauthn.create", &challenge, origin, tweaks);
        let att_stmt = match self.attestation {
            AttestationFormat::None => Cbor::Map(Vec::new()),
            AttestationFormat::Packed => {
                let signature = signature_over(&credential.key, &auth_data, &client_data, tweaks)?;
                Cbor::Map(vec![
                    (Cbor::text("alg"), Cbor::Int(algorithm.cose_id())),
                    (Cbor::text("sig"), Cbor::Bytes(signature)),
                ])
            }
        };
        let fmt = match self.attestation {
            AttestationFormat::None => "none",
            AttestationFormat::Packed => "packed",
        };
        let attestation_object = Cbor::Map(vec![
            (Cbor::text("fmt"), Cbor::text(fmt)),
            (Cbor::text("attStmt"), att_stmt),
            (Cbor::text("authData"), Cbor::Bytes(auth_data.clone())),
        ])
        .to_vec();

        self.credentials.push(credential);

        let id = b64(&id);
        Ok(json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64(client_data.returned.as_bytes()),
                "attestationObject": b64(&attestation_object),
                "transports": ["internal"],
                "publicKeyAlgorithm": algorithm.cose_id(),
                "publicKey": b64(&public_key),
                "authenticatorData": b64(&auth_data),
            },
        }))
    }

    /// `navigator.credentials.get()`: signs with a held credential and returns the assertion's
    /// `toJSON()` form. `options` is `{"publicKey": {...}}` or the inner object.
    pub fn authenticate(
        &mut self,
        options: &Value,
        origin: &str,
        tweaks: &Tweaks,
    ) -> Result<Value, AuthenticatorError> {
        let options = public_key_options(options)?;
        let rp_id = match options.get("rpId") {
            Some(id) => as_str(id, "rpId")?.to_owned(),
            None => effective_domain(origin)?,
        };
        let challenge = decode_field(options.get("challenge"), "challenge")?;
        let allowed = descriptor_ids(options.get("allowCredentials"), "allowCredentials")?;

        let held = self
            .credentials
            .iter_mut()
            .find(|c| match &tweaks.credential_id {
                Some(wanted) => &c.id == wanted,
                None => c.rp_id == rp_id && (allowed.is_empty() || allowed.contains(&c.id)),
            })
            .ok_or(AuthenticatorError::NoCredential)?;
        let reported_count = match (tweaks.counter, self.counter_mode) {
            (Some(count), _) => count,
            (None, CounterMode::AlwaysZero) => 0,
            (None, CounterMode::Incrementing) => {
                held.sign_count = held.sign_count.wrapping_add(1);
                held.sign_count
            }
        };
        let credential = held.clone();
        let auth_data = self.authenticator_data(&rp_id, reported_count, None, tweaks);
        let client_data = self.client_data("webauthn.get", &challenge, origin, tweaks);
        let signature = signature_over(&credential.key, &auth_data, &client_data, tweaks)?;

        let id = b64(&credential.id);
        Ok(json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64(client_data.returned.as_bytes()),
                "authenticatorData": b64(&auth_data),
                "signature": b64(&signature),
                "userHandle": b64(&credential.user_handle),
            },
        }))
    }

    /// The first algorithm the relying party lists that this authenticator uses. An absent or
    /// empty list means ES256 and RS256, as the WebAuthn client algorithm says.
    fn choose_algorithm(&self, params: Option<&Value>) -> Result<Algorithm, AuthenticatorError> {
        let mut listed = Vec::new();
        if let Some(params) = params {
            let params = params
                .as_array()
                .ok_or_else(|| invalid("pubKeyCredParams is not an array"))?;
            for param in params {
                let alg = param
                    .get("alg")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| invalid("pubKeyCredParams[].alg is not an integer"))?;
                listed.push(alg);
            }
        }
        if listed.is_empty() {
            listed = vec![Algorithm::Es256.cose_id(), Algorithm::Rs256.cose_id()];
        }
        listed
            .iter()
            .find_map(|&alg| self.algorithms.iter().copied().find(|a| a.cose_id() == alg))
            .ok_or(AuthenticatorError::UnsupportedAlgorithm)
    }

    /// rpIdHash | flags | signCount, then the attested credential data if any (with AT set).
    fn authenticator_data(
        &self,
        rp_id: &str,
        sign_count: u32,
        attested: Option<&[u8]>,
        tweaks: &Tweaks,
    ) -> Vec<u8> {
        let rp_id = tweaks.rp_id.as_deref().unwrap_or(rp_id);
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        let flags = flag(tweaks.user_present.unwrap_or(true), FLAG_UP)
            | flag(tweaks.user_verified.unwrap_or(true), FLAG_UV)
            | flag(
                tweaks.backup_eligible.unwrap_or(self.backup_eligible),
                FLAG_BE,
            )
            | flag(tweaks.backup_state.unwrap_or(self.backup_state), FLAG_BS)
            | flag(attested.is_some(), FLAG_AT);
        let mut data = Sha256::digest(rp_id.as_bytes()).to_vec();
        data.push(flags);
        data.extend_from_slice(&sign_count.to_be_bytes());
        data.extend_from_slice(attested.unwrap_or_default());
        data
    }

    fn client_data(
        &self,
        ceremony: &str,
        challenge: &[u8],
        origin: &str,
        tweaks: &Tweaks,
    ) -> ClientData {
        let challenge = b64(tweaks.challenge.as_deref().unwrap_or(challenge));
        let build = |challenge: &str| {
            let fields = [
                (
                    "type",
                    tweaks.client_data_type.as_deref().unwrap_or(ceremony),
                ),
                ("challenge", challenge),
                ("origin", tweaks.origin.as_deref().unwrap_or(origin)),
            ];
            let mut json = String::from("{");
            for (name, value) in fields {
                json.push_str(&format!("{}:{},", quote(name), quote(value)));
            }
            json.push_str(if tweaks.cross_origin {
                "\"crossOrigin\":true"
            } else {
                "\"crossOrigin\":false"
            });
            if let Some(top) = &tweaks.top_origin {
                json.push_str(&format!(",{}:{}", quote("topOrigin"), quote(top)));
            }
            if self.chromium_extra_key && !tweaks.drop_chromium_key {
                json.push_str(&format!(
                    ",{}:{}",
                    quote(CHROMIUM_EXTRA_KEY),
                    quote(CHROMIUM_EXTRA_VALUE)
                ));
            }
            json.push('}');
            json
        };
        let returned = build(&challenge);
        let signed = if tweaks.alter_client_data_after_signing {
            build(&change_first_char(&challenge))
        } else {
            returned.clone()
        };
        ClientData { returned, signed }
    }
}

/// The clientDataJSON returned to the relying party and the one the signature covers; they
/// differ only under [`Tweaks::alter_client_data_after_signing`].
struct ClientData {
    returned: String,
    signed: String,
}

/// Signs authData || SHA-256(clientDataJSON), applying the signature tweaks.
fn signature_over(
    key: &CredentialKey,
    auth_data: &[u8],
    client_data: &ClientData,
    tweaks: &Tweaks,
) -> Result<Vec<u8>, AuthenticatorError> {
    let mut message = auth_data.to_vec();
    message.extend_from_slice(&Sha256::digest(client_data.signed.as_bytes()));
    let mut signature = key.sign(&message)?;
    if tweaks.corrupt_signature {
        // The last byte is inside the value (not DER framing), so ES256 signatures still parse.
        if let Some(last) = signature.last_mut() {
            *last ^= 0x01;
        }
    }
    Ok(signature)
}

fn change_first_char(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => {
            let replacement = if first == 'A' { 'B' } else { 'A' };
            std::iter::once(replacement).chain(chars).collect()
        }
        None => "A".to_owned(),
    }
}

fn public_key_options(options: &Value) -> Result<&Map<String, Value>, AuthenticatorError> {
    options
        .get("publicKey")
        .unwrap_or(options)
        .as_object()
        .ok_or_else(|| invalid("options are not a JSON object"))
}

/// The effective domain of an origin such as `https://example.com:8443`: the default RP ID.
fn effective_domain(origin: &str) -> Result<String, AuthenticatorError> {
    let rest = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or_else(|| invalid("origin has no scheme"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority.split(':').next().unwrap_or(authority),
    };
    if host.is_empty() {
        return Err(invalid("origin has no host"));
    }
    Ok(host.to_owned())
}

fn descriptor_ids(list: Option<&Value>, field: &str) -> Result<Vec<Vec<u8>>, AuthenticatorError> {
    match list {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| decode_field(item.get("id"), &format!("{field}[].id")))
            .collect(),
        Some(_) => Err(invalid(&format!("{field} is not an array"))),
    }
}

fn decode_field(value: Option<&Value>, field: &str) -> Result<Vec<u8>, AuthenticatorError> {
    let text = as_str(value.ok_or_else(|| missing(field))?, field)?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| invalid(&format!("{field} is not base64url")))
}

fn as_str<'a>(value: &'a Value, field: &str) -> Result<&'a str, AuthenticatorError> {
    value
        .as_str()
        .ok_or_else(|| invalid(&format!("{field} is not a string")))
}

fn missing(field: &str) -> AuthenticatorError {
    invalid(&format!("{field} is missing"))
}

fn invalid(message: &str) -> AuthenticatorError {
    AuthenticatorError::InvalidOptions(message.to_owned())
}

fn crypto_error(error: impl std::fmt::Display) -> AuthenticatorError {
    AuthenticatorError::Crypto(error.to_string())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn quote(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// The few CBOR items WebAuthn structures need. Maps keep the order they are given in.
enum Cbor {
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
    Map(Vec<(Cbor, Cbor)>),
}

impl Cbor {
    fn text(text: &str) -> Self {
        Cbor::Text(text.to_owned())
    }

    fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Cbor::Int(n) if *n >= 0 => head(0, n.unsigned_abs(), out),
            // Major type 1 encodes -1 - n; for negative n that is |n| - 1.
            Cbor::Int(n) => head(1, n.unsigned_abs() - 1, out),
            Cbor::Bytes(bytes) => {
                head(2, bytes.len() as u64, out);
                out.extend_from_slice(bytes);
            }
            Cbor::Text(text) => {
                head(3, text.len() as u64, out);
                out.extend_from_slice(text.as_bytes());
            }
            Cbor::Map(entries) => {
                head(5, entries.len() as u64, out);
                for (key, value) in entries {
                    key.encode(out);
                    value.encode(out);
                }
            }
        }
    }
}

/// A CBOR initial byte plus its shortest-form argument.
fn head(major: u8, argument: u64, out: &mut Vec<u8>) {
    let major = major << 5;
    if argument < 24 {
        out.push(major | argument as u8);
    } else if let Ok(v) = u8::try_from(argument) {
        out.extend_from_slice(&[major | 24, v]);
    } else if let Ok(v) = u16::try_from(argument) {
        out.push(major | 25);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = u32::try_from(argument) {
        out.push(major | 26);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&argument.to_be_bytes());
    }
}
