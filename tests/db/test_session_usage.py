"""A session's running usage: its turns counted and their stored usage summed in one SQL
aggregate (the JSON keys read in SQL), on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event

from app.db import Database
from app.models import TurnStatus
from app.repositories import sessions as sessions_repo
from app.repositories import turns as turns_repo
from app.repositories.turns import UsageTotals


async def _session_with_turns(db: Database, usages: list[dict[str, Any] | None]) -> uuid.UUID:
    async with db.session() as session:
        record = await sessions_repo.add_session(session, provider="mock", cwd="/tmp")
        for usage in usages:
            turn = await turns_repo.add_turn(
                session, session_id=record.id, prompt="p", status=TurnStatus.COMPLETED
            )
            await turns_repo.update_turn(session, turn, usage=usage)
    return record.id


async def _totals(db: Database, session_id: uuid.UUID) -> tuple[UsageTotals, list[str]]:
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with db.read() as session:
            totals = await turns_repo.usage_totals(session, session_id)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
    return totals, statements


async def test_the_turns_usage_is_summed_in_one_statement(database: Database) -> None:
    window = {"context_window_used_tokens": 40, "context_window_max_tokens": 128_000}
    session_id = await _session_with_turns(
        database,
        [
            {"input_tokens": 10, "output_tokens": 3, "cached_tokens": 2, "cost_usd": 0.1},
            {"input_tokens": 5, "output_tokens": 4, "cached_tokens": 0, "cost_usd": 0.2, **window},
            None,  # a turn that ended without usage (failed, cancelled)
            {"input_tokens": None, "output_tokens": 1, "cached_tokens": None, "cost_usd": None},
        ],
    )
    await _session_with_turns(database, [{"input_tokens": 1000, "cost_usd": 9.0}])  # another

    totals, statements = await _totals(database, session_id)

    assert totals == UsageTotals(
        turns=4, input_tokens=15, output_tokens=8, cached_tokens=2, cost_usd=0.3
    )
    assert len(statements) == 1, statements


async def test_a_session_without_turns_used_nothing(database: Database) -> None:
    session_id = await _session_with_turns(database, [])
    totals, _ = await _totals(database, session_id)
    assert totals == UsageTotals()
    assert (await _totals(database, uuid.uuid4()))[0] == UsageTotals()
