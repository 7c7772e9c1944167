"""The daemons by name, the one decision of whether each is up, and the admission of prompts."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from app.errors import DaemonUnavailable, UnknownDaemon
from app.paseo.cli.client import CliPaseoClient
from app.paseo.daemons import Daemon
from app.paseo.errors import PaseoError
from app.paseo.types import DaemonFacts, DaemonLink
from app.services.daemons import (
    RETRY_DOWN_SECONDS,
    Answer,
    CheckOutcome,
    Daemons,
    DaemonState,
    check_outcome,
    daemon_state,
)
from tests.fakes.harness import FAKE_PASEO_BIN, cli_calls

CONNECTED = DaemonLink("connected")
CLOSED = DaemonLink("disconnected", "ConnectionRefusedError: [Errno 111] Connect call failed")
NO_SOCKET = DaemonLink("unknown")


@pytest.fixture
def daemons(tmp_path: Path) -> Daemons:
    client = CliPaseoClient(str(FAKE_PASEO_BIN), host="127.0.0.1:1", home=str(tmp_path))
    return Daemons([Daemon("a", client), Daemon("b", client)])


def test_an_unknown_name_is_refused_naming_the_known_ones(daemons: Daemons) -> None:
    assert daemons.get("b").name == "b"
    with pytest.raises(UnknownDaemon, match="no daemon 'z'; this gateway serves 'a', 'b'"):
        daemons.get("z")


def test_a_gateway_serves_at_least_one_daemon() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Daemons([])


# --- the decision ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "answer", "slow", "state"),
    [
        # A socket says it all, whatever a check said before it opened or closed.
        (CONNECTED, None, False, "up"),
        (CONNECTED, "unreachable", True, "up"),
        (CLOSED, "ok", False, "down"),
        (CLOSED, None, False, "down"),
        # No socket (the CLI): only an answer that nothing is there is down.
        (NO_SOCKET, None, False, "up"),  # not checked yet
        (NO_SOCKET, "ok", False, "up"),
        (NO_SOCKET, "unreachable", False, "down"),
        (NO_SOCKET, "unreachable", True, "down"),  # a slow check after it proves nothing
        (NO_SOCKET, "ok", True, "degraded"),  # the check ran out of time on our side
        (NO_SOCKET, None, True, "degraded"),
        (NO_SOCKET, "failed", False, "degraded"),  # it answered, with something else
    ],
)
def test_the_state_comes_from_the_socket_else_from_what_the_checks_proved(
    link: DaemonLink, answer: Answer | None, slow: bool, state: DaemonState
) -> None:
    assert daemon_state(link, answer, slow) == state


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (PaseoError("DAEMON_NOT_RUNNING", "Cannot connect to daemon at h:1"), "unreachable"),
        (PaseoError("UNKNOWN_ERROR", "connect ECONNREFUSED 127.0.0.1:1"), "unreachable"),
        (PaseoError("PASEO_NOT_INSTALLED", "no such file"), "unreachable"),
        (PaseoError("CLI_TIMEOUT", "paseo ls did not finish within 60 s"), "slow"),
        # The CLI's own connect timeout: on a starved machine, that is our side too.
        (
            PaseoError("DAEMON_NOT_RUNNING", "Cannot connect to daemon at h:1: Connection timeout"),
            "slow",
        ),
        (PaseoError("DAEMON_TIMEOUT", "the daemon did not answer ping"), "slow"),
        (PaseoError("BAD_OUTPUT", "could not parse the output of `paseo ls`"), "failed"),
        (PaseoError("CLI_FAILED", "paseo exited 1"), "failed"),
    ],
)
def test_only_paseos_own_word_or_a_refused_connection_says_unreachable(
    error: PaseoError, outcome: CheckOutcome
) -> None:
    assert check_outcome(error) == outcome


# --- admission -------------------------------------------------------------------------------


async def test_a_cli_daemon_found_down_is_refused_after_one_check_shared_by_every_prompt(
    tmp_path: Path,
) -> None:
    log = tmp_path / "argv.jsonl"
    client = CliPaseoClient(
        str(FAKE_PASEO_BIN),
        host="127.0.0.1:1",
        home=str(tmp_path),
        base_env={**os.environ, "FAKE_PASEO_ARGV_LOG": str(log)},
    )
    daemons = Daemons([Daemon("a", client), Daemon("b", client)])
    try:
        await daemons.admit("a")  # not checked yet: nothing proves it down
        assert cli_calls(log, "ls") == 0
        await daemons.check("a")
        status = daemons.status("a")
        assert (status.state, status.link.state) == ("down", "unknown")
        assert "DAEMON_NOT_RUNNING" in status.reason and status.checked_at is not None
        assert daemons.state("b") == "up" and daemons.any_down()
        refusals = await asyncio.gather(
            *(daemons.admit("a") for _ in range(5)), return_exceptions=True
        )
        # One more check was the attempt, for all five (each waited at most a second for it).
        assert all(isinstance(refused, DaemonUnavailable) for refused in refusals)
        refused = refusals[0]
        assert isinstance(refused, DaemonUnavailable)
        assert refused.headers["Retry-After"] == RETRY_DOWN_SECONDS
        assert refused.extra["daemon"] == "a" and "daemon 'a' is down" in refused.detail
        async with asyncio.timeout(60):  # the attempt's check, if it outlived the wait
            while daemons.status("a").checked_at == status.checked_at:
                await asyncio.sleep(0.05)
        assert cli_calls(log, "ls") == 2
    finally:
        await daemons.aclose()


class _Socketed:
    """A transport with a socket: closed until `connect`, which opens it when `comes_back`."""

    def __init__(self, *, comes_back: bool) -> None:
        self.link = CLOSED
        self.comes_back = comes_back
        self.attempts = 0

    async def ping(self) -> DaemonFacts:
        raise PaseoError("DAEMON_NOT_RUNNING", "cannot talk to the Paseo daemon")

    async def connect(self, timeout: float) -> DaemonLink:
        self.attempts += 1
        if self.comes_back:
            self.link = CONNECTED
        return self.link

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize("comes_back", [True, False])
async def test_a_closed_socket_is_down_at_once_and_a_prompt_tries_to_open_it(
    comes_back: bool,
) -> None:
    transport = _Socketed(comes_back=comes_back)
    daemons = Daemons([Daemon("a", transport)])  # type: ignore[arg-type]
    assert daemons.state("a") == "down"  # no check needed: the socket is closed
    if comes_back:
        await daemons.admit("a")
        assert daemons.state("a") == "up"
        await daemons.admit("a")  # up now: no attempt at all
    else:
        with pytest.raises(DaemonUnavailable, match="its WebSocket is closed"):
            await daemons.admit("a")
    assert transport.attempts == 1


def test_a_transport_that_keeps_no_link_counts_as_the_cli() -> None:
    """A test double of the interface without `link` is a daemon with no socket to say."""

    class _Bare:
        async def aclose(self) -> None:
            return None

    daemons = Daemons([Daemon("a", _Bare())])  # type: ignore[arg-type]
    assert daemons.status("a").link.state == "unknown" and daemons.state("a") == "up"
