"""Who may do what: token creation, the environment admin's bootstrap, and authentication.

Tokens are looked up by the hash of the presented secret; the final comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime, timedelta

from tally.errors import BadRequest, Forbidden, InvalidToken, NotFound, Unauthorized
from tally.settings import Clock
from tally.stores.base import DirectoryStore
from tally.tokens import SCOPES, Scope, TokenRecord, hash_secret, matches, new_token, public_id


class AccessService:
    """Creates tokens and answers "which token is this, and may it do that?"."""

    def __init__(self, store: DirectoryStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._by_hash: dict[str, TokenRecord] = {}
        #: The configured environment admin token: in memory only, kept across reloads.
        self._configured: TokenRecord | None = None
        #: Per token id, the last use this process wrote to the store.
        self._use_written: dict[str, datetime] = {}
        self.reload()

    def reload(self) -> None:
        """Read the tokens again (another process sharing the store may have written one)."""
        tokens = {t.hash: t for t in self._store.list_tokens()}
        if self._configured is not None:
            tokens[self._configured.hash] = self._configured
        self._by_hash = tokens

    # -- the environment admin -------------------------------------------------------------
    def bootstrap_admin(self, configured: str) -> str | None:
        """Make sure an environment admin token exists.

        With ``configured`` (``TALLY_ADMIN_TOKEN``) its hash is kept in memory only. Without it,
        a token is generated at the first start and returned (to be printed once); only its hash
        is stored, so later starts return ``None``.
        """
        if configured:
            record = TokenRecord(
                id=public_id(configured),
                hash=hash_secret(configured),
                org=None,
                scopes=SCOPES,
                created_at=self._clock(),
            )
            with self._lock:
                self._configured = record
                self._by_hash[record.hash] = record
            self._retire_generated_admin_tokens()
            return None
        with self._lock:
            if any(t.org is None and t.revoked_at is None for t in self._by_hash.values()):
                return None
            secret, record = new_token(None, SCOPES, self._clock())
            self._store.add_token(record)
            self._by_hash[record.hash] = record
        return secret

    def _retire_generated_admin_tokens(self) -> None:
        """Once ``TALLY_ADMIN_TOKEN`` is set, the one generated at an earlier first start must
        not stay valid beside it: revoke it (and any other stored environment admin token)."""
        for token in self._store.list_tokens():
            if token.org is None and token.revoked_at is None:
                self._store.revoke_token(token.id, self._clock())
        self.reload()

    # -- organization tokens ---------------------------------------------------------------
    def create_token(
        self, org_id: str, scopes: list[str], expires_at: datetime | None = None
    ) -> tuple[str, TokenRecord]:
        """A new token of ``org_id`` with ``scopes``, refused from ``expires_at`` on (if
        given); the secret is returned once, here."""
        unknown = [s for s in scopes if s not in SCOPES]
        if not scopes or unknown:
            raise BadRequest(
                f"scopes must be a non-empty list of: {', '.join(SCOPES)}", field="scopes"
            )
        if expires_at is not None and expires_at <= self._clock():
            raise BadRequest("expires_at must lie in the future", field="expires_at")
        ordered = tuple(s for s in SCOPES if s in scopes)
        secret, record = new_token(org_id, ordered, self._clock(), expires_at)
        with self._lock:
            self._store.add_token(record)
            self._by_hash[record.hash] = record
        return secret, record

    def tokens_of(self, org_id: str) -> list[TokenRecord]:
        return [t for t in self._store.list_tokens() if t.org == org_id]

    def revoke_token(self, org_id: str, token_id: str) -> TokenRecord:
        """Revoke ``org_id``'s token ``token_id`` (again: nothing changes); refused from the
        next request on, on every worker. A token of another org is not found here."""
        found = [t for t in self.tokens_of(org_id) if t.id == token_id]
        if not found:
            raise NotFound(f'token "{token_id}" does not exist in this organization')
        self._store.revoke_token(token_id, self._clock())
        self.reload()
        return next(t for t in self.tokens_of(org_id) if t.id == token_id)

    def session_key(self) -> bytes:
        """The key that signs the dashboard's session cookies: derived from the environment
        admin tokens' hashes, so every worker sharing the directory store (or started with the
        same ``TALLY_ADMIN_TOKEN``) derives the same key, and nothing new is stored."""
        admins = sorted(
            t.hash for t in self._by_hash.values() if t.org is None and t.revoked_at is None
        )
        return hashlib.sha256(("tally-dashboard-session:" + "|".join(admins)).encode()).digest()

    # -- checking --------------------------------------------------------------------------
    def authenticate(self, secret: str | None) -> TokenRecord:
        """The token for ``secret``; ``Unauthorized`` without one, ``InvalidToken`` if unknown,
        revoked or expired."""
        if not secret:
            raise Unauthorized("this call needs a token")
        record = self._by_hash.get(hash_secret(secret))
        if record is None or not matches(secret, record):
            raise InvalidToken("the token is not valid")
        now = self._clock()
        refusal = record.refusal(now)
        if refusal is not None:
            raise InvalidToken(refusal)
        self._note_use(record, now)
        return record

    #: How stale a token's stored ``last_used_at`` may get: one write per token per minute.
    USE_RESOLUTION = timedelta(minutes=1)

    def _note_use(self, record: TokenRecord, now: datetime) -> None:
        if record is self._configured:
            return  # not stored anywhere
        written = self._use_written.get(record.id) or record.last_used_at
        if written is not None and now - written < self.USE_RESOLUTION:
            return
        self._use_written[record.id] = now
        self._store.record_token_use(record.id, now)

    @staticmethod
    def authorize(token: TokenRecord, org_id: str, scope: Scope, *, org_exists: bool) -> None:
        """Check ``token`` may use ``scope`` in ``org_id``.

        An org token naming another org gets the same 403 whether or not that org exists, so it
        learns nothing about other organizations; only the environment admin gets a 404.
        """
        if token.org is not None and token.org != org_id:
            raise Forbidden("this token does not grant access to that organization")
        if token.org is None and not org_exists:
            raise NotFound(f'organization "{org_id}" does not exist')
        if not token.allows(org_id, scope):
            raise Forbidden(f'this token lacks the "{scope}" scope')

    @staticmethod
    def require_environment_admin(token: TokenRecord) -> None:
        if token.org is not None:
            raise Forbidden("this call needs the environment admin's token")
