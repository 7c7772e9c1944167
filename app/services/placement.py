"""Where a new session goes: a pure decision over what is known of each daemon.

The policy: among daemons that are up and whose workspace roots hold the session's folder,
the one with the fewest active turns (counted in the database, so every replica agrees);
ties go to the daemon named first in the configuration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.errors import DaemonUnavailable, InvalidInput
from app.services.daemons import RETRY_DOWN_SECONDS


@dataclass(frozen=True)
class Candidate:
    """One daemon as placement sees it."""

    name: str
    up: bool
    holds_cwd: bool  # the session's folder is inside one of its workspace roots
    active_turns: int


def place(candidates: Sequence[Candidate], cwd: str) -> str:
    """The daemon for a new session in `cwd`; 422 when no daemon's roots hold `cwd`, 503
    when every daemon that could take it is down."""
    holding = [candidate for candidate in candidates if candidate.holds_cwd]
    if not holding:
        raise InvalidInput(
            f"cwd {cwd!r} is inside no daemon's workspace roots; pick a folder inside one, or "
            "name a daemon",
            field="cwd",
        )
    up = [candidate for candidate in holding if candidate.up]
    if not up:
        names = ", ".join(candidate.name for candidate in holding)
        raise DaemonUnavailable(
            f"every daemon that may work in {cwd!r} is down ({names}); try again later",
            headers={"Retry-After": RETRY_DOWN_SECONDS},
            daemons=[candidate.name for candidate in holding],
        )
    return min(up, key=lambda candidate: candidate.active_turns).name
