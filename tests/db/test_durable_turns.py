"""Durable turns in the data layer: idempotency keys, compare-and-set transitions, heartbeats,
taking over stale turns, and the numbered event log; on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.models import GatewaySession, Turn, TurnEventRecord, TurnStatus
from app.repositories import sessions as sessions_repo
from app.repositories import turn_events as events_repo
from app.repositories import turns as turns_repo
from app.repositories.locks import lock_row
from app.repositories.turn_events import DuplicateEventSeq
from app.repositories.turns import ActiveTurnExists, DuplicateIdempotencyKey
from tests.conftest import RACER_SECONDS, Backend, until_blocked

WAIT_SECONDS = 10.0
# Long enough for a blocked racer to show it is blocked.
RACE_PAUSE_SECONDS = 0.3
T0 = datetime(2026, 1, 1, tzinfo=UTC)
HASH = "ab" * 32
ACTIVE = (TurnStatus.QUEUED, TurnStatus.RUNNING)


async def _new_session(db: Database) -> GatewaySession:
    async with db.session() as session:
        return await sessions_repo.add_session(session, provider="claude", cwd="/work")


async def _add_turn(db: Database, session_id: uuid.UUID, **fields: Any) -> Turn:
    async with db.session() as session:
        return await turns_repo.add_turn(
            session, session_id=session_id, **{"prompt": "p", **fields}
        )


async def _stored(db: Database, turn_id: uuid.UUID) -> Turn:
    async with db.session() as session:
        turn = await turns_repo.get_turn(session, turn_id)
    assert turn is not None
    return turn


async def _running_turns(db: Database, count: int, **fields: Any) -> list[Turn]:
    """`count` running turns, one per new session, started a minute apart (oldest first)."""
    turns = []
    for minute in range(count):
        record = await _new_session(db)
        turn = await _add_turn(db, record.id, status=TurnStatus.RUNNING, **fields)
        async with db.session() as session:
            await session.execute(
                update(Turn)
                .where(Turn.id == turn.id)
                .values(started_at=T0 + timedelta(minutes=minute))
            )
        turns.append(turn)
    return turns


# --- the new turn columns ---------------------------------------------------------------------


async def test_add_turn_stores_the_durable_fields(database: Database) -> None:
    record = await _new_session(database)
    beat = datetime(2026, 4, 1, 9, 30, tzinfo=UTC)

    added = await _add_turn(
        database,
        record.id,
        idempotency_key="key-1",
        request_hash=HASH,
        runner_id="runner-a",
        heartbeat_at=beat,
    )

    stored = await _stored(database, added.id)
    assert (stored.idempotency_key, stored.request_hash, stored.runner_id) == (
        "key-1",
        HASH,
        "runner-a",
    )
    assert stored.heartbeat_at == beat
    assert stored.last_event_seq == added.last_event_seq == 0
    assert (stored.number, stored.status) == (1, TurnStatus.QUEUED)


async def test_new_turn_fields_default_to_null_and_zero(database: Database) -> None:
    record = await _new_session(database)

    added = await _add_turn(database, record.id)

    stored = await _stored(database, added.id)
    assert (stored.idempotency_key, stored.request_hash, stored.runner_id) == (None, None, None)
    assert (stored.heartbeat_at, stored.last_event_seq) == (None, 0)


async def test_a_turn_added_through_the_orm_gets_last_event_seq_zero(database: Database) -> None:
    record = await _new_session(database)
    async with database.session() as session:
        turn = Turn(session_id=record.id, number=1, prompt="p", status=TurnStatus.COMPLETED)
        session.add(turn)
        await session.flush()
        assert turn.last_event_seq == 0


# --- idempotency keys -------------------------------------------------------------------------


async def test_a_reused_idempotency_key_is_refused(database: Database) -> None:
    record = await _new_session(database)
    first = await _add_turn(database, record.id, idempotency_key="k", status=TurnStatus.COMPLETED)

    with pytest.raises(DuplicateIdempotencyKey) as caught:
        await _add_turn(database, record.id, idempotency_key="k", status=TurnStatus.COMPLETED)

    assert (caught.value.session_id, caught.value.key) == (record.id, "k")
    assert not isinstance(caught.value, ActiveTurnExists)
    async with database.session() as session:
        turns, total = await turns_repo.list_turns(session, record.id)
    assert ([t.id for t in turns], total) == ([first.id], 1)


async def test_a_reused_key_of_an_active_turn_is_reported_as_the_key(database: Database) -> None:
    """A retried request finds its own running turn, not just "the session is busy"."""
    record = await _new_session(database)
    await _add_turn(database, record.id, idempotency_key="k")

    with pytest.raises(DuplicateIdempotencyKey) as caught:
        await _add_turn(database, record.id, idempotency_key="k")
    assert caught.value.__cause__ is None
    with pytest.raises(ActiveTurnExists):
        await _add_turn(database, record.id, idempotency_key="other")


async def test_idempotency_keys_are_per_session(database: Database) -> None:
    first = await _new_session(database)
    second = await _new_session(database)

    a = await _add_turn(database, first.id, idempotency_key="k")
    b = await _add_turn(database, second.id, idempotency_key="k")

    assert a.id != b.id


async def test_null_idempotency_keys_never_collide(database: Database) -> None:
    record = await _new_session(database)

    for _ in range(3):
        await _add_turn(database, record.id, status=TurnStatus.COMPLETED)

    async with database.session() as session:
        nulls = await session.scalar(
            select(func.count(Turn.id)).where(
                Turn.session_id == record.id, Turn.idempotency_key.is_(None)
            )
        )
    assert nulls == 3


async def test_the_unique_index_itself_refuses_a_reused_key(database: Database) -> None:
    """Past add_turn's check (here: a transition that sets a key), the index still holds."""
    record = await _new_session(database)
    await _add_turn(database, record.id, idempotency_key="k", status=TurnStatus.COMPLETED)
    other = await _add_turn(database, record.id, status=TurnStatus.COMPLETED)

    with pytest.raises(DuplicateIdempotencyKey) as caught:
        async with database.session() as session:
            await turns_repo.transition_turn(
                session,
                other.id,
                from_statuses=[TurnStatus.COMPLETED],
                to_status=TurnStatus.COMPLETED,
                idempotency_key="k",
            )

    assert isinstance(caught.value.__cause__, IntegrityError)
    assert (await _stored(database, other.id)).idempotency_key is None


