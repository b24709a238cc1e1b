#!/usr/bin/env python3
"""A scripted session through `twofold-c --driver`: engine operations, bad lines, the settable
clock and throttling, the test-only operations, and persistence with --db.

    driver_test.py BINARY
"""

import os
import sqlite3
import sys
import tempfile

from driver import AUDIT_KEYS, FAST, Checks, Driver

check = Checks("driver_test")


def error_code(answer):
    return answer.get("error", {}).get("code")


def session(binary, db):
    d = Driver(binary, db)
    ctx = {"ip": "198.51.100.4", "user_agent": "driver_test"}

    check(d.ok("seed", {"seed": 7}) == {"seeded": False}, "seed keeps the CSPRNG")
    check(d.ok("configure", FAST) == {}, "configure")

    account = d.ok("create_account", {"email": " Ada@Example.com ", "password": "lovelace1815"}, ctx)
    check(set(account) == {"user_id", "email"} and account["email"] == "Ada@Example.com", f"create_account {account}")
    user = account["user_id"]
    again = d.request("create_account", {"email": "ada@example.COM", "password": "other-password"})
    check(error_code(again) == "already_exists", f"same email again {again}")

    signed = d.ok("sign_in", {"email": "ada@example.com", "password": "lovelace1815", "remember_me": True}, ctx)
    token = signed.get("device_token", "")
    check(
        signed == {"status": "signed_in", "user_id": user, "remember_me": True, "security_epoch": 1, "device_token": token}
        and token.startswith(user + "."),
        f"sign_in {signed}",
    )
    wrong = d.request("sign_in", {"email": "ada@example.com", "password": "wrong-password", "remember_me": False})
    check(error_code(wrong) == "invalid_credentials" and "retry_after_secs" not in wrong["error"], f"wrong password {wrong}")
    check(isinstance(wrong["error"].get("message"), str) and wrong["error"]["message"], "errors carry a message")
    unknown = d.request("sign_in", {"email": "nobody@example.com", "password": "whatever1", "remember_me": False})
    check(error_code(unknown) == "invalid_credentials", "unknown email is invalid_credentials")

    status = d.ok("status", {"user_id": user})
    check(
        status
        == {
            "user_id": user,
            "email": "Ada@Example.com",
            "two_factor_enabled": False,
            "passkeys": [],
            "backup_codes_remaining": 0,
            "backup_codes_running_low": status.get("backup_codes_running_low"),
            "security_epoch": 1,
        }
        and isinstance(status["backup_codes_running_low"], bool),
        f"status {status}",
    )
    check(error_code(d.request("status", {"user_id": "no-such-user"})) == "not_found", "status of an unknown user")
    check(error_code(d.request("enable_two_factor", {"user_id": user, "password": "lovelace1815"})) == "no_passkey", "enable without a passkey")
    check(error_code(d.request("regenerate_backup_codes", {"user_id": user, "password": "lovelace1815"})) == "not_enabled", "regenerate with 2FA off")
    check(error_code(d.request("disable_two_factor", {"user_id": user, "password": "lovelace1815"})) == "not_enabled", "disable with 2FA off")
    check(d.ok("list_passkeys", {"user_id": user}) == {"passkeys": []}, "list_passkeys")
    started = d.ok("start_passkey_registration", {"user_id": user, "name": "Laptop", "password": "lovelace1815"})
    options = started.get("options", {})
    check(options.get("rp", {}).get("id") == "localhost" and options.get("challenge"), f"creation options {started}")

    # Lines that are not requests, and requests that are wrong.
    for line, want_id in [
        ("{not json", None),
        ("[1, 2]", None),
        ('"just a string"', None),
        ('{"op": "status", "args": {}}', None),
        ('{"id": "7", "op": "status"}', None),
        ('{"id": 41, "args": {}}', 41),
        ('{"id": 42, "op": 5}', 42),
        ('{"id": 43, "op": "status", "args": {}} trailing', None),
        ('{"id": 44, "op": "status", "args": {"user_id": "x"}', None),
    ]:
        answer = d.send_line(line)
        check(answer.get("id", "absent") == want_id and error_code(answer) == "invalid_input", f"bad line {line!r}: {answer}")
    check(error_code(d.request("frobnicate", {})) == "invalid_input", "unknown op")
    check(error_code(d.request("status", [user])) == "invalid_input", "args not an object")
    check(error_code(d.request("status", {"user_id": user, "extra": 1})) == "invalid_input", "unknown argument")
    check(error_code(d.request("status", {"user_id": user}, {"ip": 5})) == "invalid_input", "context member of the wrong type")
    check(error_code(d.request("status", {"user_id": user}, ["198.51.100.4"])) == "invalid_input", "context not an object")
    check(error_code(d.request("status", {"user_id": user}, {"ip": "x", "cookie": "y"})) == "invalid_input", "unknown context member")
    full = {"ip": "198.51.100.4", "user_agent": "driver_test", "client_id": "203.0.113.9", "device_token": token}
    check("ok" in d.request("status", {"user_id": user}, full), "a context with every member")
    check(error_code(d.request("set_clock", {"now_ms": "soon"})) == "invalid_input", "set_clock needs a number")
    check(error_code(d.request("advance_clock", {})) == "invalid_input", "advance_clock needs ms")
    check(error_code(d.request("configure", {"rp_id": "", "audit_keys": AUDIT_KEYS})) == "invalid_input", "a bad configuration")
    check(error_code(d.request("configure", {"no_such_field": 1, "audit_keys": AUDIT_KEYS})) == "invalid_input", "an unknown configuration field")
    check(error_code(d.request("configure", {"rp_id": "localhost"})) == "invalid_input", "a configuration without an audit key")
    check("ok" in d.request("status", {"user_id": user}), "the engine survives a refused configure")
    # A blank line is no request: the next answer is the next request's.
    d.proc.stdin.write("\n")
    check("ok" in d.request("status", {"user_id": user}), "blank lines are skipped")

    # Throttling on the settable clock (SPEC S6 defaults): 5 failures from one client, then
    # that client waits 1 s, doubling with each further failure; the right password waits too.
    t0 = 1767300000000
    check(d.ok("set_clock", {"now_ms": t0}) == {}, "set_clock")
    d.ok("sign_in", {"email": "ada@example.com", "password": "lovelace1815", "remember_me": False}, ctx)
    codes = [error_code(d.request("sign_in", {"email": "ada@example.com", "password": f"wrong-password-{i}", "remember_me": False}, ctx)) for i in range(5)]
    check(codes == ["invalid_credentials"] * 5, f"five failures {codes}")
    limited = d.request("sign_in", {"email": "ada@example.com", "password": "lovelace1815", "remember_me": False}, ctx)
    check(error_code(limited) == "rate_limited" and limited["error"].get("retry_after_secs") == 1, f"waits 1 s {limited}")
    check(d.ok("advance_clock", {"ms": 1000}) == {}, "advance_clock")
    wrong = d.request("sign_in", {"email": "ada@example.com", "password": "wrong-password", "remember_me": False}, ctx)
    check(error_code(wrong) == "invalid_credentials", f"a sixth failure {wrong}")
    limited = d.request("sign_in", {"email": "ada@example.com", "password": "lovelace1815", "remember_me": False}, ctx)
    check(error_code(limited) == "rate_limited" and limited["error"].get("retry_after_secs") == 2, f"then 2 s {limited}")
    d.ok("advance_clock", {"ms": 2000})
    signed = d.ok("sign_in", {"email": "ada@example.com", "password": "lovelace1815", "remember_me": False}, ctx)
    check(signed.get("status") == "signed_in", f"signed in after waiting {signed}")

    events = d.ok("audit_events", {"user_id": user, "limit": 200})["events"]
    seqs = [e["seq"] for e in events]
    check(seqs == sorted(seqs, reverse=True) and seqs[-1] == 1, "events newest first")
    fields = {"seq", "at", "user_id", "kind", "details", "ip", "user_agent", "notify", "state", "key_id", "prev_mac", "mac"}
    check(all(set(e) == fields for e in events), "event fields")
    throttled = [e for e in events if e["kind"] == "throttled"]
    check(len(throttled) == 1 and throttled[0]["notify"] is True and throttled[0]["at"] == t0, f"throttled event {throttled}")
    check(all(e["key_id"] == "test" for e in events), "events name the audit key")
    check(throttled and throttled[0]["ip"] == "198.51.100.4" and throttled[0]["user_agent"] == "driver_test", "context reaches events")
    created = [e for e in events if e["kind"] == "account_created"]
    check(created and created[0]["at"] == 1767225600000, "the clock starts at 2026-01-01")
    page = d.ok("audit_events", {"user_id": user, "limit": 2})
    check(len(page["events"]) == 2 and "next_before" in page, "a page with next_before")
    more = d.ok("audit_events", {"user_id": user, "limit": 2, "before": page["next_before"]})
    check([e["seq"] for e in more["events"]] == seqs[2:4], f"the next page {more}")
    last = d.ok("audit_events", {"user_id": user, "limit": 200})
    check("next_before" not in last, "no next_before on the last page")
    chain = d.ok("verify_audit_chain", {"user_id": user})
    check(chain == {"intact": True, "events_checked": len(events), "checkpoint_seq": 0, "problems": []}, f"chain {chain}")
    anchor = d.ok("audit_anchor", {"user_id": user})
    check(anchor == {"user_id": user, "seq": seqs[0], "mac": events[0]["mac"]}, f"anchor {anchor}")
    chain = d.ok("verify_audit_chain", {"user_id": user, "anchor": anchor})
    check(chain.get("intact") is True, f"chain against its anchor {chain}")

    # reset: empty storage, clock back, default configuration.
    check(d.ok("reset", {}) == {}, "reset")
    check(error_code(d.request("status", {"user_id": user})) == "not_found", "reset empties storage")
    fresh = d.ok("create_account", {"email": "ada@example.com", "password": "lovelace1815"})
    events = d.ok("audit_events", {"user_id": fresh["user_id"]})["events"]
    check(events[0]["at"] == 1767225600000, "reset puts the clock back")
    check("$argon2id$v=19$m=19456,t=2,p=1$" in stored_users(db), "reset restores the default configuration")

    status, err = d.close()
    check(status == 0, f"driver exits 0 at EOF (got {status})")
    check("ERROR: AddressSanitizer" not in err and "runtime error" not in err, f"sanitizers quiet: {err}")


