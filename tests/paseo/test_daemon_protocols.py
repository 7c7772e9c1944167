"""The daemon transport against each Paseo release the fake speaks: it follows a turn on
every one, takes only what it subscribed to where the daemon offers subscriptions (so the
legacy broadcast, gone after 2027-03, is not needed), authenticates through `hello.auth`
where the bearer subprotocol is gone, and holds its socket past the daemon's lease."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.paseo.daemon.client import DaemonPaseoClient
from app.paseo.daemon.connection import DaemonConnection
from app.paseo.daemon.protocol import Delivery
from app.paseo.daemon.target import DaemonTarget, parse_host
from app.paseo.errors import PaseoError
from app.paseo.types import AgentStarted, NewAgent, TurnEnded, TurnEvent
from tests.conftest import release_when
from tests.fakes.fake_paseo_versions import RELEASES
from tests.fakes.harness import FakePaseoDaemon, Hold

INSTANT = "emit 3 coalesced agent stream updates"
INSTANT_REPLY = "stress-update-0stress-update-1stress-update-2"
DELIVERY = {"0.1.65": Delivery.LEGACY, "0.5": Delivery.SELECTIVE, "current": Delivery.OWNED}


class RecordingConnection(DaemonConnection):
    """A connection that notes which agents' stream frames reached it."""

    def __init__(self, target: DaemonTarget, **options: Any) -> None:
        super().__init__(target, **options)
        self.streamed_agents: set[str] = set()

    def _route(self, frame: dict[str, Any]) -> None:
        message = frame.get("message") or {}
        if message.get("type") == "agent_stream":
            self.streamed_agents.add(str((message.get("payload") or {}).get("agentId")))
        super()._route(frame)


@pytest.fixture(params=sorted(DELIVERY))
def release(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


@pytest.fixture
def fake(release: str, tmp_path: Path) -> AsyncIterator[FakePaseoDaemon]:
    with FakePaseoDaemon(tmp_path / "home", extra_env={"FAKE_PASEO_VERSION": release}) as daemon:
        yield daemon


def _agent(cwd: Path) -> NewAgent:
    return NewAgent(provider="mock", model="ten-second-stream", cwd=str(cwd), title="protocols")


async def _turn(events: AsyncIterator[TurnEvent]) -> tuple[str, TurnEnded]:
    collected = [event async for event in events]
    agent_id = next(e.agent.agent_id for e in collected if isinstance(e, AgentStarted))
    ended = collected[-1]
    assert isinstance(ended, TurnEnded)
    return agent_id, ended


async def test_a_socket_gets_only_the_agents_it_follows_where_paseo_can_do_that(
    fake: FakePaseoDaemon, release: str, agent_cwd: Path
) -> None:
    target = parse_host(fake.host)
    watcher = RecordingConnection(target)
    ours, theirs = DaemonPaseoClient(target, connection=watcher), DaemonPaseoClient(target)
    try:
        facts = await ours.ping()
        assert facts.protocol == DELIVERY[release].value
        assert facts.version == RELEASES[release].version
        mine, ended = await _turn(ours.start_agent_turn(_agent(agent_cwd), INSTANT))
        assert (ended.outcome, ended.final_text) == ("completed", INSTANT_REPLY)
        other, _ = await _turn(theirs.start_agent_turn(_agent(agent_cwd), INSTANT))
        # Our agent again, after the other's turn: every frame of it has been routed by now.
        _, again = await _turn_of(ours, mine)
        assert again.final_text == INSTANT_REPLY
        assert mine in watcher.streamed_agents
        # A legacy daemon broadcasts every agent's stream; the others send what was asked.
        assert (other in watcher.streamed_agents) is (release == "0.1.65")
    finally:
        await ours.aclose()
        await theirs.aclose()


async def _turn_of(client: DaemonPaseoClient, agent_id: str) -> tuple[str, TurnEnded]:
    collected = [event async for event in client.prompt_agent_turn(agent_id, INSTANT)]
    ended = collected[-1]
    assert isinstance(ended, TurnEnded) and ended.outcome == "completed"
    return agent_id, ended


@pytest.mark.parametrize("password", ["s3cret", "p w@/x:%"])
async def test_a_password_is_taken_in_the_hello_where_the_subprotocol_is_gone(
    tmp_path: Path, agent_cwd: Path, password: str
) -> None:
    env = {"FAKE_PASEO_VERSION": "current"}
    with FakePaseoDaemon(tmp_path / "home", password=password, extra_env=env) as fake:
        target = parse_host(fake.host)
        assert target.password == password
        right = DaemonPaseoClient(target)
        wrong = DaemonPaseoClient(DaemonTarget(target.url, password="nope"))
        try:
            _, ended = await _turn(right.start_agent_turn(_agent(agent_cwd), INSTANT))
            assert ended.final_text == INSTANT_REPLY
            with pytest.raises(PaseoError) as refused:
                await wrong.ping()
            assert refused.value.code == "DAEMON_NOT_RUNNING"
            assert "incorrect_password" in refused.value.message
        finally:
            await right.aclose()
            await wrong.aclose()


async def test_the_socket_outlives_the_daemons_lease(
    tmp_path: Path, agent_cwd: Path, hold: Hold
) -> None:
    """A daemon from 0.2.3 cuts a pinging socket that stays silent past its lease: keepalive
    pings hold it through a turn many leases long (held running until three leases passed).
    The pings come every quarter lease; a lease of 2 s leaves them 1.5 s of lateness on a
    loaded machine."""
    lease = 2.0
    env = {"FAKE_PASEO_VERSION": "current", "FAKE_PASEO_SOCKET_LEASE_SECONDS": str(lease)}
    with FakePaseoDaemon(tmp_path / "home", extra_env=env, time_scale=0.5) as fake:
        target = parse_host(fake.host)
        connection = DaemonConnection(target, keepalive=lease / 4)
        client = DaemonPaseoClient(target, connection=connection)
        loop = asyncio.get_running_loop()
        started = float("inf")  # from when the socket is open
        releaser = asyncio.create_task(
            release_when(hold, lambda: loop.time() - started > 3 * lease)
        )
        try:
            await client.ping()
            socket = connection._socket
            started = loop.time()
            _, ended = await _turn(client.start_agent_turn(_agent(agent_cwd), hold.prompt()))
            assert await releaser  # released by the clock, not given up
            assert ended.outcome == "completed"
            assert loop.time() - started > 3 * lease
            assert connection._socket is socket  # never cut, never reconnected
        finally:
            releaser.cancel()
            await client.aclose()