async def test_concurrent_requests_with_one_key_make_one_turn(database: Database) -> None:
    """The racer waits for the first insert, then is told about the key (not the busy session)."""
    record = await _new_session(database)

    async with database.session() as first:
        made = await turns_repo.add_turn(
            first, session_id=record.id, prompt="1", idempotency_key="k"
        )
        racer = asyncio.create_task(_add_turn(database, record.id, idempotency_key="k"))
        await asyncio.sleep(RACE_PAUSE_SECONDS)
        assert not racer.done()

    with pytest.raises(DuplicateIdempotencyKey) as caught:
        await asyncio.wait_for(racer, WAIT_SECONDS)
    assert caught.value.__cause__ is None  # the INSERT found the key; no statement failed
    async with database.session() as session:
        found = await turns_repo.get_turn_by_idempotency_key(session, record.id, "k")
    assert found is not None and found.id == made.id


async def test_get_turn_by_idempotency_key(database: Database) -> None:
    record = await _new_session(database)
    other = await _new_session(database)
    turn = await _add_turn(database, record.id, idempotency_key="k", request_hash=HASH)

    async with database.session() as session:
        found = await turns_repo.get_turn_by_idempotency_key(session, record.id, "k")
        elsewhere = await turns_repo.get_turn_by_idempotency_key(session, other.id, "k")
        unknown = await turns_repo.get_turn_by_idempotency_key(session, record.id, "nope")

    assert found is not None
    assert (found.id, found.request_hash) == (turn.id, HASH)
    assert (elsewhere, unknown) == (None, None)


# --- transition_turn --------------------------------------------------------------------------


