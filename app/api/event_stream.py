"""A turn's stored events, followed for a Server-Sent Events answer that ends cleanly: at the
turn's end, when the client goes away, and when the server shuts down.

Both event formats the gateway speaks (its own, and OpenAI's chunks) render what this yields.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import AppStatus

from app.aio import cancel_and_wait
from app.metrics import ACTIVE_STREAMS
from app.services.turn.events import StoredEvent

SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
# How often an answer that is not a stream looks whether the server is stopping.
SHUTDOWN_POLL_SECONDS = 0.5
# After telling a stream the gateway stops, give the farewell this long to go out.
SHUTDOWN_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class ServerStopping:
    """The server shuts down before the turn ended; the client read up to `last_seq`."""

    last_seq: int


async def until_shutdown(
    events: AsyncIterator[StoredEvent], shutdown: anyio.Event
) -> AsyncGenerator[StoredEvent | ServerStopping, None]:
    """The events as they come; `ServerStopping` (and nothing after) when the server stops
    first (the turn itself goes on, elsewhere or after a restart).

    The helper tasks of each step are ended before the stream is: a client that disconnects
    (which cancels this generator) leaves no task behind and the event source closes cleanly.
    """
    ACTIVE_STREAMS.inc()
    last = 0
    upcoming: asyncio.Future[StoredEvent] | None = None
    stopping: asyncio.Future[Any] | None = None
    try:
        while True:
            upcoming = asyncio.ensure_future(anext(events))
            stopping = asyncio.ensure_future(shutdown.wait())
            await asyncio.wait({upcoming, stopping}, return_when=asyncio.FIRST_COMPLETED)
            await cancel_and_wait(stopping)
            if not upcoming.done():
                await cancel_and_wait(upcoming)
                yield ServerStopping(last)
                return
            try:
                event = upcoming.result()
            except StopAsyncIteration:
                return
            last = event.seq
            yield event
    finally:
        ACTIVE_STREAMS.dec()
        # Shielded: a disconnect cancels this generator's scope again at every await.
        with anyio.CancelScope(shield=True):
            for task in (upcoming, stopping):
                if task is not None:
                    await cancel_and_wait(task)
            await events.aclose()  # type: ignore[attr-defined]


def event_source(
    frames: AsyncIterator[ServerSentEvent],
    shutdown: anyio.Event,
    *,
    ping: float,
    headers: dict[str, str],
) -> EventSourceResponse:
    """The SSE answer; `shutdown` is the event `until_shutdown` watches."""
    return EventSourceResponse(
        frames,
        ping=ping,
        headers={**SSE_HEADERS, **headers},
        send_timeout=30,
        shutdown_event=shutdown,
        shutdown_grace_period=SHUTDOWN_GRACE_SECONDS,
    )


async def watch_shutdown(shutdown: anyio.Event) -> None:
    """Set `shutdown` once the server begins to stop (for a long answer that is not an
    event stream; sse-starlette tells its own streams).

    uvicorn waits for every open request before it stops, so a request that waits for a turn's
    end would otherwise hold a stopping server until the turn ends.
    """
    # A flag set from uvicorn's signal handler: looked at, as sse-starlette does itself.
    while not AppStatus.should_exit:  # noqa: ASYNC110
        await asyncio.sleep(SHUTDOWN_POLL_SECONDS)
    shutdown.set()
