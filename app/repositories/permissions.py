"""The answers given to a turn's permission requests (the `permission_answers` table)."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import PermissionAnswer


class AlreadyAnswered(Exception):
    """The request has an answer already (from this or another gateway process)."""


async def record_answer(
    session: AsyncSession,
    turn_id: uuid.UUID,
    permission_id: str,
    *,
    behavior: str,
    message: str | None,
    answered_by: str,
) -> PermissionAnswer:
    """Record an answer: the primary key makes the first answer the only one. On
    `AlreadyAnswered` the caller's transaction is spoilt: let it roll back."""
    answer = PermissionAnswer(
        turn_id=turn_id,
        permission_id=permission_id,
        behavior=behavior,
        message=message,
        answered_by=answered_by,
    )
    session.add(answer)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise AlreadyAnswered(permission_id) from exc
    return answer


async def get_answer(
    session: AsyncSession, turn_id: uuid.UUID, permission_id: str
) -> PermissionAnswer | None:
    statement = select(PermissionAnswer).where(
        PermissionAnswer.turn_id == turn_id, PermissionAnswer.permission_id == permission_id
    )
    return (await session.scalars(statement)).one_or_none()


async def forget_answer(session: AsyncSession, turn_id: uuid.UUID, permission_id: str) -> None:
    """Take back an answer Paseo refused (so it can be answered again)."""
    await session.execute(
        delete(PermissionAnswer).where(
            PermissionAnswer.turn_id == turn_id, PermissionAnswer.permission_id == permission_id
        )
    )