async def test_transition_moves_a_turn_in_an_expected_status(database: Database) -> None:
    record = await _new_session(database)
    turn = await _add_turn(database, record.id)
    beat = datetime(2026, 4, 1, tzinfo=UTC)

    async with database.session() as session:
        moved = await turns_repo.transition_turn(
            session,
            turn.id,
            from_statuses=[TurnStatus.QUEUED],
            to_status=TurnStatus.RUNNING,
            runner_id="runner-a",
            heartbeat_at=beat,
        )

    assert moved is not None
    assert (moved.id, moved.status, moved.runner_id, moved.heartbeat_at) == (
        turn.id,
        TurnStatus.RUNNING,
        "runner-a",
        beat,
    )
    stored = await _stored(database, turn.id)
    assert (stored.status, stored.runner_id, stored.heartbeat_at) == ("running", "runner-a", beat)
    assert (stored.prompt, stored.number, stored.started_at) == ("p", 1, turn.started_at)


async def test_transition_stores_every_outcome_field(database: Database) -> None:
    record = await _new_session(database)
    turn = await _add_turn(database, record.id, status=TurnStatus.RUNNING, runner_id="r")
    finished = datetime(2026, 4, 1, 12, tzinfo=UTC)
    usage = {"input_tokens": 3, "nested": {"a": [1, 2]}}

    async with database.session() as session:
        moved = await turns_repo.transition_turn(
            session,
            turn.id,
            from_statuses=ACTIVE,
            to_status=TurnStatus.FAILED,
            final_text="partial",
            error_code="PROVIDER_ERROR",
            error_message="it broke",
            usage=usage,
            finished_at=finished,
            cancel_requested_at=finished,
            runner_id=None,
            heartbeat_at=None,
            idempotency_key="late-key",
        )

    assert moved is not None
    stored = await _stored(database, turn.id)
    assert (stored.status, stored.final_text, stored.error_code, stored.error_message) == (
        "failed",
        "partial",
        "PROVIDER_ERROR",
        "it broke",
    )
    assert (stored.usage, stored.finished_at, stored.cancel_requested_at) == (
        usage,
        finished,
        finished,
    )
    assert (stored.runner_id, stored.heartbeat_at, stored.idempotency_key) == (
        None,
        None,
        "late-key",
    )


async def test_transition_from_another_status_changes_nothing(database: Database) -> None:
    record = await _new_session(database)
    turn = await _add_turn(database, record.id, status=TurnStatus.COMPLETED)

    async with database.session() as session:
        moved = await turns_repo.transition_turn(
            session,
            turn.id,
            from_statuses=ACTIVE,
            to_status=TurnStatus.CANCELLED,
            error_code="CANCELLED",
        )
        unknown = await turns_repo.transition_turn(
            session, uuid.uuid4(), from_statuses=ACTIVE, to_status=TurnStatus.CANCELLED
        )

    assert (moved, unknown) == (None, None)
    stored = await _stored(database, turn.id)
    assert (stored.status, stored.error_code) == ("completed", None)


async def test_transition_refreshes_the_turn_this_session_holds(database: Database) -> None:
    record = await _new_session(database)
    turn = await _add_turn(database, record.id)

    async with database.session() as session:
        loaded = await turns_repo.get_turn(session, turn.id)
        assert loaded is not None and loaded.status == TurnStatus.QUEUED

        moved = await turns_repo.transition_turn(
            session,
            turn.id,
            from_statuses=[TurnStatus.QUEUED],
            to_status=TurnStatus.RUNNING,
            runner_id="runner-a",
        )
        again = await turns_repo.get_turn(session, turn.id)
        active = await turns_repo.get_active_turn(session, record.id)

        assert moved is loaded is again is active
        assert (loaded.status, loaded.runner_id) == (TurnStatus.RUNNING, "runner-a")


async def test_transition_flushes_pending_changes_first(database: Database) -> None:
    """A change made on the held copy but not yet flushed is stored, not overwritten."""
    record = await _new_session(database)
    turn = await _add_turn(database, record.id)

    async with database.session() as session:
        loaded = await turns_repo.get_turn(session, turn.id)
        assert loaded is not None
        loaded.final_text = "set before"
        await turns_repo.transition_turn(
            session, turn.id, from_statuses=[TurnStatus.QUEUED], to_status=TurnStatus.RUNNING
        )
        assert (loaded.final_text, loaded.status) == ("set before", TurnStatus.RUNNING)

    stored = await _stored(database, turn.id)
    assert (stored.final_text, stored.status) == ("set before", "running")


