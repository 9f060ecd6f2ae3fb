"""The one exception hierarchy of Tally: raised anywhere, rendered once per API family.

Each error carries its HTTP status and a stable machine code; the facades' renderers turn it into
the vendor's body shape (Lingma ``errorCode``, DRF field lists, ``code``/``msg``, RFC 9457).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


class TallyError(Exception):
    """Base of every error a client can cause. ``status`` is the HTTP status it maps to."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "InternalServerError"
    title: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        #: The request parameter at fault, when there is one (DRF renders errors per field).
        self.field = field
        #: Item-level problems (RFC 9457 ``errors`` member).
        self.errors = list(errors or [])
        self.headers = dict(headers or {})


class BadRequest(TallyError):
    status = 400
    code = "BadRequest"
    title = "Bad request"


class Unauthorized(TallyError):
    """No token was sent."""

    status = 401
    code = "Unauthorized"
    title = "Unauthorized"


class InvalidToken(Unauthorized):
    """A token was sent but Tally does not know it."""

    code = "InvalidTokenError"


class Forbidden(TallyError):
    status = 403
    code = "Forbidden"
    title = "Forbidden"


class NotFound(TallyError):
    status = 404
    code = "NotFound"
    title = "Not found"


class Conflict(TallyError):
    status = 409
    code = "Conflict"
    title = "Conflict"


class RequestTimeout(TallyError):
    """The request's body did not arrive in time."""

    status = 408
    code = "RequestTimeout"
    title = "Request timeout"


class TooLarge(TallyError):
    status = 413
    code = "PayloadTooLarge"
    title = "Payload too large"


class UnsupportedMediaType(TallyError):
    status = 415
    code = "UnsupportedMediaType"
    title = "Unsupported media type"


class RateLimited(TallyError):
    status = 429
    code = "TooManyRequests"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class StoreBusy(TallyError):
    """The database file is locked by another process (for example a running ``tally serve``)."""

    status = 503
    code = "ServiceUnavailable"
    title = "Store busy"


class Overloaded(TallyError):
    """The process holds as many request bodies as it may; the client should retry soon."""

    status = 503
    code = "ServiceUnavailable"
    title = "Service unavailable"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
