"""SQL for the `turns` table. Functions only flush: the caller owns the transaction.

At most one turn per session is queued or running: a partial unique index enforces it and
`ActiveTurnExists` reports it. After that error, write nothing more in the transaction
(PostgreSQL has aborted it; a failed flush needs a rollback): leave the `Database.session()`
block, by the exception or after catching it, and it ends cleanly without the refused row.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ACTIVE_TURN_STATUSES, GatewaySession, Turn, TurnStatus
from app.repositories.sessions import check_page

ACTIVE_TURN_INDEX = "uq_turns_one_active_per_session"
# SQLite names the columns of a violated unique index, not the index.
_SQLITE_ACTIVE_TURN_VIOLATION = "UNIQUE constraint failed: turns.session_id"


class ActiveTurnExists(Exception):
    """The session already has a queued or running turn."""

    def __init__(self, session_id: uuid.UUID) -> None:
        super().__init__(f"session {session_id} already has a queued or running turn")
        self.session_id = session_id


class TurnChanges(TypedDict, total=False):
    """What `update_turn` may change; a key left out stays as it is."""

    status: str
    final_text: str | None
    error_code: str | None
    error_message: str | None
    usage: dict[str, Any] | None
    finished_at: datetime | None
    cancel_requested_at: datetime | None


async def add_turn(
    session: AsyncSession,
    *,
    session_id: uuid.UUID,
    prompt: str,
    status: str = TurnStatus.QUEUED,
) -> Turn:
    """Insert the session's next turn, numbered 1, 2, ... in one statement.

    Raises `ActiveTurnExists` when `status` is queued or running and another turn is.
    """
    await _lock_session_row(session, session_id)
    next_number = (
        select(func.coalesce(func.max(Turn.number), 0) + 1)
        .where(Turn.session_id == session_id)
        .scalar_subquery()
    )
    statement = (
        insert(Turn)
        .values(session_id=session_id, prompt=prompt, status=status, number=next_number)
        .returning(Turn)
    )
    with _reporting_active_turn(session_id):
        return (await session.scalars(statement)).one()


async def get_turn(
    session: AsyncSession, turn_id: uuid.UUID, *, session_id: uuid.UUID | None = None
) -> Turn | None:
    """The turn; None if there is none, or it belongs to another session than `session_id`."""
    turn = await session.get(Turn, turn_id)
    if turn is None or (session_id is not None and turn.session_id != session_id):
        return None
    return turn


async def list_turns(
    session: AsyncSession, session_id: uuid.UUID, *, limit: int = 50, offset: int = 0
) -> tuple[list[Turn], int]:
    """One page of the session's turns, oldest first, and how many it has in all."""
    check_page(limit, offset)
    statement = (
        select(Turn)
        .where(Turn.session_id == session_id)
        .order_by(Turn.number)
        .limit(limit)
        .offset(offset)
    )
    page = list((await session.scalars(statement)).all())
    return page, await count_turns(session, session_id)


async def count_turns(session: AsyncSession, session_id: uuid.UUID) -> int:
    statement = select(func.count(Turn.id)).where(Turn.session_id == session_id)
    return (await session.scalar(statement)) or 0


async def get_active_turn(session: AsyncSession, session_id: uuid.UUID) -> Turn | None:
    """The session's queued or running turn, if it has one."""
    statement = select(Turn).where(
        Turn.session_id == session_id, Turn.status.in_(ACTIVE_TURN_STATUSES)
    )
    return await session.scalar(statement)


async def list_turns_in_statuses(session: AsyncSession, statuses: Iterable[str]) -> list[Turn]:
    """Every turn in one of `statuses`, oldest first (to recover them after a restart)."""
    statement = (
        select(Turn).where(Turn.status.in_(list(statuses))).order_by(Turn.started_at, Turn.id)
    )
    return list((await session.scalars(statement)).all())


async def update_turn(session: AsyncSession, turn: Turn, **changes: Unpack[TurnChanges]) -> Turn:
    """Set the given fields on `turn` and flush them.

    `turn` may come from an earlier, closed session: it joins this one. Raises
    `ActiveTurnExists` when that would make a second active turn in its session.
    """
    if turn not in session:
        session.add(turn)
    for field, value in changes.items():
        setattr(turn, field, value)
    with _reporting_active_turn(turn.session_id):
        await session.flush()
    return turn


async def _lock_session_row(session: AsyncSession, session_id: uuid.UUID) -> None:
    """Serialize turn inserts per session: a row lock on PostgreSQL (SQLite has one writer).

    Without it two inserts could take the same number and fail on that index instead of
    reporting the active turn.
    """
    statement = select(GatewaySession.id).where(GatewaySession.id == session_id)
    await session.execute(statement.with_for_update())


@contextmanager
def _reporting_active_turn(session_id: uuid.UUID) -> Iterator[None]:
    """Turn a violation of the one-active-turn index into `ActiveTurnExists`."""
    try:
        yield
    except IntegrityError as exc:
        if _violates_active_turn_index(exc):
            raise ActiveTurnExists(session_id) from exc
        raise


def _violates_active_turn_index(exc: IntegrityError) -> bool:
    """Whether the failed statement hit the one-active-turn index, on PostgreSQL or SQLite."""
    driver_error = exc.orig
    # asyncpg's UniqueViolationError (the cause of SQLAlchemy's adapted error) names it.
    for error in (driver_error, getattr(driver_error, "__cause__", None)):
        if getattr(error, "constraint_name", None) == ACTIVE_TURN_INDEX:
            return True
    return str(driver_error) == _SQLITE_ACTIVE_TURN_VIOLATION