@pytest.mark.parametrize("into", [TurnStatus.QUEUED, TurnStatus.RUNNING])
async def test_transition_refuses_a_second_active_turn(database: Database, into: str) -> None:
    record = await _new_session(database)
    old = await _add_turn(database, record.id, status=TurnStatus.INTERRUPTED)
    await _add_turn(database, record.id)

    with pytest.raises(ActiveTurnExists) as caught:
        async with database.session() as session:
            await turns_repo.transition_turn(
                session, old.id, from_statuses=[TurnStatus.INTERRUPTED], to_status=into
            )

    assert caught.value.session_id == record.id
    assert (await _stored(database, old.id)).status == TurnStatus.INTERRUPTED


async def test_a_single_status_for_a_collection_is_refused(database: Database) -> None:
    """A str is iterable: "queued" would otherwise match the statuses "q", "u", ... (none)."""
    async with database.session() as session:
        with pytest.raises(TypeError, match="single status"):
            await turns_repo.transition_turn(
                session, uuid.uuid4(), from_statuses=TurnStatus.QUEUED, to_status="running"
            )
        with pytest.raises(TypeError, match="single status"):
            await turns_repo.claim_stale_turns(
                session, "me", stale_before=T0, statuses=TurnStatus.RUNNING
            )


async def test_racing_transitions_of_one_turn_have_one_winner(database: Database) -> None:
    """The loser waits for the winner's transaction, then finds the turn moved on."""
    record = await _new_session(database)
    turn = await _add_turn(database, record.id, status=TurnStatus.RUNNING)

    async with database.session() as first:
        won = await turns_repo.transition_turn(
            first, turn.id, from_statuses=ACTIVE, to_status=TurnStatus.COMPLETED
        )
        racer = asyncio.create_task(_transition(database, turn.id, TurnStatus.CANCELLED))
        await asyncio.sleep(RACE_PAUSE_SECONDS)
        assert not racer.done()

    assert won is not None
    assert await asyncio.wait_for(racer, WAIT_SECONDS) is None
    assert (await _stored(database, turn.id)).status == TurnStatus.COMPLETED


async def _transition(db: Database, turn_id: uuid.UUID, to_status: str) -> Turn | None:
    async with db.session() as session:
        return await turns_repo.transition_turn(
            session, turn_id, from_statuses=ACTIVE, to_status=to_status
        )


# --- heartbeats -------------------------------------------------------------------------------


async def test_heartbeat_stamps_only_the_runners_active_turns(database: Database) -> None:
    mine, theirs, unowned = await _running_turns(database, 3, heartbeat_at=T0)
    async with database.session() as session:
        for turn, runner in ((mine, "me"), (theirs, "them")):
            await session.execute(update(Turn).where(Turn.id == turn.id).values(runner_id=runner))
    record = await _new_session(database)
    finished = await _add_turn(
        database, record.id, status=TurnStatus.COMPLETED, runner_id="me", heartbeat_at=T0
    )
    before = datetime.now(UTC)

    async with database.session() as session:
        stamped = await turns_repo.heartbeat_turns(
            session, "me", [mine.id, theirs.id, unowned.id, finished.id, uuid.uuid4()]
        )

    assert stamped == 1
    assert before <= ((await _stored(database, mine.id)).heartbeat_at or T0) <= datetime.now(UTC)
    for other in (theirs, unowned, finished):
        assert (await _stored(database, other.id)).heartbeat_at == T0


async def test_heartbeat_of_no_turns_is_zero(database: Database) -> None:
    async with database.session() as session:
        assert await turns_repo.heartbeat_turns(session, "me", []) == 0


async def test_heartbeat_refreshes_the_turn_this_session_holds(database: Database) -> None:
    [turn] = await _running_turns(database, 1, runner_id="me", heartbeat_at=T0)

    async with database.session() as session:
        loaded = await turns_repo.get_turn(session, turn.id)
        assert loaded is not None and loaded.heartbeat_at == T0
        assert await turns_repo.heartbeat_turns(session, "me", [turn.id]) == 1
        assert loaded.heartbeat_at is not None and loaded.heartbeat_at > T0


