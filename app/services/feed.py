"""In-process fan-out of one running turn's events to any number of listeners.

The turn's task publishes; each HTTP stream subscribes and gets every event from the start
(or after a sequence number), then live ones until the terminal event closes the feed. A
listener that goes away never slows or stops the turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

TERMINAL_EVENTS = frozenset(
    {"turn.completed", "turn.failed", "turn.cancelled", "turn.timed_out", "turn.permission"}
)


@dataclass(frozen=True)
class FeedEvent:
    seq: int
    name: str
    data: dict[str, Any]


class TurnFeed:
    def __init__(self) -> None:
        self._events: list[FeedEvent] = []
        self._changed = asyncio.Condition()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def events(self) -> list[FeedEvent]:
        return list(self._events)

    async def publish(self, name: str, data: dict[str, Any]) -> FeedEvent:
        if self._closed:
            raise RuntimeError(f"turn feed is closed; cannot publish {name!r}")
        event = FeedEvent(len(self._events) + 1, name, data)
        async with self._changed:
            self._events.append(event)
            if name in TERMINAL_EVENTS:
                self._closed = True
            self._changed.notify_all()
        return event

    async def close(self) -> None:
        async with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _has_news_after(self, position: int) -> Callable[[], bool]:
        return lambda: len(self._events) > position or self._closed

    async def subscribe(self, after: int = 0) -> AsyncIterator[FeedEvent]:
        """Events with seq > `after`, then live ones, until the feed closes."""
        position = after
        while True:
            async with self._changed:
                await self._changed.wait_for(self._has_news_after(position))
                fresh = self._events[position:]
                done = self._closed
            for event in fresh:
                yield event
            position += len(fresh)
            if done and position >= len(self._events):
                return
