"""Readiness answers from a background check of the daemon: a probe spawns no CLI call."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from app.db import Database
from app.paseo.cli.client import CliPaseoClient
from app.services.daemons import Daemons
from app.services.health import HealthService
from tests.fakes.harness import FAKE_PASEO_BIN, FakePaseoDaemon, cli_calls


async def test_probes_answer_from_the_last_background_check(
    database: Database, fake_daemon: FakePaseoDaemon, tmp_path: Path
) -> None:
    log = tmp_path / "argv.jsonl"
    paseo = CliPaseoClient(
        str(FAKE_PASEO_BIN),
        host=fake_daemon.host,
        home=str(fake_daemon.home),
        base_env={**os.environ, "FAKE_PASEO_ARGV_LOG": str(log)},
    )
    health = HealthService(
        database, Daemons.single(paseo), str(FAKE_PASEO_BIN), daemon_check_seconds=3600
    )
    health.start_background()
    try:
        async with asyncio.timeout(60):
            while not health._daemon_results:
                await asyncio.sleep(0.05)
        calls = cli_calls(log, "ls")
        assert calls >= 1  # the background check asked the daemon
        answers = [await health.readiness() for _ in range(5)]
        assert cli_calls(log, "ls") == calls  # no probe started a CLI call
        assert all(answer.status == "ready" for answer in answers)
        daemon = answers[-1].checks["daemon"]
        assert daemon.ok and daemon.age_seconds is not None and daemon.age_seconds >= 0
    finally:
        await health.aclose()
        await paseo.aclose()


async def test_without_a_background_check_readiness_asks_now(
    database: Database, fake_daemon: FakePaseoDaemon
) -> None:
    """`paseo-gateway check` has no background task: it asks the daemon itself."""
    paseo = CliPaseoClient(str(FAKE_PASEO_BIN), host="127.0.0.1:1", home=str(fake_daemon.home))
    try:
        health = HealthService(database, Daemons.single(paseo), str(FAKE_PASEO_BIN))
        answer = await health.readiness()
    finally:
        await paseo.aclose()
    assert answer.status == "not_ready"
    assert answer.checks["daemon"].age_seconds is None
    assert "DAEMON_NOT_RUNNING" in answer.checks["daemon"].detail
