"""The account lifecycle through the Python API, on SQLite and on PostgreSQL: every answer is a
typed record, every refusal the exception class of its code."""

from __future__ import annotations

import pytest
from conftest import CTX, ORIGIN, PASSWORD, fast_config
from softkey import SoftKey

import twofold
from twofold import (
    AuditAnchor,
    Context,
    Engine,
    ErrorCode,
    EventKind,
    SecondFactorRequired,
    SignedIn,
    TwofoldError,
)


def two_factor_user(engine: Engine, key: SoftKey, email: str = "ada@example.com") -> tuple[str, list[str]]:
    """An account with one passkey (so 2FA on) and its backup codes."""
    user = engine.create_account(email=email, password=PASSWORD, ctx=CTX).user_id
    started = engine.start_passkey_registration(user_id=user, name="Laptop", password=PASSWORD, ctx=CTX)
    registered = engine.finish_passkey_registration(
        user_id=user, credential=key.create(started.options, ORIGIN), ctx=CTX
    )
    assert registered.two_factor_enabled and registered.backup_codes is not None
    return user, registered.backup_codes


def step_one(engine: Engine, email: str = "ada@example.com") -> SecondFactorRequired:
    outcome = engine.sign_in(email=email, password=PASSWORD, remember_me=True, ctx=CTX)
    assert isinstance(outcome, SecondFactorRequired)
    return outcome


def test_s1_without_2fa_the_password_signs_in_with_a_device_token(engine: Engine) -> None:
    created = engine.create_account(email=" Ada@Example.com ", password=PASSWORD, ctx=CTX)
    assert created.email == "Ada@Example.com"
    outcome = engine.sign_in(email="ada@example.com", password=PASSWORD, remember_me=True, ctx=CTX)
    assert isinstance(outcome, SignedIn)
    assert outcome.user_id == created.user_id and outcome.remember_me
    assert len(outcome.device_token) >= 43
    assert outcome.device_token not in repr(outcome), "secrets stay out of repr"


def test_a3_wrong_password_and_unknown_email_raise_the_same_class(engine: Engine) -> None:
    engine.create_account(email="ada@example.com", password=PASSWORD, ctx=CTX)
    errors = []
    for email, password in [("ada@example.com", "wrong password"), ("nobody@example.com", PASSWORD)]:
        with pytest.raises(twofold.InvalidCredentialsError) as caught:
            engine.sign_in(email=email, password=password, ctx=CTX)
        errors.append(caught.value)
    assert all(e.code is ErrorCode.INVALID_CREDENTIALS and e.status == 2 for e in errors)
    assert all(isinstance(e, TwofoldError) and e.retry_after_secs is None for e in errors)


def test_s2_s3_p3_passkey_second_factor_and_backup_codes(engine: Engine) -> None:
    key = SoftKey()
    user, codes = two_factor_user(engine, key)
    assert len(codes) == 10
    pending = step_one(engine)
    assert pending.options["allowCredentials"], "options are a JSON object, ready for the browser"
    signed = engine.sign_in_passkey(
        pending_token=pending.pending_token, credential=key.get(pending.options, ORIGIN), ctx=CTX
    )
    assert signed.user_id == user and signed.remember_me is False
    with pytest.raises(twofold.ExpiredError):
        engine.sign_in_passkey(
            pending_token=pending.pending_token, credential=key.get(pending.options, ORIGIN), ctx=CTX
        )
    status = engine.status(user_id=user, ctx=CTX)
    assert status.two_factor_enabled and status.passkeys[0].last_used_at is not None


def test_b3_s4_a_backup_code_signs_in_once(engine: Engine) -> None:
    user, codes = two_factor_user(engine, SoftKey())
    signed = engine.sign_in_backup_code(pending_token=step_one(engine).pending_token, code=codes[0].upper(), ctx=CTX)
    assert signed.backup_codes_remaining == 9 and signed.backup_codes_running_low is False
    with pytest.raises(twofold.InvalidBackupCodeError):
        engine.sign_in_backup_code(pending_token=step_one(engine).pending_token, code=codes[0], ctx=CTX)
    assert engine.status(user_id=user).backup_codes_remaining == 9


def test_a4_a6_change_password_raises_the_epoch(engine: Engine) -> None:
    user, _ = two_factor_user(engine, SoftKey())
    before = engine.status(user_id=user).security_epoch
    changed = engine.change_password(
        user_id=user, current_password=PASSWORD, new_password="a brand new passphrase", ctx=CTX
    )
    assert changed.security_epoch > before
    with pytest.raises(twofold.InvalidCredentialsError):
        engine.sign_in(email="ada@example.com", password=PASSWORD, ctx=CTX)
    outcome = engine.sign_in(email="ada@example.com", password="a brand new passphrase", ctx=CTX)
    assert isinstance(outcome, SecondFactorRequired)


def test_a5_reset_leaves_2fa_on(engine: Engine) -> None:
    two_factor_user(engine, SoftKey())
    engine.reset_password(email="ADA@example.com", new_password="reset by the host", ctx=CTX)
    outcome = engine.sign_in(email="ada@example.com", password="reset by the host", ctx=CTX)
    assert isinstance(outcome, SecondFactorRequired)