# --- release_turns ----------------------------------------------------------------------------


async def test_let_go_frees_only_the_runners_hold(database: Database) -> None:
    """Whatever the status: an ended turn let go tells a turn that replaced it that this
    runner will send nothing more; an active one can be claimed at once."""
    now = datetime.now(UTC)
    mine, theirs = await _running_turns(database, 2, heartbeat_at=now)
    async with database.session() as session:
        for turn, runner in ((mine, "me"), (theirs, "them")):
            await session.execute(update(Turn).where(Turn.id == turn.id).values(runner_id=runner))
    record = await _new_session(database)
    finished = await _add_turn(
        database, record.id, status=TurnStatus.COMPLETED, runner_id="me", heartbeat_at=now
    )

    async with database.session() as session:
        loaded = await turns_repo.get_turn(session, mine.id)
        for turn_id in (mine.id, theirs.id, finished.id, uuid.uuid4()):
            await turns_repo.let_go(session, turn_id, "me")
        assert loaded is not None and (loaded.runner_id, loaded.heartbeat_at) == (None, None)

    stored = await _stored(database, mine.id)
    assert (stored.runner_id, stored.heartbeat_at, stored.status) == (None, None, "running")
    assert (await _stored(database, theirs.id)).runner_id == "them"
    done = await _stored(database, finished.id)
    assert (done.runner_id, done.heartbeat_at, done.status) == (None, None, "completed")


async def test_a_turn_let_go_is_claimed_at_once(database: Database) -> None:
    """No waiting for the heartbeat to go stale: any heartbeat is newer than a NULL one."""
    [turn] = await _running_turns(database, 1, runner_id="old", heartbeat_at=datetime.now(UTC))
    async with database.session() as session:
        await turns_repo.let_go(session, turn.id, "old")

    async with database.session() as session:
        claimed = await turns_repo.claim_stale_turns(session, "new", stale_before=T0)

    assert [t.id for t in claimed] == [turn.id]


# --- claim_stale_turns ------------------------------------------------------------------------


async def test_claim_takes_over_stale_and_unbeaten_turns(database: Database) -> None:
    now = datetime.now(UTC)
    stale_before = now - timedelta(seconds=30)
    never, old, fresh = await _running_turns(database, 3, runner_id="dead")
    async with database.session() as session:
        for turn, beat in ((old, now - timedelta(minutes=5)), (fresh, now)):
            await session.execute(update(Turn).where(Turn.id == turn.id).values(heartbeat_at=beat))

    async with database.session() as session:
        claimed = await turns_repo.claim_stale_turns(session, "me", stale_before=stale_before)

    assert [t.id for t in claimed] == [never.id, old.id]  # oldest first
    for turn in claimed:
        assert turn.runner_id == "me"
        assert turn.heartbeat_at is not None and turn.heartbeat_at >= now
        stored = await _stored(database, turn.id)
        assert (stored.runner_id, stored.heartbeat_at) == ("me", turn.heartbeat_at)
    assert (await _stored(database, fresh.id)).runner_id == "dead"


async def test_claim_leaves_finished_and_own_turns(database: Database) -> None:
    [own] = await _running_turns(database, 1, runner_id="me", heartbeat_at=T0)
    record = await _new_session(database)
    finished = await _add_turn(
        database, record.id, status=TurnStatus.COMPLETED, runner_id="dead", heartbeat_at=T0
    )
    queued = await _add_turn(database, record.id)  # no runner, no heartbeat: stale

    async with database.session() as session:
        claimed = await turns_repo.claim_stale_turns(session, "me", stale_before=datetime.now(UTC))

    assert [t.id for t in claimed] == [queued.id]
    assert (await _stored(database, own.id)).heartbeat_at == T0
    assert (await _stored(database, finished.id)).runner_id == "dead"


