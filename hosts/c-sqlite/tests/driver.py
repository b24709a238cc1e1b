"""Runs `twofold-c --driver` as a child and speaks tests/conformance/PROTOCOL.md to it."""

import json
import subprocess
import sys


class Driver:
    def __init__(self, binary, db=None, env=None):
        cmd = [binary, "--driver"] + (["--db", db] if db else [])
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
        )
        self.next_id = 0

    def send_line(self, line):
        """Sends a raw line and returns the parsed answer line."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError("the driver closed its output: " + self.proc.stderr.read())
        return json.loads(answer)

    def request(self, op, args=None, context=None):
        self.next_id += 1
        req = {"id": self.next_id, "op": op}
        if args is not None:
            req["args"] = args
        if context is not None:
            req["context"] = context
        answer = self.send_line(json.dumps(req))
        if answer.get("id") != self.next_id:
            raise RuntimeError(f"answer {answer} does not echo id {self.next_id}")
        return answer

    def ok(self, op, args=None, context=None):
        answer = self.request(op, args, context)
        if "ok" not in answer:
            raise RuntimeError(f"{op} {args}: {answer}")
        return answer["ok"]

    def close(self):
        """Ends the session (EOF) and returns (exit status, stderr)."""
        self.proc.stdin.close()
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.wait(timeout=60), err


# The protocol's test audit key (twofold_testkit::TEST_AUDIT_KEY_HEX), which `configure` must
# name: a configuration without an audit key is refused.
AUDIT_KEYS = [{"id": "test", "secret": "8f1d5c0a3b7e9f2461d8c7b5a3e9f0c2d4b6a8e0f2c4d6b8a0e2f4c6d8b0a2e4"}]

# Cheap argon2 so the tests are quick; everything else stays the default.
FAST = {"password_hash": {"m_kib": 8, "t": 1, "p": 1}, "audit_keys": AUDIT_KEYS}


class Checks:
    """Counts checks; a failed one is reported on stderr and the run goes on."""

    def __init__(self, name):
        self.name = name
        self.passed = self.failed = 0

    def __call__(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(f"{self.name}: FAILED: {what}", file=sys.stderr)

    def finish(self):
        """Prints the counts (the line run.sh reads) and exits 1 if any check failed."""
        print(f"{self.name}: {self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)
