"""The Flask backend's own rules (H1, H2, H4, the device cookie, the error mapping) through
Flask's test client, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
from conftest import ORIGIN, PASSWORD, fast_config
from flask.testing import FlaskClient
from softkey import SoftKey

import twofold
from twofold import Engine, SQLiteStorage
from twofold.web import STATUS_OF, Site, client_address, create_app, default_web_dir
from twofold.web.sessions import Sessions


class Browser:
    """One browser: its own cookie jar, sending the configured Origin."""

    def __init__(self, client: FlaskClient, peer: str = "198.51.100.7") -> None:
        self.client = client
        self.peer = peer

    def call(self, method: str, path: str, body: Optional[dict[str, Any]] = None, **headers: str) -> Any:
        headers.setdefault("Origin", ORIGIN)
        return self.client.open(
            path,
            method=method,
            json=body,
            headers=headers,
            environ_base={"REMOTE_ADDR": self.peer},
        )


@pytest.fixture
def site(database: twofold.Storage) -> Iterator[Site]:
    engine = Engine(fast_config(), database)
    assert hasattr(database, "connection")
    sessions = Sessions(database.connection, postgres=not isinstance(database, SQLiteStorage))
    yield Site(engine=engine, sessions=sessions, origin=ORIGIN, web_dir=default_web_dir(),
               trusted_proxies=("10.0.0.1",))
    engine.close()


def browser(site: Site, peer: str = "198.51.100.7") -> Browser:
    return Browser(create_app(site).test_client(), peer)


def signed_up(site: Site, email: str = "ada@example.com") -> Browser:
    b = browser(site)
    assert b.call("POST", "/api/signup", {"email": email, "password": PASSWORD}).status_code == 200
    return b


def signed_in(site: Site, email: str = "ada@example.com") -> Browser:
    b = browser(site)
    reply = b.call("POST", "/api/signin", {"email": email, "password": PASSWORD, "remember_me": True})
    assert reply.status_code == 200 and reply.json["status"] == "signed_in", reply.json
    return b


def session_rows(site: Site) -> list[tuple[Any, ...]]:
    return site.sessions._rows("SELECT * FROM sessions", ())


def test_h4_state_changes_need_the_configured_origin(site: Site) -> None:
    b = browser(site)
    for origin in ("http://evil.example", "http://127.0.0.1:8080", ""):
        reply = b.call("POST", "/api/signup", {"email": "a@example.com", "password": PASSWORD}, Origin=origin)
        assert reply.status_code == 403 and reply.json["error"]["code"] == "invalid_input"
        assert ORIGIN in reply.json["error"]["message"]
    assert b.call("GET", "/api/me", Origin="http://evil.example").status_code == 401  # reads are not refused


def test_h4_the_client_id_is_the_peer_unless_a_trusted_proxy_names_one() -> None:
    trusted = ("10.0.0.1", "10.0.0.2")
    assert client_address("203.0.113.5", "1.2.3.4", trusted) == "203.0.113.5"
    assert client_address("10.0.0.1", "1.2.3.4, 198.51.100.9", trusted) == "198.51.100.9"
    assert client_address("10.0.0.1", "1.2.3.4, 198.51.100.9, 10.0.0.2", trusted) == "198.51.100.9"
    assert client_address("10.0.0.1", None, trusted) == "10.0.0.1"


def test_h4_audit_events_carry_the_client_address(site: Site) -> None:
    b = browser(site, peer="10.0.0.1")
    b.call("POST", "/api/signup", {"email": "ada@example.com", "password": PASSWORD},
           **{"X-Forwarded-For": "203.0.113.50", "User-Agent": "x" * 5000})
    events = b.call("GET", "/api/audit").json["events"]
    assert events[0]["ip"] == "203.0.113.50" and len(events[0]["user_agent"]) == 1024
    spoofed = browser(site, peer="198.51.100.66")
    spoofed.call("POST", "/api/signup", {"email": "eve@example.com", "password": PASSWORD},
                 **{"X-Forwarded-For": "203.0.113.50"})
    assert spoofed.call("GET", "/api/audit").json["events"][0]["ip"] == "198.51.100.66"


def test_h1_sessions_pending_tokens_and_device_tokens_are_stored_only_as_hashes(site: Site) -> None:
    key = SoftKey()
    b = signed_up(site)
    options = b.call("POST", "/api/passkeys/registration/start", {"name": "Laptop", "password": PASSWORD}).json
    assert b.call("POST", "/api/passkeys/registration/finish", {"credential": key.create(options["options"], ORIGIN)}).status_code == 200
    other = browser(site)
    step = other.call("POST", "/api/signin", {"email": "ada@example.com", "password": PASSWORD, "remember_me": True})
    assert step.json["status"] == "second_factor_required" and "pending_token" not in step.json
    cookie = other.client.get_cookie("twofold_session")
    assert cookie is not None
    session_id, _, pending_token = cookie.value.partition(".")
    stored = json.dumps([list(map(str, row)) for row in session_rows(site)])
    assert session_id not in stored and pending_token not in stored
    done = other.call("POST", "/api/signin/passkey", {"credential": key.get(step.json["options"], ORIGIN)})
    assert done.status_code == 200 and "device_token" not in done.json
    device = other.client.get_cookie("twofold_device")
    assert device is not None and device.http_only and device.same_site == "Strict"
    assert device.max_age == 90 * 24 * 60 * 60
    stored = json.dumps([list(map(str, row)) for row in session_rows(site)])
    assert device.value not in stored
    assert other.client.get_cookie("twofold_session").value not in stored  # type: ignore[union-attr]


def test_h2_a_password_change_ends_the_other_sessions_only(site: Site) -> None:
    first = signed_up(site)
    second = signed_in(site)
    third = signed_in(site)
    assert second.call("GET", "/api/me").status_code == 200
    reply = first.call("POST", "/api/password", {"current_password": PASSWORD, "new_password": "new passphrase!"})
    assert reply.status_code == 200 and reply.json["security_epoch"] >= 2
    assert first.call("GET", "/api/me").status_code == 200
    for gone in (second, third):
        reply = gone.call("GET", "/api/me")
        assert reply.status_code == 401 and reply.json["error"]["code"] == "expired"


def test_h2_a_change_made_elsewhere_ends_sessions_at_their_next_status(site: Site) -> None:
    b = signed_up(site)
    status = b.call("GET", "/api/me").json
    site.engine.change_password(user_id=status["user_id"], current_password=PASSWORD, new_password="changed by another host")
    assert b.call("GET", "/api/me").status_code == 401


def test_s6_the_device_cookie_is_passed_back_as_the_device_token(site: Site) -> None:
    signed_up(site)
    owner = signed_in(site)
    for i in range(6):
        attacker = browser(site, peer="203.0.113.66")
        attacker.call("POST", "/api/signin", {"email": "ada@example.com", "password": f"guess {i}!!"})
    refused = browser(site, peer="203.0.113.66").call("POST", "/api/signin", {"email": "ada@example.com", "password": PASSWORD})
    assert refused.status_code == 429 and refused.json["error"]["code"] == "rate_limited"
    assert refused.headers["Retry-After"] == str(refused.json["error"]["retry_after_secs"])
    owner.peer = "203.0.113.66"  # same address, but with its device cookie
    reply = owner.call("POST", "/api/signin", {"email": "ada@example.com", "password": PASSWORD, "remember_me": False})
    assert reply.status_code == 200, reply.json


def test_errors_map_to_statuses_and_unknown_members_are_refused(site: Site) -> None:
    b = signed_up(site)
    assert b.call("POST", "/api/signup", {"email": "ada@example.com", "password": PASSWORD}).status_code == 409
    assert b.call("POST", "/api/signin", {"email": "x", "password": PASSWORD, "admin": True}).status_code == 400
    assert b.call("POST", "/api/two-factor/disable", {"password": PASSWORD}).status_code == 409
    wrong = b.call("POST", "/api/password", {"current_password": "wrong password", "new_password": "new passphrase"})
    assert wrong.status_code == 401 and wrong.json["error"]["code"] == "invalid_credentials"
    assert b.call("GET", "/api/nope").json["error"]["code"] == "not_found"
    assert b.call("GET", "/api/signin").status_code == 405
    assert b.call("POST", "/api/signin/passkey", {"credential": {}}).status_code == 410
    assert b.call("POST", "/api/signout").json == {"status": "signed_out"}
    assert b.call("GET", "/api/me").status_code == 401
    assert set(STATUS_OF) == set(twofold.ErrorCode)


def test_the_web_ui_is_the_rust_servers_directory(site: Site) -> None:
    b = browser(site)
    web = default_web_dir()
    assert web.resolve() == (Path(__file__).resolve().parents[3] / "hosts" / "wasmtime-server" / "web").resolve()
    index = b.call("GET", "/")
    assert index.status_code == 200 and index.data == (web / "index.html").read_bytes()
    assert "default-src 'self'" in index.headers["Content-Security-Policy"]
    assert index.headers["X-Frame-Options"] == "DENY"
    scripts = sorted(p for p in web.rglob("*.js"))
    assert scripts
    for script in scripts:
        reply = b.call("GET", "/" + script.relative_to(web).as_posix())
        assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/javascript")
    assert b.call("GET", "/../../README.md").status_code == 404
    assert b.call("GET", "/%2e%2e/%2e%2e/README.md").status_code == 404
