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
            await asyncio.wait_for(wakeup.wait(), timeout)


class EventWriter:
    """Numbers one turn's events and stores them in batches; `close` flushes the rest."""

    def __init__(
        self, db: Database, notifier: EventNotifier, turn_id: uuid.UUID, last_seq: int = 0
    ) -> None:
        self.db = db
        self.notifier = notifier
        self.turn_id = turn_id
        self.seq = last_seq
        self._buffer: list[tuple[int, str, dict[str, Any]]] = []
        self._lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._failure: Exception | None = None

    async def emit(self, name: str, data: dict[str, Any]) -> int:
        """Queue an event; it is stored within FLUSH_INTERVAL_SECONDS."""
        if self._failure is not None:
            await self.flush()  # raises the stored failure
        self.seq += 1
        self._buffer.append((self.seq, name, data))
        if len(self._buffer) >= MAX_BATCH_EVENTS:
            await self.flush()
        elif self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())
        return self.seq

    async def emit_now(self, name: str, data: dict[str, Any]) -> int:
        """Queue an event and store it (with anything buffered) before returning."""
        seq = await self.emit(name, data)
        await self.flush()
        return seq

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_INTERVAL_SECONDS)
        with contextlib.suppress(Exception):  # kept in `_failure`; the next call raises it
            await self.flush()

    async def flush(self) -> None:
        """Store the buffered events. A batch that fails stays buffered and the error is raised
        (now, or by the next `emit`/`close` if a timer hit it): nothing is dropped silently."""
        async with self._lock:
            if self._failure is not None:
                failure, self._failure = self._failure, None
                raise failure
            batch, self._buffer = self._buffer, []
            if not batch:
                return
            try:
                async with self.db.session() as session:
                    await events_repo.append_events(session, self.turn_id, batch)
            except Exception as exc:
                self._buffer[:0] = batch
                self._failure = exc
                raise
        self.notifier.notify(self.turn_id)

    async def close(self) -> None:
        """Store what is buffered; stop the pending timer."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()


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
