"""The daemons this gateway serves, by name, and what this process last heard of each.

Which daemon a session lives on is the database's (`sessions.daemon`); whether a daemon is
up is only this process's latest observation (a background check every few seconds), used
to place new sessions and to answer readiness, never to decide a turn's outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

from app.errors import DaemonUnavailable, UnknownDaemon
from app.metrics import DAEMON_UP
from app.paseo.client import PaseoClient
from app.paseo.daemon_config import DEFAULT_DAEMON
from app.paseo.daemons import Daemon

# What a refusal for a daemon that is down tells the client to wait.
RETRY_DOWN_SECONDS = "10"


class Daemons:
    """Named daemons in their configured order (placement breaks ties by it)."""

    def __init__(self, daemons: Sequence[Daemon]) -> None:
        if not daemons:
            raise ValueError("a gateway serves at least one daemon")
        self._by_name = {daemon.name: daemon for daemon in daemons}
        self._down: dict[str, str] = {}  # name -> what its latest check found

    @classmethod
    def single(cls, client: PaseoClient, workspace_roots: Sequence[str] = ()) -> Daemons:
        """The one-daemon gateway: `client` as the daemon every session is on."""
        return cls([Daemon(DEFAULT_DAEMON, client, tuple(workspace_roots))])

    def __iter__(self) -> Iterator[Daemon]:
        return iter(self._by_name.values())

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def get(self, name: str) -> Daemon:
        """The daemon called `name`; 422 naming the known ones if there is none."""
        daemon = self._by_name.get(name)
        if daemon is None:
            raise UnknownDaemon(
                f"no daemon {name!r}; this gateway serves {', '.join(map(repr, self.names))}",
                field="daemon",
                daemon=name,
            )
        return daemon

    def mark(self, name: str, *, up: bool, detail: str = "") -> None:
        """Record what the latest check of `name` found (`detail`: why it is down)."""
        if up:
            self._down.pop(name, None)
        else:
            self._down[name] = detail or "it did not answer"
        DAEMON_UP.labels(daemon=name).set(1 if up else 0)

    def is_up(self, name: str) -> bool:
        """Up unless the latest check found it down (before any check: assumed up)."""
        return name not in self._down

    def refuse_if_down(self, name: str) -> None:
        """503 naming the daemon when its latest check found it down: a prompt for it is
        refused before anything is stored, rather than failing once it was taken."""
        reason = self._down.get(name)
        if reason is not None:
            raise DaemonUnavailable(
                f"daemon {name!r} is down ({reason}); try again once it is back",
                headers={"Retry-After": RETRY_DOWN_SECONDS},
                daemon=name,
            )

    async def aclose(self) -> None:
        await asyncio.gather(*(daemon.aclose() for daemon in self), return_exceptions=True)
