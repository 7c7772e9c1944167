"""The event log on real databases: batched writes, replay after a position, live following."""

from __future__ import annotations

import asyncio
import uuid

from app.db import Database
from app.repositories import sessions as sessions_repo
from app.repositories import turns as turns_repo
from app.services.turn_events import EventNotifier, EventWriter, follow_events


async def _turn(database: Database) -> uuid.UUID:
    async with database.session() as session:
        record = await sessions_repo.add_session(session, provider="mock", cwd="/tmp")
        turn = await turns_repo.add_turn(session, session_id=record.id, prompt="hi")
    return turn.id


async def test_batches_are_numbered_stored_and_followed(database: Database) -> None:
    turn_id = await _turn(database)
    notifier = EventNotifier()
    writer = EventWriter(database, notifier, turn_id)
    received: list[tuple[int, str]] = []

    async def follow() -> None:
        async for event in follow_events(database, notifier, turn_id):
            received.append((event.seq, event.name))

    follower = asyncio.create_task(follow())
    for n in range(25):
        await writer.emit("text", {"delta": str(n)})
    await writer.emit_now("turn.completed", {"final_text": "".join(map(str, range(25)))})
    await asyncio.wait_for(follower, 10)
    assert received == [(n, "text") for n in range(1, 26)] + [(26, "turn.completed")]
    replayed = [e.seq async for e in follow_events(database, notifier, turn_id, after=20)]
    assert replayed == [21, 22, 23, 24, 25, 26]


async def test_a_writer_resumes_numbering_after_a_restart(database: Database) -> None:
    turn_id = await _turn(database)
    notifier = EventNotifier()
    first = EventWriter(database, notifier, turn_id)
    await first.emit("text", {"delta": "a"})
    await first.close()
    async with database.session() as session:
        turn = await turns_repo.get_turn(session, turn_id)
    assert turn is not None and turn.last_event_seq == 1
    second = EventWriter(database, notifier, turn_id, turn.last_event_seq)
    assert await second.emit_now("text", {"delta": "b"}) == 2


async def test_follower_in_another_process_polls(database: Database) -> None:
    """Two notifiers stand for two processes: the reader is never woken, it polls."""
    turn_id = await _turn(database)
    writer = EventWriter(database, EventNotifier(), turn_id)
    reader = follow_events(database, EventNotifier(), turn_id)
    await writer.emit_now("text", {"delta": "x"})
    first = await asyncio.wait_for(anext(reader), 5)
    pending = asyncio.ensure_future(anext(reader))
    await writer.emit_now("turn.failed", {})
    last = await asyncio.wait_for(pending, 5)
    assert (first.seq, last.seq, last.name) == (1, 2, "turn.failed")
