"""A turn's events: numbered, written to the database in small batches, read back by anyone.

The database is the only source the event streams read from, so a client that reconnects to
any gateway process (with `Last-Event-ID`) gets every event exactly once and in order. The
writer wakes readers in its own process at once; readers elsewhere poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from app.db import Database
from app.repositories import turn_events as events_repo
from app.services.turn_states import TERMINAL_EVENTS

logger = logging.getLogger(__name__)

# Buffered events wait at most this long before they are written (and streamed).
FLUSH_INTERVAL_SECONDS = 0.1
# A batch never grows past this many events.
MAX_BATCH_EVENTS = 200
# Readers in other processes learn of new events by polling this often.
POLL_INTERVAL_SECONDS = 0.5
READ_PAGE_SIZE = 500


# An event not yet stored: its name and data (the number comes when it is stored).
Event = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    name: str
    data: dict[str, Any]


class EventNotifier:
    """Wakes this process's readers of a turn when its writer has stored new events.

    A reader takes `version()` before it queries; `wait` then returns at once if a write
    happened since, so no wake-up is lost between the query and the wait.
    """

    def __init__(self) -> None:
        self._versions: dict[uuid.UUID, int] = defaultdict(int)
        self._wakeups: dict[uuid.UUID, asyncio.Event] = {}

    def version(self, turn_id: uuid.UUID) -> int:
        return self._versions[turn_id]

    def notify(self, turn_id: uuid.UUID) -> None:
        self._versions[turn_id] += 1
        wakeup = self._wakeups.pop(turn_id, None)
        if wakeup is not None:
            wakeup.set()

    def forget(self, turn_id: uuid.UUID) -> None:
        """The turn is over: drop its counter (a late reader simply polls once more)."""
        self._versions.pop(turn_id, None)
        self.notify(turn_id)
        self._versions.pop(turn_id, None)

    async def wait(self, turn_id: uuid.UUID, since: int, timeout: float) -> None:
        """Return when a write happened after `since`, or after `timeout` seconds."""
        if self._versions[turn_id] != since:
            return
        wakeup = self._wakeups.setdefault(turn_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await wakeup.wait()


class EventWriter:
    """Stores one turn's events in batches, numbered by the database as they are stored.

    A batch being written is never cancelled (the write is shielded; `close` waits for it):
    it is stored, or its error is raised to the turn, which then fails loudly. Only the
    runner holding the turn (`runner_id`) may write, and nothing is stored once the turn has
    ended: `TurnNotWritable` then tells the run that the turn was ended or taken elsewhere.
    """

    def __init__(
        self, db: Database, notifier: EventNotifier, turn_id: uuid.UUID, runner_id: str | None
    ) -> None:
        self.db = db
        self.notifier = notifier
        self.turn_id = turn_id
        self.runner_id = runner_id
        self.last_seq = 0
        self._buffer: list[Event] = []
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._failure: Exception | None = None

    async def emit(self, name: str, data: dict[str, Any]) -> None:
        """Queue an event; it is stored within FLUSH_INTERVAL_SECONDS."""
        self._raise_failure()
        self._buffer.append((name, data))
        if len(self._buffer) >= MAX_BATCH_EVENTS:
            await self.flush()
        elif self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._flush_soon())

    async def emit_now(self, name: str, data: dict[str, Any]) -> int:
        """Queue an event and store it (with anything buffered); returns its number."""
        await self.emit(name, data)
        await self.flush()
        return self.last_seq

    async def _flush_soon(self) -> None:
        """The timer: flush after FLUSH_INTERVAL_SECONDS, or at once when woken by `drain`.

        It is woken, never cancelled, so a flush it started always runs to its end.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FLUSH_INTERVAL_SECONDS):
                await self._wake.wait()
        with contextlib.suppress(Exception):  # kept in `_failure`; the next call raises it
            await self.flush()

    async def flush(self) -> None:
        """Store the buffered events. A batch that fails stays buffered and the error is raised
        (now, or by the next `emit`/`close` if the timer hit it): nothing is dropped silently."""
        async with self._lock:
            self._raise_failure()
            batch, self._buffer = self._buffer, []
            if not batch:
                return
            write = asyncio.ensure_future(self._store(batch))
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                # The caller is cancelled (shutdown): the write in flight still ends first, so
                # nothing written later can overtake it.
                await asyncio.wait({write})
                self._settle(write, batch, raise_failure=False)
                raise
            self._settle(write, batch, raise_failure=True)

    def _settle(
        self, write: asyncio.Future[list[int]], batch: list[Event], *, raise_failure: bool
    ) -> None:
        if write.cancelled() or write.exception() is not None:
            failure = write.exception() if not write.cancelled() else None
            self._buffer[:0] = batch
            self._failure = (
                failure
                if isinstance(failure, Exception)
                else RuntimeError("the event write was cancelled")
            )
            if raise_failure:
                self._raise_failure()
            return
        self.last_seq = write.result()[-1]
        self.notifier.notify(self.turn_id)

    async def _store(self, batch: list[Event]) -> list[int]:
        async with self.db.session() as session:
            return await events_repo.append_next_events(
                session, self.turn_id, batch, runner_id=self.runner_id
            )

    async def drain(self) -> list[Event]:
        """Stop the timer, wait for a write in flight, and hand over what is still buffered
        (the turn's ending stores it in its own transaction)."""
        if self._timer is not None and not self._timer.done():
            self._wake.set()
            await asyncio.shield(self._timer)
        self._wake = asyncio.Event()
        async with self._lock:
            self._raise_failure()
            batch, self._buffer = self._buffer, []
        return batch

    async def close(self) -> None:
        """Store what is buffered, after any write in flight; stop the timer."""
        batch = await self.drain()
        self._buffer[:0] = batch
        await self.flush()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure


async def follow_events(
    db: Database, notifier: EventNotifier, turn_id: uuid.UUID, *, after: int = 0
) -> AsyncIterator[StoredEvent]:
    """Stored events with seq > `after`, then new ones as they are stored, until the terminal."""
    position = after
    while True:
        version = notifier.version(turn_id)
        async with db.session() as session:
            rows = await events_repo.list_events(
                session, turn_id, after_seq=position, limit=READ_PAGE_SIZE
            )
        for row in rows:
            position = row.seq
            yield StoredEvent(row.seq, row.name, dict(row.data or {}))
            if row.name in TERMINAL_EVENTS:
                return
        if len(rows) < READ_PAGE_SIZE:
            await notifier.wait(turn_id, version, POLL_INTERVAL_SECONDS)