async def test_claim_only_in_the_given_statuses(database: Database) -> None:
    record = await _new_session(database)
    queued = await _add_turn(database, record.id)
    other = await _new_session(database)
    waiting = await _add_turn(database, other.id, status=TurnStatus.WAITING_PERMISSION)

    async with database.session() as session:
        claimed = await turns_repo.claim_stale_turns(
            session,
            "me",
            stale_before=datetime.now(UTC),
            statuses=[TurnStatus.WAITING_PERMISSION],
        )

    assert [t.id for t in claimed] == [waiting.id]
    assert (await _stored(database, queued.id)).runner_id is None


async def test_the_old_runner_loses_its_heartbeat_after_a_claim(database: Database) -> None:
    [turn] = await _running_turns(database, 1, runner_id="old", heartbeat_at=T0)
    async with database.session() as session:
        await turns_repo.claim_stale_turns(session, "new", stale_before=datetime.now(UTC))

    async with database.session() as session:
        assert await turns_repo.heartbeat_turns(session, "old", [turn.id]) == 0
        assert await turns_repo.heartbeat_turns(session, "new", [turn.id]) == 1


async def test_claim_refreshes_the_turn_this_session_holds(database: Database) -> None:
    [turn] = await _running_turns(database, 1, runner_id="dead", heartbeat_at=T0)

    async with database.session() as session:
        loaded = await turns_repo.get_turn(session, turn.id)
        assert loaded is not None
        [claimed] = await turns_repo.claim_stale_turns(
            session, "me", stale_before=datetime.now(UTC)
        )
        assert claimed is loaded
        assert loaded.runner_id == "me"


async def test_a_claim_is_undone_with_its_transaction(database: Database) -> None:
    """The claim is part of the caller's transaction on both backends (SQLite: no autocommit)."""
    [turn] = await _running_turns(database, 1, runner_id="dead", heartbeat_at=T0)

    async with database.sessionmaker() as session:
        assert len(await _claim_in(session, "me")) == 1
        await session.rollback()

    stored = await _stored(database, turn.id)
    assert (stored.runner_id, stored.heartbeat_at) == ("dead", T0)


async def _claim_in(session: AsyncSession, runner_id: str) -> list[Turn]:
    return await turns_repo.claim_stale_turns(session, runner_id, stale_before=datetime.now(UTC))


async def test_a_second_claimer_does_not_get_a_claimed_turn(
    backend: Backend, database: Database
) -> None:
    """PostgreSQL skips the rows the first claimer locked; SQLite's second writer waits."""
    await _running_turns(database, 2, runner_id="dead", heartbeat_at=T0)
    stale_before = datetime.now(UTC)

    async with database.session() as first:
        mine = await turns_repo.claim_stale_turns(first, "a", stale_before=stale_before)
        racer = asyncio.create_task(_claim(database, "b", stale_before))
        await asyncio.sleep(RACE_PAUSE_SECONDS)
        assert racer.done() is (backend.name == "postgresql")

    assert len(mine) == 2
    assert await asyncio.wait_for(racer, WAIT_SECONDS) == []


async def test_concurrent_claimers_split_the_stale_turns(database: Database) -> None:
    turns = await _running_turns(database, 12, runner_id="dead", heartbeat_at=T0)
    stale_before = datetime.now(UTC)

    results = await asyncio.wait_for(
        asyncio.gather(*(_claim(database, f"runner-{n}", stale_before) for n in range(4))),
        WAIT_SECONDS,
    )

    claimed = [turn.id for result in results for turn in result]
    assert sorted(claimed) == sorted(t.id for t in turns)  # each exactly once
    for runner, result in enumerate(results):
        for turn in result:
            assert (await _stored(database, turn.id)).runner_id == f"runner-{runner}"


async def _claim(db: Database, runner_id: str, stale_before: datetime) -> list[Turn]:
    async with db.session() as session:
        return await turns_repo.claim_stale_turns(session, runner_id, stale_before=stale_before)


# --- turn events ------------------------------------------------------------------------------


async def _turn(db: Database) -> Turn:
    record = await _new_session(db)
    return await _add_turn(db, record.id, status=TurnStatus.RUNNING)


async def _append(db: Database, turn_id: uuid.UUID, *seqs: int) -> None:
    async with db.session() as session:
        await events_repo.append_events(
            session, turn_id, [(seq, "text", {"seq": seq}) for seq in seqs]
        )


