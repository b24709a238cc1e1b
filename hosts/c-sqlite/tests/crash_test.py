#!/usr/bin/env python3
"""The acceptance test of issue 6: SIGKILL `twofold-c --driver --db FILE` in the middle of a run
of operations, at a random point, several times; restart it on the same file each time and
find no half-applied operation:

- the database file is sound (PRAGMA integrity_check);
- every email index names a user document and every user document has its email index;
- every user's audit chain is whole (as many events as the user document counts, and
  `verify_audit_chain` says intact), and `status` answers;
- every account whose creation was answered before the kill can sign in (nothing answered
  was lost); the operation in flight at the kill (the first unanswered one) is complete or
  absent; no later request left a trace.

    crash_test.py BINARY          (CRASH_SEED=n to replay a run)
"""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

from driver import FAST, Checks, Driver

ROUNDS = 6
OPS_PER_ROUND = 1500
DAY_MS = 86_400_000

check = Checks("crash_test")


def workload(rng, round_no, accounts):
    """A run of writing operations over new and existing accounts."""
    known = list(accounts.items())
    ops = []
    for i in range(OPS_PER_ROUND):
        pick = rng.random()
        if pick < 0.3 or not known:
            email, password = f"user{round_no}-{i}@example.com", f"password-{round_no}-{i}"
            ops.append(("create_account", {"email": email, "password": password}))
            known.append((email, password))
            continue
        email, password = rng.choice(known)
        if pick < 0.5:
            ops.append(("sign_in", {"email": email, "password": password, "remember_me": False}))
        elif pick < 0.75:
            ops.append(("sign_in", {"email": email, "password": "not-the-password", "remember_me": True}))
        else:
            ops.append(("lookup_then", (email, password)))  # needs a user id: filled in below
    return ops


