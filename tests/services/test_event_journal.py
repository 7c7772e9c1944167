"""The journal of a turn this process runs: a reader opening here while it runs (the prompt's
own stream) starts from what this process committed, without reading storage back; a reader
elsewhere, or here once the turn is no longer run here, reads storage; a gap in the journal
(an event stored elsewhere, older events it no longer keeps) is read from storage, so the
order holds and no number is skipped."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.db import Database
from app.models import SessionStatus, TurnStatus, utcnow
from app.paseo.types import PromptDelivered, TextDelta, TurnEnded, TurnEvent, TurnStarted
from app.repositories import sessions as sessions_repo
from app.repositories import turn_events as events_repo
from app.repositories import turns as turns_repo
from app.services.daemons import Daemons
from app.services.turn import events as turn_events
from app.services.turn.decisions import Ending
from app.services.turn.events import EventNotifier, StoredEvent, follow_events
from app.services.turn.service import TurnService, TurnSettings
from app.services.turn.store import TurnStore, announce_cancelling
from tests.services.test_turn_engine import AGENT_ID, ScriptedPaseo

RUNNER = "runner-here"
# Far longer than any test waits: a reader that gets an event was handed it or woken.
NEVER_SECONDS = 3600.0
STARTED = {"turn_id": "t"}


class Reads:
    """Counts the reads of stored events (`follow_events`' only way to storage)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = turn_events._read_stored

        async def counting(
            db: Database, turn_id: uuid.UUID, after: int, before: int | None
        ) -> tuple[list[StoredEvent], bool]:
            self.count += 1
            return await original(db, turn_id, after, before)

        monkeypatch.setattr(turn_events, "_read_stored", counting)


async def _all(events: AsyncIterator[StoredEvent]) -> list[tuple[int, str, dict[str, Any]]]:
    async with asyncio.timeout(30):
        return [(event.seq, event.name, event.data) async for event in events]


async def _stored(database: Database, turn_id: uuid.UUID) -> list[tuple[int, str, dict[str, Any]]]:
    async with database.read() as session:
        rows = await events_repo.list_events(session, turn_id)
    return [(row.seq, row.name, dict(row.data)) for row in rows]


async def _begun(database: Database, notifier: EventNotifier) -> TurnStore:
    """A running turn made here as a prompt makes it (with its first event, `turn.started`),
    its journal begun; its records as this process's runner sees them."""
    async with database.session() as session:
        record = await sessions_repo.add_session(session, provider="mock", cwd="/tmp")
        turn = await turns_repo.add_turn(
            session,
            session_id=record.id,
            prompt="hi",
            status=TurnStatus.RUNNING,
            runner_id=RUNNER,
            heartbeat_at=utcnow(),
            last_event_seq=1,
        )
        [seq] = await events_repo.add_first_events(session, turn, [("turn.started", STARTED)])
    notifier.begin(turn.id, [StoredEvent(seq, "turn.started", STARTED)])
    return TurnStore(database, notifier, turn, RUNNER)


async def test_a_prompt_stream_here_reads_nothing_back_and_one_elsewhere_reads_storage(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the turn service, as `POST …/prompt` runs it: the stream opened right after
    the prompt returns gets every event in order, from what this process committed; a reader
    in another process gets the same from storage."""
    release = asyncio.Event()

    async def script() -> AsyncIterator[TurnEvent]:
        yield TurnStarted()
        yield PromptDelivered()
        yield TextDelta("a")
        yield TextDelta("b")
        await release.wait()
        yield TextDelta("c")
        yield TurnEnded("completed", "Agent is idle.", "abc")

    settings = TurnSettings(timeout_seconds=60, max_concurrent=4, idle_timeout_seconds=60)
    service = TurnService(database, Daemons.single(ScriptedPaseo(script)), settings)  # type: ignore[arg-type]
    service.notifier.recheck_seconds = NEVER_SECONDS
    async with database.session() as session:
        record = await sessions_repo.add_session(
            session, provider="mock", cwd="/tmp", agent_id=AGENT_ID, status=SessionStatus.ACTIVE
        )
    try:
        turn, created = await service.start_turn(record.id, "go")
        assert created and service.notifier.journaled(turn.id)
        reads = Reads(monkeypatch)
        here = asyncio.create_task(_all(service.events(turn.id)))
        await asyncio.sleep(0.05)
        release.set()
        seen = await here
        assert reads.count == 0  # nothing read back from storage
        stored = await _stored(database, turn.id)
        assert seen == stored
        assert [name for _, name, _ in seen] == [
            "turn.started",
            "text",
            "text",
            "text",
            "turn.completed",
        ]
        elsewhere = await _all(follow_events(database, EventNotifier(), turn.id))
        assert elsewhere == stored
        assert reads.count >= 1
        async with asyncio.timeout(30):
            while service.notifier.journaled(turn.id):
                await asyncio.sleep(0.01)  # until the run has let go: storage again
    finally:
        await service.aclose()


async def test_a_reader_here_gets_every_event_in_order_without_a_read(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    notifier = EventNotifier(recheck_seconds=NEVER_SECONDS)
    store = await _begun(database, notifier)
    for n in range(3):
        await store.writer.emit("text", {"delta": str(n)})
    await store.writer.flush()
    reads = Reads(monkeypatch)
    reader = asyncio.create_task(_all(follow_events(database, notifier, store.turn_id)))
    late = asyncio.create_task(_all(follow_events(database, notifier, store.turn_id, after=2)))
    await store.writer.emit("text", {"delta": "live"})
    await store.end(Ending(TurnStatus.COMPLETED, None))
    stored = await _stored(database, store.turn_id)
    assert await reader == stored
    assert await late == stored[2:]
    assert [seq for seq, _, _ in stored] == [1, 2, 3, 4, 5, 6]
    # `late` resumed after 2: the check whether the turn was over by then is not a read
    assert reads.count == 0


async def test_once_the_turn_is_not_run_here_a_reader_reads_storage(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    notifier = EventNotifier(recheck_seconds=NEVER_SECONDS)
    store = await _begun(database, notifier)
    await store.writer.emit_now("text", {"delta": "x"})
    await store.end(Ending(TurnStatus.COMPLETED, None))
    notifier.forget(store.turn_id)
    reads = Reads(monkeypatch)
    assert await _all(follow_events(database, notifier, store.turn_id)) == await _stored(
        database, store.turn_id
    )
    assert reads.count == 1


async def test_an_event_stored_elsewhere_is_read_from_storage_in_its_place(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process stores `turn.cancelling` between this process's events: a reader here
    reads it from storage, whether the notice came before the reader opened or not at all
    (then the next event of this process shows the gap)."""
    notifier = EventNotifier(recheck_seconds=NEVER_SECONDS)
    store = await _begun(database, notifier)
    async with database.session() as session:
        await turns_repo.request_cancel(session, store.turn_id)
    await announce_cancelling(database, EventNotifier(), store.turn_id)  # seq 2, elsewhere
    notifier.stored(store.turn_id, 2)  # its notice, as the listener hands it on
    reads = Reads(monkeypatch)
    noticed = await _first(follow_events(database, notifier, store.turn_id), 2)
    assert [(seq, name) for seq, name, _ in noticed] == [
        (1, "turn.started"),
        (2, "turn.cancelling"),
    ]
    assert reads.count == 1

    unheard = await _begun(database, notifier)
    async with database.session() as session:
        await turns_repo.request_cancel(session, unheard.turn_id)
    await announce_cancelling(database, EventNotifier(), unheard.turn_id)  # no notice here
    reader = asyncio.create_task(_all(follow_events(database, notifier, unheard.turn_id)))
    await unheard.writer.emit_now("text", {"delta": "after"})
    await unheard.end(Ending(TurnStatus.CANCELLED, None))
    seen = await reader
    assert seen == await _stored(database, unheard.turn_id)
    assert [name for _, name, _ in seen] == [
        "turn.started",
        "turn.cancelling",
        "text",
        "turn.cancelled",
    ]


async def _first(
    events: AsyncIterator[StoredEvent], count: int
) -> list[tuple[int, str, dict[str, Any]]]:
    seen: list[tuple[int, str, dict[str, Any]]] = []
    async with asyncio.timeout(30):
        async for event in events:
            seen.append((event.seq, event.name, event.data))
            if len(seen) == count:
                break
    await events.aclose()  # type: ignore[attr-defined]
    return seen


async def test_what_the_journal_no_longer_keeps_is_read_from_storage(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(turn_events, "MAX_JOURNAL_EVENTS", 3)
    notifier = EventNotifier(recheck_seconds=NEVER_SECONDS)
    store = await _begun(database, notifier)
    for n in range(6):
        await store.writer.emit_now("text", {"delta": str(n)})
    reads = Reads(monkeypatch)
    reader = asyncio.create_task(_all(follow_events(database, notifier, store.turn_id)))
    await store.end(Ending(TurnStatus.COMPLETED, None))
    seen = await reader
    assert seen == await _stored(database, store.turn_id)
    assert [seq for seq, _, _ in seen] == list(range(1, 9))
    assert reads.count == 1  # 1..4 from storage, then the journal


async def test_a_notice_that_says_nothing_of_how_far_drops_the_journal(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`notify` (something was stored, its number unknown: a replacing prompt ended the
    turn) leaves nothing to trust: readers opening then read storage."""
    notifier = EventNotifier(recheck_seconds=NEVER_SECONDS)
    store = await _begun(database, notifier)
    notifier.notify(store.turn_id)
    assert not notifier.journaled(store.turn_id)
    reads = Reads(monkeypatch)
    assert await _first(follow_events(database, notifier, store.turn_id), 1) == [
        (1, "turn.started", STARTED)
    ]
    assert reads.count == 1