async def test_appended_events_come_back_in_order(database: Database) -> None:
    turn = await _turn(database)
    data = {"text": 'it\'s "quoted" ✓', "nested": {"list": [1, 2.5, None, True]}}
    before = datetime.now(UTC)

    async with database.session() as session:
        await events_repo.append_events(
            session, turn.id, [(1, "started", {}), (2, "text", data), (3, "ended", {"ok": True})]
        )

    async with database.session() as session:
        events = await events_repo.list_events(session, turn.id)
        last = await events_repo.last_seq(session, turn.id)
    assert [(e.seq, e.name, e.data) for e in events] == [
        (1, "started", {}),
        (2, "text", data),
        (3, "ended", {"ok": True}),
    ]
    assert all(e.turn_id == turn.id for e in events)
    assert events[0].id < events[1].id < events[2].id
    assert all(before <= e.created_at <= datetime.now(UTC) for e in events)
    assert events[0].created_at.tzinfo is UTC
    assert last == 3
    assert (await _stored(database, turn.id)).last_event_seq == 3


async def test_append_is_one_insert_statement(database: Database) -> None:
    turn = await _turn(database)

    with _statements(database) as seen:
        async with database.session() as session:
            await events_repo.append_events(
                session, turn.id, [(seq, "text", {}) for seq in range(1, 51)]
            )

    inserts = [s for s in seen if s.lstrip().upper().startswith("INSERT INTO TURN_EVENTS")]
    updates = [s for s in seen if s.lstrip().upper().startswith("UPDATE TURNS")]
    assert (len(inserts), len(updates)) == (1, 1)


@contextmanager
def _statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def test_a_large_batch_is_stored_whole(database: Database) -> None:
    turn = await _turn(database)
    count = 2 * events_repo.MAX_EVENTS_PER_INSERT + 5

    await _append(database, turn.id, *range(1, count + 1))

    async with database.session() as session:
        events = await events_repo.list_events(session, turn.id, limit=count + 10)
        assert await events_repo.last_seq(session, turn.id) == count
    assert [e.seq for e in events] == list(range(1, count + 1))
    assert (await _stored(database, turn.id)).last_event_seq == count


async def test_list_events_after_a_seq_and_up_to_a_limit(database: Database) -> None:
    turn = await _turn(database)
    other = await _turn(database)
    await _append(database, turn.id, 1, 2, 3)
    await _append(database, turn.id, 4, 5)
    await _append(database, other.id, 1, 2, 3, 4, 5, 6)

    async with database.session() as session:
        after_two = await events_repo.list_events(session, turn.id, after_seq=2)
        page = await events_repo.list_events(session, turn.id, after_seq=1, limit=2)
        past_end = await events_repo.list_events(session, turn.id, after_seq=5)
        none = await events_repo.list_events(session, uuid.uuid4())

    assert [e.seq for e in after_two] == [3, 4, 5]
    assert [e.seq for e in page] == [2, 3]
    assert (past_end, none) == ([], [])


@pytest.mark.parametrize("limit", [0, -1])
async def test_list_events_refuses_a_bad_limit(database: Database, limit: int) -> None:
    async with database.session() as session:
        with pytest.raises(ValueError, match="limit"):
            await events_repo.list_events(session, uuid.uuid4(), limit=limit)


async def test_last_seq_is_zero_without_events(database: Database) -> None:
    turn = await _turn(database)

    async with database.session() as session:
        assert await events_repo.last_seq(session, turn.id) == 0
        assert await events_repo.last_seq(session, uuid.uuid4()) == 0


@pytest.mark.parametrize(
    ("stored", "again"),
    [((1, 2, 3), (3, 4)), ((1,), (2, 2))],
    ids=["taken", "twice-in-one-batch"],
)
async def test_a_duplicate_event_seq_is_refused(
    database: Database, stored: tuple[int, ...], again: tuple[int, ...]
) -> None:
    turn = await _turn(database)
    await _append(database, turn.id, *stored)

    with pytest.raises(DuplicateEventSeq) as caught:
        await _append(database, turn.id, *again)

    assert caught.value.turn_id == turn.id
    assert caught.value.seqs == again
    assert isinstance(caught.value.__cause__, IntegrityError)
    async with database.session() as session:
        events = await events_repo.list_events(session, turn.id)
    assert [e.seq for e in events] == list(stored)  # the whole batch was refused
    assert (await _stored(database, turn.id)).last_event_seq == max(stored)


