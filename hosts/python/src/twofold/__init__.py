"""twofold: two-factor sign-in with passkeys and backup codes, over the C library.

    from twofold import Engine, Config, AuditKey, Context, SQLiteStorage
    engine = Engine(Config(rp_id=..., rp_name=..., origins=[...], audit_keys=[...]),
                    SQLiteStorage("twofold.db"))
    engine.create_account(email=..., password=..., ctx=Context(ip=..., user_agent=...))

Every operation is a method of `Engine` answering a typed record; failures raise a subclass
of `TwofoldError` (one per error code). Storage is any object with `get`, `scan` and `commit`
(`Storage`); `SQLiteStorage` and `PostgresStorage` are ready-made.
"""

from typing import TYPE_CHECKING

from . import _generated
from ._errors import TwofoldError
from ._ffi import LibraryNotFound
from ._generated import *  # noqa: F403 - the API's records, enums and error classes
from .engine import Engine
from .sqlite import SQLiteStorage
from .storage import MemoryStorage, Storage, StorageConflict, prefix_upper_bound

if TYPE_CHECKING:
    from .postgres import PostgresStorage

__version__ = "0.2.0"

__all__ = [
    "Engine",
    "LibraryNotFound",
    "MemoryStorage",
    "PostgresStorage",
    "SQLiteStorage",
    "Storage",
    "StorageConflict",
    "TwofoldError",
    "prefix_upper_bound",
]
__all__ += _generated.__all__


def __getattr__(name: str) -> object:
    # PostgresStorage needs psycopg (the `postgres` extra): imported only when asked for.
    if name == "PostgresStorage":
        from .postgres import PostgresStorage

        return PostgresStorage
    raise AttributeError(f"module 'twofold' has no attribute {name!r}")
