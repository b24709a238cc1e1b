// A software passkey for tests and benchmarks: ES256 (node:crypto), attestation "none", user
// presence and verification set. `create(options)` and `get(options)` take the engine's options
// JSON and return what a browser's `credential.toJSON()` gives, as JSON text.

import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';

const b64u = (bytes) => Buffer.from(bytes).toString('base64url');
const sha256 = (bytes) => createHash('sha256').update(bytes).digest();
const u16 = (n) => Buffer.from([n >> 8, n & 0xff]);
const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };

// Just enough CBOR: small ints, byte and text strings, maps.
function cbor(v) {
  const head = (major, n) => (n < 24 ? Buffer.from([(major << 5) | n])
    : n < 256 ? Buffer.from([(major << 5) | 24, n]) : Buffer.concat([Buffer.from([(major << 5) | 25]), u16(n)]));
  if (typeof v === 'number') return v >= 0 ? head(0, v) : head(1, -1 - v);
  if (typeof v === 'string') return Buffer.concat([head(3, Buffer.byteLength(v)), Buffer.from(v)]);
  if (Buffer.isBuffer(v)) return Buffer.concat([head(2, v.length), v]);
  return Buffer.concat([head(5, v.size), ...[...v].flatMap(([k, x]) => [cbor(k), cbor(x)])]);
}

const UP = 0x01, UV = 0x04, AT = 0x40;

export class SoftAuthenticator {
  #keys = new Map(); // credential id (base64url) -> { privateKey, rpId, userHandle, counter }

  constructor(origin = 'http://localhost:8080') {
    this.origin = origin;
  }

  #clientData(type, challenge) {
    return Buffer.from(JSON.stringify({ type, challenge, origin: this.origin, crossOrigin: false }));
  }

  /** navigator.credentials.create, for creation options given as JSON text. */
  create(optionsJson) {
    const o = JSON.parse(optionsJson);
    const rpId = o.rp.id;
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const { x, y } = publicKey.export({ format: 'jwk' });
    const cose = cbor(new Map([[1, 2], [3, -7], [-1, 1], [-2, Buffer.from(x, 'base64url')], [-3, Buffer.from(y, 'base64url')]]));
    const id = randomBytes(16);
    const authData = Buffer.concat([sha256(rpId), Buffer.from([UP | UV | AT]), u32(0), Buffer.alloc(16), u16(id.length), id, cose]);
    this.#keys.set(b64u(id), { privateKey, rpId, userHandle: o.user.id, counter: 0 });
    return JSON.stringify({
      id: b64u(id), rawId: b64u(id), type: 'public-key', clientExtensionResults: {}, authenticatorAttachment: 'platform',
      response: {
        clientDataJSON: b64u(this.#clientData('webauthn.create', o.challenge)),
        attestationObject: b64u(cbor(new Map([['fmt', 'none'], ['attStmt', new Map()], ['authData', authData]]))),
        transports: ['internal'],
      },
    });
  }

  /** navigator.credentials.get, for request options given as JSON text. */
  get(optionsJson) {
    const o = JSON.parse(optionsJson);
    const allowed = (o.allowCredentials ?? []).map((c) => c.id);
    const id = [...this.#keys.keys()].find((k) => this.#keys.get(k).rpId === o.rpId && (allowed.length === 0 || allowed.includes(k)));
    if (id === undefined) throw new Error('no passkey for this request');
    const key = this.#keys.get(id);
    key.counter += 1;
    const authData = Buffer.concat([sha256(key.rpId), Buffer.from([UP | UV]), u32(key.counter)]);
    const clientData = this.#clientData('webauthn.get', o.challenge);
    return JSON.stringify({
      id, rawId: id, type: 'public-key', clientExtensionResults: {}, authenticatorAttachment: 'platform',
      response: {
        clientDataJSON: b64u(clientData),
        authenticatorData: b64u(authData),
        signature: b64u(sign('sha256', Buffer.concat([authData, sha256(clientData)]), key.privateKey)),
        userHandle: key.userHandle,
      },
    });
  }
}
