"""Turn limits: the wall-clock timeout and the cap on turns running at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import (
    AUTH,
    Gateway,
    empty_database,
    gateway_env,
    start_gateway,
    stop_gateway,
)
from tests.api.test_prompt import INSTANT, INSTANT_REPLY, new_session
from tests.fakes.harness import FakePaseoDaemon, Hold
from tests.sse import collect_turn, read_events

# The wall-clock limit of the tight gateway's turns. The second turn must be admitted (and
# queued) before the first one's limit frees its place: the limit runs from before the first
# agent is created (a CLI child), so it must outlast that and one more request on a loaded
# machine, with room to spare.
TURN_TIMEOUT_SECONDS = 10


@pytest.fixture(scope="module")
def tight_gateway(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """One turn at a time, and each may run for a few seconds only."""
    log_dir = tmp_path_factory.mktemp("tight")
    limits = {
        "PASEO_GATEWAY_TURN_TIMEOUT_SECONDS": str(TURN_TIMEOUT_SECONDS),
        "PASEO_GATEWAY_MAX_CONCURRENT_TURNS": "1",
    }
    with empty_database("sqlite", log_dir) as url:
        gateway = start_gateway(log_dir, gateway_env(url, fake_daemon, agent_cwd, **limits))
        try:
            yield gateway
        finally:
            stop_gateway(gateway)


@pytest.fixture
async def tight(tight_gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(headers=AUTH, base_url=tight_gateway.url, timeout=60) as http:
        yield http


async def test_timeout_stops_the_agent_and_later_turns_queue(
    tight: httpx.AsyncClient, hold: Hold
) -> None:
    """A turn that would run on and on (`hold`) is ended by the limit alone; the turn queued
    behind it then gets its place."""
    slow = await new_session(tight, provider="mock", model="one-minute-stream")
    quick = await new_session(tight)
    async with tight.stream(
        "POST", f"/sessions/{slow['id']}/prompt", json={"prompt": hold.prompt("long work")}
    ) as slow_stream:
        # Answered: the slow turn holds the one place (its prompt is with Paseo).
        assert slow_stream.status_code == 200
        slow_events = read_events(slow_stream)
        async with tight.stream(
            "POST", f"/sessions/{quick['id']}/prompt", json={"prompt": INSTANT}
        ) as quick_stream:
            assert quick_stream.status_code == 200
            quick_events = await collect_turn(quick_stream)
        rest = [event async for event in slow_events]
    names = [event.event for event in quick_events]
    assert names[:2] == ["turn.started", "turn.queued"]
    assert names[-1] == "turn.completed"
    assert quick_events[-1].json()["final_text"] == INSTANT_REPLY

    timed_out = rest[-1]
    assert timed_out.event == "turn.timed_out"
    assert timed_out.json()["error_code"] == "turn_timeout"
    turn = (await tight.get(f"/sessions/{slow['id']}/turns/{timed_out.json()['turn_id']}")).json()
    assert turn["status"] == "timed_out" and turn["finished_at"]
    deadline = time.monotonic() + 60  # generous: a loaded machine
    detail = (await tight.get(f"/sessions/{slow['id']}")).json()
    while detail["agent"]["status"] != "idle" and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        detail = (await tight.get(f"/sessions/{slow['id']}")).json()
    assert detail["agent"]["status"] == "idle"  # the gateway stopped it
