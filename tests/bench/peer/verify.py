"""The peer reference: py_webauthn's verify_authentication_response on the assertion the
benchmark made with the testkit's authenticator, and OpenSSL's raw ES256 verification of the
same signature (through `cryptography`), timed call by call.

    python verify.py INPUT.json ITERATIONS WARMUP

INPUT.json is written by twofold-bench: rp_id, origin, the registration (to take the public
key from, untimed), the assertion as JSON text and both challenges. Prints one JSON object with
the per-call latencies in nanoseconds. Needs no network.
"""

import hashlib
import json
import platform
import sys
import time

import cryptography
import webauthn
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn import verify_authentication_response, verify_registration_response
from webauthn.helpers import (
    base64url_to_bytes,
    decode_credential_public_key,
    decoded_public_key_to_cryptography,
)


def timed(fn, iterations, warmup):
    for _ in range(warmup):
        fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(iterations):
        started = clock()
        fn()
        samples.append(clock() - started)
    return samples


def main():
    path, iterations, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with open(path, encoding="utf-8") as f:
        data = json.load(f)

    registered = verify_registration_response(
        credential=data["registration"],
        expected_challenge=base64url_to_bytes(data["registration_challenge"]),
        expected_rp_id=data["rp_id"],
        expected_origin=data["origin"],
    )
    public_key = registered.credential_public_key
    assertion_text = data["assertion"]
    assertion_challenge = base64url_to_bytes(data["assertion_challenge"])

    def verify():
        verify_authentication_response(
            credential=assertion_text,
            expected_challenge=assertion_challenge,
            expected_rp_id=data["rp_id"],
            expected_origin=data["origin"],
            credential_public_key=public_key,
            credential_current_sign_count=0,
            require_user_verification=False,
        )

    verify()  # fails loudly if the assertion does not verify

    response = json.loads(assertion_text)["response"]
    signed = base64url_to_bytes(response["authenticatorData"]) + hashlib.sha256(
        base64url_to_bytes(response["clientDataJSON"])
    ).digest()
    signature = base64url_to_bytes(response["signature"])
    key = decoded_public_key_to_cryptography(decode_credential_public_key(public_key))
    algorithm = ec.ECDSA(hashes.SHA256())

    def raw():
        key.verify(signature, signed, algorithm)

    raw()

    result = {
        "python": platform.python_version(),
        "webauthn": webauthn.__version__,
        "cryptography": cryptography.__version__,
        "verify_authentication_response_ns": timed(verify, iterations, warmup),
        "openssl_es256_verify_ns": timed(raw, iterations, warmup),
    }
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
