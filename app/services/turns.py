"""Running prompt turns: start, follow, persist, cancel, time out.

A turn runs in a task of its own, not in the HTTP request: a client that disconnects only
stops listening. Rules that must hold across gateway processes live in the database: the
one-active-turn-per-session index and the turn's `cancel_requested_at`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.aio import shielded
from app.db import Database
from app.errors import NoRunningTurn, SessionClosed, SessionNotFound, TurnInProgress, TurnNotFound
from app.models import GatewaySession, SessionStatus, Turn, TurnStatus, utcnow
from app.paseo.client import PaseoClient
from app.paseo.errors import PaseoError
from app.paseo.types import (
    AgentNotice,
    AgentStarted,
    NewAgent,
    ReasoningDelta,
    TextDelta,
    ToolActivity,
    TurnEnded,
    TurnEvent,
    TurnStarted,
)
from app.repositories import sessions as sessions_repo
from app.repositories import turns as turns_repo
from app.services.feed import TurnFeed

logger = logging.getLogger(__name__)

SESSION_LABEL = "gateway.session"
TITLE_FROM_PROMPT_CHARS = 60
# How long a cancelled or timed-out turn may take to wind down after `paseo stop`.
STOP_SETTLE_SECONDS = 30.0


@dataclass
class TurnSettings:
    timeout_seconds: float
    max_concurrent: int
    default_model: str | None = None


@dataclass
class _RunningTurn:
    turn_id: uuid.UUID
    feed: TurnFeed
    started: asyncio.Future[None]
    task: asyncio.Task[None] | None = None
    agent_id: str | None = None
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)


class TurnService:
    def __init__(self, db: Database, paseo: PaseoClient, settings: TurnSettings) -> None:
        self.db = db
        self.paseo = paseo
        self.settings = settings
        self._running: dict[uuid.UUID, _RunningTurn] = {}
        self._slots = asyncio.Semaphore(settings.max_concurrent)

    # --- starting -----------------------------------------------------------------------------

    async def start_turn(self, session_id: uuid.UUID, prompt: str) -> tuple[Turn, TurnFeed]:
        """Record a queued turn (the database refuses a second active one) and start it.

        Returns once Paseo has the prompt, so a failure to start (daemon down, bad provider)
        is raised here and answered with a status code rather than inside the stream.
        """
        turn = await self._insert_turn(session_id, prompt)
        running = _RunningTurn(turn.id, TurnFeed(), asyncio.get_running_loop().create_future())
        self._running[turn.id] = running
        running.task = asyncio.create_task(
            self._run(running, session_id, prompt), name=f"turn-{turn.id}"
        )
        await running.started
        return await self.get_turn(session_id, turn.id), running.feed

    async def _insert_turn(self, session_id: uuid.UUID, prompt: str) -> Turn:
        try:
            async with self.db.session() as session:
                record = await _get_session(session, session_id)
                if record.status == SessionStatus.CLOSED:
                    raise SessionClosed(f"session {session_id} is closed; create a new session")
                return await turns_repo.add_turn(session, session_id=session_id, prompt=prompt)
        except turns_repo.ActiveTurnExists:
            pass  # the failed transaction is rolled back; report the turn that holds the session
        active = await self.active_turn(session_id)
        active_id = str(active.id) if active else None
        raise TurnInProgress(
            f"session {session_id} is already running turn {active_id}; wait for it or cancel it",
            headers={"Retry-After": "5"},
            turn_id=active_id,
        )

    # --- running ------------------------------------------------------------------------------

    async def _run(self, running: _RunningTurn, session_id: uuid.UUID, prompt: str) -> None:
        deadline: asyncio.Timeout | None = None
        try:
            record = await self._load_session(session_id)
            running.agent_id = record.agent_id
            await self._publish_started(running, record)
            if self._slots.locked():
                # Answer the request now; the stream says the turn waits for a free slot.
                await running.feed.publish("turn.queued", {"turn_id": str(running.turn_id)})
                running.started.set_result(None)
            async with self._slots:
                if await self._cancel_requested(running):
                    await self._end_cancelled_before_start(running)
                    return
                await self._set_status(running.turn_id, TurnStatus.RUNNING)
                limit = asyncio.timeout(self.settings.timeout_seconds)
                deadline = limit
                async with limit:
                    await self._follow(running, session_id, self._turn_events(record, prompt))
        except TimeoutError as exc:
            if deadline is not None and deadline.expired():
                await self._end_after_stop(running, TurnStatus.TIMED_OUT, "turn_timeout")
            else:
                await self._fail(running, "paseo_timeout", "paseo did not answer in time", exc)
        except PaseoError as exc:
            await self._fail(running, exc.code.lower(), exc.message, exc)
        except asyncio.CancelledError:
            await shielded(self._interrupt(running))
            raise
        except Exception as exc:
            logger.exception("turn %s crashed", running.turn_id)
            await self._fail(running, "internal_error", "the gateway failed running this turn", exc)
        finally:
            if not running.started.done():
                running.started.set_result(None)
            await running.feed.close()
            self._running.pop(running.turn_id, None)

    def _turn_events(self, record: GatewaySession, prompt: str) -> AsyncIterator[TurnEvent]:
        if record.agent_id:
            return self.paseo.prompt_agent_turn(record.agent_id, prompt)
        agent = NewAgent(
            provider=record.provider,
            cwd=record.cwd,
            title=record.title or _title_from(prompt),
            model=record.model,
            mode=record.mode,
            labels={**record.labels, SESSION_LABEL: str(record.id)},
        )
        return self.paseo.start_agent_turn(agent, prompt)

    async def _follow(
        self, running: _RunningTurn, session_id: uuid.UUID, events: AsyncIterator[TurnEvent]
    ) -> None:
        created_agent = False
        async with contextlib.aclosing(events):  # type: ignore[type-var]
            async for event in events:
                if isinstance(event, TurnStarted):
                    if not running.started.done():
                        running.started.set_result(None)
                    if await self._cancel_requested(running):
                        if not created_agent:
                            # The prompt has not reached Paseo: do not send it at all.
                            await self._end_cancelled_before_start(running)
                            return
                        await self._stop_agent(running)
                elif isinstance(event, AgentStarted):
                    created_agent = True
                    running.agent_id = event.agent.agent_id
                    await self._attach_agent(session_id, event)
                    await running.feed.publish("agent.created", {"agent_id": event.agent.agent_id})
                elif isinstance(event, TurnEnded):
                    await self._finish(running, event)
                else:
                    await running.feed.publish(*_stream_event(event))

    async def _publish_started(self, running: _RunningTurn, record: GatewaySession) -> None:
        await running.feed.publish(
            "turn.started",
            {
                "turn_id": str(running.turn_id),
                "session_id": str(record.id),
                "agent_id": record.agent_id,
            },
        )

    # --- ending -------------------------------------------------------------------------------

    async def _finish(self, running: _RunningTurn, ended: TurnEnded) -> None:
        usage = ended.usage.model_dump() if ended.usage else None
        if await self._cancel_requested(running):
            status, name = TurnStatus.CANCELLED, "turn.cancelled"
        elif ended.outcome == "completed":
            status, name = TurnStatus.COMPLETED, "turn.completed"
        elif ended.outcome == "permission":
            status, name = TurnStatus.WAITING_PERMISSION, "turn.permission"
        else:
            status, name = TurnStatus.FAILED, "turn.failed"
        error_code = "agent_error" if status == TurnStatus.FAILED else None
        turn = await self._store_end(
            running.turn_id,
            status,
            final_text=ended.final_text,
            usage=usage,
            error_code=error_code,
            error_message=ended.message if error_code else None,
        )
        await running.feed.publish(name, _terminal_payload(turn, ended.message))

    async def _fail(
        self, running: _RunningTurn, code: str, message: str, exc: BaseException
    ) -> None:
        turn = await self._store_end(
            running.turn_id, TurnStatus.FAILED, error_code=code, error_message=message
        )
        if not running.started.done():
            # Stored first: whoever gets this error may read the turn right away.
            running.started.set_exception(exc)
        if not running.feed.closed:
            await running.feed.publish("turn.failed", _terminal_payload(turn, message))

    async def _end_after_stop(self, running: _RunningTurn, status: TurnStatus, code: str) -> None:
        await self._stop_agent(running)
        message = f"the turn exceeded its limit of {self.settings.timeout_seconds:g} s"
        turn = await self._store_end(
            running.turn_id, status, error_code=code, error_message=message
        )
        await running.feed.publish("turn.timed_out", _terminal_payload(turn, message))

    async def _end_cancelled_before_start(self, running: _RunningTurn) -> None:
        message = "cancelled before the prompt reached the agent"
        turn = await self._store_end(running.turn_id, TurnStatus.CANCELLED, error_message=message)
        await running.feed.publish("turn.cancelled", _terminal_payload(turn, message))

    async def _interrupt(self, running: _RunningTurn) -> None:
        """The gateway is shutting down under this turn: record that, stop nothing."""
        turn = await self._store_end(
            running.turn_id,
            TurnStatus.INTERRUPTED,
            error_code="gateway_shutdown",
            error_message="the gateway stopped while this turn ran",
        )
        if not running.feed.closed:
            await running.feed.publish("turn.failed", _terminal_payload(turn, "interrupted"))

    # --- cancelling ---------------------------------------------------------------------------

    async def cancel(self, session_id: uuid.UUID) -> Turn:
        """Ask the running turn to stop: recorded in the database, then `paseo stop`."""
        turn, agent_id = await self.request_cancel(session_id)
        if turn is None:
            raise NoRunningTurn(f"session {session_id} has no running turn to cancel")
        if agent_id:
            await self.paseo.stop_agent(agent_id)
        return turn

    async def request_cancel(self, session_id: uuid.UUID) -> tuple[Turn | None, str | None]:
        """Mark the session's active turn as cancelled-on-purpose; returns it and its agent.

        The flag lives in the database, so the process running the turn sees it even when
        another process took the request; whatever ends the turn then records `cancelled`.
        """
        async with self.db.session() as session:
            record = await _get_session(session, session_id)
            turn = await turns_repo.get_active_turn(session, session_id)
            if turn is None:
                return None, record.agent_id
            turn = await turns_repo.update_turn(session, turn, cancel_requested_at=utcnow())
        running = self._running.get(turn.id)
        if running is not None:
            running.cancel_requested.set()
        return turn, record.agent_id or (running.agent_id if running else None)

    async def _cancel_requested(self, running: _RunningTurn) -> bool:
        if running.cancel_requested.is_set():
            return True
        async with self.db.session() as session:
            turn = await turns_repo.get_turn(session, running.turn_id)
        return turn is not None and turn.cancel_requested_at is not None

    async def _stop_agent(self, running: _RunningTurn) -> None:
        if running.agent_id is None:
            return
        try:
            await self.paseo.stop_agent(running.agent_id)
        except PaseoError as exc:
            logger.warning("could not stop agent %s: %s", running.agent_id, exc)

    # --- reading ------------------------------------------------------------------------------

    def feed_for(self, turn_id: uuid.UUID) -> TurnFeed | None:
        running = self._running.get(turn_id)
        return running.feed if running else None

    async def active_turn(self, session_id: uuid.UUID) -> Turn | None:
        async with self.db.session() as session:
            return await turns_repo.get_active_turn(session, session_id)

    async def get_turn(self, session_id: uuid.UUID, turn_id: uuid.UUID) -> Turn:
        async with self.db.session() as session:
            await _get_session(session, session_id)
            turn = await turns_repo.get_turn(session, turn_id, session_id=session_id)
        if turn is None:
            raise TurnNotFound(f"session {session_id} has no turn {turn_id}")
        return turn

    async def list_turns(
        self, session_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[list[Turn], int]:
        async with self.db.session() as session:
            await _get_session(session, session_id)
            return await turns_repo.list_turns(session, session_id, limit=limit, offset=offset)

    async def aclose(self) -> None:
        """Shutdown: end every turn task (each records itself as interrupted)."""
        tasks = [running.task for running in self._running.values() if running.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- storage helpers ----------------------------------------------------------------------

    async def _load_session(self, session_id: uuid.UUID) -> GatewaySession:
        async with self.db.session() as session:
            return await _get_session(session, session_id)

    async def _attach_agent(self, session_id: uuid.UUID, started: AgentStarted) -> None:
        async with self.db.session() as session:
            record = await _get_session(session, session_id)
            await sessions_repo.update_session(
                session,
                record,
                agent_id=started.agent.agent_id,
                status=SessionStatus.ACTIVE,
                cwd=started.agent.cwd,
                title=record.title or started.agent.title,
            )

    async def _set_status(self, turn_id: uuid.UUID, status: TurnStatus) -> None:
        async with self.db.session() as session:
            turn = await turns_repo.get_turn(session, turn_id)
            if turn is not None:
                await turns_repo.update_turn(session, turn, status=status)

    async def _store_end(self, turn_id: uuid.UUID, status: TurnStatus, **fields: Any) -> Turn:
        async with self.db.session() as session:
            turn = await turns_repo.get_turn(session, turn_id)
            assert turn is not None, f"turn {turn_id} vanished"
            turn = await turns_repo.update_turn(
                session, turn, status=status, finished_at=utcnow(), **fields
            )
            record = await sessions_repo.get_session(session, turn.session_id)
            if record is not None:
                await sessions_repo.update_session(session, record, last_active_at=utcnow())
            return turn


async def _get_session(session: AsyncSession, session_id: uuid.UUID) -> GatewaySession:
    record = await sessions_repo.get_session(session, session_id)
    if record is None:
        raise SessionNotFound(f"no session {session_id}")
    return record


def _title_from(prompt: str) -> str:
    first_line = prompt.strip().splitlines()[0] if prompt.strip() else "session"
    return first_line[:TITLE_FROM_PROMPT_CHARS]


def _stream_event(event: TurnEvent) -> tuple[str, dict[str, Any]]:
    if isinstance(event, TextDelta):
        return "text", {"delta": event.text}
    if isinstance(event, ReasoningDelta):
        return "reasoning", {"delta": event.text}
    if isinstance(event, ToolActivity):
        return "tool", {"name": event.name, "status": event.status}
    if isinstance(event, AgentNotice):
        return "notice", {"kind": event.kind, "text": event.text}
    raise TypeError(f"not a stream event: {event!r}")


def _terminal_payload(turn: Turn, message: str) -> dict[str, Any]:
    return {
        "turn_id": str(turn.id),
        "status": turn.status,
        "final_text": turn.final_text,
        "error_code": turn.error_code,
        "message": message,
        "usage": turn.usage,
    }
