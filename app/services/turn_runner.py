"""Running one turn to its end: follow Paseo, store every event, end in exactly one state.

A run ends by `_finish`, which stores the final status (a compare-and-set, so a turn that
someone else already ended keeps that ending) and the terminal event in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Unpack

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.metrics import TURN_DURATION, TURNS
from app.models import GatewaySession, SessionStatus, Turn, TurnStatus, utcnow
from app.paseo.client import PaseoClient
from app.paseo.errors import PaseoError, PaseoErrorKind
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
from app.repositories import turn_events as events_repo
from app.repositories import turns as turns_repo
from app.repositories.sessions import SessionChanges
from app.services.turn_events import EventNotifier, EventWriter
from app.services.turn_states import (
    FINAL_STATUSES,
    TERMINAL_EVENT_BY_STATUS,
    IllegalTurnTransition,
    sources_of,
)

logger = logging.getLogger(__name__)

SESSION_LABEL = "gateway.session"
TITLE_FROM_PROMPT_CHARS = 60
# While a requested stop is not confirmed, ask Paseo again this often.
STOP_RETRY_SECONDS = 5.0
CONFIRM_POLL_SECONDS = 0.5
# After this long without confirmation, a cancelled turn is recorded as failed.
CANCEL_GIVE_UP_SECONDS = 600.0
# A queued turn checks this often whether it was cancelled or replaced meanwhile.
SLOT_CHECK_SECONDS = 1.0

RunMode = Literal["start", "recover"]


@dataclass
class TurnLimits:
    timeout_seconds: float
    idle_timeout_seconds: float
    cancel_confirm_seconds: float


@dataclass
class TurnRun:
    """One turn being run by this process."""

    db: Database
    paseo: PaseoClient
    notifier: EventNotifier
    limits: TurnLimits
    turn: Turn
    writer: EventWriter
    started: asyncio.Future[None]
    agent_id: str | None = None
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when another request or process ended this turn (mode=interrupt, a takeover).
    ended_elsewhere: asyncio.Event = field(default_factory=asyncio.Event)
    taken_over: bool = False
    task: asyncio.Task[None] | None = None
    _stopper: asyncio.Task[None] | None = None
    _told_unconfirmed: bool = False
    _finished: bool = False

    @property
    def turn_id(self) -> uuid.UUID:
        return self.turn.id

    # --- the two ways a run begins ----------------------------------------------------------

    async def start(self, slots: asyncio.Semaphore) -> None:
        """A new turn: wait for a slot, then give Paseo the prompt and follow the answer."""
        record = await self._load_session()
        self.agent_id = record.agent_id
        await self.writer.emit(
            "turn.started",
            {
                "turn_id": str(self.turn_id),
                "session_id": str(record.id),
                "agent_id": record.agent_id,
                "events_url": events_url(record.id, self.turn_id),
            },
        )
        if slots.locked():
            await self.writer.emit_now("turn.queued", {"turn_id": str(self.turn_id)})
            self._mark_started()  # answer the request now; the stream says it waits
        if not await self._take_slot(slots):
            await self._end_before_start()
            return
        try:
            record = await self._load_session()  # it may have changed while the turn waited
            if record.status in (SessionStatus.CLOSED, SessionStatus.AGENT_MISSING):
                await self._finish(
                    TurnStatus.INTERRUPTED, f"the session became {record.status} before it ran"
                )
                return
            if not await self._claim_running():
                return
            if await self._cancel_is_requested():
                await self._finish(TurnStatus.CANCELLED, "cancelled before it started")
                return
            if record.status == SessionStatus.AGENT_ARCHIVED:
                await self._update_session(status=SessionStatus.ACTIVE)  # send unarchives it
            self.agent_id = record.agent_id
            await self._follow(self._turn_events(record), created_now=record.agent_id is None)
        finally:
            slots.release()

    async def _take_slot(self, slots: asyncio.Semaphore) -> bool:
        """Wait for a turn slot; False if the turn was cancelled or ended while it waited."""
        while True:
            try:
                await asyncio.wait_for(slots.acquire(), SLOT_CHECK_SECONDS)
                return True
            except TimeoutError:
                if self.ended_elsewhere.is_set() or await self._cancel_is_requested():
                    return False

    async def _end_before_start(self) -> None:
        if self.cancel_requested.is_set():
            await self._finish(TurnStatus.CANCELLED, "cancelled while it waited for a slot")
        else:
            await self._finish(TurnStatus.INTERRUPTED, "replaced while it waited for a slot")

    async def recover(self) -> None:
        """A turn whose gateway died: reconcile it with what Paseo has now."""
        if self.turn.status == TurnStatus.QUEUED:
            await self._finish(
                TurnStatus.INTERRUPTED,
                "the gateway stopped before this turn started",
                error_code="gateway_restarted",
            )
            return
        record = await self._load_session()
        self.agent_id = record.agent_id or await self._find_agent(record)
        if self.agent_id is None:
            await self._finish(
                TurnStatus.INTERRUPTED,
                "the gateway stopped before the agent was created",
                error_code="gateway_restarted",
            )
            return
        try:
            detail = await self.paseo.inspect_agent(self.agent_id)
        except PaseoError as exc:
            if exc.kind != PaseoErrorKind.NOT_FOUND:
                raise
            await self._update_session(status=SessionStatus.AGENT_MISSING)
            await self._finish(
                TurnStatus.INTERRUPTED, "the agent no longer exists", error_code="agent_missing"
            )
            return
        already = await self._stored_text()
        if detail.status in ("running", "initializing") and not detail.pending_permissions:
            events = self.paseo.resume_agent_turn(self.agent_id, self.turn.prompt, already)
            # The prompt reached Paseo long ago: a cancel must stop the agent, not skip a send.
            await self._follow(events, created_now=True, elapsed=_age_seconds(self.turn))
            return
        await self._catch_up(already)
        if await self._cancel_is_requested():
            await self._finish(TurnStatus.CANCELLED, "cancelled; the agent had already stopped")
        elif detail.pending_permissions:
            await self._finish(TurnStatus.WAITING_PERMISSION, "Agent is waiting for permission")
        elif detail.status == "error":
            await self._finish(
                TurnStatus.FAILED, "the agent reported an error", error_code="agent_error"
            )
        else:
            usage = detail.last_usage.model_dump() if detail.last_usage else None
            await self._finish(
                TurnStatus.COMPLETED, "finished while the gateway was away", usage=usage
            )

    # --- following Paseo ---------------------------------------------------------------------

    def _turn_events(self, record: GatewaySession) -> AsyncIterator[TurnEvent]:
        if record.agent_id:
            return self.paseo.prompt_agent_turn(record.agent_id, self.turn.prompt)
        agent = NewAgent(
            provider=record.provider,
            cwd=record.cwd,
            title=record.title or title_from(self.turn.prompt),
            model=record.model,
            mode=record.mode,
            labels={**record.labels, SESSION_LABEL: str(record.id)},
        )
        return self.paseo.start_agent_turn(agent, self.turn.prompt)

    async def _follow(
        self, events: AsyncIterator[TurnEvent], *, created_now: bool, elapsed: float = 0.0
    ) -> None:
        """Store the turn's events until it ends, within the wall-clock and idle limits.

        `elapsed` is how long the turn already ran before this follow began (recovery). The
        ending itself (which may wait for a confirmed stop) runs outside those limits.
        """
        remaining = self.limits.timeout_seconds - elapsed
        ended: TurnEnded | None = None
        try:
            async with contextlib.aclosing(events), asyncio.timeout(max(remaining, 0.0)):  # type: ignore[type-var]
                while ended is None:
                    event = await self._next_event(events)
                    if isinstance(event, TurnEnded):
                        ended = event
                    elif event is None:
                        break
                    elif not await self._handle(event, created_now):
                        return
        except TimeoutError:
            await self._end_on_limit("turn_timeout", self.limits.timeout_seconds, "in all")
            return
        except _IdleTimeout:
            await self._end_on_limit(
                "turn_idle_timeout", self.limits.idle_timeout_seconds, "without output"
            )
            return
        finally:
            if self._stopper is not None:
                self._stopper.cancel()
        if ended is None:
            raise PaseoError("BAD_OUTPUT", "the turn's output ended without an outcome")
        await self._end(ended)

    async def _next_event(self, events: AsyncIterator[TurnEvent]) -> TurnEvent | None:
        try:
            return await asyncio.wait_for(anext(events), self.limits.idle_timeout_seconds)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise _IdleTimeout from None

    async def _handle(self, event: TurnEvent, created_now: bool) -> bool:
        """Store one event; False when the run is over."""
        if isinstance(event, AgentStarted):
            self.agent_id = event.agent.agent_id
            await self._update_session(
                agent_id=event.agent.agent_id,
                status=SessionStatus.ACTIVE,
                cwd=event.agent.cwd,
                default_title=event.agent.title,
            )
            await self.writer.emit("agent.created", {"agent_id": self.agent_id})
        elif isinstance(event, TurnStarted):
            self._mark_started()
            self._stopper = asyncio.create_task(self._stop_when_cancelled())
            if not created_now and await self._cancel_is_requested():
                # The prompt has not reached Paseo: do not send it at all.
                await self._finish(TurnStatus.CANCELLED, "cancelled before it reached the agent")
                return False
        else:
            await self.writer.emit(*stream_event(event))
        return True

    async def _end(self, ended: TurnEnded) -> None:
        usage = ended.usage.model_dump() if ended.usage else None
        common: dict[str, Any] = {"final_text": ended.final_text, "usage": usage}
        if await self._cancel_is_requested():
            if await self._confirm_stopped():
                await self._finish(TurnStatus.CANCELLED, "cancelled", **common)
            else:
                await self._finish(
                    TurnStatus.FAILED,
                    "Paseo never confirmed that the agent stopped",
                    error_code="cancel_unconfirmed",
                    **common,
                )
        elif ended.outcome == "completed":
            await self._finish(TurnStatus.COMPLETED, ended.message, **common)
        elif ended.outcome == "permission":
            await self._finish(TurnStatus.WAITING_PERMISSION, ended.message, **common)
        elif ended.outcome == "interrupted":
            await self._finish(
                TurnStatus.INTERRUPTED, ended.message, error_code="replaced", **common
            )
        else:
            await self._finish(TurnStatus.FAILED, ended.message, error_code="agent_error", **common)

    # --- cancelling --------------------------------------------------------------------------

    async def _stop_when_cancelled(self) -> None:
        """Once a cancel is asked for, stop the agent, and again until the turn has ended."""
        await self.cancel_requested.wait()
        await self._stop_agent()
        await asyncio.sleep(self.limits.cancel_confirm_seconds)
        while True:
            await self._say_unconfirmed()
            await self._stop_agent()
            await asyncio.sleep(STOP_RETRY_SECONDS)

    async def _say_unconfirmed(self) -> None:
        if not self._told_unconfirmed:
            self._told_unconfirmed = True
            await self.writer.emit_now(
                "turn.cancelling",
                {"detail": "Paseo has not confirmed the stop yet; still checking"},
            )

    async def _confirm_stopped(self) -> bool:
        """Wait until Paseo reports the agent is no longer running."""
        if self.agent_id is None:
            return True
        loop = asyncio.get_running_loop()
        warn_at = loop.time() + self.limits.cancel_confirm_seconds
        give_up_at = loop.time() + CANCEL_GIVE_UP_SECONDS
        while loop.time() < give_up_at:
            try:
                if (await self.paseo.inspect_agent(self.agent_id)).status != "running":
                    return True
            except PaseoError as exc:
                if exc.kind == PaseoErrorKind.NOT_FOUND:
                    return True
            if loop.time() > warn_at:
                warn_at = loop.time() + STOP_RETRY_SECONDS
                await self._say_unconfirmed()
                await self._stop_agent()
            await asyncio.sleep(CONFIRM_POLL_SECONDS)
        return False

    async def _cancel_is_requested(self) -> bool:
        if self.cancel_requested.is_set():
            return True
        async with self.db.session() as session:
            turn = await turns_repo.get_turn(session, self.turn_id)
        if turn is not None and turn.cancel_requested_at is not None:
            self.cancel_requested.set()
            return True
        return False

    async def _stop_agent(self) -> None:
        if self.agent_id is None:
            return
        try:
            await self.paseo.stop_agent(self.agent_id)
        except PaseoError as exc:
            logger.warning("could not stop agent %s: %s", self.agent_id, exc)

    # --- ending ------------------------------------------------------------------------------

    async def _end_on_limit(self, code: str, seconds: float, what: str) -> None:
        await self._stop_agent()
        await self._finish(
            TurnStatus.TIMED_OUT,
            f"the turn ran over its limit of {seconds:g} s {what}; the agent was stopped",
            error_code=code,
        )

    async def fail(self, code: str, message: str, exc: BaseException) -> None:
        """End the run as failed; raise `exc` to whoever waits for the start."""
        await self._finish(TurnStatus.FAILED, message, error_code=code)
        if not self.started.done():
            self.started.set_exception(exc)

    async def _finish(self, status: TurnStatus, message: str, **fields: Any) -> None:
        """Store the final status and the terminal event together, once per run."""
        if self._finished:
            return
        await self.writer.close()
        if status in (TurnStatus.FAILED, TurnStatus.INTERRUPTED, TurnStatus.TIMED_OUT):
            fields.setdefault("error_message", message)
        if "final_text" not in fields:
            fields["final_text"] = await self._stored_text()  # keep what the agent produced
        async with self.db.session() as session:
            turn = await turns_repo.transition_turn(
                session,
                self.turn_id,
                from_statuses=sources_of(status),
                to_status=status,
                finished_at=utcnow(),
                **fields,
            )
            if turn is None:
                turn = await self._ended_elsewhere(session)
            self.turn = turn
            name = TERMINAL_EVENT_BY_STATUS[TurnStatus(turn.status)]
            self.writer.seq += 1
            payload = terminal_payload(turn, message if turn.status == status else None)
            await events_repo.append_events(
                session, self.turn_id, [(self.writer.seq, name, payload)]
            )
            record = await sessions_repo.get_session(session, turn.session_id)
            if record is not None:
                await sessions_repo.update_session(session, record, last_active_at=utcnow())
        self._finished = True
        self.notifier.notify(self.turn_id)
        logger.info("turn ended: %s", self.turn.status)
        TURNS.labels(outcome=self.turn.status).inc()
        TURN_DURATION.observe(_age_seconds(self.turn))

    async def _ended_elsewhere(self, session: AsyncSession) -> Turn:
        """The compare-and-set missed: someone else (an interrupting prompt) ended the turn."""
        turn = await turns_repo.get_turn(session, self.turn_id)
        if turn is None or TurnStatus(turn.status) not in FINAL_STATUSES:
            raise IllegalTurnTransition(
                f"turn {self.turn_id} is {turn.status if turn else 'gone'}; cannot end it"
            )
        return turn

    # --- storage helpers ---------------------------------------------------------------------

    async def _claim_running(self) -> bool:
        """queued -> running; False (with the ending stored) if the turn was ended meanwhile."""
        async with self.db.session() as session:
            turn = await turns_repo.transition_turn(
                session,
                self.turn_id,
                from_statuses=[TurnStatus.QUEUED],
                to_status=TurnStatus.RUNNING,
            )
        if turn is not None:
            self.turn = turn
            return True
        await self._finish(TurnStatus.INTERRUPTED, "replaced before it started")
        return False

    def _mark_started(self) -> None:
        if not self.started.done():
            self.started.set_result(None)

    async def _load_session(self) -> GatewaySession:
        async with self.db.session() as session:
            record = await sessions_repo.get_session(session, self.turn.session_id)
        if record is None:
            raise IllegalTurnTransition(f"turn {self.turn_id} has no session")
        return record

    async def _update_session(
        self, *, default_title: str | None = None, **changes: Unpack[SessionChanges]
    ) -> None:
        """Change this turn's session (its agent found or gone); a title it has stays."""
        async with self.db.session() as session:
            record = await sessions_repo.get_session(session, self.turn.session_id)
            if record is None:
                return
            if default_title and not record.title:
                changes["title"] = default_title
            await sessions_repo.update_session(session, record, **changes)

    async def _find_agent(self, record: GatewaySession) -> str | None:
        """The agent `run -d` may have created before the gateway died (found by its label)."""
        agents = await self.paseo.list_agents(
            include_archived=True, labels={SESSION_LABEL: str(record.id)}
        )
        if not agents:
            return None
        await self._update_session(agent_id=agents[0].id, status=SessionStatus.ACTIVE)
        return agents[0].id

    async def _stored_text(self) -> str:
        """The reply text already stored as `text` events (what clients have seen)."""
        await self.writer.flush()
        async with self.db.session() as session:
            rows = await events_repo.list_events(session, self.turn_id, limit=1_000_000)
        return "".join(str(row.data.get("delta", "")) for row in rows if row.name == "text")

    async def _catch_up(self, already: str) -> None:
        """Store as one `text` event what the transcript has beyond what was streamed."""
        assert self.agent_id is not None
        try:
            reply = await self.paseo.last_reply(self.agent_id, self.turn.prompt)
        except PaseoError as exc:
            logger.warning("no transcript for turn %s: %s", self.turn_id, exc)
            return
        if reply and reply.startswith(already) and len(reply) > len(already):
            await self.writer.emit("text", {"delta": reply[len(already) :]})


