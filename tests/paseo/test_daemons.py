"""A named daemon passes every call to its transport and names itself on each failure."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest

from app.errors import from_paseo
from app.paseo.cli.client import CliPaseoClient
from app.paseo.client import PaseoClient
from app.paseo.daemons import Daemon
from app.paseo.errors import PaseoError
from app.paseo.types import NewAgent, TextDelta, TurnEvent, TurnStarted
from tests.fakes.harness import FAKE_PASEO_BIN


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
        self, agent: NewAgent, prompt: str, *, turn_key: str | None = None
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
