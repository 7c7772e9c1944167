"""The event log on real databases: batched writes, numbers from the database, replay after a
position, live following, and no batch lost when a writer closes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import Database
from app.models import TurnStatus
from app.repositories import sessions as sessions_repo
from app.repositories import turn_events as events_repo
from app.repositories import turns as turns_repo
from app.repositories.turns import TurnNotWritable
from app.services.turn.decisions import Ending
from app.services.turn.events import EventNotifier, EventWriter, follow_events
from app.services.turn.store import end_turn

RUNNER = "runner-a"


async def _turn(database: Database, runner_id: str = RUNNER) -> uuid.UUID:
    async with database.session() as session:
        record = await sessions_repo.add_session(session, provider="mock", cwd="/tmp")
        turn = await turns_repo.add_turn(
            session, session_id=record.id, prompt="hi", runner_id=runner_id
        )
    return turn.id


async def _stored(database: Database, turn_id: uuid.UUID) -> list[tuple[int, str]]:
    async with database.session() as session:
        rows = await events_repo.list_events(session, turn_id)
    return [(row.seq, row.name) for row in rows]


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)


async def test_batches_are_numbered_stored_and_followed(database: Database) -> None:
    turn_id = await _turn(database)
    notifier = EventNotifier()
    writer = EventWriter(database, notifier, turn_id, RUNNER)
    received: list[tuple[int, str]] = []

    async def follow() -> None:
        async for event in follow_events(database, notifier, turn_id):
            received.append((event.seq, event.name))

    follower = asyncio.create_task(follow())
    for n in range(25):
        await writer.emit("text", {"delta": str(n)})
    pending = await writer.drain()
    async with database.session() as session:
        await end_turn(
            session, turn_id, Ending(TurnStatus.FAILED, "x"), runner_id=RUNNER, pending=pending
        )
    notifier.notify(turn_id)
    async with asyncio.timeout(10):
        await follower
    assert received == [(n, "text") for n in range(1, 26)] + [(26, "turn.failed")]
    replayed = [e.seq async for e in follow_events(database, notifier, turn_id, after=20)]
    assert replayed == [21, 22, 23, 24, 25, 26]


async def test_two_writers_of_one_turn_get_numbers_of_their_own(database: Database) -> None:
    """Numbers come from the turn row, so a second writer (after a restart, or a cancel
    notice from another process) never reuses one."""
    turn_id = await _turn(database)
    first = EventWriter(database, EventNotifier(), turn_id, RUNNER)
    second = EventWriter(database, EventNotifier(), turn_id, RUNNER)
    await first.emit("text", {"delta": "a"})
    await first.flush()
    assert await second.emit_now("text", {"delta": "b"}) == 2
    await first.emit("text", {"delta": "c"})
    await first.close()
    assert first.last_seq == 3
    assert await _stored(database, turn_id) == [(1, "text"), (2, "text"), (3, "text")]


async def test_the_transport_cursor_is_stored_with_the_events_it_follows(
    database: Database,
) -> None:
    """After a restart the turn resumes from the cursor of its last stored event: never
    one ahead of what is stored (that would lose events), nor behind it (doubled)."""
    turn_id = await _turn(database)
    writer = EventWriter(database, EventNotifier(), turn_id, RUNNER)

    async def stored_cursor() -> str | None:
        async with database.session() as session:
            turn = await turns_repo.get_turn(session, turn_id)
        assert turn is not None
        return turn.resume_cursor

    await writer.emit("text", {"delta": "a"}, cursor="c1")
    await writer.emit("notice", {"kind": "todo", "text": "0/1"})  # no cursor of its own
    await writer.flush()
    assert await stored_cursor() == "c1"
    await writer.emit("text", {"delta": "b"}, cursor="c2")
    await writer.emit("text", {"delta": "c"}, cursor="c3")
    await writer.close()
    assert await stored_cursor() == "c3"
    assert await _stored(database, turn_id) == [
        (1, "text"),
        (2, "notice"),
        (3, "text"),
        (4, "text"),
    ]


async def test_only_the_runner_holding_the_turn_may_write(database: Database) -> None:
    turn_id = await _turn(database, runner_id="someone-else")
    writer = EventWriter(database, EventNotifier(), turn_id, RUNNER)
    with pytest.raises(TurnNotWritable):
        await writer.emit_now("text", {"delta": "late"})
    assert await _stored(database, turn_id) == []


async def test_nothing_is_stored_after_the_terminal_event(database: Database) -> None:
    turn_id = await _turn(database)
    async with database.session() as session:
        await end_turn(session, turn_id, Ending(TurnStatus.INTERRUPTED, "replaced"))
    writer = EventWriter(database, EventNotifier(), turn_id, RUNNER)
    with pytest.raises(TurnNotWritable):
        await writer.emit_now("text", {"delta": "late"})
    assert await _stored(database, turn_id) == [(1, "turn.interrupted")]


async def test_closing_never_drops_a_batch_being_written(database: Database) -> None:
    """A flush waiting for a pool connection when the writer closes is stored, not lost."""
    turn_id = await _turn(database)
    narrow = Database(create_async_engine(database.engine.url, pool_size=1, max_overflow=0))
    try:
        writer = EventWriter(narrow, EventNotifier(), turn_id, RUNNER)
        async with narrow.engine.connect() as only_connection:
            await only_connection.execute(text("SELECT 1"))
            for n in range(5):
                await writer.emit("text", {"delta": str(n)})
            await _until(writer._lock.locked)  # the timer's flush waits for the connection
            closing = asyncio.create_task(writer.close())
            for _ in range(5):
                await asyncio.sleep(0)  # let close() reach the write in flight
        async with asyncio.timeout(10):
            await closing
    finally:
        await narrow.dispose()
    assert await _stored(database, turn_id) == [(n, "text") for n in range(1, 6)]


async def test_follower_in_another_process_polls(database: Database) -> None:
    """Two notifiers stand for two processes: the reader is never woken, it polls."""
    turn_id = await _turn(database)
    writer = EventWriter(database, EventNotifier(), turn_id, RUNNER)
    reader = follow_events(database, EventNotifier(), turn_id)
    await writer.emit_now("text", {"delta": "x"})
    async with asyncio.timeout(5):
        first = await anext(reader)
    pending = asyncio.ensure_future(anext(reader))
    async with database.session() as session:
        await end_turn(session, turn_id, Ending(TurnStatus.FAILED, "x"), runner_id=RUNNER)
    async with asyncio.timeout(5):
        last = await pending
    assert (first.seq, last.seq, last.name) == (1, 2, "turn.failed")
