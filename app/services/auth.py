"""Who is calling: API keys (stored as hashes, with scopes) and short-lived stream tokens.

Keys are random 256-bit secrets, so a plain SHA-256 is a safe way to store them (no password
stretching needed) and lets a request be matched with one indexed lookup. A key found valid is
trusted for a moment (`KeyCache`): a revoke stops it at once in the process that made it and
within that moment in every other one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.errors import InvalidInput, NotFound, Unauthorized
from app.models import ApiKey
from app.repositories import api_keys as keys_repo
from app.repositories import secrets as secrets_repo
from app.services import audit
from app.services.key_cache import KeyCache

SCOPES = ("read", "prompt", "webhooks", "admin")
# What each scope lets a key do: admin everything, prompt and webhooks also read.
_GRANTS: dict[str, frozenset[str]] = {
    "read": frozenset({"read"}),
    "prompt": frozenset({"read", "prompt"}),
    "webhooks": frozenset({"read", "webhooks"}),
    "admin": frozenset({"read", "prompt", "webhooks", "admin"}),
}
KEY_PREFIX = "pgw_"
PUBLIC_PREFIX_CHARS = 12
STREAM_SECRET_NAME = "stream-token-hmac"


@dataclass(frozen=True)
class Principal:
    """The caller of a request: a key (its id and granted scopes), or nobody-with-no-auth."""

    key_id: uuid.UUID | None
    name: str
    granted: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.granted

    def allows(self, scope: str) -> bool:
        return scope in self.granted


AUTH_DISABLED = Principal(None, "auth disabled (loopback only)", _GRANTS["admin"])


def granted_by(scopes: Iterable[str]) -> frozenset[str]:
    return frozenset().union(*(_GRANTS[scope] for scope in scopes if scope in _GRANTS))


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    secret: str  # shown once, never stored


class AuthService:
    def __init__(
        self, db: Database, *, stream_token_seconds: float, key_cache_seconds: float = 0.0
    ) -> None:
        self.db = db
        self.stream_token_seconds = stream_token_seconds
        self.valid_keys: KeyCache[Principal] = KeyCache(key_cache_seconds)
        self._stream_secret: bytes | None = None

    # --- keys -------------------------------------------------------------------------------

    async def authenticate(
        self, secret: str | None, *, reads: AsyncSession | None = None
    ) -> Principal:
        """The key's principal: from `valid_keys` if it was just seen, else looked up in
        `reads` (the route's read session) if given."""
        if not secret:
            raise Unauthorized("this route needs an API key: send `Authorization: Bearer <key>`")
        secret_hash = hash_secret(secret)
        known = self.valid_keys.get(secret_hash)
        if known is not None:
            return known
        if reads is not None:
            key = await keys_repo.get_key_by_hash(reads, secret_hash)
        else:
            async with self.db.read() as session:
                key = await keys_repo.get_key_by_hash(session, secret_hash)
        if key is None or key.revoked_at is not None:
            raise Unauthorized("the API key is unknown or revoked", invalid_token=True)
        principal = Principal(key.id, key.name, granted_by(key.scopes))
        self.valid_keys.put(secret_hash, key.id, principal)
        return principal

    async def create_key(
        self,
        name: str,
        scopes: Sequence[str],
        secret: str | None = None,
        *,
        limits: dict[str, float] | None = None,
    ) -> CreatedKey:
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise InvalidInput(
                f"scopes must be some of {', '.join(SCOPES)}; got {unknown or 'none'}"
            )
        secret = secret or new_secret()
        async with self.db.session() as session:
            key = await keys_repo.add_key(
                session,
                name=name,
                prefix=secret[:PUBLIC_PREFIX_CHARS],
                secret_hash=hash_secret(secret),
                scopes=sorted(set(scopes)),
                limits=limits,
            )
            await audit.record(session, "key.create", target_id=str(key.id))
        return CreatedKey(key, secret)

    async def list_keys(self, *, include_revoked: bool) -> list[ApiKey]:
        async with self.db.session() as session:
            return await keys_repo.list_keys(session, include_revoked=include_revoked)

    async def set_limits(self, key_id: uuid.UUID, limits: dict[str, float] | None) -> ApiKey:
        """Replace the key's budget; the next prompt is checked against it."""
        async with self.db.session() as session:
            key = await keys_repo.set_limits(session, key_id, limits)
            if key is None:
                raise NotFound(f"no API key {key_id}")
            await audit.record(session, "key.update", target_id=str(key_id))
        return key

    async def revoke_key(self, key_id: uuid.UUID) -> ApiKey:
        async with self.db.session() as session:
            key = await keys_repo.revoke_key(session, key_id)
            if key is not None:
                await audit.record(session, "key.revoke", target_id=str(key_id))
        self.valid_keys.forget(key_id)
        if key is None:
            raise NotFound(f"no API key {key_id}")
        return key

    async def bootstrap(self, configured_secret: str | None) -> CreatedKey | None:
        """With no active key at all, make an admin key: the configured one, or a new one.

        Returns the key when one was made, so the caller can print a new secret once.
        """
        async with self.db.session() as session:
            if await keys_repo.count_active_keys(session) > 0:
                return None
        return await self.create_key("bootstrap admin", ["admin"], configured_secret)

    # --- stream tokens --------------------------------------------------------------------------

    async def issue_stream_token(self, turn_id: uuid.UUID, key_id: uuid.UUID | None) -> str:
        """A signed token that opens only this turn's event stream, until it expires or the
        key it was issued to (`key_id`; None with keys disabled) is revoked."""
        expires = int(time.time() + self.stream_token_seconds)
        claims = {"turn": str(turn_id), "key": str(key_id) if key_id else None, "exp": expires}
        body = _b64(json.dumps(claims).encode())
        return f"{body}.{_b64(await self._sign(body))}"

    async def check_stream_token(
        self, token: str, turn_id: uuid.UUID | str, *, keyless: bool = False
    ) -> bool:
        """Whether `token` opens `turn_id`'s stream now: signed here, for that turn, not expired,
        and its key still active (looked up on every check, like a key itself).

        A token of no key opens a stream only while keys are disabled (`keyless`). Tokens made
        before they named their key (no "key" claim) are refused: they could outlive a revoke.
        """
        body, _, signature = token.partition(".")
        try:
            expected = await self._sign(body)
            if not hmac.compare_digest(_unb64(signature), expected):
                return False
            claims = json.loads(_unb64(body))
            if not isinstance(claims, dict) or "key" not in claims:
                return False
            if claims.get("turn") != str(turn_id) or float(claims.get("exp", 0)) <= time.time():
                return False
            key_id = uuid.UUID(claims["key"]) if claims["key"] is not None else None
        except (ValueError, TypeError, AttributeError):
            return False
        if key_id is None:
            return keyless
        async with self.db.session() as session:
            key = await keys_repo.get_key(session, key_id)
        return key is not None and key.revoked_at is None

    async def _sign(self, body: str) -> bytes:
        return hmac.new(await self._secret(), body.encode(), hashlib.sha256).digest()

    async def _secret(self) -> bytes:
        """One signing secret for every gateway process: made once, kept in the database."""
        if self._stream_secret is None:
            async with self.db.session() as session:
                value = await secrets_repo.get_or_create_secret(
                    session, STREAM_SECRET_NAME, lambda: secrets.token_hex(32)
                )
            self._stream_secret = bytes.fromhex(value)
        return self._stream_secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
