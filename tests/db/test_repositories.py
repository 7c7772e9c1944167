"""Every repository function, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.db import Database
from app.models import GatewaySession, SessionStatus, Turn, TurnStatus
from app.repositories import sessions as sessions_repo
from app.repositories import turns as turns_repo
from app.repositories.turns import ActiveTurnExists
from tests.conftest import RACER_SECONDS, until_blocked

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def _new_session(db: Database, **fields: Any) -> GatewaySession:
    async with db.session() as session:
        return await sessions_repo.add_session(
            session, **{"provider": "claude", "cwd": "/work", **fields}
        )


async def _sessions_created_at(db: Database, *offsets_minutes: int) -> list[GatewaySession]:
    """Sessions whose created_at are T0 plus the given minutes, in that order."""
    records = []
    async with db.session() as session:
        for minutes in offsets_minutes:
            record = await sessions_repo.add_session(session, provider="claude", cwd="/work")
            record.created_at = T0 + timedelta(minutes=minutes)
            records.append(record)
    return records


async def _finished_turn(db: Database, session_id: uuid.UUID, prompt: str = "hi") -> Turn:
    async with db.session() as session:
        return await turns_repo.add_turn(
            session, session_id=session_id, prompt=prompt, status=TurnStatus.COMPLETED
        )


# --- sessions: add and get --------------------------------------------------------------------


async def test_add_session_fills_in_id_status_labels_and_times(database: Database) -> None:
    before = datetime.now(UTC)
    record = await _new_session(database, title="t", model="m", mode="plan")

    async with database.session() as session:
        stored = await sessions_repo.get_session(session, record.id)

    assert stored is not None
    assert isinstance(stored.id, uuid.UUID)
    assert (stored.provider, stored.cwd, stored.title, stored.model, stored.mode) == (
        "claude",
        "/work",
        "t",
        "m",
        "plan",
    )
    assert stored.status == SessionStatus.PENDING
    assert stored.agent_id is None
    assert stored.labels == {}
    assert before <= stored.created_at <= datetime.now(UTC)
    assert before <= stored.last_active_at <= datetime.now(UTC)


async def test_add_session_keeps_given_id_agent_labels_and_status(database: Database) -> None:
    session_id = uuid.uuid4()
    labels = {"team": "core", "paseo.dev/owner": "ana", "note": 'it\'s "quoted" ✓'}

    await _new_session(
        database, id=session_id, agent_id="agent-1", labels=labels, status=SessionStatus.ACTIVE
    )

    async with database.session() as session:
        stored = await sessions_repo.get_session(session, session_id)
    assert stored is not None
    assert (stored.agent_id, stored.status, stored.labels) == ("agent-1", "active", labels)


async def test_add_session_refuses_an_agent_id_already_taken(database: Database) -> None:
    await _new_session(database, agent_id="agent-1")

    with pytest.raises(IntegrityError):
        await _new_session(database, agent_id="agent-1")


async def test_get_session_is_none_for_an_unknown_id(database: Database) -> None:
    async with database.session() as session:
        assert await sessions_repo.get_session(session, uuid.uuid4()) is None


async def test_get_session_by_agent_id(database: Database) -> None:
    record = await _new_session(database, agent_id="agent-7")
    await _new_session(database, agent_id="agent-8")

    async with database.session() as session:
        found = await sessions_repo.get_session_by_agent_id(session, "agent-7")
        missing = await sessions_repo.get_session_by_agent_id(session, "agent-9")

    assert found is not None and found.id == record.id
    assert missing is None


# --- sessions: list and count -----------------------------------------------------------------


async def test_list_sessions_pages_newest_first(database: Database) -> None:
    records = await _sessions_created_at(database, 3, 1, 4, 0, 2)
    newest_first = [r.id for r in sorted(records, key=lambda r: r.created_at, reverse=True)]

    pages = []
    async with database.session() as session:
        for offset in (0, 2, 4, 6):
            page, total = await sessions_repo.list_sessions(session, limit=2, offset=offset)
            assert total == 5
            pages.append([r.id for r in page])

    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:5], []]


async def test_list_sessions_breaks_created_at_ties_the_same_way_each_time(
    database: Database,
) -> None:
    await _sessions_created_at(database, 0, 0, 0, 0)

    async with database.session() as session:
        first, _ = await sessions_repo.list_sessions(session, limit=2)
        second, _ = await sessions_repo.list_sessions(session, limit=2, offset=2)
        everything, _ = await sessions_repo.list_sessions(session)

    assert [r.id for r in first + second] == [r.id for r in everything]
    assert len({r.id for r in first + second}) == 4


async def test_list_sessions_filters_by_status(database: Database) -> None:
    active = await _new_session(database, status=SessionStatus.ACTIVE)
    await _new_session(database)
    await _new_session(database, status=SessionStatus.CLOSED)

    async with database.session() as session:
        page, total = await sessions_repo.list_sessions(session, status=SessionStatus.ACTIVE)
        count = await sessions_repo.count_sessions(session, status="active")

    assert [r.id for r in page] == [active.id]
    assert total == count == 1


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        ({}, {"a", "b", "c", "none"}),
        ({"team": "core"}, {"a", "b"}),
        ({"team": "core", "env": "prod"}, {"a"}),
        ({"env": "prod"}, {"a", "c"}),
        ({"team": "core", "env": "dev"}, set()),
        ({"team": "cor"}, set()),  # no prefix matching
        ({"missing": "x"}, set()),
        ({"paseo.dev/owner": "ana"}, {"b"}),
        ({"note": 'it\'s "quoted" ✓'}, {"c"}),
    ],
    ids=[
        "none",
        "one-pair",
        "all-pairs-must-match",
        "other-key",
        "one-of-two-wrong",
        "no-prefix",
        "missing-key",
        "dotted-key",
        "quotes-in-value",
    ],
)
async def test_list_sessions_filters_by_labels(
    database: Database, wanted: dict[str, str], expected: set[str]
) -> None:
    names = {}
    for name, labels in {
        "a": {"team": "core", "env": "prod"},
        "b": {"team": "core", "env": "staging", "paseo.dev/owner": "ana"},
        "c": {"team": "web", "env": "prod", "note": 'it\'s "quoted" ✓'},
        "none": {},
    }.items():
        names[(await _new_session(database, labels=labels)).id] = name

    async with database.session() as session:
        page, total = await sessions_repo.list_sessions(session, labels=wanted)
        count = await sessions_repo.count_sessions(session, labels=wanted)

    assert {names[r.id] for r in page} == expected
    assert total == count == len(expected)


async def test_list_sessions_combines_status_labels_and_paging(database: Database) -> None:
    records = await _sessions_created_at(database, 0, 1, 2, 3)
    async with database.session() as session:
        for record, status, team in zip(
            records, ["active", "active", "active", "closed"], ["x", "y", "x", "x"], strict=True
        ):
            await sessions_repo.update_session(session, record, status=status)
            record.labels = {"team": team}

    async with database.session() as session:
        page, total = await sessions_repo.list_sessions(
            session, status="active", labels={"team": "x"}, limit=1, offset=1
        )

    assert total == 2
    assert [r.id for r in page] == [records[0].id]


async def test_label_keys_with_a_double_quote_are_refused(database: Database) -> None:
    async with database.session() as session:
        with pytest.raises(ValueError, match="may not contain"):
            await sessions_repo.list_sessions(session, labels={'a"b': "x"})


@pytest.mark.parametrize(("limit", "offset"), [(0, 0), (-1, 0), (10, -1)])
async def test_list_refuses_a_bad_page(database: Database, limit: int, offset: int) -> None:
    record = await _new_session(database)
    async with database.session() as session:
        with pytest.raises(ValueError):
            await sessions_repo.list_sessions(session, limit=limit, offset=offset)
        with pytest.raises(ValueError):
            await turns_repo.list_turns(session, record.id, limit=limit, offset=offset)


# --- sessions: update -------------------------------------------------------------------------


async def test_update_session_changes_only_the_given_fields(database: Database) -> None:
    record = await _new_session(database, title="old", model="m", labels={"k": "v"})
    touched = datetime(2026, 5, 1, 12, tzinfo=UTC)

    async with database.session() as session:
        loaded = await sessions_repo.get_session(session, record.id)
        assert loaded is not None
        returned = await sessions_repo.update_session(
            session,
            loaded,
            status=SessionStatus.ACTIVE,
            agent_id="agent-2",
            title=None,
            cwd="/elsewhere",
            provider="codex",
            last_active_at=touched,
        )
        assert returned is loaded

    async with database.session() as session:
        stored = await sessions_repo.get_session(session, record.id)
    assert stored is not None
    assert (stored.status, stored.agent_id, stored.title, stored.cwd, stored.provider) == (
        "active",
        "agent-2",
        None,
        "/elsewhere",
        "codex",
    )
    assert stored.last_active_at == touched
    assert (stored.model, stored.labels, stored.created_at) == ("m", {"k": "v"}, record.created_at)


async def test_update_session_accepts_a_record_from_a_closed_session(database: Database) -> None:
    record = await _new_session(database)  # its session has committed and closed

    async with database.session() as session:
        await sessions_repo.update_session(session, record, status=SessionStatus.CLOSED)

    async with database.session() as session:
        stored = await sessions_repo.get_session(session, record.id)
    assert stored is not None and stored.status == SessionStatus.CLOSED


async def test_update_session_to_a_taken_agent_id_fails(database: Database) -> None:
    await _new_session(database, agent_id="agent-1")
    record = await _new_session(database)

    with pytest.raises(IntegrityError):
        async with database.session() as session:
            await sessions_repo.update_session(session, record, agent_id="agent-1")


# --- turns: add, numbering and the one-active-turn rule ---------------------------------------


async def test_add_turn_numbers_turns_per_session(database: Database) -> None:
    first = await _new_session(database)
    other = await _new_session(database)

    numbers = [(await _finished_turn(database, first.id)).number for _ in range(3)]
    other_numbers = [(await _finished_turn(database, other.id)).number for _ in range(2)]

    assert numbers == [1, 2, 3]
    assert other_numbers == [1, 2]


async def test_add_turn_starts_queued_with_its_prompt(database: Database) -> None:
    record = await _new_session(database)
    before = datetime.now(UTC)

    async with database.session() as session:
        turn = await turns_repo.add_turn(session, session_id=record.id, prompt="do it")

    assert (turn.session_id, turn.number, turn.prompt) == (record.id, 1, "do it")
    assert turn.status == TurnStatus.QUEUED
    assert (turn.final_text, turn.usage, turn.finished_at, turn.cancel_requested_at) == (
        None,
        None,
        None,
        None,
    )
    assert before <= turn.started_at <= datetime.now(UTC)


@pytest.mark.parametrize("active", [TurnStatus.QUEUED, TurnStatus.RUNNING])
async def test_second_active_turn_is_refused(database: Database, active: TurnStatus) -> None:
    record = await _new_session(database)
    async with database.session() as session:
        first = await turns_repo.add_turn(session, session_id=record.id, prompt="1", status=active)

    with pytest.raises(ActiveTurnExists) as caught:
        async with database.session() as session:
            await turns_repo.add_turn(session, session_id=record.id, prompt="2")

    assert caught.value.session_id == record.id
    assert isinstance(caught.value.__cause__, IntegrityError)
    async with database.session() as session:
        turns, total = await turns_repo.list_turns(session, record.id)
    assert [t.id for t in turns] == [first.id]
    assert total == 1


async def test_catching_active_turn_exists_and_leaving_the_block_is_clean(
    database: Database,
) -> None:
    """What the turn service does: catch the error inside the block, then let it end."""
    record = await _new_session(database)
    old = await _finished_turn(database, record.id)
    async with database.session() as session:
        active = await turns_repo.add_turn(session, session_id=record.id, prompt="now")

    async with database.session() as session:
        with pytest.raises(ActiveTurnExists):
            await turns_repo.add_turn(session, session_id=record.id, prompt="refused")
    async with database.session() as session:
        with pytest.raises(ActiveTurnExists):
            await turns_repo.update_turn(session, old, status=TurnStatus.QUEUED)

    async with database.session() as session:
        turns, _ = await turns_repo.list_turns(session, record.id)
        still_active = await turns_repo.get_active_turn(session, record.id)
    assert [(t.prompt, t.status) for t in turns] == [("hi", "completed"), ("now", "queued")]
    assert still_active is not None and still_active.id == active.id


async def test_a_finished_turn_does_not_block_the_next(database: Database) -> None:
    record = await _new_session(database)
    async with database.session() as session:
        first = await turns_repo.add_turn(session, session_id=record.id, prompt="1")
        await turns_repo.update_turn(session, first, status=TurnStatus.FAILED)
        second = await turns_repo.add_turn(session, session_id=record.id, prompt="2")

    assert second.number == 2
    assert second.status == TurnStatus.QUEUED


async def test_finished_turns_may_be_added_beside_an_active_one(database: Database) -> None:
    record = await _new_session(database)
    async with database.session() as session:
        await turns_repo.add_turn(session, session_id=record.id, prompt="1")
        imported = await turns_repo.add_turn(
            session, session_id=record.id, prompt="2", status=TurnStatus.COMPLETED
        )

    assert imported.number == 2


async def test_each_session_may_have_its_own_active_turn(database: Database) -> None:
    first = await _new_session(database)
    second = await _new_session(database)

    async with database.session() as session:
        a = await turns_repo.add_turn(session, session_id=first.id, prompt="a")
        b = await turns_repo.add_turn(session, session_id=second.id, prompt="b")

    assert (a.number, b.number) == (1, 1)


async def test_update_turn_refuses_to_make_a_second_active_turn(database: Database) -> None:
    record = await _new_session(database)
    old = await _finished_turn(database, record.id)
    async with database.session() as session:
        await turns_repo.add_turn(session, session_id=record.id, prompt="now")

    with pytest.raises(ActiveTurnExists) as caught:
        async with database.session() as session:
            await turns_repo.update_turn(session, old, status=TurnStatus.RUNNING)

    assert caught.value.session_id == record.id


async def test_other_integrity_errors_are_not_reported_as_active_turn(
    database: Database,
) -> None:
    with pytest.raises(IntegrityError):
        async with database.session() as session:
            await turns_repo.add_turn(session, session_id=uuid.uuid4(), prompt="no session")


async def test_concurrent_second_turn_waits_then_is_refused(database: Database) -> None:
    """Two transactions race: the second waits for the first and then sees its active turn."""
    record = await _new_session(database)

    async with database.session() as first:
        await turns_repo.add_turn(first, session_id=record.id, prompt="first")
        racer = asyncio.create_task(_add_turn(database, record.id, TurnStatus.QUEUED))
        await until_blocked(database, racer)  # on the first transaction's lock

    with pytest.raises(ActiveTurnExists):
        await asyncio.wait_for(racer, RACER_SECONDS)


async def test_concurrent_turns_get_distinct_numbers(database: Database) -> None:
    record = await _new_session(database)

    async with database.session() as first:
        await turns_repo.add_turn(
            first, session_id=record.id, prompt="first", status=TurnStatus.COMPLETED
        )
        racer = asyncio.create_task(_add_turn(database, record.id, TurnStatus.COMPLETED))
        await until_blocked(database, racer)

    second = await asyncio.wait_for(racer, RACER_SECONDS)
    assert second.number == 2


async def _add_turn(db: Database, session_id: uuid.UUID, status: TurnStatus) -> Turn:
    async with db.session() as session:
        return await turns_repo.add_turn(
            session, session_id=session_id, prompt="racer", status=status
        )


# --- turns: reading ---------------------------------------------------------------------------


async def test_get_turn_optionally_scoped_to_its_session(database: Database) -> None:
    record = await _new_session(database)
    other = await _new_session(database)
    turn = await _finished_turn(database, record.id)

    async with database.session() as session:
        assert (await turns_repo.get_turn(session, turn.id)) is not None
        scoped = await turns_repo.get_turn(session, turn.id, session_id=record.id)
        assert scoped is not None and scoped.id == turn.id
        assert await turns_repo.get_turn(session, turn.id, session_id=other.id) is None
        assert await turns_repo.get_turn(session, uuid.uuid4()) is None


async def test_list_turns_pages_oldest_first_within_the_session(database: Database) -> None:
    record = await _new_session(database)
    other = await _new_session(database)
    made = [await _finished_turn(database, record.id, prompt=str(n)) for n in range(1, 6)]
    await _finished_turn(database, other.id)

    pages = []
    async with database.session() as session:
        for offset in (0, 2, 4, 6):
            page, total = await turns_repo.list_turns(session, record.id, limit=2, offset=offset)
            assert total == 5
            pages.append([t.number for t in page])
        assert await turns_repo.count_turns(session, other.id) == 1
        assert await turns_repo.list_turns(session, uuid.uuid4()) == ([], 0)

    assert pages == [[1, 2], [3, 4], [5], []]
    assert [t.prompt for t in made] == ["1", "2", "3", "4", "5"]


async def test_get_active_turn_follows_the_turn_status(database: Database) -> None:
    record = await _new_session(database)
    await _finished_turn(database, record.id)

    async with database.session() as session:
        assert await turns_repo.get_active_turn(session, record.id) is None
        turn = await turns_repo.add_turn(session, session_id=record.id, prompt="p")
        active = await turns_repo.get_active_turn(session, record.id)
        assert active is not None and active.id == turn.id

        await turns_repo.update_turn(session, turn, status=TurnStatus.RUNNING)
        active = await turns_repo.get_active_turn(session, record.id)
        assert active is not None and active.id == turn.id

        # Waiting for a person's answer, the turn still holds its session.
        await turns_repo.update_turn(session, turn, status=TurnStatus.WAITING_PERMISSION)
        active = await turns_repo.get_active_turn(session, record.id)
        assert active is not None and active.id == turn.id

        await turns_repo.update_turn(session, turn, status=TurnStatus.COMPLETED)
        assert await turns_repo.get_active_turn(session, record.id) is None


async def test_list_turns_in_statuses_spans_sessions_oldest_first(database: Database) -> None:
    first = await _new_session(database)
    second = await _new_session(database)
    async with database.session() as session:
        running = await turns_repo.add_turn(session, session_id=first.id, prompt="r")
        queued = await turns_repo.add_turn(session, session_id=second.id, prompt="q")
        done = await turns_repo.add_turn(
            session, session_id=second.id, prompt="d", status=TurnStatus.COMPLETED
        )
        running.status = TurnStatus.RUNNING
        running.started_at = T0 + timedelta(minutes=2)
        queued.started_at = T0 + timedelta(minutes=1)
        done.started_at = T0

    async with database.session() as session:
        active = await turns_repo.list_turns_in_statuses(
            session, [TurnStatus.QUEUED, TurnStatus.RUNNING]
        )
        finished = await turns_repo.list_turns_in_statuses(session, {TurnStatus.COMPLETED})
        none = await turns_repo.list_turns_in_statuses(session, [TurnStatus.INTERRUPTED])

    assert [t.id for t in active] == [queued.id, running.id]
    assert [t.id for t in finished] == [done.id]
    assert none == []


# --- turns: update ----------------------------------------------------------------------------


async def test_update_turn_stores_every_field(database: Database) -> None:
    record = await _new_session(database)
    asked = datetime(2026, 2, 2, 10, tzinfo=UTC)
    finished = asked + timedelta(seconds=3)
    usage = {"input_tokens": 12, "output_tokens": 3, "cost_usd": 0.01, "nested": {"a": [1]}}
    async with database.session() as session:
        turn = await turns_repo.add_turn(session, session_id=record.id, prompt="p")

    async with database.session() as session:
        loaded = await turns_repo.get_turn(session, turn.id)
        assert loaded is not None
        returned = await turns_repo.update_turn(
            session,
            loaded,
            status=TurnStatus.FAILED,
            final_text="partial answer",
            error_code="PROVIDER_ERROR",
            error_message="it broke",
            usage=usage,
            finished_at=finished,
            cancel_requested_at=asked,
        )
        assert returned is loaded

    async with database.session() as session:
        stored = await turns_repo.get_turn(session, turn.id)
    assert stored is not None
    assert (stored.status, stored.final_text, stored.error_code, stored.error_message) == (
        "failed",
        "partial answer",
        "PROVIDER_ERROR",
        "it broke",
    )
    assert stored.usage == usage
    assert (stored.finished_at, stored.cancel_requested_at) == (finished, asked)
    assert (stored.prompt, stored.number, stored.started_at) == ("p", 1, turn.started_at)


async def test_update_turn_can_clear_fields_to_sql_null(database: Database) -> None:
    record = await _new_session(database)
    async with database.session() as session:
        turn = await turns_repo.add_turn(session, session_id=record.id, prompt="p")
        await turns_repo.update_turn(session, turn, usage={"input_tokens": 1}, final_text="x")

    async with database.session() as session:
        loaded = await turns_repo.get_turn(session, turn.id)
        assert loaded is not None
        await turns_repo.update_turn(session, loaded, usage=None, final_text=None)

    async with database.session() as session:
        # SQL NULL, not the JSON literal null, so IS NULL finds it.
        found = await session.scalar(select(Turn.id).where(Turn.usage.is_(None)))
        stored = await turns_repo.get_turn(session, turn.id)
    assert found == turn.id
    assert stored is not None and (stored.usage, stored.final_text) == (None, None)