async def test_catching_a_duplicate_seq_and_leaving_the_block_is_clean(
    database: Database,
) -> None:
    turn = await _turn(database)
    await _append(database, turn.id, 1)

    async with database.session() as session:
        with pytest.raises(DuplicateEventSeq):
            await events_repo.append_events(session, turn.id, [(1, "again", {})])

    await _append(database, turn.id, 2)
    async with database.session() as session:
        assert [e.seq for e in await events_repo.list_events(session, turn.id)] == [1, 2]


async def test_last_event_seq_never_goes_down(database: Database) -> None:
    turn = await _turn(database)
    await _append(database, turn.id, 5, 6)

    await _append(database, turn.id, 2, 3)

    assert (await _stored(database, turn.id)).last_event_seq == 6
    async with database.session() as session:
        assert await events_repo.last_seq(session, turn.id) == 6


async def test_append_refreshes_the_turn_this_session_holds(database: Database) -> None:
    turn = await _turn(database)

    async with database.session() as session:
        loaded = await turns_repo.get_turn(session, turn.id)
        assert loaded is not None and loaded.last_event_seq == 0
        await events_repo.append_events(session, turn.id, [(1, "a", {}), (2, "b", {})])
        assert loaded.last_event_seq == 2
        again = await turns_repo.get_turn(session, turn.id)
        assert again is loaded


async def test_append_of_no_events_does_nothing(database: Database) -> None:
    turn = await _turn(database)

    with _statements(database) as seen:
        async with database.session() as session:
            await events_repo.append_events(session, turn.id, [])

    assert not [s for s in seen if "turn_events" in s or "UPDATE" in s.upper()]


@pytest.mark.parametrize("seq", [0, -1])
async def test_event_numbers_start_at_one(database: Database, seq: int) -> None:
    turn = await _turn(database)

    async with database.session() as session:
        with pytest.raises(ValueError, match="start at 1"):
            await events_repo.append_events(session, turn.id, [(seq, "x", {})])


async def test_events_of_an_unknown_turn_are_refused(database: Database) -> None:
    with pytest.raises(IntegrityError) as caught:
        await _append(database, uuid.uuid4(), 1)

    assert not isinstance(caught.value, DuplicateEventSeq)


async def test_deleting_a_session_deletes_its_turns_events(database: Database) -> None:
    turn = await _turn(database)
    await _append(database, turn.id, 1, 2)

    async with database.session() as session:
        record = await sessions_repo.get_session(session, turn.session_id)
        assert record is not None
        await session.delete(record)

    async with database.session() as session:
        assert await session.scalar(select(func.count(TurnEventRecord.id))) == 0


async def test_a_prompt_holding_the_session_never_deadlocks_with_the_turns_writer(
    postgresql_database: Database,
) -> None:
    """A writer updates its turn row, a prompt locks the session and then waits for that
    turn row (to end it: mode=interrupt), then the writer stores events and updates the turn
    row again. PostgreSQL re-checks the turn's foreign key on that second update; the
    session lock must let it through, or the two deadlock."""
    db = postgresql_database
    record = await _new_session(db)
    turn = await _add_turn(db, record.id)
    async with db.session() as writer:
        await turns_repo.take_event_numbers(writer, turn.id, 1)

        async def interrupt() -> None:
            async with db.session() as prompt:
                await turns_repo.lock_session_row(prompt, record.id)
                await lock_row(prompt, Turn.id, turn.id, touch=Turn.last_event_seq)

        racer = asyncio.create_task(interrupt())
        await until_blocked(db, racer)
        await events_repo.append_events(writer, turn.id, [(1, "text", {"delta": "a"})])
    async with asyncio.timeout(RACER_SECONDS):
        await racer  # no DeadlockDetectedError on either side
    async with db.session() as session:
        assert [row.seq for row in await events_repo.list_events(session, turn.id)] == [1]
