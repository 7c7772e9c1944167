"""Live hand-off and cross-process wake-ups on real databases: readers see an event only once
it is stored, under its stored number; events that wait share one transaction; a reconnect
has no gap or duplicate; a reader in another process is woken by NOTIFY (not by a poll), even
after the listening connection was killed; a batch that could not be stored was never shown."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import Database
from app.models import TurnStatus
from app.repositories import sessions as sessions_repo
from app.repositories import turn_events as events_repo
from app.repositories import turns as turns_repo
from app.repositories.turns import TurnNotWritable
from app.services.turn import events as turn_events
from app.services.turn.decisions import Ending
from app.services.turn.events import EventNotifier, EventWriter, StoredEvent, follow_events
from app.services.turn.listener import EventListener
from app.services.turn.store import TurnStore, announce_cancelling, end_turn

RUNNER = "runner-a"
# Far longer than any test waits: a reader that gets an event was woken, it did not poll.
NEVER_SECONDS = 3600.0


async def _turn(database: Database, runner_id: str = RUNNER) -> uuid.UUID:
    async with database.session() as session:
        record = await sessions_repo.add_session(session, provider="mock", cwd="/tmp")
        turn = await turns_repo.add_turn(
            session, session_id=record.id, prompt="hi", runner_id=runner_id
        )
    return turn.id


async def _stored(database: Database, turn_id: uuid.UUID) -> list[tuple[int, str, dict]]:
    async with database.session() as session:
        rows = await events_repo.list_events(session, turn_id)
    return [(row.seq, row.name, dict(row.data)) for row in rows]


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(20):
        while not condition():
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def _narrow(database: Database) -> AsyncIterator[tuple[Database, list[int]]]:
    """A one-connection copy of `database`, and a list that counts its commits."""
    narrow = Database(create_async_engine(database.engine.url, pool_size=1, max_overflow=0))
    commits: list[int] = []
    sa_event.listen(narrow.engine.sync_engine, "commit", lambda _conn: commits.append(1))
    try:
        yield narrow, commits
    finally:
        await narrow.dispose()


@contextlib.asynccontextmanager
async def _held(narrow: Database) -> AsyncIterator[None]:
    """Hold the copy's one connection: nothing it writes commits until the block ends."""
    async with narrow.engine.connect() as only_connection:
        await only_connection.execute(text("SELECT 1"))
        yield


class Reader:
    """Collects a `follow_events` stream in a task of its own."""

    def __init__(self, events: AsyncIterator[StoredEvent]) -> None:
        self.seen: list[StoredEvent] = []
        self.task = asyncio.create_task(self._read(events))

    async def _read(self, events: AsyncIterator[StoredEvent]) -> None:
        async for event in events:
            self.seen.append(event)

    @property
    def seqs(self) -> list[int]:
        return [event.seq for event in self.seen]

    async def finished(self) -> list[StoredEvent]:
        async with asyncio.timeout(20):
            await self.task
        return self.seen

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def _store(database: Database, notifier: EventNotifier, turn_id: uuid.UUID) -> TurnStore:
    """The records of the turn as its runner (RUNNER, in this "process") sees them."""
    async with database.session() as session:
        turn = await turns_repo.get_turn(session, turn_id)
    assert turn is not None
    store = TurnStore(database, notifier, turn, RUNNER)
    assert await store.claim_running() is not None
    return store


async def test_a_reader_sees_an_event_only_once_it_is_stored(database: Database) -> None:
    """Store before show: while the database holds the batch back, readers see nothing; then
    they see exactly what was stored, under its stored numbers. Events that came while one
    transaction was on its way share the next one (group commit)."""
    turn_id = await _turn(database)
    notifier = EventNotifier(recheck_seconds=NEVER_SECONDS)
    reader = Reader(follow_events(database, notifier, turn_id))
    async with _narrow(database) as (narrow, commits):
        writer = EventWriter(narrow, notifier, turn_id, RUNNER)
        async with _held(narrow):
            await writer.emit("text", {"delta": "0"})
            await _until(writer._lock.locked)  # its transaction waits for the held connection
            for n in range(1, 5):
                await writer.emit("text", {"delta": str(n)})
            for _ in range(20):
                await asyncio.sleep(0)
            assert reader.seen == []  # nothing is stored, so nothing is shown
            assert await _stored(database, turn_id) == []
        # the connection is free: the first transaction, then one for the four that waited
        await _until(lambda: len(reader.seen) == 5)
        await writer.close()
    assert len(commits) == 2
    stored = await _stored(database, turn_id)
    assert [(e.seq, e.name, e.data) for e in reader.seen] == stored
    assert [data["delta"] for _, _, data in stored] == ["0", "1", "2", "3", "4"]
    await reader.stop()


