"""Whether a daemon is up comes from facts read when a request needs them, not from a timer.

On the daemon transport the socket decides: closed is down at once (readiness says so, and a
prompt is 503 with Retry-After before anything is stored), and a prompt makes one immediate
attempt to reach a daemon that is down, so one that came back is used by the very next
prompt. On the CLI transport a check that hangs on our side (a frozen CLI, as on a starved
machine) proves nothing: the daemon is degraded, still ready, and prompts go through.

Each test runs the real gateway app under uvicorn in this process, so that what no setting
reaches can be set very long (the daemon transport's reconnect backoff, the background check):
nothing but the request itself can then notice a daemon that came back. PostgreSQL, fake
daemon processes, the fake CLI.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import func, select

from app.db import Database
from app.main import create_app
from app.models import Turn
from app.paseo.cli.client import CliPaseoClient
from app.paseo.client import PaseoClient
from app.paseo.daemon.client import DaemonPaseoClient
from app.paseo.daemon.connection import DaemonConnection
from app.paseo.daemon.target import parse_host
from app.services.daemons import RETRY_DOWN_SECONDS
from app.settings import Settings
from tests.api.conftest import STARTUP_TIMEOUT_SECONDS, _free_port, empty_database
from tests.api.test_prompt import INSTANT, INSTANT_REPLY, new_session, stream_prompt
from tests.api.test_sessions import assert_problem
from tests.conftest import FAKE_TIME_SCALE
from tests.fakes.harness import FAKE_PASEO_BIN, FakePaseoDaemon, cli_calls
from tests.sse import collect_turn

# Long enough that nothing in the background acts while a test runs.
NEVER = 3600.0
# Generous: a loaded 2-core machine.
CONDITION_SECONDS = 60.0


@dataclass
class Served:
    client: httpx.AsyncClient
    database_url: str


@asynccontextmanager
async def serving(
    folder: Path, paseo: PaseoClient, cwd: Path, **settings: Any
) -> AsyncIterator[Served]:
    """The gateway app on `paseo` (and a new PostgreSQL database), under uvicorn here."""
    with empty_database("postgresql", folder) as url:
        app = create_app(
            Settings(
                database_url=url,
                auth_disabled=True,
                default_provider="mock",
                default_model="ten-second-stream",
                default_cwd=cwd,
                paseo_bin=str(FAKE_PASEO_BIN),
                **settings,
            ),
            paseo=paseo,
        )
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
        task = asyncio.create_task(server.serve())
        try:
            async with asyncio.timeout(STARTUP_TIMEOUT_SECONDS):
                while not server.started:
                    assert not task.done(), "the gateway stopped at start"
                    await asyncio.sleep(0.05)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
                yield Served(http, url)
        finally:
            server.should_exit = True
            await task


async def _readiness(
    client: httpx.AsyncClient, condition: Callable[[httpx.Response], bool]
) -> httpx.Response:
    """The first readiness answer that meets `condition`."""
    async with asyncio.timeout(CONDITION_SECONDS):
        while not condition(answer := await client.get("/readyz")):
            await asyncio.sleep(0.02)
    return answer


async def _turn_rows(database_url: str, session_id: str) -> int:
    """Turn rows of the session, read from the database itself."""
    db = Database.from_url(database_url)
    try:
        async with db.session() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(Turn)
                .where(Turn.session_id == uuid.UUID(session_id))
            )
    finally:
        await db.dispose()
    return int(count or 0)


# --- the daemon transport ----------------------------------------------------------------------


async def test_a_closed_socket_is_down_at_once_and_a_daemon_back_is_used_by_the_next_prompt(
    tmp_path: Path, agent_cwd: Path
) -> None:
    daemon = await asyncio.to_thread(
        FakePaseoDaemon(tmp_path / "home", time_scale=FAKE_TIME_SCALE).start
    )
    target = parse_host(daemon.host)
    # Neither the reconnect loop nor the background check acts during the test.
    paseo = DaemonPaseoClient(target, connection=DaemonConnection(target, backoff=(NEVER, NEVER)))
    try:
        async with serving(
            tmp_path, paseo, agent_cwd, transport="daemon", daemon_check_seconds=NEVER
        ) as served:
            client = served.client
            session = await new_session(client)
            _, events = await stream_prompt(client, session["id"], INSTANT)
            assert events[-1].event == "turn.completed"  # the session has its agent
            assert (await client.get("/readyz")).status_code == 200

            await asyncio.to_thread(daemon.stop)
            stopped = time.monotonic()
            down = await _readiness(client, lambda answer: answer.status_code == 503)
            noticed = time.monotonic() - stopped
            line = down.json()["checks"]["daemon"]
            assert line["state"] == "down" and not line["ok"]
            assert "its WebSocket is closed" in line["detail"]

            asked = time.monotonic()
            refused = await client.post(
                f"/sessions/{session['id']}/prompt", json={"prompt": INSTANT}
            )
            refusal = time.monotonic() - asked  # after its one attempt
            problem = assert_problem(refused, 503, "daemon_unavailable")
            assert refused.headers["retry-after"] == RETRY_DOWN_SECONDS
            assert "daemon 'default' is down" in problem["detail"]
            assert await _turn_rows(served.database_url, session["id"]) == 1  # none stored

            await asyncio.to_thread(daemon.start)  # back, on the same port
            # Nothing reconnected by itself (readiness only reads the socket's state) ...
            assert (await client.get("/readyz")).status_code == 503
            back = time.monotonic()
            # ... the next prompt's one attempt does.
            async with client.stream(
                "POST", f"/sessions/{session['id']}/prompt", json={"prompt": INSTANT}
            ) as response:
                used = time.monotonic() - back
                assert response.status_code == 200, await response.aread()
                events = await collect_turn(response)
            assert events[-1].event == "turn.completed"
            assert events[-1].json()["final_text"] == INSTANT_REPLY
            assert (await client.get("/readyz")).json()["checks"]["daemon"]["state"] == "up"
            assert await _turn_rows(served.database_url, session["id"]) == 2
    finally:
        await asyncio.to_thread(daemon.stop)
    print(
        f"\n/readyz 503 {noticed:.3f} s after the stop; a prompt refused in {refusal:.3f} s; "
        f"once back, the next prompt answered in {used:.3f} s"
    )


# --- the CLI transport -------------------------------------------------------------------------


async def test_a_check_that_hangs_is_degraded_and_prompts_still_go_through(
    tmp_path: Path, agent_cwd: Path, fake_daemon: FakePaseoDaemon
) -> None:
    """Prompts on three sessions at once while the gateway's own check child is frozen: all
    are taken (the issue's 503s came from such a check timing out). The sessions are made
    first: a new session's provider check runs `ls` too."""
    log, frozen = tmp_path / "argv.jsonl", tmp_path / "frozen"
    knobs = {
        "FAKE_PASEO_ARGV_LOG": str(log),
        "FAKE_PASEO_HANG_COMMANDS": "ls",
        "FAKE_PASEO_HANG_WHILE": str(frozen),
    }
    paseo = CliPaseoClient(
        str(FAKE_PASEO_BIN), host=fake_daemon.host, base_env={**os.environ, **knobs}
    )
    async with serving(
        tmp_path, paseo, agent_cwd, transport="cli", daemon_check_seconds=1
    ) as served:
        client = served.client
        sessions = [await new_session(client) for _ in range(3)]
        await _readiness(client, lambda answer: answer.json()["checks"]["daemon"]["state"] == "up")

        frozen.touch()  # from now on the check's `paseo ls` never ends
        ready = await _readiness(
            client, lambda answer: answer.json()["checks"]["daemon"]["state"] == "degraded"
        )
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        line = ready.json()["checks"]["daemon"]
        assert line["ok"] and line["detail"].startswith("degraded (")
        assert "it still takes prompts" in line["detail"]

        answers = await asyncio.gather(
            *(stream_prompt(client, session["id"], INSTANT) for session in sessions)
        )
        for response, events in answers:
            assert response.status_code == 200, response.text
            assert events[-1].event == "turn.completed"
            assert events[-1].json()["final_text"] == INSTANT_REPLY
        # The check still hangs: degraded all along, never down.
        after = await client.get("/readyz")
        assert after.status_code == 200
        assert after.json()["checks"]["daemon"]["state"] == "degraded"
        assert cli_calls(log, "ls") >= 2  # the checks before the freeze, and the one that hangs
