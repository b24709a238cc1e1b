"""The base of twofold's exceptions; one subclass per error code is generated (`_generated`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Optional

if TYPE_CHECKING:
    from ._generated import ErrorCode


class TwofoldError(Exception):
    """An operation failed with one of the stable error codes of the SPEC.

    Catch a subclass (`InvalidCredentialsError`, `RateLimitedError`, ...) or this class and
    look at `code`; never parse `message`, which is for people and holds no secret.
    `retry_after_secs` is set for `rate_limited` only. Nothing was written when this is raised.
    """

    code: ClassVar[ErrorCode]
    #: The C library's status number for `code`.
    status: ClassVar[int]

    def __init__(self, message: str, retry_after_secs: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_secs = retry_after_secs

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"

    def to_json(self) -> dict[str, object]:
        """The wire error `{"code", "message", "retry_after_secs"?}`."""
        out: dict[str, object] = {"code": self.code.value, "message": self.message}
        if self.retry_after_secs is not None:
            out["retry_after_secs"] = self.retry_after_secs
        return out
