"""API tokens: random, shown once, stored as a SHA-256 hash, compared in constant time.

A token is either the environment admin's (``org`` is ``None``: every scope in every org) or an
organization's, holding any of the scopes ``read``, ``ingest`` and ``admin``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Literal

import msgspec

Scope = Literal["read", "ingest", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "ingest", "admin")
TOKEN_PREFIX = "tly_"


class TokenRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What is stored of a token: never the secret, only its hash and a short public id."""

    id: str
    hash: str
    org: str | None
    scopes: tuple[str, ...]
    created_at: datetime
    #: After this instant the token is refused (``None``: never).
    expires_at: datetime | None = None
    #: Set by a revocation: from then on the token is refused, on every worker.
    revoked_at: datetime | None = None
    #: The latest use the store has recorded (written at most once a minute per token).
    last_used_at: datetime | None = None

    @property
    def is_environment_admin(self) -> bool:
        return self.org is None

    def refusal(self, now: datetime) -> str | None:
        """Why the token may no longer be used at ``now``, or ``None`` while it may."""
        if self.revoked_at is not None:
            return "the token has been revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "the token has expired"
        return None

    def allows(self, org_id: str, scope: Scope) -> bool:
        if self.org is None:
            return True
        return self.org == org_id and scope in self.scopes


def generate_secret() -> str:
    """A new token: 256 random bits, URL-safe, recognisable by its prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """A fast hash is enough: the secret has 256 bits of entropy, so it cannot be brute-forced."""
    return hashlib.sha256(secret.encode()).hexdigest()


def public_id(secret: str) -> str:
    """A short id to name a token in listings and logs without revealing it."""
    return hash_secret("id:" + secret)[:12]


def new_token(
    org: str | None,
    scopes: tuple[str, ...],
    now: datetime,
    expires_at: datetime | None = None,
) -> tuple[str, TokenRecord]:
    secret = generate_secret()
    record = TokenRecord(
        id=public_id(secret),
        hash=hash_secret(secret),
        org=org,
        scopes=scopes,
        created_at=now,
        expires_at=expires_at,
    )
    return secret, record


def matches(secret: str, record: TokenRecord) -> bool:
    return hmac.compare_digest(hash_secret(secret), record.hash)
