"""A turn's events: stored first, then shown. Numbered and stored by one transaction, handed to
this process's readers when it has committed, and read back from storage by anyone else.

The rule between "shown" and "stored": an event reaches a reader only after the transaction
that stores it has committed. So a reader never holds an event that a crash could lose, a
replay equals what anyone was shown, and the numbers (taken from the turn row, under its
lock, in the storing transaction) never skip and become visible in order.

A reader (`follow_events`) reads storage after its position, takes live events that continue
it, and, for a live event further ahead, first reads storage up to it. Readers in other
processes are woken by app/services/turn/listener.py.

A turn this process started keeps a journal here while it runs: its latest events as they
were committed, and the highest number known stored by anyone. A reader opening meanwhile
(the prompt's own stream, a moment after the turn began) starts from the journal instead of
a query: it is only what this process committed, and a gap in it (an older event dropped,
one stored elsewhere) is read from storage as for any live event further ahead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from app.db import Database
from app.repositories import event_channel
from app.repositories import turn_events as events_repo
from app.repositories.turns import TurnNotWritable
from app.services.turn.states import TERMINAL_EVENTS

logger = logging.getLogger(__name__)

# A transaction stores at most this many events; an `emit` this far ahead of the database
# waits for it.
MAX_BATCH_EVENTS = 200
# A reader with nothing to tell it re-reads storage this often (a notifier with no listener).
POLL_INTERVAL_SECONDS = 0.5
READ_PAGE_SIZE = 500
# A reader this far behind the live events drops them and catches up from storage.
MAX_LIVE_BACKLOG = 1000
# A running turn's journal keeps its latest events, this many (older ones: from storage).
MAX_JOURNAL_EVENTS = 128


# An event not yet numbered: its name, data and transport cursor.
Event = tuple[str, dict[str, Any], str | None]


@dataclass(frozen=True)
class StoredEvent:
    """A stored event: its number, name and data.

    `cursor`: where the transport resumes after it (stored with it on the turn, never shown).
    """

    seq: int
    name: str
    data: dict[str, Any]
    cursor: str | None = None


def in_order(events: Iterable[StoredEvent]) -> list[StoredEvent]:
    """By number, each number once."""
    return sorted({event.seq: event for event in events}.values(), key=lambda event: event.seq)


class Subscription:
    """One reader's view of a turn in this process: events just stored here, and how far
    storage is known to go."""

    def __init__(self, turn_id: uuid.UUID) -> None:
        self.turn_id = turn_id
        self.live: deque[StoredEvent] = deque()
        self.stored_head = 0  # highest number known to be stored
        self.stale = True  # storage may have more than `stored_head` says: read it
        self.wakeup = asyncio.Event()

    def push(self, events: list[StoredEvent]) -> None:
        if self.live and events[0].seq < self.live[-1].seq:
            self.live = deque(in_order([*self.live, *events]))  # two writers here, rare
        else:
            self.live.extend(events)
        self.wakeup.set()

    def stored(self, seq: int | None) -> None:
        if seq is None:
            self.stale = True
        else:
            self.stored_head = max(self.stored_head, seq)
        self.wakeup.set()

    def next_live(self, position: int) -> StoredEvent | None:
        """The first live event after `position` (older ones are dropped)."""
        while self.live and self.live[0].seq <= position:
            self.live.popleft()
        return self.live[0] if self.live else None

    def must_read(self, position: int) -> bool:
        """Whether storage may have events after `position`; clears the stale mark."""
        stale, self.stale = self.stale, False
        return stale or self.stored_head > position


class Journal:
    """What this process committed of a turn it runs (the latest events, in order), and the
    highest number known stored, here or (by a notice) elsewhere."""

    def __init__(self, events: Iterable[StoredEvent]) -> None:
        self.events: deque[StoredEvent] = deque(in_order(events), maxlen=MAX_JOURNAL_EVENTS)
        self.head = self.events[-1].seq if self.events else 0

    def add(self, events: list[StoredEvent]) -> None:
        if self.events and events[0].seq < self.events[-1].seq:  # two writers here, rare
            self.events = deque(in_order([*self.events, *events]), maxlen=MAX_JOURNAL_EVENTS)
        else:
            self.events.extend(events)
        self.head = max(self.head, events[-1].seq)

    def start(self, subscription: Subscription, after: int) -> None:
        """Start a reader at `after` from here: the events after it, and how far storage goes
        (beyond them, or before them: it reads storage for that part first)."""
        subscription.live = deque(event for event in self.events if event.seq > after)
        subscription.stored_head = self.head
        subscription.stale = False


class EventNotifier:
    """This process's switchboard for turn events: writers hand the events they stored to
    readers, and whoever stores events (or learns that another process did) says so here.

    `recheck_seconds`: how long a reader waits for news before it re-reads storage itself.
    With no listener attached (tests, tools) that is the only way to see other processes.
    """

    def __init__(self, *, recheck_seconds: float = POLL_INTERVAL_SECONDS) -> None:
        self.recheck_seconds = recheck_seconds
        self._subscribers: dict[uuid.UUID, set[Subscription]] = defaultdict(set)
        self._journals: dict[uuid.UUID, Journal] = {}

    # --- writers ----------------------------------------------------------------------------

    def begin(self, turn_id: uuid.UUID, events: list[StoredEvent]) -> None:
        """This process has just made the turn (committed, with `events`, its first) and runs
        it: keep its journal until `forget`. Call it before anything else can store events
        of the turn here, so the journal misses none of this process's."""
        self._journals[turn_id] = Journal(events)

    def publish(self, turn_id: uuid.UUID, events: list[StoredEvent]) -> None:
        """Events just stored (committed), in order, for this process's readers now."""
        journal = self._journals.get(turn_id)
        if journal is not None:
            journal.add(events)
        for subscription in self._subscribers.get(turn_id, ()):
            if len(subscription.live) + len(events) > MAX_LIVE_BACKLOG:
                subscription.live.clear()  # too far behind: it catches up from storage
                subscription.stored(events[-1].seq)
            else:
                subscription.push(events)

    def stored(self, turn_id: uuid.UUID, seq: int | None) -> None:
        """The turn's events up to `seq` are stored (None: something was, read to see)."""
        journal = self._journals.get(turn_id)
        if journal is not None and seq is None:
            del self._journals[turn_id]  # it no longer knows how far storage goes
        elif journal is not None and seq is not None:
            journal.head = max(journal.head, seq)
        for subscription in self._subscribers.get(turn_id, ()):
            subscription.stored(seq)

    def notify(self, turn_id: uuid.UUID) -> None:
        self.stored(turn_id, None)

    def forget(self, turn_id: uuid.UUID) -> None:
        """This process no longer runs the turn: its journal goes, its readers look at
        storage again."""
        self._journals.pop(turn_id, None)
        self.notify(turn_id)

    def wake_all(self) -> None:
        for turn_id in list(self._subscribers):
            self.notify(turn_id)

    def watched(self) -> list[uuid.UUID]:
        """Turns that have readers here."""
        return list(self._subscribers)

    # --- readers ----------------------------------------------------------------------------

    def journaled(self, turn_id: uuid.UUID) -> bool:
        """Whether readers of the turn start from its journal here (not from storage)."""
        return turn_id in self._journals

    @contextlib.contextmanager
    def subscribe(self, turn_id: uuid.UUID, *, after: int = 0) -> Iterator[Subscription]:
        """Register a reader at `after`; it starts from the turn's journal if this process
        keeps one, else by reading storage."""
        subscription = Subscription(turn_id)
        journal = self._journals.get(turn_id)
        if journal is not None:
            journal.start(subscription, after)
        self._subscribers[turn_id].add(subscription)
        try:
            yield subscription
        finally:
            readers = self._subscribers.get(turn_id)
            if readers is not None:
                readers.discard(subscription)
                if not readers:
                    del self._subscribers[turn_id]


