"""What a key used, summed in SQL from the turns' stored usage, on SQLite and PostgreSQL:
the budget windows, and `/usage` groups by key, session, UTC day and model."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.db import Database
from app.models import Turn, TurnStatus
from app.repositories import api_keys as keys_repo
from app.repositories import sessions as sessions_repo
from app.repositories import turns as turns_repo
from app.repositories import usage as usage_repo
from app.services.budgets import windows

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


async def _key(db: Database, name: str) -> uuid.UUID:
    async with db.session() as session:
        key = await keys_repo.add_key(
            session, name=name, prefix="pgw_x", secret_hash=uuid.uuid4().hex * 2, scopes=["prompt"]
        )
    return key.id


async def _turn(
    db: Database,
    key_id: uuid.UUID | None,
    started_at: datetime,
    usage: dict[str, Any] | None,
    *,
    model: str | None = "mock-fast",
    title: str | None = None,
) -> Turn:
    async with db.session() as session:
        record = await sessions_repo.add_session(
            session, provider="mock", model=model, cwd="/tmp", title=title
        )
        turn = await turns_repo.add_turn(
            session, session_id=record.id, prompt="p", status=TurnStatus.COMPLETED, key_id=key_id
        )
        return await turns_repo.update_turn(session, turn, usage=usage, started_at=started_at)


def _usage(output: int, cost: float | None, *, input_tokens: int = 1) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output,
        "cached_tokens": 0,
        "cost_usd": cost,
    }


async def test_a_keys_use_is_counted_in_its_utc_day_and_month(database: Database) -> None:
    key, other = await _key(database, "ci"), await _key(database, "other")
    await _turn(database, key, NOW - timedelta(hours=1), _usage(10, 0.25))
    await _turn(database, key, NOW - timedelta(hours=2), None)  # running, or ended without
    await _turn(database, key, NOW - timedelta(hours=13), _usage(100, 1.0))  # yesterday
    await _turn(database, key, NOW - timedelta(days=10), _usage(1000, 2.0))  # last month
    await _turn(database, other, NOW, _usage(7, 5.0))
    window = windows(NOW)

    async with database.session() as session:
        used = await usage_repo.key_used(
            session, key, day_start=window.day_start, month_start=window.month_start
        )

    assert used == usage_repo.Used(
        turns_today=2, output_tokens_today=10, cost_usd_today=0.25, cost_usd_month=1.25
    )


async def test_lock_key_limits_reads_the_limits_and_refuses_an_unknown_key(
    database: Database,
) -> None:
    key = await _key(database, "ci")
    async with database.session() as session:
        await keys_repo.set_limits(session, key, {"turns_per_day": 2})
    async with database.session() as session:
        assert await usage_repo.lock_key_limits(session, key) == {"turns_per_day": 2}
        with pytest.raises(usage_repo.UnknownKey):
            await usage_repo.lock_key_limits(session, uuid.uuid4())


async def test_usage_groups_by_key_session_day_and_model(database: Database) -> None:
    key, other = await _key(database, "ci"), await _key(database, "other")
    first = await _turn(database, key, NOW - timedelta(days=1), _usage(10, 0.5), title="a")
    await _turn(database, key, NOW, _usage(20, None, input_tokens=3), model=None)
    await _turn(database, other, NOW, _usage(5, 1.0), model="mock-slow")
    await _turn(database, None, NOW, _usage(1, 0.0))  # sent with keys disabled

    async with database.read() as session:
        by_day = await usage_repo.usage_by(session, "day", key_id=key)
        by_key = await usage_repo.usage_by(session, "key")
        by_model = await usage_repo.usage_by(session, "model")
        by_session = await usage_repo.usage_by(session, "session", key_id=key)
        today = await usage_repo.usage_by(
            session, "key", since=NOW - timedelta(hours=1), until=NOW + timedelta(hours=1)
        )
        unkeyed = await usage_repo.usage_by(session, "key", key_id=None)

    assert [(row.group, row.turns, row.output_tokens, row.cost_usd) for row in by_day] == [
        ("2026-12-06", 1, 10, 0.5),
        ("2026-12-07", 1, 20, 0.0),
    ]
    sums = {row.group: (row.name, row.turns, row.input_tokens, row.output_tokens) for row in by_key}
    assert sums == {
        str(key): ("ci", 2, 4, 30),
        str(other): ("other", 1, 1, 5),
        None: (None, 1, 1, 1),
    }
    assert {row.group: row.turns for row in by_model} == {
        "mock/mock-fast": 2,
        "mock": 1,
        "mock/mock-slow": 1,
    }
    assert {row.group: row.name for row in by_session} == {
        str(first.session_id): "a",
        **{row.group: None for row in by_session if row.group != str(first.session_id)},
    }
    assert len(by_session) == 2
    assert {row.group: row.turns for row in today} == {str(key): 1, str(other): 1, None: 1}
    assert [(row.group, row.turns) for row in unkeyed] == [(None, 1)]
