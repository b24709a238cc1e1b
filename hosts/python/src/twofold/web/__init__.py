"""The sample web backend: twofold's JSON API and web UI on Flask, the same as the Rust server's.

Each route turns one request into one engine call and its answer into JSON; the backend holds
no policy. What is its own is HTTP's: sessions in a cookie (`sessions.py`, H1), ending older
sessions when the account's security epoch grows (H2), the device-token cookie (S6), the
`Origin` check on every state-changing request and the client id (H4), the status of each
error code. The UI is the Rust server's `web/` directory, served as it is.
"""

from __future__ import annotations

import json
import mimetypes
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from flask import Flask, Response, g, request

from .. import _generated as t
from .._errors import TwofoldError
from ..engine import Engine
from .sessions import REMEMBERED_SECS, Session, Sessions

__all__ = ["Site", "create_app", "default_web_dir", "STATUS_OF"]

#: The HTTP status of each error code: the one table.
STATUS_OF: dict[t.ErrorCode, int] = {
    t.ErrorCode.INVALID_INPUT: 400,
    t.ErrorCode.INVALID_CREDENTIALS: 401,
    t.ErrorCode.SECOND_FACTOR_REQUIRED: 401,
    t.ErrorCode.INVALID_PASSKEY: 401,
    t.ErrorCode.INVALID_BACKUP_CODE: 401,
    t.ErrorCode.EXPIRED: 410,
    t.ErrorCode.NOT_FOUND: 404,
    t.ErrorCode.ALREADY_EXISTS: 409,
    t.ErrorCode.ALREADY_ENABLED: 409,
    t.ErrorCode.NOT_ENABLED: 409,
    t.ErrorCode.NO_PASSKEY: 409,
    t.ErrorCode.CONFLICT: 409,
    t.ErrorCode.RATE_LIMITED: 429,
    t.ErrorCode.STORAGE: 503,
    t.ErrorCode.INTERNAL: 500,
}

#: The device-token cookie lives as long as the token: 90 days.
DEVICE_COOKIE_SECS = 90 * 24 * 60 * 60
MAX_BODY_BYTES = 64 * 1024
MAX_USER_AGENT_BYTES = 1024

COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".woff2": "font/woff2",
}