class _IdleTimeout(Exception):
    """No event from Paseo for the idle limit."""


def _age_seconds(turn: Turn) -> float:
    return (utcnow() - turn.started_at).total_seconds()


def events_url(session_id: uuid.UUID, turn_id: uuid.UUID) -> str:
    return f"/sessions/{session_id}/turns/{turn_id}/events"


def title_from(prompt: str) -> str:
    first_line = prompt.strip().splitlines()[0] if prompt.strip() else "session"
    return first_line[:TITLE_FROM_PROMPT_CHARS]


def stream_event(event: TurnEvent) -> tuple[str, dict[str, Any]]:
    if isinstance(event, TextDelta):
        return "text", {"delta": event.text}
    if isinstance(event, ReasoningDelta):
        return "reasoning", {"delta": event.text}
    if isinstance(event, ToolActivity):
        return "tool", {"name": event.name, "status": event.status}
    if isinstance(event, AgentNotice):
        return "notice", {"kind": event.kind, "text": event.text}
    raise TypeError(f"not a stream event: {event!r}")


def terminal_payload(turn: Turn, message: str | None) -> dict[str, Any]:
    return {
        "turn_id": str(turn.id),
        "status": turn.status,
        "final_text": turn.final_text,
        "error_code": turn.error_code,
        "message": message or turn.error_message,
        "usage": turn.usage,
    }
