"""SQL for `prompt_admissions`, the per-key prompt rate limit. Functions only flush: the
caller owns the transaction, and should keep it short (it holds the key row's lock).

`admit_prompt` counts and records in one step: under a lock on the key's row (PostgreSQL:
SELECT ... FOR NO KEY UPDATE; SQLite: a no-op write, which takes the one write lock), so concurrent
prompts of one key, in any process, are counted one after another and never both take the
last place in the window.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiKey, PromptAdmission
from app.repositories.locks import lock_row


@dataclass(frozen=True)
class Admission:
    """Whether the prompt may go; how many the key had in the window before it, and when the
    first of those was (None if none): enough to say when a place frees up."""

    admitted: bool
    count: int
    earliest: datetime | None


class UnknownKey(Exception):
    """The key has no row (removed since the request was authenticated)."""


async def admit_prompt(
    session: AsyncSession,
    key_id: uuid.UUID,
    *,
    limit: int,
    since: datetime,
    now: datetime,
    key_locked: bool = False,
) -> Admission:
    """Admit one prompt of the key unless `limit` were admitted at or after `since`.

    Call it first in its transaction. An admitted prompt is recorded at `now`; admissions
    before `since` are deleted (nothing counts them any more). Raises `UnknownKey` when the
    key has no row. `key_locked`: this transaction holds the key row's lock already, so it is
    not taken again.
    """
    if not key_locked:
        await _lock_key_row(session, key_id)
    await session.execute(
        delete(PromptAdmission).where(
            PromptAdmission.key_id == key_id, PromptAdmission.admitted_at < since
        )
    )
    statement = select(func.count(PromptAdmission.id), func.min(PromptAdmission.admitted_at))
    count, earliest = (
        await session.execute(statement.where(PromptAdmission.key_id == key_id))
    ).one()
    if count >= limit:
        return Admission(False, count, earliest)
    session.add(PromptAdmission(key_id=key_id, admitted_at=now))
    await session.flush()
    return Admission(True, count, earliest)


async def _lock_key_row(session: AsyncSession, key_id: uuid.UUID) -> None:
    """The key row's lock until the transaction ends (app/repositories/locks.py).

    FOR NO KEY UPDATE on PostgreSQL: admissions wait for each other, but not rows that
    merely refer to the key (a new session's foreign key check takes FOR KEY SHARE).
    """
    if not await lock_row(session, ApiKey.id, key_id, touch=ApiKey.name, key_share=True):
        raise UnknownKey(f"no API key {key_id}")