async def test_the_ending_stores_what_waits_with_the_terminal(database: Database) -> None:
    """Events still waiting when the turn ends are stored in the ending's transaction, before
    its terminal event: a reader gets them all, and `final_text` includes them."""
    turn_id = await _turn(database)
    notifier = EventNotifier(recheck_seconds=NEVER_SECONDS)
    store = await _store(database, notifier, turn_id)
    reader = Reader(follow_events(database, notifier, turn_id))
    for n in range(5):
        await store.writer.emit("text", {"delta": str(n)})
    await store.end(Ending(TurnStatus.COMPLETED, "done"))
    seen = await reader.finished()
    stored = await _stored(database, turn_id)
    assert [(e.seq, e.name, e.data) for e in seen] == stored
    assert [seq for seq, _, _ in stored] == [1, 2, 3, 4, 5, 6]
    assert stored[-1][1] == "turn.completed"
    assert stored[-1][2]["final_text"] == "01234"


async def test_a_reader_reconnecting_mid_turn_gets_no_gap_and_no_duplicate(
    database: Database,
) -> None:
    """A reader resuming after any stored event gets exactly the rest, from storage then
    live."""
    turn_id = await _turn(database)
    notifier = EventNotifier(recheck_seconds=NEVER_SECONDS)
    store = await _store(database, notifier, turn_id)
    for n in range(7):
        await store.writer.emit("text", {"delta": str(n)})
    await store.writer.flush()  # 1..7 stored
    readers = {
        after: Reader(follow_events(database, notifier, turn_id, after=after)) for after in range(8)
    }
    await _until(lambda: all(r.seqs == list(range(a + 1, 8)) for a, r in readers.items()))
    for n in range(7, 9):
        await store.writer.emit("text", {"delta": str(n)})
    await store.end(Ending(TurnStatus.COMPLETED, None))
    for after, reader in readers.items():
        assert [e.seq for e in await reader.finished()] == list(range(after + 1, 11))


