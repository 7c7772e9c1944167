"""A turn's events: numbered by the database, handed to this process's readers at once, stored
in small batches, and read back from storage by anyone else.

The rule between "shown live" and "stored":

1. An event gets its number (seq) from the turn row, in a committed transaction, before any
   reader sees it. A number is never given twice, not even after a crash.
2. Stored events become visible in number order: a batch is stored only while no higher number
   is (checked under the turn row's lock), so a reader following storage by number never skips
   an event that is stored later.
3. An event a reader saw live is stored under its number, or it never is: then its number is
   listed in the turn's terminal event (`unstored_event_ids`). That happens only when the turn
   was ended or taken over elsewhere while the batch was on its way, or the process died.

A reader (`follow_events`) reads storage after its position, takes live events that continue
it, and, for a live event further ahead, first reads storage up to it (whatever is not stored
by then never will be, by rules 1 and 2; the local writer's own unstored events are handed to
a new reader when it subscribes). Readers in other processes are woken by
app/services/turn/listener.py.
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
from app.repositories import turns as turns_repo
from app.repositories.event_channel import EventsOutOfOrder
from app.repositories.turns import TurnNotWritable
from app.services.turn.states import TERMINAL_EVENTS

logger = logging.getLogger(__name__)

# Numbered events wait at most this long before they are stored (readers here see them now;
# readers elsewhere when they are stored). Events coming faster share a batch.
FLUSH_INTERVAL_SECONDS = 0.005
# A batch never grows past this many events.
MAX_BATCH_EVENTS = 200
# A reader with nothing to tell it re-reads storage this often (a notifier with no listener).
POLL_INTERVAL_SECONDS = 0.5
READ_PAGE_SIZE = 500
# A reader this far behind the live events drops them and catches up from storage.
MAX_LIVE_BACKLOG = 1000


# An event not yet numbered: its name, data and transport cursor.
Event = tuple[str, dict[str, Any], str | None]


@dataclass(frozen=True)
class StoredEvent:
    """A numbered event (stored, or on its way to be: see the module's rule).

    `cursor`: where the transport resumes after it (stored with it on the turn, never shown).
    """

    seq: int
    name: str
    data: dict[str, Any]
    cursor: str | None = None


def last_cursor(events: Sequence[StoredEvent]) -> str | None:
    """The transport cursor after the last of `events` that has one."""
    return next((event.cursor for event in reversed(events) if event.cursor), None)


def in_order(events: Iterable[StoredEvent]) -> list[StoredEvent]:
    """By number, each number once."""
    return sorted({event.seq: event for event in events}.values(), key=lambda event: event.seq)


class Subscription:
    """One reader's view of a turn in this process: live events, and what storage has."""

    def __init__(self, turn_id: uuid.UUID, live: Iterable[StoredEvent]) -> None:
        self.turn_id = turn_id
        self.live: deque[StoredEvent] = deque(live)
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


class EventNotifier:
    """This process's switchboard for turn events: writers hand numbered events to readers,
    and whoever stores events (or learns that another process did) says so here.

    `recheck_seconds`: how long a reader waits for news before it re-reads storage itself.
    With no listener attached (tests, tools) that is the only way to see other processes.
    """

    def __init__(self, *, recheck_seconds: float = POLL_INTERVAL_SECONDS) -> None:
        self.recheck_seconds = recheck_seconds
        self._subscribers: dict[uuid.UUID, set[Subscription]] = defaultdict(set)
        self._writers: dict[uuid.UUID, list[EventWriter]] = defaultdict(list)

    # --- writers ----------------------------------------------------------------------------

    def attach(self, writer: EventWriter) -> None:
        self._writers[writer.turn_id].append(writer)

    def writer_of(self, turn_id: uuid.UUID) -> EventWriter | None:
        """The local writer of the turn, if this process runs it."""
        writers = self._writers.get(turn_id)
        return writers[-1] if writers else None

    def publish(self, turn_id: uuid.UUID, events: list[StoredEvent]) -> None:
        """Numbered events, in order, for this process's readers now."""
        for subscription in self._subscribers.get(turn_id, ()):
            if len(subscription.live) + len(events) > MAX_LIVE_BACKLOG:
                # Too far behind: keep only what storage does not have yet.
                subscription.live = deque(self._unstored(turn_id))
                subscription.wakeup.set()
            else:
                subscription.push(events)

    def stored(self, turn_id: uuid.UUID, seq: int | None) -> None:
        """The turn's events up to `seq` are stored (None: something was, read to see)."""
        for subscription in self._subscribers.get(turn_id, ()):
            subscription.stored(seq)

    def notify(self, turn_id: uuid.UUID) -> None:
        self.stored(turn_id, None)

    def forget(self, turn_id: uuid.UUID) -> None:
        """This process no longer runs the turn: drop its writers; readers look again."""
        self._writers.pop(turn_id, None)
        self.notify(turn_id)

    def wake_all(self) -> None:
        for turn_id in list(self._subscribers):
            self.notify(turn_id)

    def watched(self) -> list[uuid.UUID]:
        """Turns that have readers here."""
        return list(self._subscribers)

    # --- readers ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def subscribe(self, turn_id: uuid.UUID) -> Iterator[Subscription]:
        """Register a reader; it starts with the local writers' events not stored yet."""
        subscription = Subscription(turn_id, self._unstored(turn_id))
        self._subscribers[turn_id].add(subscription)
        try:
            yield subscription
        finally:
            readers = self._subscribers.get(turn_id)
            if readers is not None:
                readers.discard(subscription)
                if not readers:
                    del self._subscribers[turn_id]

    def _unstored(self, turn_id: uuid.UUID) -> list[StoredEvent]:
        writers = self._writers.get(turn_id, ())
        return in_order([event for writer in writers for event in writer.unstored])


class EventWriter:
    """Numbers one turn's events as they come, hands them to this process's readers, and
    stores them in batches (at most FLUSH_INTERVAL_SECONDS after the first).

    A database step (numbering or storing) is never cancelled halfway: it runs to its end even
    if the caller is cancelled, and `close` waits for it. A step that fails keeps its events
    (un-numbered, or numbered and still to be stored) and its error is raised to the turn (now,
    or by the next `emit`/`flush`/`close`). Only the runner holding the turn (`runner_id`) may
    write, and nothing is stored once the turn has ended: `TurnNotWritable` then tells the run
    that the turn was ended or taken elsewhere.
    """

    def __init__(
        self, db: Database, notifier: EventNotifier, turn_id: uuid.UUID, runner_id: str | None
    ) -> None:
        self.db = db
        self.notifier = notifier
        self.turn_id = turn_id
        self.runner_id = runner_id
        self.last_seq = 0  # the highest number this writer has stored
        self.unstored: list[StoredEvent] = []  # numbered and shown live, not stored yet
        self._pending: list[Event] = []  # emitted, not numbered yet
        self._lock = asyncio.Lock()  # one database step at a time, in order
        self._pump: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._draining = False
        self._store_due: float | None = None
        self._failure: Exception | None = None
        notifier.attach(self)

    async def emit(self, name: str, data: dict[str, Any], *, cursor: str | None = None) -> None:
        """Queue an event: readers here get it as soon as it is numbered; it is stored within
        FLUSH_INTERVAL_SECONDS (and with it `cursor`, the transport's resume point after it)."""
        self._raise_failure()
        self._pending.append((name, data, cursor))
        self._wake.set()
        if len(self._pending) + len(self.unstored) >= MAX_BATCH_EVENTS:
            await self.flush()
        elif self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run_pump(), name=f"events-{self.turn_id}")

    async def emit_now(self, name: str, data: dict[str, Any]) -> int:
        """Queue an event and store it (with everything before it); returns its number."""
        self._raise_failure()
        self._pending.append((name, data, None))
        await self.flush()
        return self.last_seq

    async def flush(self) -> None:
        """Number and store everything emitted so far."""
        async with self._lock:
            self._raise_failure()
            await self._to_the_end(self._number_pending)
            await self._to_the_end(self._store_unstored)

    async def drain(self) -> list[StoredEvent]:
        """Stop the pump, number what is emitted, and hand over what is not stored yet (the
        turn's ending stores it in its own transaction, then calls `handed_over`)."""
        if self._pump is not None and not self._pump.done():
            self._draining = True
            self._wake.set()
            try:
                await asyncio.shield(self._pump)
            finally:
                self._draining = False
        async with self._lock:
            self._raise_failure()
            await self._to_the_end(self._number_pending)
            return list(self.unstored)

    def handed_over(self, events: list[StoredEvent], *, stored: bool) -> None:
        """`events` (from `drain`) were stored by the caller, or will never be."""
        handed = {event.seq for event in events}
        self.unstored = [event for event in self.unstored if event.seq not in handed]
        if stored and events:
            self.last_seq = max(self.last_seq, events[-1].seq)

    async def close(self) -> None:
        """Store what is emitted, after any step in flight; stop the pump."""
        await self.drain()
        await self.flush()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Store everything, then hold off numbering while the block writes an event of the
        turn itself (so its number cannot overtake one this writer gave out)."""
        async with self._lock:
            self._raise_failure()
            await self._to_the_end(self._number_pending)
            await self._to_the_end(self._store_unstored)
            yield

    # --- the steps --------------------------------------------------------------------------

    async def _run_pump(self) -> None:
        """Number new events at once; store them when the first is FLUSH_INTERVAL old."""
        loop = asyncio.get_running_loop()
        try:
            while self._pending or (self.unstored and not self._draining):
                if self._pending:
                    async with self._lock:
                        await self._to_the_end(self._number_pending)
                    continue
                wait = (self._store_due or 0.0) - loop.time()
                if wait > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._wake.wait()
                    continue
                async with self._lock:
                    await self._to_the_end(self._store_unstored)
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

    async def _number_pending(self) -> None:
        """Take numbers from the turn row for the pending events, then show them live."""
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            async with self.db.session() as session:
                first = await turns_repo.take_event_numbers(
                    session, self.turn_id, len(batch), runner_id=self.runner_id
                )
        except BaseException:
            self._pending[:0] = batch
            raise
        numbered = [
            StoredEvent(first + i, name, data, cursor)
            for i, (name, data, cursor) in enumerate(batch)
        ]
        self.unstored.extend(numbered)
        if self._store_due is None:
            self._store_due = asyncio.get_running_loop().time() + FLUSH_INTERVAL_SECONDS
        self.notifier.publish(self.turn_id, numbered)

    async def _store_unstored(self) -> None:
        batch = list(self.unstored)
        if not batch:
            return
        rows = [(event.seq, event.name, event.data) for event in batch]
        try:
            async with self.db.session() as session:
                await event_channel.store_numbered_events(
                    session, self.turn_id, rows, runner_id=self.runner_id, cursor=last_cursor(batch)
                )
                await event_channel.notify_stored(session, self.turn_id, batch[-1].seq)
        except TurnNotWritable:
            self._drop(batch)  # the turn ended or moved on: these are never stored
            raise
        except EventsOutOfOrder:
            # An event of the turn was stored above them meanwhile (a cancel notice from a
            # process that could not wait): they are never stored, and the terminal says so.
            logger.warning("turn %s: %d events could not be stored", self.turn_id, len(batch))
            self._drop(batch)
            return
        self._drop(batch)
        self.last_seq = batch[-1].seq
        self.notifier.stored(self.turn_id, batch[-1].seq)

    def _drop(self, batch: list[StoredEvent]) -> None:
        del self.unstored[: len(batch)]
        self._store_due = None
        if self.unstored:
            self._store_due = asyncio.get_running_loop().time() + FLUSH_INTERVAL_SECONDS

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
    with notifier.subscribe(turn_id) as subscription:
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
    return events, len(events) == limit
