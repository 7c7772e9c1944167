"""A small Server-Sent Events reader for tests (what a browser's EventSource does)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

TERMINAL_EVENTS = frozenset(
    {"turn.completed", "turn.failed", "turn.cancelled", "turn.timed_out", "turn.permission"}
)


@dataclass
class SseEvent:
    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        return json.loads(self.data)


async def read_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """Events in arrival order; comment lines (pings) are skipped."""
    event, data, event_id = "message", [], None
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield SseEvent(event, "\n".join(data), event_id)
            event, data, event_id = "message", [], None
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value


async def collect_turn(response: httpx.Response) -> list[SseEvent]:
    """Every event of a prompt stream up to and including the terminal one."""
    events = []
    async for event in read_events(response):
        events.append(event)
        if event.event in TERMINAL_EVENTS:
            break
    return events


async def read_until(stream: AsyncIterator[SseEvent], name: str) -> list[SseEvent]:
    """Events from `stream` up to and including the first one called `name` (the stream
    stays open for the rest)."""
    seen = []
    async for event in stream:
        seen.append(event)
        if event.event == name:
            break
    return seen


def agent_id_in(events: list[SseEvent]) -> str:
    agent_id: str = next(e.json()["agent_id"] for e in events if e.event == "agent.created")
    return agent_id
