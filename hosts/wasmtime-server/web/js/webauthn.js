// WebAuthn JSON: options from the server to the browser's types, credentials back to JSON
// (parse*OptionsFromJSON and toJSON() where the browser has them, a fallback where not).

function b64urlToBuffer(text) {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
  const bin = atob(padded);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes.buffer;
}

function bufferToB64url(buffer) {
  const bytes = new Uint8Array(buffer);
  let bin = '';
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function unwrapOptions(options) {
  return options && options.publicKey ? options.publicKey : options;
}

export function webauthnAvailable() {
  return !!(window.PublicKeyCredential && navigator.credentials);
}

// Creation options JSON -> PublicKeyCredentialCreationOptions.
export function parseCreation(json) {
  const options = unwrapOptions(json);
  if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function') {
    return PublicKeyCredential.parseCreationOptionsFromJSON(options);
  }
  const copy = JSON.parse(JSON.stringify(options));
  copy.challenge = b64urlToBuffer(copy.challenge);
  copy.user.id = b64urlToBuffer(copy.user.id);
  copy.excludeCredentials = (copy.excludeCredentials || []).map((c) => ({ ...c, id: b64urlToBuffer(c.id) }));
  return copy;
}

// Request options JSON -> PublicKeyCredentialRequestOptions.
export function parseRequest(json) {
  const options = unwrapOptions(json);
  if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function') {
    return PublicKeyCredential.parseRequestOptionsFromJSON(options);
  }
  const copy = JSON.parse(JSON.stringify(options));
  copy.challenge = b64urlToBuffer(copy.challenge);
  copy.allowCredentials = (copy.allowCredentials || []).map((c) => ({ ...c, id: b64urlToBuffer(c.id) }));
  return copy;
}

// PublicKeyCredential -> its JSON form, as credential.toJSON() gives it.
export function credentialToJSON(credential) {
  if (typeof credential.toJSON === 'function') return credential.toJSON();
  const r = credential.response;
  const out = {
    id: credential.id,
    rawId: bufferToB64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
    response: { clientDataJSON: bufferToB64url(r.clientDataJSON) },
  };
  if (r.attestationObject) {
    out.response.attestationObject = bufferToB64url(r.attestationObject);
    out.response.transports = r.getTransports ? r.getTransports() : [];
  } else {
    out.response.authenticatorData = bufferToB64url(r.authenticatorData);
    out.response.signature = bufferToB64url(r.signature);
    out.response.userHandle = r.userHandle ? bufferToB64url(r.userHandle) : null;
  }
  return out;
}