async def test_a_full_page_of_stored_events_then_live_ones(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(turn_events, "READ_PAGE_SIZE", 3)
    turn_id = await _turn(database)
    notifier = EventNotifier(recheck_seconds=NEVER_SECONDS)
    store = await _store(database, notifier, turn_id)
    for n in range(7):
        await store.writer.emit("text", {"delta": str(n)})
    await store.writer.flush()
    reader = Reader(follow_events(database, notifier, turn_id, after=1))
    await _until(lambda: reader.seqs == list(range(2, 8)))
    await store.writer.emit("text", {"delta": "live"})
    await _until(lambda: reader.seqs == list(range(2, 9)))
    await store.end(Ending(TurnStatus.COMPLETED, None))
    assert [e.seq for e in await reader.finished()] == list(range(2, 10))


async def test_a_batch_the_turn_could_not_store_was_never_shown(database: Database) -> None:
    """The turn is ended elsewhere (a replacing prompt) while a batch waits to be stored: it
    can no longer be, and no reader ever saw it; the numbers have no gap."""
    turn_id = await _turn(database)
    notifier = EventNotifier(recheck_seconds=NEVER_SECONDS)
    store = await _store(database, notifier, turn_id)
    await store.writer.emit_now("text", {"delta": "kept "})
    reader = Reader(follow_events(database, notifier, turn_id))
    await _until(lambda: reader.seqs == [1])
    async with _narrow(database) as (narrow, _commits):
        writer = EventWriter(narrow, notifier, turn_id, RUNNER)
        async with _held(narrow):
            await writer.emit("text", {"delta": "lost"})
            await _until(writer._lock.locked)
            async with database.session() as session:
                await end_turn(session, turn_id, Ending(TurnStatus.INTERRUPTED, "replaced"))
            notifier.notify(turn_id)
            seen = await reader.finished()
        with pytest.raises(TurnNotWritable):
            await writer.close()
    assert [(e.seq, e.name) for e in seen] == [(1, "text"), (2, "turn.interrupted")]
    assert seen[-1].data["final_text"] == "kept "
    assert [seq for seq, _, _ in await _stored(database, turn_id)] == [1, 2]


async def test_a_cancel_notice_takes_the_next_number_in_its_own_transaction(
    database: Database,
) -> None:
    """The notice is numbered where it is stored, like every event: nothing is lost and the
    order holds, with or without the runner in this process."""
    turn_id = await _turn(database)
    notifier = EventNotifier(recheck_seconds=NEVER_SECONDS)
    store = await _store(database, notifier, turn_id)
    reader = Reader(follow_events(database, notifier, turn_id))
    await store.writer.emit("text", {"delta": "a"})
    await _until(lambda: reader.seqs == [1])
    await announce_cancelling(database, notifier, turn_id)
    await store.writer.emit("text", {"delta": "b"})
    await _until(lambda: reader.seqs == [1, 2, 3])
    await store.end(Ending(TurnStatus.CANCELLED, None))
    seen = await reader.finished()
    assert [(e.seq, e.name) for e in seen] == [
        (1, "text"),
        (2, "turn.cancelling"),
        (3, "text"),
        (4, "turn.cancelled"),
    ]
    assert [(e.seq, e.name, e.data) for e in seen] == await _stored(database, turn_id)


async def test_on_sqlite_a_shared_recheck_wakes_readers_of_another_process(
    sqlite_database: Database,
) -> None:
    """No NOTIFY on SQLite: one cheap re-check for all readers stands in for it."""
    database = sqlite_database
    turn_id = await _turn(database)
    here = EventNotifier()
    listener = EventListener(database, str(database.engine.url), here, unheard_recheck_seconds=0.05)
    await listener.start()
    try:
        assert here.recheck_seconds > 60  # readers do not poll on their own
        readers = [Reader(follow_events(database, here, turn_id)) for _ in range(50)]
        writer = EventWriter(database, EventNotifier(), turn_id, RUNNER)  # "another process"
        await writer.emit_now("text", {"delta": "x"})
        await _until(lambda: all(r.seqs == [1] for r in readers))
        for reader in readers:
            await reader.stop()
    finally:
        await listener.aclose()


# --- PostgreSQL: LISTEN/NOTIFY ------------------------------------------------------------


def _url(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=False)


async def _listener(database: Database, notifier: EventNotifier) -> EventListener:
    """A listener that never re-checks on its own: only a NOTIFY can wake its readers."""
    listener = EventListener(
        database,
        _url(database),
        notifier,
        listening_recheck_seconds=NEVER_SECONDS,
        unheard_recheck_seconds=NEVER_SECONDS,
    )
    await listener.start()
    async with asyncio.timeout(20):
        await listener.listening.wait()
    return listener


async def test_a_reader_in_another_process_is_woken_by_notify(
    postgresql_database: Database,
) -> None:
    database = postgresql_database
    turn_id = await _turn(database)
    there = EventNotifier()  # the reader's process
    listener = await _listener(database, there)
    try:
        assert there.recheck_seconds > 60
        reader = Reader(follow_events(database, there, turn_id))
        writer = EventWriter(database, EventNotifier(), turn_id, RUNNER)  # the runner's process
        await writer.emit("text", {"delta": "a"})
        await writer.emit("text", {"delta": "b"})
        await _until(lambda: reader.seqs == [1, 2])
        async with database.session() as session:
            await end_turn(session, turn_id, Ending(TurnStatus.FAILED, "x"), runner_id=RUNNER)
        assert [(e.seq, e.name) for e in await reader.finished()][-1] == (3, "turn.failed")
    finally:
        await listener.aclose()


async def test_the_listener_listens_again_after_its_connection_is_killed(
    postgresql_database: Database,
) -> None:
    database = postgresql_database
    turn_id = await _turn(database)
    there = EventNotifier()
    listener = await _listener(database, there)
    try:
        reader = Reader(follow_events(database, there, turn_id))
        writer = EventWriter(database, EventNotifier(), turn_id, RUNNER)
        await writer.emit_now("text", {"delta": "before"})
        await _until(lambda: reader.seqs == [1])
        async with database.session() as session:
            await session.execute(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": listener.backend_pid}
            )
        # Stored while nobody listens: the re-check after reconnecting finds it.
        await writer.emit_now("text", {"delta": "meanwhile"})
        await _until(lambda: listener.connections == 2 and listener.listening.is_set())
        await _until(lambda: reader.seqs == [1, 2])
        await writer.emit_now("text", {"delta": "after"})
        await _until(lambda: reader.seqs == [1, 2, 3])
        await reader.stop()
    finally:
        await listener.aclose()


async def test_idle_readers_cost_no_queries(
    postgresql_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thousand readers of a quiet turn: each reads storage once, then nothing until news."""
    database = postgresql_database
    turn_id = await _turn(database)
    there = EventNotifier()
    listener = await _listener(database, there)
    reads = 0
    original = turn_events._read_stored

    async def counting(
        db: Database, turn_id: uuid.UUID, after: int, before: int | None
    ) -> tuple[list[StoredEvent], bool]:
        nonlocal reads
        reads += 1
        return await original(db, turn_id, after, before)

    monkeypatch.setattr(turn_events, "_read_stored", counting)
    try:
        readers = [Reader(follow_events(database, there, turn_id)) for _ in range(1000)]
        await _until(lambda: reads == 1000)
        for _ in range(20):
            await asyncio.sleep(0)
        assert reads == 1000
        writer = EventWriter(database, EventNotifier(), turn_id, RUNNER)
        await writer.emit_now("text", {"delta": "news"})
        await _until(lambda: all(r.seqs == [1] for r in readers))
        for reader in readers:
            await reader.stop()
    finally:
        await listener.aclose()
