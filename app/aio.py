"""Small asyncio helpers shared by the Paseo client and the services."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


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
