"""Taking over turns whose gateway died: every orphan ends in a final state with a reason."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from app.db import Database
from app.models import SessionStatus, Turn, TurnStatus, utcnow
from app.paseo.cli.client import CliPaseoClient
from app.paseo.types import NewAgent
from app.repositories import sessions as sessions_repo
from app.repositories import turn_events as events_repo
from app.repositories import turns as turns_repo
from app.services.daemons import Daemons
from app.services.turn.run import SESSION_LABEL
from app.services.turn.service import TurnService, TurnSettings
from tests.fakes.harness import FAKE_PASEO_BIN, FakePaseoDaemon

INSTANT = "emit 3 coalesced agent stream updates"


@pytest.fixture
async def paseo(fake_daemon: FakePaseoDaemon) -> AsyncIterator[CliPaseoClient]:
    client = CliPaseoClient(str(FAKE_PASEO_BIN), host=fake_daemon.host, home=str(fake_daemon.home))
    yield client
    await client.aclose()


@pytest.fixture
async def service(database: Database, paseo: CliPaseoClient) -> AsyncIterator[TurnService]:
    # The orphans' heartbeats are a minute old; a live turn's is fresh. Staleness must tell
    # them apart however long a loaded machine takes between storing a turn and the scan.
    settings = TurnSettings(timeout_seconds=60, max_concurrent=2, stale_seconds=30)
    turns = TurnService(database, Daemons.single(paseo), settings)
    yield turns
    await turns.aclose()


async def _orphan(
    database: Database,
    *,
    status: TurnStatus,
    agent_id: str | None,
    prompt: str = INSTANT,
    sent: bool = True,
    delivered: bool = True,
    session_id: uuid.UUID | None = None,
) -> Turn:
    """A turn left behind by a gateway that died a minute ago (in a new session unless
    `session_id` is given), with the facts it had recorded about its prompt."""
    async with database.session() as session:
        if session_id is None:
            record = await sessions_repo.add_session(
                session,
                provider="mock",
                cwd="/tmp",
                agent_id=agent_id,
                status=SessionStatus.ACTIVE,
            )
            session_id = record.id
        turn = await turns_repo.add_turn(
            session,
            session_id=session_id,
            prompt=prompt,
            runner_id="dead-gateway",
            heartbeat_at=utcnow() - timedelta(minutes=1),
        )
        if status != TurnStatus.QUEUED:
            moved = await turns_repo.transition_turn(
                session, turn.id, from_statuses=[TurnStatus.QUEUED], to_status=status
            )
            assert moved is not None
            turn = moved
        if delivered:
            await turns_repo.mark_prompt_delivered(session, turn.id)
        elif sent:
            await session.execute(
                update(Turn).where(Turn.id == turn.id).values(prompt_sent_at=utcnow())
            )
    return turn


async def _idle(paseo: CliPaseoClient, agent_id: str) -> None:
    """Wait until the agent's turn is over (the instant mock turns end at once)."""
    deadline = asyncio.get_running_loop().time() + 60
    while (await paseo.inspect_agent(agent_id)).status != "idle":
        assert asyncio.get_running_loop().time() < deadline, f"agent {agent_id} never idle"
        await asyncio.sleep(0.1)


async def _recovered(service: TurnService, database: Database, turn: Turn) -> Turn:
    assert turn.id in await service.recover_stale_turns()
    # Until the turn has ended: a deadline in time, generous for a loaded machine (200 polls
    # of 50 ms were not always enough there).
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        async with database.session() as session:
            current = await turns_repo.get_turn(session, turn.id)
        assert current is not None
        if current.status not in (TurnStatus.QUEUED, TurnStatus.RUNNING):
            return current
        assert asyncio.get_running_loop().time() < deadline, f"turn {turn.id} was not recovered"
        await asyncio.sleep(0.05)


async def _events(database: Database, turn_id: uuid.UUID) -> list[tuple[str, dict[str, object]]]:
    async with database.session() as session:
        rows = await events_repo.list_events(session, turn_id)
    return [(row.name, dict(row.data or {})) for row in rows]


async def test_a_queued_orphan_is_interrupted(service: TurnService, database: Database) -> None:
    turn = await _orphan(database, status=TurnStatus.QUEUED, agent_id=None)
    ended = await _recovered(service, database, turn)
    assert ended.status == "interrupted" and ended.error_code == "gateway_restarted"
    assert ended.error_message and "before this turn started" in ended.error_message
    assert [name for name, _ in await _events(database, turn.id)] == ["turn.interrupted"]


async def test_a_running_orphan_without_an_agent_is_interrupted(
    service: TurnService, database: Database
) -> None:
    turn = await _orphan(database, status=TurnStatus.RUNNING, agent_id=None)
    ended = await _recovered(service, database, turn)
    assert ended.status == "interrupted"
    assert ended.error_message and "before the agent was created" in ended.error_message


