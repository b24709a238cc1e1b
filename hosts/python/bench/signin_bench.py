#!/usr/bin/env python3
"""Whole sign-ins per second on one core from Python (issue 16): password step one with the
SPEC argon2 parameters (m=19456 KiB, t=2, p=1) then the passkey finish, three ways:

- `twofold C`: the `twofold` package over libtwofold (ctypes), MemoryStorage;
- `twofold wasm`: the WASI component through wasmtime-py 50 (bench/component.py), MemoryStorage;
- `python stack`: what a Python team would write instead: argon2-cffi `verify` with the same
  parameters plus py_webauthn `verify_authentication_response` on the same kind of assertion
  (ES256, fresh challenge each time), no storage and no framework.

Rounds are interleaved (each round runs the paths in a random order); every assertion is made
before its timer starts. Reported: median of step one, of the passkey finish, of their sum per
round, sign-ins/s = 1000 / median sum, the ratio to the Python stack, minor page faults per
sign-in. `status` rows time one call without a slow hash or signature (the boundary, JSON and
storage). Pinned to one CPU. Machine, versions and load are printed before and after.

    python bench/signin_bench.py [--rounds 31] [--sqlite]   (needs bench/requirements.txt)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import argon2  # noqa: E402
import webauthn  # noqa: E402
from component import ComponentEngine  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from softkey import SoftKey, b64, cbor, unb64  # noqa: E402

import twofold  # noqa: E402
from twofold import AuditKey, Config, Engine, MemoryStorage, SecondFactorRequired, SQLiteStorage  # noqa: E402

ORIGIN = "http://localhost:8080"
EMAIL = "bench@example.com"
PASSWORD = "correct horse battery staple"
KEY = AuditKey(id="bench", secret="8f1d5c0a3b7e9f2461d8c7b5a3e9f0c2d4b6a8e0f2c4d6b8a0e2f4c6d8b0a2e4")
M_KIB, T, P = 19456, 2, 1

#: A path: prepare() -> (step_one() -> state, make_assertion(state) -> assertion, finish(state, assertion)).
Path_ = tuple[Callable[[], Any], Callable[[Any], Any], Callable[[Any, Any], None]]


def status_only(call: Callable[[], Any]) -> Path_:
    """One `status` call (no slow hash, no signature): the cost of the boundary and storage."""
    return call, lambda _: None, lambda _s, _a: None


def twofold_c(storage: twofold.Storage) -> Path_:
    engine = Engine(Config(rp_id="localhost", rp_name="bench", origins=[ORIGIN], audit_keys=[KEY]), storage)
    key = SoftKey()
    user = engine.create_account(email=EMAIL, password=PASSWORD).user_id
    started = engine.start_passkey_registration(user_id=user, name="bench", password=PASSWORD)
    engine.finish_passkey_registration(user_id=user, credential=key.create(started.options, ORIGIN))

    def step_one() -> SecondFactorRequired:
        outcome = engine.sign_in(email=EMAIL, password=PASSWORD)
        assert isinstance(outcome, SecondFactorRequired)
        return outcome

    def finish(state: SecondFactorRequired, assertion: dict[str, Any]) -> None:
        engine.sign_in_passkey(pending_token=state.pending_token, credential=assertion)

    paths_status[f"status over C ({type(storage).__name__})"] = status_only(lambda: engine.status(user_id=user))
    return step_one, lambda s: key.get(s.options, ORIGIN), finish


paths_status: dict[str, Path_] = {}


def twofold_wasm() -> Path_:
    config = {"rp_id": "localhost", "rp_name": "bench", "origins": [ORIGIN], "top_origins": [],
              "audit_keys": [{"id": KEY.id, "secret": KEY.secret}]}
    engine = ComponentEngine(config, HERE.parents[2] / "target" / "python-bench")
    key = SoftKey()
    user = engine.call("create-account", "create-account", {"email": EMAIL, "password": PASSWORD})["user_id"]
    started = engine.call("start-passkey-registration", "start-registration",
                          {"user_id": user, "name": "bench", "password": PASSWORD})
    engine.call("finish-passkey-registration", "finish-registration",
                {"user_id": user, "credential": key.create(json.loads(started["options"]), ORIGIN)})

    def step_one() -> dict[str, Any]:
        outcome: dict[str, Any] = engine.call("sign-in", "sign-in", {"email": EMAIL, "password": PASSWORD, "remember_me": False})
        assert outcome["status"] == "second_factor_required"
        return outcome

    def finish(state: dict[str, Any], assertion: dict[str, Any]) -> None:
        engine.call("sign-in-with-passkey", "passkey-sign-in", {"pending_token": state["pending_token"], "credential": assertion})

    paths_status["status over wasmtime-py"] = status_only(
        lambda: engine.call("status", "user-ref", {"user_id": user})
    )
    return step_one, lambda s: key.get(json.loads(s["options"]), ORIGIN), finish


def python_stack() -> Path_:
    """argon2-cffi + py_webauthn doing the same checks with the same parameters."""
    hasher = argon2.PasswordHasher(time_cost=T, memory_cost=M_KIB, parallelism=P, hash_len=32, salt_len=16,
                                   type=argon2.Type.ID)
    stored = hasher.hash(PASSWORD)
    key = SoftKey()
    key.create({"rp": {"id": "localhost"}, "user": {"id": b64(b"user-handle")}, "challenge": b64(os.urandom(32))}, ORIGIN)
    held = key.held[0]
    numbers = held.key.public_key().public_numbers()
    assert isinstance(held.key, ec.EllipticCurvePrivateKey)
    cose = cbor({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
    counter = [0]

    def step_one() -> dict[str, Any]:
        hasher.verify(stored, PASSWORD)
        challenge = os.urandom(32)
        return {"challenge": b64(challenge), "rpId": "localhost", "allowCredentials": [{"type": "public-key", "id": b64(held.id)}]}

    def finish(options: dict[str, Any], assertion: dict[str, Any]) -> None:
        verified = webauthn.verify_authentication_response(
            credential=assertion,
            expected_challenge=unb64(options["challenge"]),
            expected_rp_id="localhost",
            expected_origin=ORIGIN,
            credential_public_key=cose,
            credential_current_sign_count=counter[0],
            require_user_verification=False,
        )
        counter[0] = verified.new_sign_count

    return step_one, lambda o: key.get(o, ORIGIN), finish


def measure(path: Path_) -> tuple[float, float, int]:
    step_one, make_assertion, finish = path
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    state = step_one()
    t1 = time.perf_counter()
    assertion = make_assertion(state)
    t2 = time.perf_counter()
    finish(state, assertion)
    t3 = time.perf_counter()
    return (t1 - t0) * 1e3, (t3 - t2) * 1e3, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("wasmtime", "argon2-cffi", "argon2-cffi-bindings", "webauthn", "cryptography")
    )
    lib = twofold._ffi.library().twofold_version().decode()
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}; libtwofold {lib} "
            f"({os.environ.get('TWOFOLD_LIBRARY') or 'bundled/release'}); {versions}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--sqlite", action="store_true", help="also twofold C over an SQLite file")
    args = parser.parse_args()
    print("machine:", machine())
    print("load before: %.2f %.2f %.2f" % os.getloadavg())
    scratch = tempfile.TemporaryDirectory()
    paths: dict[str, Path_] = {
        "twofold C (ctypes)": twofold_c(MemoryStorage()),
        "twofold wasm (wasmtime-py)": twofold_wasm(),
        "python stack (argon2-cffi + py_webauthn)": python_stack(),
    }
    if args.sqlite:
        paths["twofold C over SQLite"] = twofold_c(SQLiteStorage(Path(scratch.name) / "bench.db"))
    paths.update(paths_status)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
        print("pinned to CPU", sorted(os.sched_getaffinity(0)))
    for path in paths.values():  # warm up
        measure(path)
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name in random.sample(list(paths), len(paths)):
            results[name].append(measure(paths[name]))
    baseline = statistics.median(a + b for a, b, _ in results["python stack (argon2-cffi + py_webauthn)"])
    print(f"{args.rounds} interleaved rounds; medians in ms; argon2id m={M_KIB} t={T} p={P}")
    print(f"{'path':44} {'step one':>9} {'passkey':>8} {'sum':>8} {'sign-ins/s':>11} {'vs python':>10} {'faults':>7}")
    for name, rows in results.items():
        one = statistics.median(r[0] for r in rows)
        two = statistics.median(r[1] for r in rows)
        total = statistics.median(r[0] + r[1] for r in rows)
        faults = statistics.median(r[2] for r in rows)
        print(f"{name:44} {one:9.2f} {two:8.2f} {total:8.2f} {1000 / total:11.1f} {baseline / total:9.2f}x {faults:7.0f}")
    print("load after: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