def test_p4_p5_t2_b4_manage_passkeys_and_codes(engine: Engine) -> None:
    key = SoftKey()
    user, codes = two_factor_user(engine, key)
    passkey = engine.list_passkeys(user_id=user).passkeys[0]
    renamed = engine.rename_passkey(user_id=user, passkey_id=passkey.id, name="  Work laptop ", ctx=CTX)
    assert renamed.name == "Work laptop"
    fresh = engine.regenerate_backup_codes(user_id=user, password=PASSWORD, ctx=CTX)
    assert set(fresh.codes).isdisjoint(codes)
    with pytest.raises(twofold.AlreadyEnabledError):
        engine.enable_two_factor(user_id=user, password=PASSWORD, ctx=CTX)
    off = engine.disable_two_factor(user_id=user, password=PASSWORD, ctx=CTX)
    assert not off.two_factor_enabled and off.backup_codes_remaining == 0
    with pytest.raises(twofold.NotEnabledError):
        engine.regenerate_backup_codes(user_id=user, password=PASSWORD, ctx=CTX)
    on = engine.enable_two_factor(user_id=user, password=PASSWORD, ctx=CTX)
    assert len(on.codes) == 10
    status = engine.remove_passkey(user_id=user, passkey_id=passkey.id, password=PASSWORD, ctx=CTX)
    assert not status.two_factor_enabled and status.passkeys == []
    with pytest.raises(twofold.NoPasskeyError):
        engine.enable_two_factor(user_id=user, password=PASSWORD, ctx=CTX)


def test_l1_l3_the_audit_chain_verifies_with_an_anchor(engine: Engine) -> None:
    user, _ = two_factor_user(engine, SoftKey())
    page = engine.audit_events(user_id=user, limit=2, ctx=CTX)
    assert len(page.events) == 2 and page.next_before is not None
    assert page.events[0].ip == CTX.ip and isinstance(page.events[0].details, dict)
    kinds = {e.kind for e in engine.audit_events(user_id=user).events}
    assert {EventKind.ACCOUNT_CREATED, EventKind.PASSKEY_REGISTERED} <= kinds
    anchor = engine.audit_anchor(user_id=user)
    assert isinstance(anchor, AuditAnchor) and anchor.seq >= 3
    report = engine.verify_audit_chain(user_id=user, anchor=anchor)
    assert report.intact and report.problems == []
    pruned = engine.prune_audit_events(user_id=user, older_than_days=1)
    assert pruned.pruned == 0


def test_s6_a_device_token_in_the_context_is_accepted_and_garbage_is_harmless(engine: Engine) -> None:
    engine.create_account(email="ada@example.com", password=PASSWORD, ctx=CTX)
    first = engine.sign_in(email="ada@example.com", password=PASSWORD, ctx=CTX)
    assert isinstance(first, SignedIn)
    for token in (first.device_token, "not a token"):
        ctx = Context(ip="203.0.113.9", user_agent="pytest", client_id="203.0.113.9", device_token=token)
        assert isinstance(engine.sign_in(email="ada@example.com", password=PASSWORD, ctx=ctx), SignedIn)


def test_s6_rate_limited_carries_its_wait(database: twofold.Storage) -> None:
    with Engine(fast_config(free_failures=1), database) as engine:
        engine.create_account(email="ada@example.com", password=PASSWORD, ctx=CTX)
        with pytest.raises(twofold.InvalidCredentialsError):
            engine.sign_in(email="ada@example.com", password="wrong password", ctx=CTX)
        with pytest.raises(twofold.RateLimitedError) as caught:
            engine.sign_in(email="ada@example.com", password=PASSWORD, ctx=CTX)
        assert caught.value.retry_after_secs is not None and caught.value.retry_after_secs >= 1
        assert caught.value.to_json()["retry_after_secs"] == caught.value.retry_after_secs


def test_e1_invalid_input_names_the_problem(engine: Engine) -> None:
    with pytest.raises(twofold.InvalidInputError) as caught:
        engine.create_account(email="no at sign", password=PASSWORD, ctx=CTX)
    assert "email" in caught.value.message
    with pytest.raises(twofold.InvalidInputError):
        Engine(fast_config(audit_keys=[]), twofold.MemoryStorage())
    with pytest.raises(twofold.InvalidInputError):
        engine.call_json("no_such_operation")


def test_call_json_is_the_library_answer_verbatim(engine: Engine) -> None:
    created = engine.call_json("create_account", '{"email":"ada@example.com","password":"%s"}' % PASSWORD)
    assert created.startswith('{"user_id":')


def test_closed_engine_refuses_calls(database: twofold.Storage) -> None:
    engine = Engine(fast_config(), database)
    engine.close()
    engine.close()
    with pytest.raises(RuntimeError):
        engine.status(user_id="AAAAAAAAAAAAAAAAAAAAAA")
