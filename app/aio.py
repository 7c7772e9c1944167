"""Small asyncio helpers shared by the Paseo client and the services."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

KeyT = TypeVar("KeyT", bound=Hashable)
ResultT = TypeVar("ResultT")


async def shielded(coro: Coroutine[Any, Any, None]) -> None:
    """Run a cleanup coroutine to its end even if the awaiting task is being cancelled."""
    task = asyncio.ensure_future(coro)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel `task` if it still runs and wait until it has ended, so nothing is left behind.

    Its exception, if any, counts as retrieved (asyncio would log it otherwise); whoever wants
    the outcome reads it from the task afterwards.
    """
    if not task.done():
        task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()


class SingleFlight(Generic[KeyT, ResultT]):
    """Identical calls in flight share one: the first starts it, the others await its result.

    For reads only (a CLI call costs seconds and ~200 MiB): twenty `GET /agents` at once cost
    one `paseo ls`. A caller that is cancelled leaves the shared call running for the others;
    the last one out cancels it.
    """

    def __init__(self) -> None:
        self._running: dict[KeyT, tuple[asyncio.Task[ResultT], list[int]]] = {}

    async def run(self, key: KeyT, call: Callable[[], Awaitable[ResultT]]) -> ResultT:
        entry = self._running.get(key)
        if entry is None:
            entry = (asyncio.ensure_future(call()), [0])
            self._running[key] = entry
            entry[0].add_done_callback(lambda _: self._forget(key, entry))
        task, waiters = entry
        waiters[0] += 1
        try:
            return await asyncio.shield(task)
        finally:
            waiters[0] -= 1
            if waiters[0] == 0 and not task.done():
                await cancel_and_wait(task)

    def _forget(self, key: KeyT, entry: tuple[asyncio.Task[ResultT], list[int]]) -> None:
        if self._running.get(key) is entry:
            del self._running[key]
