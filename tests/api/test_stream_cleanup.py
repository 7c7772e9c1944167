"""An event stream whose client went away leaves nothing running behind it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import anyio

from app.api.turns import _stream
from app.services.turn.events import StoredEvent

WAIT_SECONDS = 60  # a deadline only: generous for a loaded machine


async def test_a_disconnected_stream_leaves_no_task_and_closes_its_source() -> None:
    closed = asyncio.Event()

    async def events() -> AsyncIterator[StoredEvent]:
        try:
            yield StoredEvent(1, "text", {"delta": "a"})
            await asyncio.Event().wait()  # a turn that goes on and on
            yield StoredEvent(2, "text", {"delta": "never"})  # pragma: no cover
        finally:
            closed.set()

    before = asyncio.all_tasks()
    stream = _stream(events(), anyio.Event(), "/sessions/s/turns/t/events")
    first = await anext(stream)
    assert first.id == "1"
    waiting = asyncio.ensure_future(anext(stream))
    async with asyncio.timeout(WAIT_SECONDS):
        while len(asyncio.all_tasks() - before) < 3:  # this step and its two helpers
            await asyncio.sleep(0)
    waiting.cancel()  # what a client disconnect does to the response's generator
    await asyncio.wait({waiting})
    await stream.aclose()

    assert closed.is_set()
    async with asyncio.timeout(WAIT_SECONDS):
        while left := {task for task in asyncio.all_tasks() - before if not task.done()}:
            await asyncio.sleep(0)
    assert not left
