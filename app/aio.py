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