class EventWriter:
    """Stores one turn's events as they come, then hands them to this process's readers.

    Group commit: while one batch is being stored, the events emitted meanwhile wait, and the
    next transaction stores all of them; so a burst costs one transaction, and a lone event
    waits for nothing but its own. A batch is numbered and stored in one transaction (the
    turn row's lock orders writers), and only its commit shows it to anyone.

    A database step is never cancelled halfway: it runs to its end even if the caller is
    cancelled. A step that fails keeps its events (not stored, never shown) and its error is
    raised to the turn (by the next `emit`/`flush`/`close`). Only the runner holding the turn
    (`runner_id`) may write, and nothing is stored once the turn has ended: `TurnNotWritable`
    then tells the run that the turn was ended or taken elsewhere.
    """

    def __init__(
        self, db: Database, notifier: EventNotifier, turn_id: uuid.UUID, runner_id: str | None
    ) -> None:
        self.db = db
        self.notifier = notifier
        self.turn_id = turn_id
        self.runner_id = runner_id
        self.last_seq = 0  # the highest number this writer has stored
        self._pending: list[Event] = []  # emitted, not stored yet (nobody has seen them)
        self._lock = asyncio.Lock()  # one transaction at a time, in order
        self._pump: asyncio.Task[None] | None = None
        self._failure: Exception | None = None

    async def emit(self, name: str, data: dict[str, Any], *, cursor: str | None = None) -> None:
        """Queue an event (with `cursor`, the transport's resume point after it): it is stored
        with whatever else is waiting as soon as the transaction before it has committed."""
        self._raise_failure()
        self._pending.append((name, data, cursor))
        if len(self._pending) >= MAX_BATCH_EVENTS:
            await self.flush()  # the database is behind: the transport waits for it
        elif self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run_pump(), name=f"events-{self.turn_id}")

    async def emit_now(self, name: str, data: dict[str, Any]) -> int:
        """Queue an event and store it (with everything before it); returns its number."""
        self._raise_failure()
        self._pending.append((name, data, None))
        await self.flush()
        return self.last_seq

    async def flush(self) -> None:
        """Store everything emitted so far."""
        async with self._lock:
            self._raise_failure()
            while self._pending:
                await self._to_the_end(self._store_pending)

    async def drain(self) -> list[Event]:
        """Stop storing, and hand over what is emitted and not stored yet: the turn's ending
        stores it in its own transaction, before its terminal event."""
        if self._pump is not None and not self._pump.done():
            await asyncio.shield(self._pump)
        async with self._lock:
            self._raise_failure()
            handed, self._pending = self._pending, []
            return handed

    def stored_elsewhere(self, events: Sequence[StoredEvent]) -> None:
        """`events` were stored by a transaction of the turn's own (its ending): show them."""
        if events:
            self.last_seq = max(self.last_seq, events[-1].seq)
            self.notifier.publish(self.turn_id, list(events))

    async def close(self) -> None:
        """Store what is emitted, after any step in flight; stop the pump."""
        if self._pump is not None and not self._pump.done():
            await asyncio.shield(self._pump)
        await self.flush()

    # --- the steps --------------------------------------------------------------------------

    async def _run_pump(self) -> None:
        """Store what waits, one transaction at a time, until nothing does."""
        try:
            while self._pending:
                async with self._lock:
                    await self._to_the_end(self._store_pending)
        except Exception as exc:  # kept; the next call raises it
            self._failure = self._failure or exc

    async def _to_the_end(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run `step` (the lock held) to its end even if the caller is cancelled meanwhile."""
        task = asyncio.ensure_future(step())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.wait({task})
            if not task.cancelled() and isinstance(task.exception(), Exception):
                self._failure = self._failure or task.exception()  # type: ignore[assignment]
            raise

    async def _store_pending(self) -> None:
        """Number and store every waiting event in one transaction; once it has committed,
        this process's readers get them (other processes' by the NOTIFY it sent)."""
        batch, self._pending = self._pending[:MAX_BATCH_EVENTS], self._pending[MAX_BATCH_EVENTS:]
        if not batch:
            return
        rows = [(name, data) for name, data, _ in batch]
        cursor = next((cursor for _, _, cursor in reversed(batch) if cursor), None)
        try:
            async with self.db.session() as session:
                seqs = await events_repo.append_next_events(
                    session, self.turn_id, rows, runner_id=self.runner_id, cursor=cursor
                )
                await event_channel.notify_stored(session, self.turn_id, seqs[-1])
        except TurnNotWritable:
            raise  # the turn ended or moved on: these are never stored, and nobody saw them
        except BaseException:
            self._pending[:0] = batch
            raise
        stored = [
            StoredEvent(seq, name, data, cursor)
            for seq, (name, data, cursor) in zip(seqs, batch, strict=True)
        ]
        self.last_seq = seqs[-1]
        self.notifier.publish(self.turn_id, stored)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure


async def follow_events(
    db: Database, notifier: EventNotifier, turn_id: uuid.UUID, *, after: int = 0
) -> AsyncIterator[StoredEvent]:
    """Events with seq > `after` (stored, then live), in order, once each, until the terminal.

    A reader already past the terminal (resuming a finished turn from its last id) gets
    nothing and is done at once: no more events will ever come.
    """
    position = after
    if after > 0 and await _over_by(db, turn_id, after):
        return
    with notifier.subscribe(turn_id, after=after) as subscription:
        while True:
            subscription.wakeup.clear()
            live = subscription.next_live(position)
            if live is not None and live.seq == position + 1:
                subscription.live.popleft()
                position = live.seq
                yield live
                if live.name in TERMINAL_EVENTS:
                    return
                continue
            if live is None and not subscription.must_read(position):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(notifier.recheck_seconds):
                        await subscription.wakeup.wait()
                        continue
                subscription.stale = True  # nothing said for a while: look anyway
                continue
            # Storage first: everything after `position`, or what comes before `live`.
            rows, full = await _read_stored(db, turn_id, position, live.seq if live else None)
            for event in rows:
                position = event.seq
                yield event
                if event.name in TERMINAL_EVENTS:
                    return
            if full:
                subscription.stale = True  # a whole page: there may be more
            elif live is not None and live.seq > position:
                subscription.live.popleft()
                position = live.seq
                yield live
                if live.name in TERMINAL_EVENTS:
                    return


async def _over_by(db: Database, turn_id: uuid.UUID, seq: int) -> bool:
    """Whether the turn's terminal event is numbered `seq` or lower."""
    async with db.read() as session:
        return await events_repo.has_event_named(session, turn_id, TERMINAL_EVENTS, up_to_seq=seq)