class HttpError(Exception):
    """An answer of the backend's own in the engine's error shape."""

    def __init__(self, status: int, code: t.ErrorCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _not_signed_in() -> HttpError:
    return HttpError(401, t.ErrorCode.EXPIRED, "not signed in, or the session has ended")


def _invalid(message: str) -> HttpError:
    return HttpError(400, t.ErrorCode.INVALID_INPUT, message)


@dataclass
class Site:
    """What every request of one backend shares."""

    engine: Engine
    sessions: Sessions
    #: The configured origin, e.g. `http://localhost:8080`.
    origin: str
    web_dir: Path
    #: Peers whose `X-Forwarded-For` entries are believed (H4).
    trusted_proxies: Sequence[str] = field(default_factory=tuple)

    @property
    def secure(self) -> bool:
        return self.origin.startswith("https://")

    @property
    def session_cookie(self) -> str:
        # `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
        return "__Host-twofold" if self.secure else "twofold_session"

    @property
    def device_cookie(self) -> str:
        return "__Host-twofold_device" if self.secure else "twofold_device"


def default_web_dir() -> Path:
    """`TWOFOLD_WEB_DIR`, else the Rust server's `web/` in the checkout this package is in,
    else `hosts/wasmtime-server/web` under the working directory."""
    explicit = os.environ.get("TWOFOLD_WEB_DIR")
    if explicit:
        return Path(explicit)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "hosts" / "wasmtime-server" / "web"
        if candidate.is_dir():
            return candidate
    return Path.cwd() / "hosts" / "wasmtime-server" / "web"


def client_address(peer: str, forwarded: Optional[str], trusted: Sequence[str]) -> str:
    """H4: the peer, or, when the peer is a trusted proxy, the right-most `X-Forwarded-For`
    entry that no trusted proxy added. Never a header from an untrusted peer."""
    if peer not in trusted or not forwarded:
        return peer
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return hops[0] if hops else peer


def _cookie(name: str, value: str, secure: bool, max_age: Optional[int]) -> str:
    cookie = f"{name}={value}; Path=/; HttpOnly; SameSite=Strict"
    if max_age is not None:
        cookie += f"; Max-Age={max_age}"
    if secure:
        cookie += "; Secure"
    return cookie


def create_app(site: Site) -> Flask:
    """The Flask application of one backend."""
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    engine = site.engine
    sessions = site.sessions

    # ------------------------------------------------------------------ plumbing

    def json_reply(body: Any, status: int = 200) -> Response:
        reply = Response(json.dumps(body), status=status, mimetype="application/json")
        reply.headers["Cache-Control"] = "no-store"
        return reply

    def error_reply(status: int, error: dict[str, object]) -> Response:
        reply = json_reply({"error": error}, status)
        if "retry_after_secs" in error:
            reply.headers["Retry-After"] = str(error["retry_after_secs"])
        return reply

    def set_cookie(reply: Response, cookie: str) -> Response:
        reply.headers.add("Set-Cookie", cookie)
        return reply

    def context() -> t.Context:
        peer = request.remote_addr or ""
        address = client_address(peer, request.headers.get("X-Forwarded-For"), site.trusted_proxies)
        agent = request.headers.get("User-Agent", "").encode()[:MAX_USER_AGENT_BYTES]
        return t.Context(
            ip=address,
            user_agent=agent.decode(errors="ignore"),
            client_id=address,
            device_token=request.cookies.get(site.device_cookie) or None,
        )

    def body(*allowed: str) -> dict[str, Any]:
        """The JSON object body; members other than `allowed` are refused as the engine
        refuses unknown members."""
        raw = request.get_data(cache=True)
        if not raw:
            return {}
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _invalid("the request body is not JSON") from None
        if not isinstance(data, dict):
            raise _invalid("the request body must be a JSON object")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise _invalid(f"request body: unknown member {unknown[0]!r}")
        return data

    def required(data: dict[str, Any], name: str) -> Any:
        if name not in data:
            raise _invalid(f"request body: missing member {name!r}")
        return data[name]

    def session() -> Optional[Session]:
        cookie = request.cookies.get(site.session_cookie)
        return sessions.get(cookie) if cookie else None

    def signed_in() -> Session:
        s = session()
        if s is None or s.pending_token is not None:
            raise _not_signed_in()
        return s

    def start_session(reply: Response, cookie_value: str, remember: bool) -> Response:
        old = session()
        if old is not None:
            sessions.end(old.id)
        return set_cookie(
            reply,
            _cookie(site.session_cookie, cookie_value, site.secure, REMEMBERED_SECS if remember else None),
        )

    def end_session(reply: Response) -> Response:
        old = session()
        if old is not None:
            sessions.end(old.id)
        return set_cookie(reply, _cookie(site.session_cookie, "", site.secure, 0))

    def completed(answer: t.SignedIn) -> Response:
        """A completed sign-in: a new session, the device token in its cookie, and the answer
        without the user id (the session holds it) and the token (not for scripts)."""
        out: dict[str, Any] = {
            "status": "signed_in",
            "remember_me": answer.remember_me,
            "security_epoch": answer.security_epoch,
        }
        if answer.backup_codes_remaining is not None:
            out["backup_codes_remaining"] = answer.backup_codes_remaining
        if answer.backup_codes_running_low is not None:
            out["backup_codes_running_low"] = answer.backup_codes_running_low
        reply = json_reply(out)
        sid = sessions.sign_in(answer.user_id, answer.security_epoch, answer.remember_me)
        start_session(reply, sid, answer.remember_me)
        return set_cookie(
            reply, _cookie(site.device_cookie, answer.device_token, site.secure, DEVICE_COOKIE_SECS)
        )

    def epoch_changed(s: Session, epoch: int) -> None:
        """H2: a change made through this session: it stays, the account's others end."""
        if epoch > s.epoch:
            sessions.adopt_epoch(s, epoch)

    # ------------------------------------------------------------------ every request

    @app.before_request
    def check_origin() -> Optional[Response]:
        g.ctx = None
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            origin = request.headers.get("Origin")
            if origin != site.origin:
                came = f"from {origin}" if origin else "without an Origin header"
                return error_reply(
                    403,
                    {
                        "code": "invalid_input",
                        "message": f"cross-site request refused: it came {came}, and this "
                        f"server accepts changes only from {site.origin}; open {site.origin}/",
                    },
                )
        return None

    @app.after_request
    def headers(reply: Response) -> Response:
        for name, value in COMMON_HEADERS.items():
            reply.headers.setdefault(name, value)
        return reply

    @app.errorhandler(TwofoldError)
    def engine_error(e: TwofoldError) -> Response:
        return error_reply(STATUS_OF[e.code], e.to_json())

    @app.errorhandler(HttpError)
    def http_error(e: HttpError) -> Response:
        return error_reply(e.status, {"code": e.code.value, "message": e.message})

    @app.errorhandler(413)
    def too_large(_e: Exception) -> Response:
        return error_reply(413, {"code": "invalid_input", "message": "the request body is over 64 KiB"})

    @app.errorhandler(Exception)
    def failure(e: Exception) -> Response:
        app.logger.exception("twofold-web: a request failed")
        if type(e).__module__.startswith(("psycopg", "sqlite3")) or type(e).__name__ == "PostgresError":
            return error_reply(503, {"code": "storage", "message": "the database is not available; try again later"})
        return error_reply(500, {"code": "internal", "message": "the server failed on this request; try again"})

    # ------------------------------------------------------------------ the API

    @app.post("/api/signup")
    def signup() -> Response:
        data = body("email", "password")
        created = engine.create_account(
            email=required(data, "email"), password=required(data, "password"), ctx=context()
        )
        status = engine.status(user_id=created.user_id, ctx=context())
        reply = json_reply(
            {"status": "signed_in", "user_id": created.user_id, "email": created.email, "remember_me": False}
        )
        return start_session(reply, sessions.sign_in(created.user_id, status.security_epoch, False), False)

    @app.post("/api/signin")
    def signin() -> Response:
        data = body("email", "password", "remember_me")
        outcome = engine.sign_in(
            email=required(data, "email"),
            password=required(data, "password"),
            remember_me=data.get("remember_me", False),
            ctx=context(),
        )
        if isinstance(outcome, t.SignedIn):
            return completed(outcome)
        reply = json_reply({"status": "second_factor_required", "options": outcome.options})
        return start_session(reply, sessions.pend(outcome.pending_token), False)

    def pending() -> Session:
        s = session()
        if s is None or s.pending_token is None:
            raise HttpError(
                410, t.ErrorCode.EXPIRED, "no sign-in is waiting for a second factor; sign in again"
            )
        return s

    def second_step(run: Callable[[str], t.SignedIn]) -> Response:
        s = pending()
        assert s.pending_token is not None
        try:
            answer = run(s.pending_token)
        except TwofoldError as e:
            if e.code is t.ErrorCode.EXPIRED:
                return end_session(error_reply(STATUS_OF[e.code], e.to_json()))
            raise
        return completed(answer)

    @app.post("/api/signin/passkey")
    def signin_passkey() -> Response:
        data = body("credential")
        credential = required(data, "credential")
        return second_step(
            lambda token: engine.sign_in_passkey(pending_token=token, credential=credential, ctx=context())
        )

    @app.post("/api/signin/backup-code")
    def signin_backup_code() -> Response:
        data = body("code")
        code = required(data, "code")
        return second_step(
            lambda token: engine.sign_in_backup_code(pending_token=token, code=code, ctx=context())
        )

    @app.post("/api/signout")
    def signout() -> Response:
        return end_session(json_reply({"status": "signed_out"}))

    @app.get("/api/me")
    def me() -> Response:
        s = signed_in()
        try:
            status = engine.status(user_id=s.user_id, ctx=context())
        except t.NotFoundError:
            return end_session(error_reply(401, _error_json(_not_signed_in())))
        if status.security_epoch > s.epoch:
            # H2: the account changed since this session began, through another session,
            # process or host: this one is over.
            return end_session(error_reply(401, _error_json(_not_signed_in())))
        return json_reply(
            {
                "user_id": status.user_id,
                "email": status.email,
                "security_epoch": status.security_epoch,
                "two_factor": {
                    "enabled": status.two_factor_enabled,
                    "passkeys": [p.to_json() for p in status.passkeys],
                    "backup_codes_remaining": status.backup_codes_remaining,
                    "backup_codes_running_low": status.backup_codes_running_low,
                },
            }
        )

    @app.get("/api/passkeys")
    def passkeys() -> Response:
        s = signed_in()
        return json_reply(engine.list_passkeys(user_id=s.user_id, ctx=context()).to_json())

    @app.post("/api/passkeys/registration/start")
    def registration_start() -> Response:
        s = signed_in()
        data = body("name", "password")
        started = engine.start_passkey_registration(
            user_id=s.user_id, name=required(data, "name"), password=required(data, "password"), ctx=context()
        )
        return json_reply(started.to_json())

    @app.post("/api/passkeys/registration/finish")
    def registration_finish() -> Response:
        s = signed_in()
        data = body("credential")
        try:
            registered = engine.finish_passkey_registration(
                user_id=s.user_id, credential=required(data, "credential"), ctx=context()
            )
        except t.InvalidPasskeyError as e:
            # The user is signed in: a credential that does not verify is a bad request.
            return error_reply(400, e.to_json())
        return json_reply(registered.to_json())

    @app.route("/api/passkeys/<path:passkey_id>", methods=["PATCH", "DELETE"])
    def passkey(passkey_id: str) -> Response:
        s = signed_in()
        if request.method == "PATCH":
            data = body("name")
            renamed = engine.rename_passkey(
                user_id=s.user_id, passkey_id=passkey_id, name=required(data, "name"), ctx=context()
            )
            return json_reply(renamed.to_json())
        data = body("password")
        status = engine.remove_passkey(
            user_id=s.user_id, passkey_id=passkey_id, password=required(data, "password"), ctx=context()
        )
        epoch_changed(s, status.security_epoch)
        return json_reply(status.to_json())

    @app.post("/api/two-factor/enable")
    def two_factor_enable() -> Response:
        s = signed_in()
        data = body("password")
        codes = engine.enable_two_factor(user_id=s.user_id, password=required(data, "password"), ctx=context())
        epoch_changed(s, codes.security_epoch)
        return json_reply(codes.to_json())

    @app.post("/api/two-factor/disable")
    def two_factor_disable() -> Response:
        s = signed_in()
        data = body("password")
        status = engine.disable_two_factor(user_id=s.user_id, password=required(data, "password"), ctx=context())
        epoch_changed(s, status.security_epoch)
        return json_reply(status.to_json())

    @app.post("/api/backup-codes/regenerate")
    def backup_codes_regenerate() -> Response:
        s = signed_in()
        data = body("password")
        codes = engine.regenerate_backup_codes(
            user_id=s.user_id, password=required(data, "password"), ctx=context()
        )
        epoch_changed(s, codes.security_epoch)
        return json_reply(codes.to_json())

    @app.post("/api/password")
    def change_password() -> Response:
        s = signed_in()
        data = body("current_password", "new_password")
        changed = engine.change_password(
            user_id=s.user_id,
            current_password=required(data, "current_password"),
            new_password=required(data, "new_password"),
            ctx=context(),
        )
        epoch_changed(s, changed.security_epoch)
        return json_reply({"security_epoch": changed.security_epoch})

    @app.get("/api/audit")
    def audit() -> Response:
        s = signed_in()

        def number(name: str) -> Optional[int]:
            value = request.args.get(name)
            if value is None:
                return None
            if not value.isdigit() or len(value) > 20:
                raise _invalid(f"{name} must be a whole number")
            return int(value)

        limit = number("limit")
        if limit is not None and limit > 2**32 - 1:
            raise _invalid("limit is out of range")
        page = engine.audit_events(user_id=s.user_id, before=number("before"), limit=limit, ctx=context())
        return json_reply(page.to_json())

    @app.get("/api/audit/verify")
    def audit_verify() -> Response:
        s = signed_in()
        return json_reply(engine.verify_audit_chain(user_id=s.user_id, ctx=context()).to_json())

    allowed = {
        "/api/signup": "POST",
        "/api/signin": "POST",
        "/api/signin/passkey": "POST",
        "/api/signin/backup-code": "POST",
        "/api/signout": "POST",
        "/api/me": "GET",
        "/api/passkeys": "GET",
        "/api/passkeys/registration/start": "POST",
        "/api/passkeys/registration/finish": "POST",
        "/api/two-factor/enable": "POST",
        "/api/two-factor/disable": "POST",
        "/api/backup-codes/regenerate": "POST",
        "/api/password": "POST",
        "/api/audit": "GET",
        "/api/audit/verify": "GET",
    }

    @app.errorhandler(405)
    def wrong_method(_e: Exception) -> Response:
        path = request.path
        methods = allowed.get(path, "PATCH, DELETE" if path.startswith("/api/passkeys/") else "GET, HEAD")
        reply = error_reply(405, {"code": "invalid_input", "message": "method not allowed here"})
        reply.headers["Allow"] = methods
        return reply

    @app.errorhandler(404)
    def no_endpoint(_e: Exception) -> Response:
        if request.path.startswith("/api/"):
            return error_reply(404, {"code": "not_found", "message": "no such endpoint"})
        return Response("not found\n", status=404, mimetype="text/plain")

    # ------------------------------------------------------------------ the web UI

    web_dir = site.web_dir.resolve()

    @app.route("/", defaults={"path": "index.html"}, methods=["GET", "HEAD"])
    @app.route("/<path:path>", methods=["GET", "HEAD"])
    def asset(path: str) -> Response:
        if path.startswith("api/"):
            known = "/" + path in allowed or path.startswith("api/passkeys/")
            return wrong_method(Exception()) if known else no_endpoint(Exception())
        file = (web_dir / path).resolve()
        if web_dir not in file.parents or not file.is_file():
            return Response("not found\n", status=404, mimetype="text/plain")
        content_type = CONTENT_TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0]
        reply = Response(file.read_bytes(), status=200, content_type=content_type or "application/octet-stream")
        reply.headers["Cache-Control"] = "no-cache"
        reply.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return reply

    return app


def _error_json(e: HttpError) -> dict[str, object]:
    return {"code": e.code.value, "message": e.message}
