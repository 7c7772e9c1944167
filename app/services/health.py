"""Readiness: can the gateway do its job now (database, paseo binary for the CLI transport,
daemon), and which transport and daemon it talks to."""

from __future__ import annotations

import asyncio
import os
import shutil
import time

from app.aio import cancel_and_wait
from app.db import Database
from app.paseo.types import DaemonFacts
from app.schemas import Readiness, ReadinessCheck
from app.services.daemons import Daemons, DaemonStatus

# The daemon is asked this often in the background (a CLI call costs 1-13 s and ~200 MiB, too
# much for every probe); a check still running after this long is late (the daemon counts as
# degraded meanwhile). Readiness answers from the daemon's state now: the transport's socket,
# else the last check.
DAEMON_CHECK_SECONDS = 10.0


class HealthService:
    """Readiness of the gateway: its database, the paseo binary (CLI transport), and each
    daemon (ready while at least one is up or degraded; each daemon's own line says which)."""

    def __init__(
        self,
        db: Database,
        daemons: Daemons,
        paseo_bin: str | None,
        *,
        daemon_check_seconds: float = DAEMON_CHECK_SECONDS,
    ) -> None:
        self.db = db
        self.daemons = daemons
        self.paseo_bin = paseo_bin
        self.daemon_check_seconds = daemon_check_seconds
        self._checker: asyncio.Task[None] | None = None

    def start_background(self) -> None:
        """Check every daemon now (a probe from here on joins these checks rather than making
        its own) and then every `daemon_check_seconds`."""
        for name in self.daemons.names:
            self.daemons.start_check(name, late_after=self.daemon_check_seconds)
        self._checker = asyncio.create_task(self._check_daemons_forever(), name="daemon-check")

    async def aclose(self) -> None:
        if self._checker is not None:
            await cancel_and_wait(self._checker)

    async def _check_daemons_forever(self) -> None:
        """A check that hangs is not started again while it runs: the next round joins it."""
        late_after = self.daemon_check_seconds
        while True:
            await asyncio.gather(
                *(self.daemons.check(name, late_after=late_after) for name in self.daemons.names)
            )
            await asyncio.sleep(self.daemon_check_seconds)

    async def readiness(self) -> Readiness:
        """`paseo_bin` None: the transport needs no CLI (the daemon's WebSocket)."""
        database, *daemons = await asyncio.gather(
            self._database(), *(self._daemon_status(name) for name in self.daemons.names)
        )
        checks = {"database": database, **_daemon_checks(self.daemons.names, daemons)}
        if self.paseo_bin is not None:
            checks["paseo_binary"] = self._binary(self.paseo_bin)
        # One daemon down of several leaves the gateway ready: `daemon` sums them up.
        ready = all(check.ok for name, check in checks.items() if not name.startswith("daemon:"))
        return Readiness(
            status="ready" if ready else "not_ready",
            transport="cli" if self.paseo_bin is not None else "daemon",
            checks=checks,
        )

    async def _daemon_status(self, name: str) -> ReadinessCheck:
        """The daemon's state now; until a first check has ended, that check is waited for
        until it is late (without a background check, as for `paseo-gateway check`, one is
        made now)."""
        if self.daemons.status(name).checked_at is None:
            await self.daemons.check(name)
        return _daemon_line(self.daemons.status(name))

    async def _database(self) -> ReadinessCheck:
        if await self.db.ping():
            return ReadinessCheck(ok=True, detail="database answers")
        return ReadinessCheck(ok=False, detail="database does not answer; check DATABASE_URL")

    def _binary(self, paseo_bin: str) -> ReadinessCheck:
        found = shutil.which(paseo_bin)
        if found and os.access(found, os.X_OK):
            return ReadinessCheck(ok=True, detail=f"paseo CLI at {found}")
        return ReadinessCheck(
            ok=False,
            detail=f"paseo CLI {paseo_bin!r} not found; install it or set PASEO_GATEWAY_PASEO_BIN",
        )


def _daemon_checks(names: list[str], checks: list[ReadinessCheck]) -> dict[str, ReadinessCheck]:
    """One daemon: its check as `daemon`. Several: `daemon` says how many are up (ok while one
    is), then a `daemon:<name>` line for each."""
    if len(names) == 1:
        return {"daemon": checks[0]}
    down = [name for name, check in zip(names, checks, strict=True) if not check.ok]
    up = len(names) - len(down)
    detail = f"{up} of {len(names)} daemons up"
    if down:
        detail += f"; down: {', '.join(down)}"
    summary = ReadinessCheck(ok=up > 0, detail=detail)
    each = {f"daemon:{name}": check for name, check in zip(names, checks, strict=True)}
    return {"daemon": summary, **each}


def _daemon_line(status: DaemonStatus) -> ReadinessCheck:
    """A daemon's readiness line: its state, why, and what it said of itself when checked."""
    facts = status.facts
    age = None if status.checked_at is None else round(time.monotonic() - status.checked_at, 1)
    return ReadinessCheck(
        ok=status.state != "down",
        state=status.state,
        detail=_daemon_detail(status),
        age_seconds=age,
        version=facts.version if facts else None,
        server_id=facts.server_id if facts else None,
        protocol=facts.protocol if facts else None,
    )


def _daemon_detail(status: DaemonStatus) -> str:
    if status.state == "degraded":
        return f"degraded ({status.reason}); it still takes prompts"
    if status.state == "up" and status.facts is not None:
        return _daemon_answered(status.facts)
    return status.reason


def _daemon_answered(facts: DaemonFacts) -> str:
    """What the daemon said of itself when it answered a check, and any warning."""
    detail = "daemon answers" if facts.transport == "cli" else "daemon answers on its WebSocket"
    if facts.version or facts.server_id:
        detail += f" (version {facts.version or '?'}, server {facts.server_id or '?'})"
    if facts.protocol:
        detail += f"; protocol: {facts.protocol}"
    if facts.warning:
        detail += f"; warning: {facts.warning}"
    return detail
