"""Sign-up and sign-in with twofold from Python (run: TWOFOLD_AUDIT_KEY=$(openssl rand -hex 32))."""
import os

from twofold import (AlreadyExistsError, AuditKey, Config, Context, Engine,
                     InvalidCredentialsError, RateLimitedError, SecondFactorRequired,
                     SQLiteStorage)

engine = Engine(  # one engine for the whole process, every thread
    Config(rp_id="localhost", rp_name="Example", origins=["http://localhost:8080"],
           # The audit log's key stays out of the database and the code.
           audit_keys=[AuditKey(id="2026-01", secret=os.environ["TWOFOLD_AUDIT_KEY"])]),
    SQLiteStorage("example.db"),  # or twofold.postgres.PostgresStorage("postgresql://...")
)


def sign_in(email: str, password: str, ip: str, device_cookie: str | None) -> str:
    ctx = Context(ip=ip, user_agent="example", client_id=ip, device_token=device_cookie)
    try:
        outcome = engine.sign_in(email=email, password=password, remember_me=True, ctx=ctx)
    except InvalidCredentialsError:
        return "wrong email or password"
    except RateLimitedError as e:
        return f"too many attempts: try again in {e.retry_after_secs} s"
    if isinstance(outcome, SecondFactorRequired):
        # Keep outcome.pending_token server-side; the browser gets outcome.options, then
        # engine.sign_in_passkey(pending_token=..., credential=<its toJSON()>, ctx=ctx).
        return "passkey or backup code needed"
    # Start your session here, and set outcome.device_token as a long-lived HttpOnly cookie.
    return f"signed in as {outcome.user_id} (security epoch {outcome.security_epoch})"


if __name__ == "__main__":
    try:
        engine.create_account(email="ada@example.com", password="correct horse battery staple",
                              ctx=Context(ip="203.0.113.7", user_agent="example"))
    except AlreadyExistsError as e:  # a second run
        print(e)
    print(sign_in("ada@example.com", "correct horse battery staple", "203.0.113.7", None))
    print(sign_in("ada@example.com", "not the password", "203.0.113.7", None))
