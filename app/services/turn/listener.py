"""Wakes this process's readers when another process stores events of a turn they follow.

PostgreSQL: one LISTEN connection per process (not one per reader). Each notice names a turn
and its highest stored number, so only readers behind it read storage. A notice can be
missed only while the connection is down; so after every (re)connect, and on a slow timer
while listening, one query re-checks the stored heads of every followed turn. While not
listening (or on SQLite, which is one process by design) that same re-check runs often: one
query per interval for all readers together, never one per reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from app.aio import cancel_and_wait
from app.db import Database
from app.repositories import event_channel
from app.services.turn.events import EventNotifier

logger = logging.getLogger(__name__)

# While listening: the slow re-check, in case a notice was lost anyway.
LISTENING_RECHECK_SECONDS = 30.0
# Not listening (SQLite, or the connection is down): the cheap shared re-check.
UNHEARD_RECHECK_SECONDS = 0.5
# A reader re-reads on its own only this rarely once a listener looks after it.
READER_RECHECK_SECONDS = 300.0
# Waits between attempts to (re)open the listening connection.
RECONNECT_SECONDS = 1.0
# The listening connection is pinged this often (a dead one may not say it died).
PING_SECONDS = 10.0


class EventListener:
    """Feeds `notifier` with what other processes store: LISTEN/NOTIFY and a shared re-check."""

    def __init__(
        self,
        db: Database,
        database_url: str,
        notifier: EventNotifier,
        *,
        listening_recheck_seconds: float = LISTENING_RECHECK_SECONDS,
        unheard_recheck_seconds: float = UNHEARD_RECHECK_SECONDS,
    ) -> None:
        self.db = db
        self.database_url = database_url
        self.notifier = notifier
        self.listening_recheck_seconds = listening_recheck_seconds
        self.unheard_recheck_seconds = unheard_recheck_seconds
        self.listening = asyncio.Event()
        self.connections = 0  # how many times the LISTEN connection was opened
        self.backend_pid: int | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.notifier.recheck_seconds = READER_RECHECK_SECONDS
        self._task = asyncio.create_task(self._run(), name="event-listener")

    async def aclose(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)

    async def _run(self) -> None:
        if not event_channel.supports_listen(self.database_url):
            await self._recheck_every(self.unheard_recheck_seconds)
            return
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("listening for turn events failed; retrying", exc_info=True)
            self.listening.clear()
            self.backend_pid = None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RECONNECT_SECONDS):
                    await self._recheck_every(self.unheard_recheck_seconds)

    async def _listen(self) -> None:
        """One listening connection, until it is lost."""
        self._lost.clear()
        connection = await event_channel.listen(self.database_url, self._on_notice, self._lost.set)
        try:
            self.connections += 1
            self.backend_pid = connection.get_server_pid()
            self.listening.set()
            await self._recheck()  # whatever was stored while nobody listened
            pinger = asyncio.create_task(self._ping(connection))
            checker = asyncio.create_task(self._recheck_every(self.listening_recheck_seconds))
            try:
                await self._lost.wait()
            finally:
                await cancel_and_wait(pinger)
                await cancel_and_wait(checker)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), timeout=2)

    async def _ping(self, connection: Any) -> None:
        while True:
            await asyncio.sleep(PING_SECONDS)
            try:
                async with asyncio.timeout(PING_SECONDS):
                    await event_channel.ping(connection)
            except Exception:
                self._lost.set()
                return

    def _on_notice(self, payload: str) -> None:
        notice = event_channel.parse_notice(payload)
        if notice is not None:
            self.notifier.stored(*notice)

    async def _recheck_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self._recheck()
            except Exception:
                logger.warning("re-checking stored turn events failed", exc_info=True)

    async def _recheck(self) -> None:
        """One query for the stored heads of every turn read here; readers behind read."""
        turn_ids = self.notifier.watched()
        if not turn_ids:
            return
        async with self.db.read() as session:
            heads = await event_channel.stored_heads(session, turn_ids)
        for turn_id, seq in heads.items():
            self.notifier.stored(turn_id, seq)
