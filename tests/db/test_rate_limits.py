"""The per-key prompt rate limit counts and records in one step, under the key row's lock;
on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.db import Database
from app.models import PromptAdmission
from app.repositories import api_keys as keys_repo
from app.repositories import rate_limits as rate_repo
from app.repositories.rate_limits import Admission
from tests.conftest import RACER_SECONDS, until_blocked

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


async def _new_key(db: Database) -> uuid.UUID:
    async with db.session() as session:
        key = await keys_repo.add_key(
            session, name="ci", prefix="pgw_x", secret_hash=uuid.uuid4().hex * 2, scopes=["a"]
        )
    return key.id


async def _admit(db: Database, key_id: uuid.UUID, at: datetime, limit: int = 2) -> Admission:
    async with db.session() as session:
        return await rate_repo.admit_prompt(session, key_id, limit=limit, since=at - MINUTE, now=at)


async def _stored(db: Database, key_id: uuid.UUID) -> int:
    async with db.session() as session:
        statement = select(func.count(PromptAdmission.id))
        return int(await session.scalar(statement.where(PromptAdmission.key_id == key_id)) or 0)


async def test_admits_up_to_the_limit_in_the_window(database: Database) -> None:
    key, other = await _new_key(database), await _new_key(database)
    second = T0 + timedelta(seconds=1)

    assert await _admit(database, key, T0) == Admission(True, 0, None)
    assert await _admit(database, key, second) == Admission(True, 1, T0)
    assert await _admit(database, key, second) == Admission(False, 2, T0)
    assert await _admit(database, other, second) == Admission(True, 0, None)  # keys apart
    # A refusal records nothing; once the first one leaves the window a place is free.
    assert await _stored(database, key) == 2
    assert await _admit(database, key, T0 + MINUTE + timedelta(microseconds=1)) == Admission(
        True, 1, second
    )
    # What left the window is gone.
    assert await _stored(database, key) == 2


async def test_a_prompt_at_the_same_instant_waits_and_is_counted(database: Database) -> None:
    """The racer cannot count before the open admission is committed: it then sees it."""
    key = await _new_key(database)
    await _admit(database, key, T0)

    async with database.session() as session:
        mine = await rate_repo.admit_prompt(session, key, limit=2, since=T0 - MINUTE, now=T0)
        racer = asyncio.create_task(_admit(database, key, T0))
        await until_blocked(database, racer)  # on the key row's lock

    theirs = await asyncio.wait_for(racer, RACER_SECONDS)
    assert mine == Admission(True, 1, T0)
    assert theirs == Admission(False, 2, T0)


async def test_concurrent_prompts_take_exactly_the_free_places(database: Database) -> None:
    key = await _new_key(database)

    results = await asyncio.wait_for(
        asyncio.gather(*(_admit(database, key, T0, limit=3) for _ in range(6))), RACER_SECONDS
    )

    assert sorted(result.admitted for result in results) == [False] * 3 + [True] * 3
    assert await _stored(database, key) == 3


async def test_an_unknown_key_is_refused(database: Database) -> None:
    with pytest.raises(rate_repo.UnknownKey):
        await _admit(database, uuid.uuid4(), T0)
