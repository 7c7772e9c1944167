"""Where a new session goes: up, holding its folder, fewest active turns, first on ties."""

from __future__ import annotations

import pytest

from app.errors import DaemonUnavailable, InvalidInput
from app.services.placement import Candidate, place


def _candidate(name: str, *, up: bool = True, holds: bool = True, active: int = 0) -> Candidate:
    return Candidate(name, up=up, holds_cwd=holds, active_turns=active)


def test_the_daemon_with_the_fewest_active_turns_wins() -> None:
    candidates = [_candidate("a", active=2), _candidate("b", active=0), _candidate("c", active=1)]
    assert place(candidates, "/w") == "b"


def test_a_tie_goes_to_the_daemon_configured_first() -> None:
    assert place([_candidate("b", active=1), _candidate("a", active=1)], "/w") == "b"


def test_a_daemon_that_is_down_or_lacks_the_folder_is_passed_over() -> None:
    candidates = [
        _candidate("down", up=False),
        _candidate("elsewhere", holds=False),
        _candidate("busy", active=9),
    ]
    assert place(candidates, "/w") == "busy"


def test_no_daemon_holding_the_folder_is_a_client_error() -> None:
    with pytest.raises(InvalidInput, match="inside no daemon's workspace roots") as caught:
        place([_candidate("a", holds=False), _candidate("b", holds=False)], "/etc")
    assert caught.value.extra["field"] == "cwd"


def test_every_daemon_for_the_folder_down_is_a_503_naming_them() -> None:
    candidates = [
        _candidate("a", up=False),
        _candidate("b", holds=False),
        _candidate("c", up=False),
    ]
    with pytest.raises(DaemonUnavailable, match=r"down \(a, c\)") as caught:
        place(candidates, "/w")
    assert caught.value.status == 503 and caught.value.extra["daemons"] == ["a", "c"]
    assert "Retry-After" in caught.value.headers
