"""A named daemon passes every call to its transport and names itself on each failure."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest

from app.errors import from_paseo
from app.paseo.cli.client import CliPaseoClient
from app.paseo.client import PaseoClient
from app.paseo.daemon.connection import DaemonConnection
from app.paseo.daemon.target import parse_host
from app.paseo.daemons import Daemon
from app.paseo.errors import PaseoError
from app.paseo.media import NO_MEDIA, PromptMedia
from app.paseo.types import DaemonLink, NewAgent, TextDelta, TurnEvent, TurnStarted
from tests.fakes.harness import FAKE_PASEO_BIN, FakePaseoDaemon


def _protocol_methods() -> set[str]:
    return {
        name
        for name, member in vars(PaseoClient).items()
        if callable(member) and not name.startswith("_")
    }


def test_a_daemon_speaks_the_whole_client_interface() -> None:
    """A method added to `PaseoClient` and not to `Daemon` would reach no daemon."""
    missing = {name for name in _protocol_methods() if name not in vars(Daemon)}
    assert missing == set()
    for name in _protocol_methods():
        ours, theirs = getattr(Daemon, name), getattr(PaseoClient, name)
        assert inspect.signature(ours) == inspect.signature(theirs), name


async def test_a_failure_names_its_daemon(tmp_path: Path) -> None:
    transport = CliPaseoClient(str(FAKE_PASEO_BIN), host="127.0.0.1:1", home=str(tmp_path))
    daemon = Daemon("build-2", transport)
    try:
        with pytest.raises(PaseoError) as caught:
            await daemon.list_agents()
    finally:
        await daemon.aclose()
    assert caught.value.daemon == "build-2"
    problem = from_paseo(caught.value)
    assert problem.status == 503 and problem.extra["daemon"] == "build-2"
    assert problem.detail.startswith("daemon 'build-2': ")


class _EndlessTurns:
    """A transport whose turn never ends; it records when its stream is closed."""

    def __init__(self) -> None:
        self.closed = False

    async def _turn(self) -> AsyncIterator[TurnEvent]:
        try:
            yield TurnStarted()
            while True:
                yield TextDelta("more")
        finally:
            self.closed = True

    def start_agent_turn(
        self,
        agent: NewAgent,
        prompt: str,
        *,
        turn_key: str | None = None,
        media: PromptMedia = NO_MEDIA,
    ) -> AsyncIterator[TurnEvent]:
        return self._turn()


async def test_closing_a_turn_stream_closes_the_transports_at_once() -> None:
    """The transport's stream owns children to reap: it must not wait for the collector."""
    transport = _EndlessTurns()
    daemon = Daemon("a", cast(PaseoClient, transport))
    events = daemon.start_agent_turn(NewAgent(provider="mock", cwd="/tmp"), "hi")
    assert isinstance(await anext(events), TurnStarted)
    assert isinstance(await anext(events), TextDelta)
    await events.aclose()  # type: ignore[attr-defined]
    assert transport.closed


# --- the link: what the transport's own connection says ---------------------------------------


async def test_the_cli_keeps_no_link_and_has_nothing_to_connect(tmp_path: Path) -> None:
    daemon = Daemon("a", CliPaseoClient(str(FAKE_PASEO_BIN), host="127.0.0.1:1"))
    try:
        assert daemon.link == DaemonLink("unknown")
        assert await daemon.connect(30) == DaemonLink("unknown")
    finally:
        await daemon.aclose()


async def test_calls_made_while_the_loop_backs_off_share_one_attempt_made_at_once() -> None:
    """A daemon address that accepts and hangs up: every attempt fails, and is counted."""
    accepted = 0

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # Backoff of an hour: only the calls below make an attempt.
    connection = DaemonConnection(parse_host(f"127.0.0.1:{port}"), backoff=(3600.0, 3600.0))
    try:
        assert connection.link.state == "unknown"  # no attempt has ended yet
        first = await connection.connect_now(60)
        assert first.state == "disconnected" and first.reason and accepted == 1
        links = await asyncio.gather(*(connection.connect_now(60) for _ in range(10)))
        assert {link.state for link in links} == {"disconnected"} and accepted == 2
        with pytest.raises(PaseoError) as caught:  # a request asks for one too
            await connection.request({"type": "ping"}, replies={"pong"}, timeout=5)
        assert caught.value.code == "DAEMON_NOT_RUNNING"
        async with asyncio.timeout(60):  # it waited a second at most; its attempt goes on
            while accepted < 3:
                await asyncio.sleep(0.01)
        assert connection.link.state == "disconnected" and accepted == 3
    finally:
        await connection.aclose()
        server.close()
        await server.wait_closed()


async def test_a_closed_socket_is_disconnected_at_once_and_one_attempt_reopens_it(
    tmp_path: Path,
) -> None:
    fake = await asyncio.to_thread(FakePaseoDaemon(tmp_path / "home").start)
    connection = DaemonConnection(parse_host(fake.host), backoff=(3600.0, 3600.0))
    try:
        await connection.wait_connected()
        assert connection.link.state == "connected"
        await asyncio.to_thread(fake.kill)
        async with asyncio.timeout(60):
            while connection.link.state == "connected":
                await asyncio.sleep(0.01)
        assert connection.link.state == "disconnected"
        await asyncio.to_thread(fake.start)  # the same port; nothing reconnects by itself
        assert connection.link.state == "disconnected"
        assert (await connection.connect_now(60)).state == "connected"
        await connection.request({"type": "ping", "clientSentAt": 0}, replies={"pong"}, timeout=30)
    finally:
        await connection.aclose()
        await asyncio.to_thread(fake.stop)
