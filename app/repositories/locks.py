"""A row lock that holds until the transaction ends, on both backends.

PostgreSQL: SELECT ... FOR UPDATE (or FOR NO KEY UPDATE). SQLite has one writer, but a
reader may not become one once another wrote (WAL answers "database is locked" at once), so
there it is a no-op write, which takes the write lock (waiting up to the busy timeout). Call
it first in the transaction, before anything reads what it protects.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

RowT = TypeVar("RowT")


async def lock_row(
    session: AsyncSession,
    key: InstrumentedAttribute[uuid.UUID],
    row_id: uuid.UUID,
    *,
    touch: InstrumentedAttribute[Any],
    key_share: bool = False,
) -> bool:
    """Lock the row whose `key` is `row_id`; False if there is none.

    `touch` is a column SQLite's no-op write sets to itself (not a key: nothing refers to
    it). `key_share`: PostgreSQL's FOR NO KEY UPDATE, which rows merely referring to this
    one (a foreign key check) do not wait for.
    """
    if session.get_bind().dialect.name == "sqlite":
        statement = update(key.class_).where(key == row_id).values({touch: touch})
        result = await session.execute(statement.execution_options(synchronize_session=False))
        return bool(result.rowcount)  # type: ignore[attr-defined]
    locked = select(key).where(key == row_id).with_for_update(key_share=key_share)
    return (await session.scalar(locked)) is not None


async def lock_and_read_row(
    session: AsyncSession,
    entity: type[RowT],
    key: InstrumentedAttribute[uuid.UUID],
    row_id: uuid.UUID,
    *,
    touch: InstrumentedAttribute[Any],
    key_share: bool = False,
) -> RowT | None:
    """`lock_row`, returning the locked row of `entity` as it stands under the lock (read in
    the same statement); None if there is none."""
    statement: Any
    if session.get_bind().dialect.name == "sqlite":
        statement = (
            update(entity)
            .where(key == row_id)
            .values({touch: touch})
            .returning(entity)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
    else:
        statement = (
            select(entity)
            .where(key == row_id)
            .with_for_update(key_share=key_share)
            .execution_options(populate_existing=True)
        )
    row: RowT | None = (await session.scalars(statement)).one_or_none()
    return row
