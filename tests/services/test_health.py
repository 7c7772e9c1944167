"""Readiness answers from the daemon's state now: a probe spawns no CLI call, and a check that
hangs makes the daemon degraded (still ready), never down."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from app.db import Database
from app.paseo.cli.client import CliPaseoClient
from app.services.daemons import Daemons
from app.services.health import HealthService
from tests.fakes.harness import FAKE_PASEO_BIN, FakePaseoDaemon, cli_calls


def _logged_client(daemon: FakePaseoDaemon, log: Path, **env: str) -> CliPaseoClient:
    return CliPaseoClient(
        str(FAKE_PASEO_BIN),
        host=daemon.host,
        home=str(daemon.home),
        base_env={**os.environ, "FAKE_PASEO_ARGV_LOG": str(log), **env},
    )


async def test_probes_answer_from_the_last_background_check(
    database: Database, fake_daemon: FakePaseoDaemon, tmp_path: Path
) -> None:
    log = tmp_path / "argv.jsonl"
    paseo = _logged_client(fake_daemon, log)
    daemons = Daemons.single(paseo)
    health = HealthService(database, daemons, str(FAKE_PASEO_BIN), daemon_check_seconds=3600)
    health.start_background()
    try:
        async with asyncio.timeout(60):
            while daemons.status("default").checked_at is None:
                await asyncio.sleep(0.05)
        calls = cli_calls(log, "ls")
        assert calls >= 1  # the background check asked the daemon
        answers = [await health.readiness() for _ in range(5)]
        assert cli_calls(log, "ls") == calls  # no probe started a CLI call
        assert all(answer.status == "ready" for answer in answers)
        daemon = answers[-1].checks["daemon"]
        assert daemon.ok and daemon.state == "up" and daemon.detail.startswith("daemon answers")
        assert daemon.age_seconds is not None and daemon.age_seconds >= 0
    finally:
        await health.aclose()
        await daemons.aclose()


async def test_without_a_background_check_readiness_asks_now(
    database: Database, fake_daemon: FakePaseoDaemon
) -> None:
    """`paseo-gateway check` has no background task: it asks the daemon itself."""
    paseo = CliPaseoClient(str(FAKE_PASEO_BIN), host="127.0.0.1:1", home=str(fake_daemon.home))
    daemons = Daemons.single(paseo)
    try:
        answer = await HealthService(database, daemons, str(FAKE_PASEO_BIN)).readiness()
    finally:
        await daemons.aclose()
    assert answer.status == "not_ready"
    line = answer.checks["daemon"]
    assert not line.ok and line.state == "down" and line.age_seconds is not None
    assert "DAEMON_NOT_RUNNING" in line.detail


async def test_a_check_that_hangs_is_degraded_and_the_daemon_still_counts_as_ready(
    database: Database, fake_daemon: FakePaseoDaemon, tmp_path: Path
) -> None:
    """A frozen CLI (a starved machine) proves nothing about the daemon; the next round joins
    the check that hangs rather than starting another child."""
    log = tmp_path / "argv.jsonl"
    paseo = _logged_client(fake_daemon, log, FAKE_PASEO_HANG_COMMANDS="ls")
    daemons = Daemons.single(paseo)
    health = HealthService(database, daemons, str(FAKE_PASEO_BIN), daemon_check_seconds=0.2)
    health.start_background()
    try:
        answer = await health.readiness()  # waits for the first check until it is late
        line = answer.checks["daemon"]
        assert answer.status == "ready" and line.ok and line.state == "degraded"
        assert line.detail.startswith("degraded (the daemon check has had no answer for")
        assert "it still takes prompts" in line.detail
        await daemons.admit("default")  # degraded: nothing to attempt, nothing refused
        async with asyncio.timeout(60):
            while cli_calls(log, "ls") == 0:  # the child that hangs has started
                await asyncio.sleep(0.05)
        for _ in range(3):  # rounds of the background check go by
            await asyncio.sleep(0.2)
            assert (await health.readiness()).checks["daemon"].state == "degraded"
        assert cli_calls(log, "ls") == 1
    finally:
        await health.aclose()
        await daemons.aclose()