def run_and_kill(binary, db, rng, ops, user_ids):
    """Starts the driver, pipes the operations in, SIGKILLs it after a random delay.
    Returns the answers received, by request id, and how many requests were written."""
    proc = subprocess.Popen([binary, "--driver", "--db", db], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    requests = [{"id": 0, "op": "configure", "args": FAST}]
    for n, (op, args) in enumerate(ops, start=1):
        if op == "lookup_then":
            email, password = args
            uid = user_ids.get(email)
            if uid is None:
                op, args = "sign_in", {"email": email, "password": password, "remember_me": False}
            else:
                op = rng.choice(["start_passkey_registration", "regenerate_backup_codes",
                                 "enable_two_factor"])
                args = {"user_id": uid, "password": password}
                if op == "start_passkey_registration":
                    args["name"] = f"key {n}"
        # Many clients, as a real site has: the per-client limits (S6) then leave the run alone.
        context = {"ip": f"198.51.100.{n % 200}", "user_agent": "crash_test"}
        requests.append({"id": n, "op": op, "args": args, "context": context})

    written = [0]

    def writer():
        try:
            for req in requests:
                proc.stdin.write((json.dumps(req) + "\n").encode())
                written[0] += 1
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    threading.Thread(target=writer, daemon=True).start()
    # The kill comes a random few milliseconds after a random number of answers, so it lands
    # inside some operation however fast the machine is.
    kill_after = rng.randrange(10, 400)
    delay = rng.uniform(0, 0.02)
    answers = {}
    for line in proc.stdout:
        try:
            answer = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut off by the kill
        answers[answer["id"]] = answer
        if len(answers) == kill_after:
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
    status = proc.wait()
    return requests, answers, status, kill_after, delay


def database_report(db):
    """Checks the stored documents directly; returns {user_id: email}."""
    conn = sqlite3.connect(db)
    try:
        check(conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity_check")
        rows = conn.execute("SELECT key, value FROM kv").fetchall()
    finally:
        conn.close()
    emails, users, events = {}, {}, {}
    for key, value in rows:
        kind, _, rest = key.partition("/")
        if kind == "email":
            emails[key] = json.loads(value)["user_id"]
        elif kind == "user":
            users[rest] = json.loads(value)
        elif kind == "audit":
            uid = rest.split("/")[0]
            events[uid] = events.get(uid, 0) + 1
    owners = sorted(emails.values())
    check(sorted(owners) == sorted(users), f"email index and users match: {len(owners)} emails, {len(users)} users")
    check(len(set(owners)) == len(owners), "one email index per user")
    short = [uid for uid, doc in users.items() if events.get(uid, 0) != doc["audit_seq"]]
    check(not short, f"every user has as many events as its audit_seq: not {short}")
    check(set(events) <= set(users), "no audit events without a user")
    return {uid: doc["email"] for uid, doc in users.items()}


def verify(binary, db, accounts, in_flight, never_read, user_ids):
    """After a kill: the database, then every user through the engine. Returns what became of
    the creation in flight, if one was."""
    stored = database_report(db)
    stored_emails = {email.lower() for email in stored.values()}
    check(not stored_emails & {e.lower() for e in never_read}, "no request after the one in flight left a trace")
    d = Driver(binary, db)
    d.ok("configure", FAST)
    d.ok("advance_clock", {"ms": DAY_MS})  # past any backoff of earlier runs
    broken, no_status, lost = [], [], []
    for uid, email in stored.items():
        chain = d.request("verify_audit_chain", {"user_id": uid})
        if not chain.get("ok", {}).get("intact") or chain["ok"]["problems"]:
            broken.append((uid, chain))
        if d.request("status", {"user_id": uid}).get("ok", {}).get("email") != email:
            no_status.append(uid)
    check(not broken, f"every audit chain verifies intact: not {broken}")
    check(not no_status, f"status answers for every user: not {no_status}")
    for email, password in accounts.items():
        answer = d.request("sign_in", {"email": email, "password": password, "remember_me": False})
        if answer.get("ok", {}).get("status") != "signed_in":
            lost.append((email, answer))
    check(not lost, f"every account answered before a kill signs in: not {lost}")
    outcome = None
    if in_flight is not None:
        # Complete (it signs in) or absent (it can be created now); never in between.
        email, password = in_flight
        answer = d.request("sign_in", {"email": email, "password": password, "remember_me": False})
        if "ok" in answer:
            check(answer["ok"]["status"] == "signed_in", f"in-flight account {email}: {answer}")
            user_ids[email] = answer["ok"]["user_id"]
            outcome = "complete"
        else:
            check(answer["error"]["code"] == "invalid_credentials", f"in-flight account {email}: {answer}")
            created = d.request("create_account", {"email": email, "password": password})
            check("ok" in created, f"absent account {email} can be created: {created}")
            if "ok" in created:
                user_ids[email] = created["ok"]["user_id"]
            outcome = "absent"
        accounts[email] = password
    status, err = d.close()
    check(status == 0 and "AddressSanitizer" not in err and "runtime error" not in err, f"verifier run exits cleanly: {err}")
    return len(stored), outcome


def main():
    binary = sys.argv[1]
    seed = int(os.environ.get("CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    print(f"crash_test: seed {seed} (CRASH_SEED={seed} replays the operations; kill timing varies)")
    accounts, user_ids = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "crash.db")
        for round_no in range(ROUNDS):
            ops = workload(rng, round_no, accounts)
            started = time.monotonic()
            requests, answers, status, kill_after, delay = run_and_kill(binary, db, rng, ops, user_ids)
            check(status == -signal.SIGKILL, f"round {round_no}: killed by SIGKILL (status {status})")
            check(len(answers) < len(requests), f"round {round_no}: killed mid-run ({len(answers)} of {len(requests)} answered)")
            # Requests are handled in order: the first unanswered one may have been applied
            # (killed after its commit, before its answer); none after it was read.
            first_unanswered = next((r["id"] for r in requests if r["id"] not in answers), None)
            check(all(r["id"] in answers for r in requests if r["id"] < (first_unanswered or 0)), "answers in order")
            in_flight, never_read, in_flight_op = None, set(), None
            for req in requests:
                if req["id"] == first_unanswered:
                    in_flight_op = req["op"]
                if req["op"] != "create_account":
                    continue
                email, password = req["args"]["email"], req["args"]["password"]
                answer = answers.get(req["id"])
                if req["id"] == first_unanswered:
                    in_flight = (email, password)
                elif answer is None:
                    never_read.add(email)
                elif "ok" in answer:
                    accounts[email] = password
                    user_ids[email] = answer["ok"]["user_id"]
            users, outcome = verify(binary, db, accounts, in_flight, never_read, user_ids)
            flight = in_flight_op + (f" ({outcome})" if outcome else "")
            print(f"crash_test: round {round_no}: SIGKILL {delay * 1000:.0f} ms after answer "
                  f"{kill_after}, {len(answers) - 1} of "
                  f"{len(requests) - 1} operations answered, in flight: {flight}; "
                  f"{users} users intact ({time.monotonic() - started:.1f}s)")
    check.finish()


if __name__ == "__main__":
    main()