async def test_an_orphan_whose_agent_finished_gets_its_text(
    service: TurnService, paseo: CliPaseoClient, database: Database, agent_cwd: Path
) -> None:
    created = await paseo.create_agent(
        NewAgent(provider="mock", cwd=str(agent_cwd), title="orphan"), INSTANT
    )
    turn = await _orphan(database, status=TurnStatus.RUNNING, agent_id=created.agent_id)
    await _idle(paseo, created.agent_id)  # the turn is over before anyone looks
    ended = await _recovered(service, database, turn)
    assert ended.status == "completed"
    assert ended.final_text == "stress-update-0stress-update-1stress-update-2"
    events = await _events(database, turn.id)
    assert [name for name, _ in events] == ["text", "turn.completed"]
    assert events[0][1]["delta"] == ended.final_text


async def test_an_orphan_finds_its_agent_by_label(
    service: TurnService, paseo: CliPaseoClient, database: Database, agent_cwd: Path
) -> None:
    """The gateway died right after `paseo run`: the session never learned the agent id, nor
    recorded that the prompt arrived; the transcript shows it did."""
    turn = await _orphan(database, status=TurnStatus.RUNNING, agent_id=None, delivered=False)
    created = await paseo.create_agent(
        NewAgent(
            provider="mock",
            cwd=str(agent_cwd),
            title="labelled",
            labels={SESSION_LABEL: str(turn.session_id)},
        ),
        INSTANT,
    )
    await _idle(paseo, created.agent_id)
    ended = await _recovered(service, database, turn)
    assert ended.status == "completed"
    assert ended.final_text == "stress-update-0stress-update-1stress-update-2"
    async with database.session() as session:
        record = await sessions_repo.get_session(session, turn.session_id)
    assert record is not None and record.agent_id is not None


async def test_an_orphan_whose_agent_is_gone_is_interrupted(
    service: TurnService, database: Database
) -> None:
    turn = await _orphan(database, status=TurnStatus.RUNNING, agent_id=str(uuid.uuid4()))
    ended = await _recovered(service, database, turn)
    assert ended.status == "interrupted" and ended.error_code == "agent_missing"
    async with database.session() as session:
        record = await sessions_repo.get_session(session, turn.session_id)
    assert record is not None and record.status == SessionStatus.AGENT_MISSING


async def test_a_live_turn_is_not_taken(service: TurnService, database: Database) -> None:
    async with database.session() as session:
        record = await sessions_repo.add_session(session, provider="mock", cwd="/tmp")
        await turns_repo.add_turn(
            session, session_id=record.id, prompt="x", runner_id="alive", heartbeat_at=utcnow()
        )
    assert await service.recover_stale_turns() == []


# --- a prompt that may never have reached Paseo --------------------------------------------


async def _agent_with_one_turn(paseo: CliPaseoClient, agent_cwd: Path) -> str:
    created = await paseo.create_agent(
        NewAgent(provider="mock", cwd=str(agent_cwd), title="earlier"), INSTANT
    )
    await _idle(paseo, created.agent_id)
    return created.agent_id


@pytest.mark.parametrize("sent", [True, False], ids=["sent", "never-sent"])
async def test_an_undelivered_prompt_is_not_given_the_previous_answer(
    service: TurnService,
    paseo: CliPaseoClient,
    database: Database,
    agent_cwd: Path,
    sent: bool,
) -> None:
    """The gateway died before `send` reached Paseo: the agent's last reply is an earlier
    prompt's, and must not become this turn's answer."""
    agent_id = await _agent_with_one_turn(paseo, agent_cwd)
    turn = await _orphan(
        database,
        status=TurnStatus.RUNNING,
        agent_id=agent_id,
        prompt="emit 5 coalesced agent stream updates",
        sent=sent,
        delivered=False,
    )
    ended = await _recovered(service, database, turn)
    assert (ended.status, ended.error_code) == ("interrupted", "prompt_not_delivered")
    assert ended.final_text == ""
    assert [name for name, _ in await _events(database, turn.id)] == ["turn.interrupted"]


async def test_the_same_prompt_again_counts_only_if_paseo_has_it_twice(
    service: TurnService, paseo: CliPaseoClient, database: Database, agent_cwd: Path
) -> None:
    """An earlier turn of the session sent the same text: one `[User]` item is that turn's."""
    agent_id = await _agent_with_one_turn(paseo, agent_cwd)
    earlier = await _orphan(database, status=TurnStatus.RUNNING, agent_id=agent_id, prompt=INSTANT)
    async with database.session() as session:
        await session.execute(
            update(Turn).where(Turn.id == earlier.id).values(status=TurnStatus.COMPLETED)
        )
    turn = await _orphan(
        database,
        status=TurnStatus.RUNNING,
        agent_id=agent_id,
        prompt=INSTANT + "\n",  # recorded trimmed: the same `[User]` text
        delivered=False,
        session_id=earlier.session_id,
    )
    ended = await _recovered(service, database, turn)
    assert (ended.status, ended.error_code) == ("interrupted", "prompt_not_delivered")


