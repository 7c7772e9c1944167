"""`GET /sessions/{id}` shows the agent's live status; readers within a moment share one
`paseo inspect` instead of each spawning a CLI call."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from app.db import Database
from app.paseo.cli.client import CliPaseoClient
from app.paseo.types import NewAgent
from app.repositories import sessions as sessions_repo
from app.services.daemons import Daemons
from app.services.sessions import SessionDefaults, SessionService
from app.services.turn.service import TurnService, TurnSettings
from tests.fakes.harness import FAKE_PASEO_BIN, FakePaseoDaemon, cli_calls


async def test_readers_of_one_session_share_one_inspect(
    database: Database, fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path
) -> None:
    argv_log = tmp_path / "argv.jsonl"
    paseo = CliPaseoClient(
        str(FAKE_PASEO_BIN),
        host=fake_daemon.host,
        home=str(fake_daemon.home),
        base_env={**os.environ, "FAKE_PASEO_ARGV_LOG": str(argv_log)},
    )
    daemons = Daemons.single(paseo, [str(agent_cwd)])
    turns = TurnService(database, daemons, TurnSettings(timeout_seconds=60, max_concurrent=1))
    defaults = SessionDefaults("mock", None, str(agent_cwd), 1024)
    sessions = SessionService(database, daemons, turns, defaults)
    try:
        created = await paseo.create_agent(
            NewAgent(provider="mock", cwd=str(agent_cwd), title="live"),
            "emit 1 coalesced agent stream updates",
        )
        async with database.session() as session:
            record = await sessions_repo.add_session(
                session, provider="mock", cwd=str(agent_cwd), agent_id=created.agent_id
            )
        before = cli_calls(argv_log, "inspect")
        answers = await asyncio.gather(*(sessions.live_status(record) for _ in range(5)))
        assert cli_calls(argv_log, "inspect") == before + 1
        assert all(answer is not None and answer.status for answer in answers)
        ages = [answer.age_seconds for answer in answers if answer is not None]
        assert all(age is not None and age >= 0 for age in ages)
    finally:
        await turns.aclose()
        await paseo.aclose()
