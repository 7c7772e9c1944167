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
from app.paseo.client import PaseoClient
from app.paseo.errors import PaseoError
from app.paseo.types import DaemonFacts
from app.schemas import Readiness, ReadinessCheck

# A readiness probe must answer even when a dependency hangs.
CHECK_TIMEOUT_SECONDS = 20.0
# The daemon is asked this often in the background (a CLI call costs 1-13 s and ~200 MiB, too
# much for every probe); readiness answers from the last result.
DAEMON_CHECK_SECONDS = 10.0


class HealthService:
    def __init__(
        self,
        db: Database,
        paseo: PaseoClient,
        paseo_bin: str | None,
        *,
        daemon_check_seconds: float = DAEMON_CHECK_SECONDS,
    ) -> None:
        self.db = db
        self.paseo = paseo
        self.paseo_bin = paseo_bin
        self.daemon_check_seconds = daemon_check_seconds
        self._daemon_result: tuple[ReadinessCheck, float] | None = None
        self._checker: asyncio.Task[None] | None = None

    def start_background(self) -> None:
        """Check the daemon now and then every `daemon_check_seconds`."""
        self._checker = asyncio.create_task(self._check_daemon_forever(), name="daemon-check")

    async def aclose(self) -> None:
        if self._checker is not None:
            await cancel_and_wait(self._checker)

    async def _check_daemon_forever(self) -> None:
        while True:
            self._daemon_result = (await self._daemon(), time.monotonic())
            await asyncio.sleep(self.daemon_check_seconds)

    async def readiness(self) -> Readiness:
        """`paseo_bin` None: the transport needs no CLI (the daemon's WebSocket)."""
        database, daemon = await asyncio.gather(self._database(), self._daemon_status())
        checks = {"database": database, "daemon": daemon}
        if self.paseo_bin is not None:
            checks["paseo_binary"] = self._binary(self.paseo_bin)
        ready = all(check.ok for check in checks.values())
        return Readiness(
            status="ready" if ready else "not_ready",
            transport="cli" if self.paseo_bin is not None else "daemon",
            checks=checks,
        )

    async def _daemon_status(self) -> ReadinessCheck:
        """The background check's last result, with its age; before the first (or without a
        background check, as for `paseo-gateway check`), one made now."""
        if self._daemon_result is None:
            return await self._daemon()
        check, at = self._daemon_result
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

    async def _daemon(self) -> ReadinessCheck:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                facts = await self.paseo.ping()
        except PaseoError as exc:
            return ReadinessCheck(ok=False, detail=f"{exc.code}: {from_paseo(exc).detail}")
        except TimeoutError:
            return ReadinessCheck(ok=False, detail="the daemon did not answer in time")
        return _daemon_answered(facts)


def _daemon_answered(facts: DaemonFacts) -> ReadinessCheck:
    """The daemon check when it answered: what it said of itself, and any warning."""
    detail = "daemon answers" if facts.transport == "cli" else "daemon answers on its WebSocket"
    if facts.version or facts.server_id:
        detail += f" (version {facts.version or '?'}, server {facts.server_id or '?'})"
    if facts.warning:
        detail += f"; warning: {facts.warning}"
    return ReadinessCheck(ok=True, detail=detail, version=facts.version, server_id=facts.server_id)
