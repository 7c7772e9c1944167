"""Running one turn: follow Paseo, store what it produces, end the turn once.

The parts: the store (app/services/turn/store.py) claims, appends and ends; the decisions
(app/services/turn/decisions.py) say how a turn ends; this module follows the transport's
events and applies the limits and the cancel. A run returns how it stopped as a value (an
`Outcome`); `TurnRun.finish`, its one writer, turns that into the `Ending` (a pure decision)
and stores it through the store's one `end_turn`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from app.aio import cancel_and_wait, shielded
from app.metrics import TURN_DURATION, TURNS
from app.models import GatewaySession, SessionStatus, Turn, TurnStatus, utcnow
from app.paseo.client import PaseoClient
from app.paseo.daemons import Daemon
from app.paseo.errors import PaseoError, PaseoErrorKind
from app.paseo.media import NO_MEDIA, PromptMedia
from app.paseo.types import (
    AgentNotice,
    AgentStarted,
    NewAgent,
    PermissionAnswer,
    PermissionRequest,
    PermissionRequested,
    PermissionResolved,
    PromptDelivered,
    PromptSteered,
    ReasoningDelta,
    TextDelta,
    TodoUpdate,
    ToolActivity,
    TurnEnded,
    TurnEvent,
    TurnOutput,
    TurnStarted,
    Usage,
)
from app.services.turn import decisions as decide
from app.services.turn.decisions import (
    CalledOff,
    EndedElsewhere,
    LimitHit,
    Outcome,
    RecoveryFacts,
    Reported,
    Settled,
)
from app.services.turn.states import PERMISSION_REQUESTED, PERMISSION_RESOLVED
from app.services.turn.store import TurnStore
from app.services.workspaces import confine

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


@dataclass
class TurnLimits:
    timeout_seconds: float
    idle_timeout_seconds: float
    cancel_confirm_seconds: float
    stale_seconds: float = 30.0
    # Where agents may work (checked again just before one is created); empty: not checked.
    workspace_roots: tuple[str, ...] = ()
    # An unanswered permission request is denied after this long.
    permission_timeout_seconds: float = 3600.0


class TurnRun:
    """One turn being run by this process."""

    def __init__(
        self,
        *,
        store: TurnStore,
        daemon: Daemon,
        limits: TurnLimits,
        turn: Turn,
        started: asyncio.Future[None],
        record: GatewaySession | None = None,
        media: PromptMedia = NO_MEDIA,
    ) -> None:
        self.store = store
        self.daemon = daemon.name  # the daemon the turn's session is pinned to
        self.paseo: PaseoClient = daemon
        self.limits = limits
        self.turn = turn
        self.started = started
        # The session as the request that made the turn read it under its lock (None: read it).
        self.record = record
        self.agent_id: str | None = record.agent_id if record else None
        # The prompt's images and attachments: in memory only (a recovered run sends nothing).
        self.media = media
        self.delivered = turn.prompt_delivered_at is not None
        self.cancel_requested = asyncio.Event()
        # Set when another request or process ended this turn (mode=interrupt, a takeover).
        self.ended_elsewhere = asyncio.Event()
        self.taken_over = False
        self.task: asyncio.Task[None] | None = None
        self._creating = False
        self._stopper: asyncio.Task[None] | None = None
        # Pending permission requests: id -> when (loop time) the wait for it began.
        self._waiting: dict[str, float] = {}
        self._denied_for_timeout: set[str] = set()
        self._resolved: set[str] = set()
        self._deadline = 0.0  # the wall-clock limit (loop time); waits for a person move it
        self._waiting_since: float | None = None
        self._upcoming: asyncio.Future[TurnEvent] | None = None

    @property
    def turn_id(self) -> uuid.UUID:
        return self.turn.id

    # --- the two ways a run begins: each returns how it stopped ---------------------------

    async def start(self, slots: asyncio.Semaphore) -> Outcome:
        """A new turn: with its slot (taken when it was made running), or after waiting for
        one (made queued), give Paseo the prompt and follow the answer."""
        if self.turn.status == TurnStatus.RUNNING:
            try:
                assert self.record is not None
                return await self._run(self.record)
            finally:
                slots.release()
        await self.store.writer.emit_now("turn.queued", {"turn_id": str(self.turn_id)})
        self._mark_started()  # answer the request now; the stream says it waits
        if not await self._take_slot(slots):
            return EndedElsewhere() if self.ended_elsewhere.is_set() else CalledOff()
        try:
            return await self._run_claimed()
        finally:
            slots.release()

    async def _run_claimed(self) -> Outcome:
        """A queued turn got its slot: what changed while it waited decides whether it runs."""
        record = await self.store.load_session()
        claimed = await self.store.claim_running()
        if claimed is None:
            return EndedElsewhere()  # ended while it waited (replaced): its ender stored that
        self.turn = claimed
        if record.status in (SessionStatus.CLOSED, SessionStatus.AGENT_MISSING):
            return Settled(decide.ending_for_closed_session(record.status))
        if await self._cancel_is_requested():
            return CalledOff()
        return await self._run(record)

    async def _run(self, record: GatewaySession) -> Outcome:
        if record.status == SessionStatus.AGENT_ARCHIVED:
            await self.store.update_session(status=SessionStatus.ACTIVE)  # send unarchives it
        look = decide.must_look_for_lost_agent(
            has_agent=record.agent_id is not None,
            earlier_prompt_sent=record.agent_id is None
            and await self.store.earlier_prompt_sent(self.turn),
        )
        if look and await self._find_agent(record):
            record = await self.store.load_session()  # adopted: never a second agent
        self.agent_id = record.agent_id
        if self.turn.replaces_turn_id is not None:
            await self.store.wait_for_replaced(
                self.turn.replaces_turn_id, self.limits.stale_seconds
            )
        return await self._follow(self._turn_events(record), recovering=False)

    async def _take_slot(self, slots: asyncio.Semaphore) -> bool:
        """Wait for a turn slot; False if the turn was cancelled or ended while it waited."""
        while True:
            try:
                async with asyncio.timeout(SLOT_CHECK_SECONDS):  # not wait_for: see app.aio
                    await slots.acquire()
                return True
            except TimeoutError:
                if self.ended_elsewhere.is_set() or await self._cancel_is_requested():
                    return False

    async def recover(self) -> Outcome:
        """A turn whose gateway died: reconcile it with what Paseo has now."""
        facts = await self._recovery_facts()
        decision = decide.recover(facts)
        if decide.prompt_reached_paseo(facts) and not self.delivered:
            self.delivered = True
            await self.store.mark_prompt_delivered()
        if decision != "follow" and decision != "finished":
            return Settled(decision)
        assert self.agent_id is not None
        # Requests stored and not resolved: also those of a gateway that died between showing
        # one and marking the turn waiting. Their resolution is stored once, here.
        for permission_id in await self.store.open_permission_requests():
            self._start_waiting(permission_id)
        if self._waiting and self.turn.status != TurnStatus.WAITING_PERMISSION:
            await self.store.set_waiting(True)
        events = self.paseo.resume_agent_turn(
            self.agent_id,
            self.turn.prompt,
            await self.store.resume_cursor(),
            turn_key=str(self.turn_id),
        )
        if decision == "follow":
            elapsed = _age_seconds(self.turn)
            if self._waiting:
                elapsed = 0.0  # how long it ran before it asked is not known
            return await self._follow(events, recovering=True, elapsed=elapsed)
        await self._store_missed(events)
        await self._resolve_all()  # answered while the gateway was away
        return Settled(decide.FINISHED_AWAY, usage=await self._last_usage())

    async def _recovery_facts(self) -> RecoveryFacts:
        if self.turn.status == TurnStatus.QUEUED:
            return RecoveryFacts(queued=True, agent_known=False)
        record = await self.store.load_session()
        self.agent_id = record.agent_id or await self._find_agent(record)
        if self.agent_id is None:
            return RecoveryFacts(queued=False, agent_known=False)
        try:
            detail = await self.paseo.inspect_agent(self.agent_id)
        except PaseoError as exc:
            if exc.kind != PaseoErrorKind.NOT_FOUND:
                raise
            await self.store.update_session(status=SessionStatus.AGENT_MISSING)
            return RecoveryFacts(queued=False, agent_known=True, agent_exists=False)
        history = await self.paseo.prompt_history(
            self.agent_id, self.turn.prompt, turn_key=str(self.turn_id)
        )
        return RecoveryFacts(
            queued=False,
            agent_known=True,
            agent_status=detail.status,
            prompt_sent=self.turn.prompt_sent_at is not None,
            prompt_delivered=self.delivered,
            times_recorded=history.times_recorded,
            # Matched by this turn's key, the count is this turn's alone.
            earlier_deliveries=(
                0 if history.by_turn_key else await self.store.earlier_deliveries(self.turn)
            ),
            latest_is_this_prompt=history.latest_is_this_prompt,
            cancel_requested=await self._cancel_is_requested(),
        )

    # --- following Paseo ---------------------------------------------------------------------

    def _turn_events(self, record: GatewaySession) -> AsyncIterator[TurnEvent]:
        if record.agent_id:
            return self.paseo.prompt_agent_turn(
                record.agent_id, self.turn.prompt, turn_key=str(self.turn_id), media=self.media
            )
        cwd = record.cwd
        if self.limits.workspace_roots:
            cwd = confine(record.cwd, self.limits.workspace_roots)  # it may have moved since
        agent = NewAgent(
            provider=record.provider,
            cwd=cwd,
            title=record.title or title_from(self.turn.prompt),
            model=record.model,
            mode=record.mode,
            labels={**record.labels, SESSION_LABEL: str(record.id)},
        )
        return self.paseo.start_agent_turn(
            agent, self.turn.prompt, turn_key=str(self.turn_id), media=self.media
        )

    async def _follow(
        self, events: AsyncIterator[TurnEvent], *, recovering: bool, elapsed: float = 0.0
    ) -> Outcome:
        """Store the turn's events until it stops, within the wall-clock and idle limits.

        `elapsed` is how long the turn already ran before this follow began (recovery). The
        ending itself (which may wait for a confirmed stop) runs outside those limits.
        """
        self._deadline = asyncio.get_running_loop().time() + self.limits.timeout_seconds - elapsed
        self._stopper = asyncio.create_task(self._stop_when_cancelled())
        async with contextlib.aclosing(events):  # type: ignore[type-var]
            try:
                return await self._take_events(events, recovering)
            finally:
                if self._upcoming is not None:  # left pending by a permission timeout
                    await cancel_and_wait(self._upcoming)

    async def _take_events(self, events: AsyncIterator[TurnEvent], recovering: bool) -> Outcome:
        """Handle the transport's events up to the turn's end, or until a limit, a cancel
        before the prompt went out, or an ending elsewhere stops it."""
        while True:
            event = await self._next_event(events)
            if event == "permission_timeout":
                await self._deny_unanswered()
                continue
            if event == "deadline":
                return LimitHit("turn_timeout", self.limits.timeout_seconds)
            if event == "idle":
                return LimitHit("turn_idle_timeout", self.limits.idle_timeout_seconds)
            if event == "over":
                if self.ended_elsewhere.is_set():
                    return EndedElsewhere()
                raise PaseoError("BAD_OUTPUT", "the turn's output ended without an outcome")
            if isinstance(event, TurnEnded):
                # The daemon may stream a request's resolution only after the turn's end.
                await self._resolve_all()
                return Reported(event.outcome, event.message, _usage(event.usage))
            stopped = await self._handle(event, recovering)
            if stopped is not None:
                return stopped

    async def _next_event(self, events: AsyncIterator[TurnEvent]) -> TurnEvent | Wake:
        """The transport's next event, or why there is none now: `over` (it has no more, or
        the turn ended elsewhere), `deadline` (the wall-clock limit, loop time), `idle` (the
        idle limit without an event), `permission_timeout` (a request waited its limit).

        The limits apply only to this wait, never to storing what arrived (a cancelled write
        could leave a database connection mid-transaction). Creating an agent is not idle
        output: the idle limit counts only once it exists. While the agent waits for a
        person, only the permission limit applies, and the wait for the event goes on after
        it (the transport's iterator is not cancelled then). One `timeout_at`, not
        `wait_for`, which on Python 3.11 can swallow a cancellation when both fire together.
        """
        loop = asyncio.get_running_loop()
        wake_at = self._deadline
        if self._waiting:
            wake_at = self._permission_deadline()
        elif not self._creating:
            wake_at = min(self._deadline, loop.time() + self.limits.idle_timeout_seconds)
        upcoming: asyncio.Future[TurnEvent] = self._upcoming or asyncio.ensure_future(anext(events))
        self._upcoming = None
        ended: asyncio.Future[Any] = asyncio.ensure_future(self.ended_elsewhere.wait())
        wake: Wake | None = None
        try:
            async with asyncio.timeout_at(wake_at):
                await asyncio.wait([upcoming, ended], return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            if self._waiting:
                wake = "permission_timeout"
                self._upcoming = upcoming  # still waited for, after the deny
            elif loop.time() >= self._deadline:
                wake = "deadline"
            else:
                wake = "idle"
        finally:
            await cancel_and_wait(ended)
            if self._upcoming is None:
                await cancel_and_wait(upcoming)
        if wake is not None:
            return wake
        if upcoming.cancelled():
            return "over"
        try:
            return upcoming.result()
        except StopAsyncIteration:
            return "over"

    # --- a person in the loop ----------------------------------------------------------------

    def _permission_deadline(self) -> float:
        """When the oldest request nobody answered yet is denied (loop time)."""
        unanswered = [
            since for pid, since in self._waiting.items() if pid not in self._denied_for_timeout
        ]
        oldest = min(unanswered) if unanswered else asyncio.get_running_loop().time()
        return oldest + self.limits.permission_timeout_seconds

    def _start_waiting(self, permission_id: str) -> None:
        now = asyncio.get_running_loop().time()
        if not self._waiting:
            self._waiting_since = now
        self._waiting[permission_id] = now

    async def _asked(self, request: PermissionRequest) -> None:
        """The agent waits for a person: say what it asks, and the turn waits too."""
        if request.id in self._waiting or request.id in self._resolved:
            return  # announced already (a resumed transport says it again)
        first = not self._waiting
        self._start_waiting(request.id)
        # Stored at once (a restart finds it), then the status says the turn waits.
        await self.store.writer.emit_now(
            PERMISSION_REQUESTED,
            {"permission_id": request.id, **request.model_dump(exclude={"id"})},
        )
        if first:
            await self.store.set_waiting(True)

    async def _resolved_one(self, permission_id: str, seen_behavior: str | None) -> None:
        """A request is answered: say how and by whom; with none left, the turn runs on."""
        if permission_id not in self._waiting:
            return
        del self._waiting[permission_id]
        self._resolved.add(permission_id)
        answer = decide.resolution(await self.store.recorded_answer(permission_id), seen_behavior)
        data: dict[str, Any] = {
            "permission_id": permission_id,
            "behavior": answer.behavior,
            "by": answer.by,
        }
        if answer.message:
            data["message"] = answer.message
        await self.store.writer.emit_now(PERMISSION_RESOLVED, data)
        if not self._waiting:
            if self._waiting_since is not None:  # waiting for a person is not running time
                self._deadline += asyncio.get_running_loop().time() - self._waiting_since
                self._waiting_since = None
            await self.store.set_waiting(False)

    async def _resolve_all(self) -> None:
        """The agent went on (output, or the turn's end): its requests were answered."""
        for permission_id in list(self._waiting):
            await self._resolved_one(permission_id, None)

    async def _deny_unanswered(self) -> None:
        """Deny, for the gateway, each request nobody answered within the limit."""
        now = asyncio.get_running_loop().time()
        limit = self.limits.permission_timeout_seconds
        message = decide.permission_timeout_message(limit)
        for permission_id, since in list(self._waiting.items()):
            if permission_id in self._denied_for_timeout or now < since + limit:
                continue
            self._denied_for_timeout.add(permission_id)
            if not await self.store.record_timeout_answer(permission_id, message):
                continue  # a person answered it just now
            assert self.agent_id is not None
            try:
                await self.paseo.answer_permission(
                    self.agent_id, permission_id, PermissionAnswer("deny", message=message)
                )
            except PaseoError as exc:
                logger.warning("turn %s: could not deny %s: %s", self.turn_id, permission_id, exc)

    async def _handle(self, event: TurnEvent, recovering: bool) -> Outcome | None:
        """Store one event; an outcome when it stops the run."""
        if isinstance(event, AgentStarted):
            self._creating = False
            self.agent_id = event.agent.agent_id
            await self.store.update_session(
                agent_id=event.agent.agent_id,
                status=SessionStatus.ACTIVE,
                cwd=event.agent.cwd,
                default_title=event.agent.title,
            )
            await self.store.writer.emit("agent.created", {"agent_id": self.agent_id})
        elif isinstance(event, TurnStarted):
            return None if recovering else await self._may_send()
        elif isinstance(event, PromptDelivered):
            self._creating = False
            self._mark_started()  # Paseo has the prompt: the request is answered
            if not self.delivered:
                self.delivered = True
                await self.store.mark_prompt_delivered()
        elif isinstance(event, PermissionRequested):
            self._mark_started()
            await self._asked(event.request)
        elif isinstance(event, PermissionResolved):
            await self._resolved_one(event.permission_id, event.behavior)
        elif isinstance(event, TurnOutput):
            self._mark_started()  # output: Paseo has the prompt, whatever the transport said
            if not isinstance(event, AgentNotice):
                await self._resolve_all()  # text or tools: the agent is working again
            await self.store.writer.emit(*stream_event(event), cursor=event.cursor)
        return None

    async def _may_send(self) -> Outcome | None:
        """At `TurnStarted`, nothing was sent yet: record that it goes now (one write, which
        also finds a cancel stored by another process), or call it off."""
        if self.cancel_requested.is_set():
            return CalledOff()
        sent = await self.store.mark_prompt_sent()
        if sent == "cancelled":
            self.cancel_requested.set()
            return CalledOff()
        if sent == "gone":
            self.ended_elsewhere.set()  # replaced (or taken over) before it was sent
            return EndedElsewhere()
        self.turn = sent
        if self.agent_id is None:
            self._creating = True  # the idle limit counts once the agent exists
        return None

    # --- cancelling --------------------------------------------------------------------------

    async def _stop_when_cancelled(self) -> None:
        """Once a cancel is asked for, stop the agent; at the cancel's one deadline say so in
        the stream, and keep stopping until the turn has ended."""
        await self.cancel_requested.wait()
        await self._stop_agent()
        # This task is cancelled when the turn ends: its database calls are shielded, so a
        # cancellation never lands in the middle of a transaction.
        read = asyncio.ensure_future(self.store.cancel_requested_at())
        requested_at = await asyncio.shield(read) or utcnow()
        deadline = decide.cancel_deadline(requested_at, self.limits.cancel_confirm_seconds)
        await _sleep_until(deadline)
        while True:
            await shielded(self.store.announce_cancelling())
            await asyncio.sleep(STOP_RETRY_SECONDS)
            await self._stop_agent()

    async def _confirm_stopped(self) -> bool:
        """Wait until Paseo reports the agent is no longer running."""
        if self.agent_id is None:
            return True
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + CANCEL_GIVE_UP_SECONDS
        while loop.time() < give_up_at:
            try:
                if (await self.paseo.inspect_agent(self.agent_id)).status != "running":
                    return True
            except PaseoError as exc:
                if exc.kind == PaseoErrorKind.NOT_FOUND:
                    return True
            await asyncio.sleep(CONFIRM_POLL_SECONDS)
        return False

    async def _cancel_is_requested(self) -> bool:
        if self.cancel_requested.is_set():
            return True
        if await self.store.cancel_requested_at() is not None:
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

    # --- ending: the one writer ----------------------------------------------------------

    async def finish(self, outcome: Outcome) -> None:
        """End the turn the one way: gather the facts the decision needs, decide the ending
        (a pure function of them), act on it (stop the agent if it must), and store it."""
        if self._stopper is not None:
            self._stopper.cancel()
        if isinstance(outcome, EndedElsewhere):
            self.ended_elsewhere.set()
            logger.info("turn %s was ended elsewhere; no longer following it", self.turn_id)
            return
        cancel = isinstance(outcome, Reported) and await self._cancel_is_requested()
        confirmed = decide.must_confirm_stop(outcome, cancel_requested=cancel) and (
            await self._confirm_stopped()
        )
        ending = decide.ending_of(outcome, cancel_requested=cancel, stop_confirmed=confirmed)
        assert ending is not None
        replaced = self.turn.replaces_turn_id is not None
        if decide.must_stop_agent(
            outcome, ending, replaced_a_turn=replaced, delivered=self.delivered
        ):
            if self.agent_id is None:
                # A limit hit while the agent was being created: it may exist all the same.
                with contextlib.suppress(PaseoError):
                    self.agent_id = await self._find_agent(await self.store.load_session())
            await self._stop_agent()
        turn = await self.store.end(ending, usage=decide.usage_of(outcome))
        if turn is None:
            self.ended_elsewhere.set()
            logger.info("turn %s had already ended elsewhere", self.turn_id)
            return
        self.turn = turn
        if turn.error_code:
            logger.info("turn ended: %s (%s: %s)", turn.status, turn.error_code, ending.message)
        else:
            logger.info("turn ended: %s", turn.status)
        TURNS.labels(outcome=turn.status, daemon=self.daemon).inc()
        TURN_DURATION.labels(daemon=self.daemon).observe(_age_seconds(turn))

    def stop_helpers(self) -> None:
        if self._stopper is not None:
            self._stopper.cancel()

    # --- helpers -----------------------------------------------------------------------------

    def _mark_started(self) -> None:
        if not self.started.done():
            self.started.set_result(None)

    async def _find_agent(self, record: GatewaySession) -> str | None:
        """An agent already labelled with the session (a `run -d` whose answer was lost)."""
        agents = await self.paseo.list_agents(
            include_archived=True, labels={SESSION_LABEL: str(record.id)}
        )
        if not agents:
            return None
        await self.store.update_session(agent_id=agents[0].id, status=SessionStatus.ACTIVE)
        return agents[0].id

    async def _store_missed(self, events: AsyncIterator[TurnEvent]) -> None:
        """Store what a turn that ended while the gateway was away produced after the last
        stored event (its transport's ending is not needed: the recovery decided it)."""
        async with contextlib.aclosing(events):  # type: ignore[type-var]
            async with asyncio.timeout(self.limits.idle_timeout_seconds):
                async for event in events:
                    if isinstance(event, TurnEnded):
                        return
                    if isinstance(event, TurnOutput):
                        await self.store.writer.emit(*stream_event(event), cursor=event.cursor)

    async def _last_usage(self) -> dict[str, Any] | None:
        if self.agent_id is None:
            return None
        try:
            return _usage((await self.paseo.inspect_agent(self.agent_id)).last_usage)
        except PaseoError:
            return None


# Why `_next_event` returned no event.
Wake = Literal["over", "deadline", "idle", "permission_timeout"]


def _usage(usage: Usage | None) -> dict[str, Any] | None:
    return usage.model_dump() if usage else None


def _age_seconds(turn: Turn) -> float:
    return (utcnow() - turn.started_at).total_seconds()


async def _sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - utcnow()).total_seconds()))


