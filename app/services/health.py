"""Readiness: can the gateway do its job now (database, paseo binary for the CLI transport,
daemon), and which transport and daemon it talks to."""

from __future__ import annotations

import asyncio
import os
import shutil
import time

from app.aio import cancel_and_wait
from app.db import Database
from app.errors import from_paseo
from app.paseo.daemons import Daemon
from app.paseo.errors import PaseoError
from app.paseo.types import DaemonFacts
from app.schemas import Readiness, ReadinessCheck
from app.services.daemons import Daemons

# A readiness probe must answer even when a dependency hangs.
CHECK_TIMEOUT_SECONDS = 20.0
# The daemon is asked this often in the background (a CLI call costs 1-13 s and ~200 MiB, too
# much for every probe); readiness answers from the last result.
DAEMON_CHECK_SECONDS = 10.0


class HealthService:
    """Readiness of the gateway: its database, the paseo binary (CLI transport), and each
    daemon (ready while at least one is up; each daemon's own line says which are down)."""

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
        self._daemon_results: dict[str, tuple[ReadinessCheck, float]] = {}
        self._checker: asyncio.Task[None] | None = None

    def start_background(self) -> None:
        """Check every daemon now and then every `daemon_check_seconds`."""
        self._checker = asyncio.create_task(self._check_daemons_forever(), name="daemon-check")

    async def aclose(self) -> None:
        if self._checker is not None:
            await cancel_and_wait(self._checker)

    async def _check_daemons_forever(self) -> None:
        while True:
            await asyncio.gather(*(self._record(daemon) for daemon in self.daemons))
            await asyncio.sleep(self.daemon_check_seconds)

    async def _record(self, daemon: Daemon) -> ReadinessCheck:
        check = await self._daemon(daemon)
        self._daemon_results[daemon.name] = (check, time.monotonic())
        self.daemons.mark(daemon.name, up=check.ok, detail=check.detail)
        return check

    async def readiness(self) -> Readiness:
        """`paseo_bin` None: the transport needs no CLI (the daemon's WebSocket)."""
        database, *daemons = await asyncio.gather(
            self._database(), *(self._daemon_status(daemon) for daemon in self.daemons)
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

    async def _daemon_status(self, daemon: Daemon) -> ReadinessCheck:
        """The background check's last result, with its age; before the first (or without a
        background check, as for `paseo-gateway check`), one made now."""
        known = self._daemon_results.get(daemon.name)
        if known is None:
            return await self._record(daemon)
        check, at = known
        return check.model_copy(update={"age_seconds": round(time.monotonic() - at, 1)})

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

    async def _daemon(self, daemon: Daemon) -> ReadinessCheck:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                facts = await daemon.ping()  # a failure names the daemon (and its setting)
        except PaseoError as exc:
            return ReadinessCheck(ok=False, detail=f"{exc.code}: {from_paseo(exc).detail}")
        except TimeoutError:
            return ReadinessCheck(ok=False, detail="the daemon did not answer in time")
        return _daemon_answered(facts)


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


def _daemon_answered(facts: DaemonFacts) -> ReadinessCheck:
    """The daemon check when it answered: what it said of itself, and any warning."""
    detail = "daemon answers" if facts.transport == "cli" else "daemon answers on its WebSocket"
    if facts.version or facts.server_id:
        detail += f" (version {facts.version or '?'}, server {facts.server_id or '?'})"
    if facts.protocol:
        detail += f"; protocol: {facts.protocol}"
    if facts.warning:
        detail += f"; warning: {facts.warning}"
    return ReadinessCheck(
        ok=True,
        detail=detail,
        version=facts.version,
        server_id=facts.server_id,
        protocol=facts.protocol,
    )