def stored_users(db):
    """The stored user documents, read through a second connection as another process would."""
    with sqlite3.connect(db) as conn:
        values = [v for (v,) in conn.execute("SELECT value FROM kv WHERE key LIKE 'user/%'")]
    check(all(isinstance(v, str) for v in values), "values are stored as TEXT")
    return " ".join(values)


def temporary_database(binary):
    """Without --db the database lives in a temporary directory that is removed at exit."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Driver(binary, env={**os.environ, "TMPDIR": tmp})
        d.ok("configure", FAST)
        d.ok("create_account", {"email": "temp@example.com", "password": "temporary"})
        check(len(os.listdir(tmp)) == 1, "the temporary database is under TMPDIR")
        status, err = d.close()
        check(status == 0 and os.listdir(tmp) == [], f"and removed at exit: {os.listdir(tmp)} {err}")


def persistence(binary):
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "kept.db")
        d = Driver(binary, db)
        d.ok("configure", FAST)
        user = d.ok("create_account", {"email": "kept@example.com", "password": "persist-me"})["user_id"]
        d.close()
        d = Driver(binary, db)
        d.ok("configure", FAST)
        signed = d.ok("sign_in", {"email": "kept@example.com", "password": "persist-me", "remember_me": False})
        check(signed.get("user_id") == user, "--db keeps accounts across runs")
        status, err = d.close()
        check(status == 0 and "AddressSanitizer" not in err, "second run exits cleanly")


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        session(binary, os.path.join(tmp, "session.db"))
    temporary_database(binary)
    persistence(binary)
    check.finish()


if __name__ == "__main__":
    main()
