"""The small asyncio helpers: SingleFlight shares one call among identical callers."""

from __future__ import annotations

import asyncio

from app.aio import SingleFlight


async def test_callers_in_flight_share_one_call_and_its_result() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    release = asyncio.Event()
    calls = 0

    async def call() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return calls

    waiters = [asyncio.create_task(flight.run("ls", call)) for _ in range(5)]
    await asyncio.sleep(0)  # every waiter is now waiting on the one call
    release.set()
    assert await asyncio.gather(*waiters) == [1] * 5
    assert await flight.run("ls", call) == 2  # a later call is a new one


async def test_a_cancelled_caller_leaves_the_call_to_the_others() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    release = asyncio.Event()

    async def call() -> str:
        await release.wait()
        return "done"

    first = asyncio.create_task(flight.run("k", call))
    second = asyncio.create_task(flight.run("k", call))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    release.set()
    assert await second == "done"


async def test_the_last_caller_out_cancels_the_call() -> None:
    flight: SingleFlight[str, None] = SingleFlight()
    cancelled = asyncio.Event()

    async def call() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    only = asyncio.create_task(flight.run("k", call))
    await asyncio.sleep(0)
    only.cancel()
    await asyncio.gather(only, return_exceptions=True)
    assert cancelled.is_set()
