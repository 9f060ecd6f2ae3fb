"""The dashboard's session: a cookie carrying the token itself and an expiry, signed.

No session table: ``tally serve --workers N`` runs several processes, and a cookie that holds
the token needs nothing shared beyond the tokens themselves. The token is checked again on every
request (through :class:`tally.engine.access.AccessService`), so an unknown token stops working
at once; the signed expiry ends the session after :data:`SESSION_SECONDS` even if the browser
keeps the cookie. The cookie is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no
other site's page sends it: with POST-only sign-in/out and an ``Origin`` check, that is the
CSRF defence), ``Path=/ui`` and ``Secure`` when the request came over HTTPS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "tally_session"
#: How long a sign-in lasts.
SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True)
class Session:
    token: str
    expires: int  # epoch seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, expires: int, token_part: str) -> str:
    mac = hmac.new(key, f"{expires}.{token_part}".encode(), hashlib.sha256).digest()
    return _b64(mac)


def encode(key: bytes, session: Session) -> str:
    token_part = _b64(session.token.encode())
    return f"{session.expires}.{token_part}.{_signature(key, session.expires, token_part)}"


def decode(key: bytes, value: str, now: int) -> Session | None:
    """The session in ``value``; ``None`` when it is malformed, forged or expired."""
    try:
        expires_text, token_part, signature = value.split(".")
        expires = int(expires_text)
        token = _unb64(token_part).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if not hmac.compare_digest(signature, _signature(key, expires, token_part)):
        return None
    if expires <= now:
        return None
    return Session(token, expires)


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(
    response: Response, request: Request, key: bytes, session: Session, now: int
) -> None:
    response.set_cookie(
        COOKIE,
        encode(key, session),
        max_age=max(0, session.expires - now),
        path="/ui",
        secure=is_https(request),
        httponly=True,
        samesite="strict",
    )


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path="/ui", secure=is_https(request), httponly=True, samesite="strict"
    )


def same_origin(request: Request) -> bool:
    """A form POST from one of our own pages: its ``Origin`` (when the browser sends one) is
    this server's."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")
