"""Readiness: can the gateway do its job now (database, paseo binary, daemon)?"""

from __future__ import annotations

import asyncio
import os
import shutil

from app.db import Database
from app.errors import from_paseo
from app.paseo.client import PaseoClient
from app.paseo.errors import PaseoError
from app.schemas import Readiness, ReadinessCheck

# A readiness probe must answer even when a dependency hangs.
CHECK_TIMEOUT_SECONDS = 20.0


class HealthService:
    def __init__(self, db: Database, paseo: PaseoClient, paseo_bin: str) -> None:
        self.db = db
        self.paseo = paseo
        self.paseo_bin = paseo_bin

    async def readiness(self) -> Readiness:
        database, daemon = await asyncio.gather(self._database(), self._daemon())
        checks = {"database": database, "paseo_binary": self._binary(), "daemon": daemon}
        ready = all(check.ok for check in checks.values())
        return Readiness(status="ready" if ready else "not_ready", checks=checks)

    async def _database(self) -> ReadinessCheck:
        if await self.db.ping():
            return ReadinessCheck(ok=True, detail="database answers")
        return ReadinessCheck(ok=False, detail="database does not answer; check DATABASE_URL")

    def _binary(self) -> ReadinessCheck:
        found = shutil.which(self.paseo_bin)
        if found and os.access(found, os.X_OK):
            return ReadinessCheck(ok=True, detail=f"paseo CLI at {found}")
        return ReadinessCheck(
            ok=False,
            detail=f"paseo CLI {self.paseo_bin!r} not found; install it or set "
            "PASEO_GATEWAY_PASEO_BIN",
        )

    async def _daemon(self) -> ReadinessCheck:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                await self.paseo.ping()
        except PaseoError as exc:
            return ReadinessCheck(ok=False, detail=f"{exc.code}: {from_paseo(exc).detail}")
        except TimeoutError:
            return ReadinessCheck(ok=False, detail="the daemon did not answer in time")
        return ReadinessCheck(ok=True, detail="daemon answers")
