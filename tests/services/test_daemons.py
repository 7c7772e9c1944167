"""The daemons by name, and what the latest check of each found."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import DaemonUnavailable, UnknownDaemon
from app.paseo.cli.client import CliPaseoClient
from app.paseo.daemons import Daemon
from app.services.daemons import Daemons
from tests.fakes.harness import FAKE_PASEO_BIN


@pytest.fixture
def daemons(tmp_path: Path) -> Daemons:
    client = CliPaseoClient(str(FAKE_PASEO_BIN), host="127.0.0.1:1", home=str(tmp_path))
    return Daemons([Daemon("a", client), Daemon("b", client)])


def test_an_unknown_name_is_refused_naming_the_known_ones(daemons: Daemons) -> None:
    assert daemons.get("b").name == "b"
    with pytest.raises(UnknownDaemon, match="no daemon 'z'; this gateway serves 'a', 'b'"):
        daemons.get("z")


def test_a_daemon_is_up_until_a_check_finds_it_down_and_again_once_one_finds_it_up(
    daemons: Daemons,
) -> None:
    assert daemons.is_up("a")
    daemons.refuse_if_down("a")  # nothing raised
    daemons.mark("a", up=False, detail="daemon_not_running: connection refused")
    assert not daemons.is_up("a") and daemons.is_up("b")
    with pytest.raises(DaemonUnavailable, match="connection refused") as caught:
        daemons.refuse_if_down("a")
    assert caught.value.extra["daemon"] == "a" and caught.value.headers["Retry-After"]
    daemons.mark("a", up=True)
    assert daemons.is_up("a")
    daemons.refuse_if_down("a")


def test_a_gateway_serves_at_least_one_daemon() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Daemons([])
