"""SQL for the `gateway_secrets` table. Functions only flush: the caller owns the transaction.

A secret is made once and then shared by every gateway process on the database. Processes
that start together may both find it missing and both make one: INSERT ... ON CONFLICT DO
NOTHING keeps the first, and each reads back what was kept. The second INSERT waits until the
first transaction ends (a row lock on PostgreSQL, the write lock on SQLite), so call this in a
short transaction of its own and commit at once (PostgreSQL: READ COMMITTED, the default).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import GatewaySecret, utcnow
from app.repositories.api_keys import check_fits


async def get_or_create_secret(session: AsyncSession, name: str, make: Callable[[], str]) -> str:
    """The stored value of secret `name`; if there is none, `make()` one and store it.

    When another transaction stores one first, its value is returned, not `make()`'s.
    Raises ValueError for a name or value longer than its column.
    """
    columns = GatewaySecret.__table__.c
    check_fits(columns.name, name)
    stored = await _stored_value(session, name)
    if stored is not None:
        return stored
    value = make()
    check_fits(columns.value, value)
    await session.execute(_insert_unless_present(session, name, value))
    stored = await _stored_value(session, name)
    assert stored is not None  # inserted, or kept from the transaction that inserted it first
    return stored


async def _stored_value(session: AsyncSession, name: str) -> str | None:
    return await session.scalar(select(GatewaySecret.value).where(GatewaySecret.name == name))


def _insert_unless_present(session: AsyncSession, name: str, value: str) -> Insert:
    """INSERT ... ON CONFLICT (name) DO NOTHING, in the dialect of the session's database."""
    dialect = session.get_bind().dialect.name
    row = {"name": name, "value": value, "created_at": utcnow()}
    if dialect == "postgresql":
        pg_insert = postgresql.insert(GatewaySecret).values(row)
        return pg_insert.on_conflict_do_nothing(index_elements=[GatewaySecret.name])
    if dialect == "sqlite":
        sqlite_insert = sqlite.insert(GatewaySecret).values(row)
        return sqlite_insert.on_conflict_do_nothing(index_elements=[GatewaySecret.name])
    raise NotImplementedError(f"no INSERT ... ON CONFLICT for the {dialect} dialect")