def events_url(session_id: uuid.UUID, turn_id: uuid.UUID) -> str:
    return f"/sessions/{session_id}/turns/{turn_id}/events"


def title_from(prompt: str) -> str:
    first_line = prompt.strip().splitlines()[0] if prompt.strip() else "session"
    return first_line[:TITLE_FROM_PROMPT_CHARS]


def tool_event_data(event: ToolActivity) -> dict[str, Any]:
    """A `tool` event: one state of one call (its detail already in the gateway's terms)."""
    return {
        "call_id": event.call_id,
        "name": event.name,
        "status": event.status,
        "kind": event.kind,
        "detail": dict(event.detail),
        "error": event.error,
    }


def todo_event_data(event: TodoUpdate) -> dict[str, Any]:
    """A `todo` event: the task list as it stands (`items` null where only counts are seen)."""
    items = (
        None
        if event.items is None
        else [{"text": item.text, "done": item.done} for item in event.items]
    )
    return {"items": items, "completed": event.completed, "total": event.total}


def stream_event(event: TurnOutput) -> tuple[str, dict[str, Any]]:
    if isinstance(event, TextDelta):
        return "text", {"delta": event.text}
    if isinstance(event, ReasoningDelta):
        return "reasoning", {"delta": event.text}
    if isinstance(event, ToolActivity):
        return "tool", tool_event_data(event)
    if isinstance(event, TodoUpdate):
        return "todo", todo_event_data(event)
    if isinstance(event, AgentNotice):
        return "notice", {"kind": event.kind, "text": event.text}
    if isinstance(event, PromptSteered):
        return "turn.steered", {"prompt": event.text}
    raise TypeError(f"not a stream event: {event!r}")
