"""The turn engine at the edges of time: limits, slow creation, slow stops, interrupts.

These drive `TurnService` on a real database with a scripted transport, because they need
timings the fake CLI cannot make happen on demand: an event ready at the very moment a limit
fires, an agent creation slower than the idle limit, a stop Paseo takes long to confirm, a
turn whose gateway died with a fresh heartbeat. Everything else about turns is tested
against the fake CLI (tests/api, tests/services/test_recovery.py).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.db import Database
from app.models import SessionStatus, Turn, TurnStatus, utcnow
from app.paseo.errors import PaseoError
from app.paseo.media import NO_MEDIA, PromptMedia
from app.paseo.types import (
    AgentDetail,
    AgentStarted,
    AgentSummary,
    CreatedAgent,
    NewAgent,
    PromptDelivered,
    PromptHistory,
    StopResult,
    TextDelta,
    TurnEnded,
    TurnEvent,
    TurnStarted,
)
from app.repositories import sessions as sessions_repo
from app.repositories import turn_events as events_repo
from app.repositories import turns as turns_repo
from app.services.daemons import Daemons
from app.services.turn.decisions import Ending
from app.services.turn.service import TurnService, TurnSettings
from app.services.turn.states import IllegalTurnTransition
from app.services.turn.store import end_turn

AGENT_ID = "0f5b8e3c-0000-4000-8000-000000000001"
TurnScript = Callable[[], AsyncIterator[TurnEvent]]


def _detail(status: str) -> AgentDetail:
    created = datetime(2026, 12, 1, tzinfo=UTC)
    return AgentDetail(
        id=AGENT_ID,
        title="stub",
        provider="mock",
        model=None,
        thinking="auto",
        status=status,
        archived=False,
        archived_at=None,
        mode="default",
        cwd="/tmp",
        created_at=created,
        updated_at=created,
    )


class ScriptedPaseo:
    """A `PaseoClient` whose turns follow a script; it records the stops it was asked for."""

    def __init__(self, turn: TurnScript, *, stop_seconds: float = 0.0) -> None:
        self.turn = turn
        self.stop_seconds = stop_seconds
        self.status = "running"
        self.stops: list[str] = []

    async def ping(self) -> None:
        return None

    async def list_agents(
        self, *, include_archived: bool = False, labels: Mapping[str, str] | None = None
    ) -> list[AgentSummary]:
        return []

    async def inspect_agent(self, agent_id: str) -> AgentDetail:
        return _detail(self.status)

    async def import_agent(self, **_: Any) -> CreatedAgent:
        raise NotImplementedError

    def start_agent_turn(
        self,
        agent: NewAgent,
        prompt: str,
        *,
        turn_key: str | None = None,
        media: PromptMedia = NO_MEDIA,
    ) -> AsyncIterator[TurnEvent]:
        return self.turn()

    def prompt_agent_turn(
        self,
        agent_id: str,
        prompt: str,
        *,
        turn_key: str | None = None,
        media: PromptMedia = NO_MEDIA,
    ) -> AsyncIterator[TurnEvent]:
        return self.turn()

    def resume_agent_turn(
        self, agent_id: str, prompt: str, cursor: str | None, *, turn_key: str | None = None
    ) -> AsyncIterator[TurnEvent]:
        return self.turn()

    async def prompt_history(
        self, agent_id: str, prompt: str, *, turn_key: str | None = None
    ) -> PromptHistory:
        return PromptHistory(times_recorded=0, latest_is_this_prompt=False)

    async def stop_agent(self, agent_id: str) -> StopResult:
        self.stops.append(agent_id)
        await asyncio.sleep(self.stop_seconds)
        return StopResult(stopped_count=1, agent_ids=[agent_id])

    async def archive_agent(self, agent_id: str, *, force: bool = False) -> Any:
        raise NotImplementedError

    async def delete_agent(self, agent_id: str) -> Any:
        raise NotImplementedError

    async def list_providers(self) -> list[Any]:
        return []

    async def aclose(self) -> None:
        return None


def _created() -> AgentStarted:
    return AgentStarted(CreatedAgent(agent_id=AGENT_ID, provider="mock", cwd="/tmp"))


async def _endless_text() -> AsyncIterator[TurnEvent]:
    """Output that is always ready: the next event is there whenever anyone asks."""
    yield TurnStarted()
    yield PromptDelivered()
    while True:
        await asyncio.sleep(0)
        yield TextDelta("x")


async def _slow_creation() -> AsyncIterator[TurnEvent]:
    """Creating the agent takes longer than the idle limit; the turn itself is quick."""
    yield TurnStarted()
    await asyncio.sleep(1.0)
    yield _created()
    yield PromptDelivered()
    yield TextDelta("made it")
    yield TurnEnded("completed", "Agent is idle.", "made it")


async def _runs_until_stopped() -> AsyncIterator[TurnEvent]:
    yield TurnStarted()
    yield PromptDelivered()
    yield TextDelta("working")
    await asyncio.Event().wait()
    yield TurnEnded("completed", "never", "working")  # pragma: no cover


@pytest.fixture
def settings() -> TurnSettings:
    return TurnSettings(timeout_seconds=60, max_concurrent=4, idle_timeout_seconds=60)


async def _service(database: Database, paseo: ScriptedPaseo, settings: TurnSettings) -> TurnService:
    return TurnService(database, Daemons.single(paseo), settings)  # type: ignore[arg-type]


async def _session(database: Database, *, agent_id: str | None = AGENT_ID) -> uuid.UUID:
    async with database.session() as session:
        status = SessionStatus.ACTIVE if agent_id else SessionStatus.PENDING
        record = await sessions_repo.add_session(
            session, provider="mock", cwd="/tmp", agent_id=agent_id, status=status
        )
    return record.id


async def _final(service: TurnService, session_id: uuid.UUID, turn_id: uuid.UUID) -> Turn:
    async with asyncio.timeout(60):
        while True:
            turn = await service.get_turn(session_id, turn_id)
            if turn.status not in (TurnStatus.QUEUED, TurnStatus.RUNNING):
                return turn
            await asyncio.sleep(0.05)


async def _event_names(database: Database, turn_id: uuid.UUID) -> list[str]:
    async with database.session() as session:
        return [row.name for row in await events_repo.list_events(session, turn_id, limit=10**6)]


async def test_the_wall_clock_limit_holds_when_output_never_pauses(
    database: Database, settings: TurnSettings
) -> None:
    """An event ready as the limit fires must not swallow the limit (Python 3.11)."""
    settings.timeout_seconds = 0.3
    service = await _service(database, ScriptedPaseo(_endless_text), settings)
    try:
        sessions = [await _session(database, agent_id=f"{AGENT_ID[:-2]}{n:02}") for n in range(8)]
        started = [await service.start_turn(session_id, "go") for session_id in sessions]
        for session_id, (turn, _) in zip(sessions, started, strict=True):
            ended = await _final(service, session_id, turn.id)
            assert (ended.status, ended.error_code) == ("timed_out", "turn_timeout")
            assert ended.final_text == "x" * len(ended.final_text)
    finally:
        await service.aclose()


async def test_creating_the_agent_is_not_idle_output(
    database: Database, settings: TurnSettings
) -> None:
    settings.idle_timeout_seconds = 0.3
    service = await _service(database, ScriptedPaseo(_slow_creation), settings)
    try:
        session_id = await _session(database, agent_id=None)
        turn, _ = await service.start_turn(session_id, "first prompt")
        ended = await _final(service, session_id, turn.id)
        assert (ended.status, ended.final_text) == ("completed", "made it")
        assert ended.prompt_delivered_at is not None
    finally:
        await service.aclose()


async def test_a_202_cancel_has_said_turn_cancelling(
    database: Database, settings: TurnSettings
) -> None:
    """One deadline: when the request gives up waiting, the stream has already said so,
    however slow the first `paseo stop` is."""
    settings.cancel_confirm_seconds = 0.5
    paseo = ScriptedPaseo(_runs_until_stopped, stop_seconds=2.0)
    service = await _service(database, paseo, settings)
    try:
        session_id = await _session(database)
        turn, _ = await service.start_turn(session_id, "long")
        async with asyncio.timeout(30):
            while "text" not in await _event_names(database, turn.id):
                await asyncio.sleep(0.05)
        cancelled, confirmed = await service.cancel(session_id)
        assert not confirmed
        assert cancelled.cancelling_at is not None
        assert (await _event_names(database, turn.id)).count("turn.cancelling") == 1
        paseo.status = "idle"
    finally:
        await service.aclose()


async def test_interrupting_a_turn_whose_gateway_died_ends_its_stream(
    database: Database, settings: TurnSettings
) -> None:
    """The replaced turn gets its terminal event from the request that replaced it, so no
    reader waits for a runner that is gone."""

    async def instant() -> AsyncIterator[TurnEvent]:
        yield TurnStarted()
        yield PromptDelivered()
        yield TextDelta("new")
        yield TurnEnded("completed", "Agent is idle.", "new")

    service = await _service(database, ScriptedPaseo(instant), settings)
    try:
        session_id = await _session(database)
        async with database.session() as session:
            orphan = await turns_repo.add_turn(
                session,
                session_id=session_id,
                prompt="old",
                status=TurnStatus.RUNNING,
                runner_id="gateway-that-died",
                heartbeat_at=utcnow() - timedelta(seconds=1),
            )
        turn, _ = await service.start_turn(session_id, "new", interrupt=True)
        names = [event.name async for event in service.events(orphan.id)]
        assert names == ["turn.interrupted"]
        ended = await _final(service, session_id, turn.id)
        assert (ended.status, ended.replaces_turn_id) == ("completed", orphan.id)
    finally:
        await service.aclose()


async def test_a_replacing_prompt_that_never_arrives_stops_the_agent(
    database: Database, settings: TurnSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """mode=interrupt ended the old turn; if the new prompt fails before Paseo has it, the
    agent would go on with the old prompt that nobody follows: it is stopped, and the request
    gets the error (start_turn returns only once Paseo has the prompt)."""

    async def fails_to_send() -> AsyncIterator[TurnEvent]:
        yield TurnStarted()
        raise PaseoError("SEND_FAILED", "Failed to send message: Transport closed (code 1006)")
        yield TextDelta("")  # pragma: no cover

    paseo = ScriptedPaseo(fails_to_send)
    service = await _service(database, paseo, settings)
    try:
        session_id = await _session(database)
        async with database.session() as session:
            await turns_repo.add_turn(
                session,
                session_id=session_id,
                prompt="old",
                status=TurnStatus.RUNNING,
                runner_id="elsewhere",
                heartbeat_at=utcnow(),
            )
        with caplog.at_level(logging.INFO, logger="app.services.turn.run"):
            # Paseo never had the prompt: the request is told so, not a stream.
            with pytest.raises(PaseoError, match="SEND_FAILED"):
                await service.start_turn(session_id, "new", interrupt=True)
            async with database.session() as session:
                turns, _ = await turns_repo.list_turns(session, session_id, limit=10, offset=0)
            turn = next(turn for turn in turns if turn.prompt == "new")
            ended = await _final(service, session_id, turn.id)
            assert ended.status == "failed"
            assert paseo.stops == [AGENT_ID]
            async with asyncio.timeout(60):  # logged just after the ending is stored
                while "turn ended" not in caplog.text:
                    await asyncio.sleep(0.01)
        # The log line of the ending says why, not only that it failed.
        assert "turn ended: failed (send_failed: Failed to send message" in caplog.text
    finally:
        await service.aclose()


async def test_an_illegal_ending_raises(database: Database) -> None:
    session_id = await _session(database)
    async with database.session() as session:
        turn = await turns_repo.add_turn(session, session_id=session_id, prompt="p")
    with pytest.raises(IllegalTurnTransition):
        async with database.session() as session:
            await end_turn(session, turn.id, Ending(TurnStatus.COMPLETED, "from the queue?"))
    async with database.session() as session:
        stored = await turns_repo.get_turn(session, turn.id)
    assert stored is not None and stored.status == TurnStatus.QUEUED