async def test_a_recovered_reply_keeps_its_whitespace(
    service: TurnService, paseo: CliPaseoClient, database: Database, agent_cwd: Path
) -> None:
    """`logs` trims each block; the text recovered must be the agent's, as `attach` has it."""
    created = await paseo.create_agent(
        NewAgent(provider="mock", cwd=str(agent_cwd), title="long", model="ten-second-stream"),
        "write a haiku",
    )
    turn = await _orphan(
        database, status=TurnStatus.RUNNING, agent_id=created.agent_id, prompt="write a haiku"
    )
    await _idle(paseo, created.agent_id)
    ended = await _recovered(service, database, turn)
    assert ended.status == "completed"
    assert ended.final_text is not None
    assert ended.final_text.startswith("## Cycle 1\n\n")
    assert ended.final_text.endswith("\n\n_(end of synthetic stream)_\n")


async def test_a_first_prompt_with_nothing_sent_before_looks_for_no_agent(
    service: TurnService,
    paseo: CliPaseoClient,
    database: Database,
    agent_cwd: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No earlier turn sent a prompt, so no agent can exist: no `ls --label` call (seconds
    on the CLI) before the agent is created."""
    lookups: list[object] = []
    listing = paseo.list_agents

    async def counted(**kwargs: Any) -> Any:
        lookups.append(kwargs)
        return await listing(**kwargs)

    monkeypatch.setattr(paseo, "list_agents", counted)
    async with database.session() as session:
        record = await sessions_repo.add_session(session, provider="mock", cwd=str(agent_cwd))
    turn, _ = await service.start_turn(record.id, INSTANT)
    async with asyncio.timeout(60):
        while (current := await service.get_turn(record.id, turn.id)).status == "running":
            await asyncio.sleep(0.05)
    assert current.status == "completed" and lookups == []


async def test_a_first_prompt_adopts_the_agent_already_labelled_with_the_session(
    service: TurnService, paseo: CliPaseoClient, database: Database, agent_cwd: Path
) -> None:
    """A `run -d` whose answer was lost (a limit fired, the gateway died) made an agent the
    session never learned of: the next prompt uses it instead of creating a second one."""
    async with database.session() as session:
        record = await sessions_repo.add_session(session, provider="mock", cwd=str(agent_cwd))
        # The earlier turn that sent `run -d` and never heard back.
        earlier = await turns_repo.add_turn(
            session, session_id=record.id, prompt=INSTANT, status=TurnStatus.FAILED
        )
        earlier.prompt_sent_at = utcnow()
    labels = {SESSION_LABEL: str(record.id)}
    created = await paseo.create_agent(
        NewAgent(provider="mock", cwd=str(agent_cwd), title="lost", labels=labels), INSTANT
    )
    await _idle(paseo, created.agent_id)

    turn, _ = await service.start_turn(record.id, "emit 2 coalesced agent stream updates")
    async with asyncio.timeout(60):
        while (current := await service.get_turn(record.id, turn.id)).status == "running":
            await asyncio.sleep(0.05)

    assert (current.status, current.final_text) == ("completed", "stress-update-0stress-update-1")
    async with database.session() as session:
        adopted = await sessions_repo.get_session(session, record.id)
    assert adopted is not None and adopted.agent_id == created.agent_id
    assert [agent.id for agent in await paseo.list_agents(labels=labels)] == [created.agent_id]


async def test_a_turn_on_a_daemon_no_longer_configured_fails_saying_so(
    service: TurnService, database: Database
) -> None:
    """Its session is pinned to a daemon the gateway no longer serves: nobody can follow the
    turn, so it fails with a terminal event that says why (not left running forever)."""
    async with database.session() as session:
        record = await sessions_repo.add_session(
            session, provider="mock", cwd="/tmp", agent_id=str(uuid.uuid4()), daemon="retired"
        )
    turn = await _orphan(database, status=TurnStatus.RUNNING, agent_id=None, session_id=record.id)
    ended = await _recovered(service, database, turn)
    assert (ended.status, ended.error_code) == (TurnStatus.FAILED, "unknown_daemon")
    async with database.session() as session:
        [*_, last] = await events_repo.list_events(session, turn.id)
    assert (
        last.name == "turn.failed" and "'retired' is no longer configured" in last.data["message"]
    )
