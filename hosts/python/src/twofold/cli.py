"""`twofold-web`: the sample web backend under waitress, or the conformance driver (`--driver`).

The options are the Rust server's (`twofold-server`), so scripts and the browser test run
either one the same way.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence, Union
from urllib.parse import urlsplit

from ._generated import AuditKey, Config
from .sqlite import SQLiteStorage

if TYPE_CHECKING:
    from .postgres import PostgresStorage

USAGE_EPILOG = """\
Audit keys: TWOFOLD_AUDIT_KEYS=id:hex,id:hex..., else --audit-key-file (one `id:hex` a line,
the first signing new events), else <db>.audit-key, made on first start for a SQLite file.
Keep them outside the database's backups; in production pass them from a secret store.
"""


def _parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="twofold-web",
        description="twofold's JSON API and web UI on Flask and waitress, or --driver.",
        epilog=USAGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--listen", default=env("TWOFOLD_LISTEN", "127.0.0.1:8080"), help="ADDR:PORT")
    p.add_argument("--origin", default=env("TWOFOLD_ORIGIN"), help="the site's origin")
    p.add_argument("--rp-id", default=env("TWOFOLD_RP_ID"), help="WebAuthn RP id (the origin's host)")
    p.add_argument("--rp-name", default=env("TWOFOLD_RP_NAME", "twofold"))
    p.add_argument(
        "--db",
        default=env("TWOFOLD_DB"),
        help="a SQLite file (default ./twofold.db; --driver: a temporary one) or postgres://...",
    )
    p.add_argument("--workers", type=int, default=int(env("TWOFOLD_WORKERS", "4")))
    p.add_argument("--audit-key-file", type=Path, default=None)
    p.add_argument("--web-dir", type=Path, default=None, help="the web UI files")
    p.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDR",
        help="a proxy whose X-Forwarded-For entries are believed (repeatable)",
    )
    p.add_argument("--driver", action="store_true", help="speak the conformance protocol")
    args = p.parse_args(argv)
    if not 1 <= args.workers <= 64:
        p.error("--workers must be 1 to 64")
    return args


def _storage(db: str) -> Union[SQLiteStorage, "PostgresStorage"]:
    if db.startswith(("postgres://", "postgresql://")):
        from .postgres import PostgresStorage

        return PostgresStorage(db)
    return SQLiteStorage(db)


def _audit_keys(args: argparse.Namespace, db: str) -> list[AuditKey]:
    def parse(text: str, where: str) -> list[AuditKey]:
        keys = []
        lines = [line.strip() for line in text.splitlines()]
        for n, line in enumerate(ln for ln in lines if ln and not ln.startswith("#")):
            key_id, sep, secret = line.partition(":")
            if not sep:
                raise SystemExit(f"twofold-web: {where}: key {n + 1} is not `id:hex`")
            keys.append(AuditKey(id=key_id.strip(), secret=secret.strip()))
        if not keys:
            raise SystemExit(f"twofold-web: {where}: no key given")
        return keys

    from_env = os.environ.get("TWOFOLD_AUDIT_KEYS")
    if from_env:
        return parse(from_env.replace(",", "\n"), "TWOFOLD_AUDIT_KEYS")
    path = args.audit_key_file
    if path is None:
        if "://" in db:
            raise SystemExit("twofold-web: a PostgreSQL database needs TWOFOLD_AUDIT_KEYS or --audit-key-file")
        path = Path(db + ".audit-key")
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"k1:{secrets.token_hex(32)}\n")
            print(
                f"twofold-web: made the audit key {path} (keep it, and keep it apart from the "
                "database's backups: without it the audit log cannot be verified)",
                file=sys.stderr,
            )
    return parse(path.read_text(), str(path))


def _driver(args: argparse.Namespace) -> int:
    from .driver import serve

    if args.db:
        storage = _storage(args.db)
        serve(storage, storage.clear)
        return 0
    with tempfile.TemporaryDirectory(prefix="twofold-driver-") as scratch:
        sqlite = SQLiteStorage(Path(scratch) / "driver.db")
        serve(sqlite, sqlite.clear)
        sqlite.close()
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    if args.driver:
        return _driver(args)

    import waitress

    from .engine import Engine
    from .web import Site, create_app, default_web_dir
    from .web.sessions import Sessions

    host, _, port_text = args.listen.rpartition(":")
    if not host or not port_text.isdigit():
        raise SystemExit(f"twofold-web: --listen {args.listen!r} is not an address such as 127.0.0.1:8080")
    origin = (args.origin or f"http://localhost:{port_text}").rstrip("/")
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
        raise SystemExit(f"twofold-web: --origin {origin!r} is not an origin such as http://localhost:8080")
    db = args.db or "twofold.db"
    storage = _storage(db)
    config = Config(
        rp_id=args.rp_id or parts.hostname,
        rp_name=args.rp_name,
        origins=[origin],
        audit_keys=_audit_keys(args, db),
    )
    engine = Engine(config, storage)
    sessions = Sessions(storage.connection, postgres=not isinstance(storage, SQLiteStorage))
    site = Site(
        engine=engine,
        sessions=sessions,
        origin=origin,
        web_dir=args.web_dir or default_web_dir(),
        trusted_proxies=tuple(args.trusted_proxy),
    )
    app = create_app(site)
    logging.getLogger("twofold-web").info("serving %s on http://%s (origin %s)", db, args.listen, origin)
    waitress.serve(
        app,
        host=host.strip("[]"),
        port=int(port_text),
        threads=args.workers,
        # H3: bounded requests; waitress reads each whole request before a worker sees it,
        # so no worker waits on a slow client.
        max_request_header_size=16 * 1024,
        max_request_body_size=64 * 1024,
        channel_timeout=60,
        connection_limit=256,
        ident="twofold-web",
        clear_untrusted_proxy_headers=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
