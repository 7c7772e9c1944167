"""SQL for the `api_keys` table. Functions only flush: the caller owns the transaction.

Only the hex sha256 of a key's secret is stored (`secret_hash`, unique: a second key with the
same hash is refused with IntegrityError); hashing and comparing are the caller's. A revoked
key stays, with its `revoked_at`, so the sessions it owns keep their owner.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, String, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiKey, utcnow


async def add_key(
    session: AsyncSession,
    *,
    name: str,
    prefix: str,
    secret_hash: str,
    scopes: Sequence[str],
    limits: dict[str, float] | None = None,
) -> ApiKey:
    """Insert an active key; a new id and `created_at` are filled in.

    Raises ValueError for a value longer than its column (PostgreSQL would refuse it, SQLite
    keep it) and TypeError for one string as `scopes`.
    """
    if isinstance(scopes, str):
        raise TypeError(f"pass a collection of scopes, not the single scope {scopes!r}")
    columns = ApiKey.__table__.c
    check_fits(columns.name, name)
    check_fits(columns.prefix, prefix)
    check_fits(columns.secret_hash, secret_hash)
    record = ApiKey(
        name=name, prefix=prefix, secret_hash=secret_hash, scopes=list(scopes), limits=limits
    )
    session.add(record)
    await session.flush()
    return record


async def get_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def get_key_by_hash(session: AsyncSession, secret_hash: str) -> ApiKey | None:
    """The key whose secret hashes to `secret_hash`, revoked or not: check `revoked_at`."""
    return await session.scalar(select(ApiKey).where(ApiKey.secret_hash == secret_hash))


async def list_keys(session: AsyncSession, *, include_revoked: bool = False) -> list[ApiKey]:
    """The active keys (and the revoked ones, if asked), oldest first."""
    statement = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if not include_revoked:
        statement = statement.where(ApiKey.revoked_at.is_(None))
    return list((await session.scalars(statement)).all())


async def revoke_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey | None:
    """Revoke the key now, unless it already is (it keeps its first `revoked_at` then).

    One compare-and-set UPDATE, so racing revokes agree on the time. Returns the key, None if
    there is none; a copy of it this session already holds is refreshed.
    """
    statement = (
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .returning(ApiKey)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    revoked = (await session.scalars(statement)).one_or_none()
    return revoked if revoked is not None else await get_key(session, key_id)


async def set_limits(
    session: AsyncSession, key_id: uuid.UUID, limits: dict[str, float] | None
) -> ApiKey | None:
    """Replace the key's limits (None: none); None if there is no such key."""
    statement = (
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .values(limits=limits)
        .returning(ApiKey)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.scalars(statement)).one_or_none()


async def count_active_keys(session: AsyncSession) -> int:
    statement = select(func.count(ApiKey.id)).where(ApiKey.revoked_at.is_(None))
    return (await session.scalar(statement)) or 0


def check_fits(column: ColumnElement[Any], value: str) -> None:
    """Refuse a value longer than its VARCHAR column: PostgreSQL would, SQLite would keep it."""
    length = column.type.length if isinstance(column.type, String) else None
    if length is not None and len(value) > length:
        raise ValueError(f"{column.key} may be at most {length} characters, not {len(value)}")