# Reads in flight, by (database, turn, after, before): readers woken together share one.
_reads: dict[
    tuple[int, uuid.UUID, int, int | None], asyncio.Future[tuple[list[StoredEvent], bool]]
] = {}


async def _read_stored(
    db: Database, turn_id: uuid.UUID, after: int, before: int | None
) -> tuple[list[StoredEvent], bool]:
    """Stored events numbered after `after` (and below `before`); whether the page was full.

    A thousand readers of a turn woken by one notice ask the same question: one query answers.
    """
    key = (id(db), turn_id, after, before)
    shared = _reads.get(key)
    if shared is None:
        shared = asyncio.ensure_future(_query_stored(db, turn_id, after, before))
        _reads[key] = shared
        shared.add_done_callback(lambda _done: _reads.pop(key, None))
    return await asyncio.shield(shared)


async def _query_stored(
    db: Database, turn_id: uuid.UUID, after: int, before: int | None
) -> tuple[list[StoredEvent], bool]:
    limit = READ_PAGE_SIZE if before is None else min(READ_PAGE_SIZE, before - after - 1)
    async with db.read() as session:
        rows = await events_repo.list_events(session, turn_id, after_seq=after, limit=limit)
    events = [
        StoredEvent(row.seq, row.name, dict(row.data or {}))
        for row in rows
        if before is None or row.seq < before
    ]
    # A page cut short by `limit` (not a gap read to its end) may have more after it.
    return events, len(events) == READ_PAGE_SIZE
