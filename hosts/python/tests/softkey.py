"""A software passkey (ES256, attestation `none`) that speaks the browser's JSON, for tests and
the benchmark: `create(options, origin)` is `navigator.credentials.create()` followed by
`credential.toJSON()`, `get(options, origin)` the same for `navigator.credentials.get()`.
Shapes follow twofold-testkit's authenticator, which the conformance suite uses.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

FLAG_UP, FLAG_UV, FLAG_AT = 0x01, 0x04, 0x40


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cbor(value: Any) -> bytes:
    """Canonical CBOR of ints, bytes, text and dicts (keys in the given order)."""

    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        if n < 256:
            return bytes([major << 5 | 24, n])
        if n < 65536:
            return bytes([major << 5 | 25]) + struct.pack(">H", n)
        return bytes([major << 5 | 26]) + struct.pack(">I", n)

    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, str):
        data = value.encode()
        return head(3, len(data)) + data
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(type(value))


@dataclass
class Held:
    id: bytes
    rp_id: str
    user_handle: bytes
    key: ec.EllipticCurvePrivateKey
    count: int = 0


def _public(options: dict[str, Any]) -> dict[str, Any]:
    inner = options.get("publicKey", options)
    assert isinstance(inner, dict)
    return inner


class SoftKey:
    """An authenticator holding ES256 credentials; counters start at 0 and increase."""

    def __init__(self) -> None:
        self.held: list[Held] = []

    def _client_data(self, kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False},
            separators=(",", ":"),
        ).encode()

    def create(self, options: dict[str, Any], origin: str) -> dict[str, Any]:
        o = _public(options)
        rp_id = o["rp"]["id"]
        key = ec.generate_private_key(ec.SECP256R1())
        numbers = key.public_key().public_numbers()
        cose = cbor({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
        cred_id = os.urandom(16)
        held = Held(cred_id, rp_id, unb64(o["user"]["id"]), key)
        self.held.append(held)
        attested = bytes(16) + struct.pack(">H", len(cred_id)) + cred_id + cose
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([FLAG_UP | FLAG_UV | FLAG_AT])
            + struct.pack(">I", 0)
            + attested
        )
        client_data = self._client_data("webauthn.create", o["challenge"], origin)
        attestation = cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64(cred_id),
            "rawId": b64(cred_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64(client_data),
                "attestationObject": b64(attestation),
                "transports": ["internal"],
            },
        }

    def get(self, options: dict[str, Any], origin: str) -> dict[str, Any]:
        o = _public(options)
        rp_id = o.get("rpId", "localhost")
        allowed = [unb64(c["id"]) for c in o.get("allowCredentials", [])]
        held = next(h for h in self.held if h.rp_id == rp_id and (not allowed or h.id in allowed))
        held.count += 1
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([FLAG_UP | FLAG_UV])
            + struct.pack(">I", held.count)
        )
        client_data = self._client_data("webauthn.get", o["challenge"], origin)
        signature = held.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64(held.id),
            "rawId": b64(held.id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64(client_data),
                "authenticatorData": b64(auth_data),
                "signature": b64(signature),
                "userHandle": b64(held.user_handle),
            },
        }
