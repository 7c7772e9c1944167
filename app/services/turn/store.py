"""A turn's records: claim it, append its events, record its facts, and end it, one way only.

`end_turn` is the only way a turn reaches a final status: the status and the terminal event
are stored in one transaction, after every event the ender still had waiting, so a stream
always closes with exactly one terminal event and nothing after it. Every status change is
checked against the state machine (app/services/turn/states.py); an illegal one raises.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Unpack

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.models import GatewaySession, Turn, TurnStatus, utcnow
from app.paseo.prompts import js_trim
from app.repositories import event_channel
from app.repositories import permissions as permissions_repo
from app.repositories import sessions as sessions_repo
from app.repositories import turn_events as events_repo
from app.repositories import turns as turns_repo
from app.repositories.locks import lock_row
from app.repositories.sessions import SessionChanges
from app.services.turn.decisions import PERMISSION_TIMEOUT_BY, Ending, Resolution
from app.services.turn.events import Event, EventNotifier, EventWriter, StoredEvent
from app.services.turn.states import (
    FINAL_STATUSES,
    PERMISSION_REQUESTED,
    PERMISSION_RESOLVED,
    TERMINAL_EVENT_BY_STATUS,
    IllegalTurnTransition,
    check_transition,
    sources_of,
)

# A turn that replaced another waits at most this long (polling this often) for the other's
# runner to let go before it sends its own prompt, so the two never reach Paseo out of order.
REPLACED_POLL_SECONDS = 0.1
_ERROR_STATUSES = (TurnStatus.FAILED, TurnStatus.INTERRUPTED, TurnStatus.TIMED_OUT)


@dataclass(frozen=True)
class Ended:
    """A turn just ended: its row, and the events the ending stored (the last is terminal)."""

    turn: Turn
    events: list[StoredEvent]


async def end_turn(
    session: AsyncSession,
    turn_id: uuid.UUID,
    ending: Ending,
    *,
    runner_id: str | None = None,
    pending: Sequence[Event] = (),
    usage: dict[str, Any] | None = None,
) -> Ended | None:
    """End the turn with `ending`, in the caller's transaction; None if it had ended already
    (or, with `runner_id`, another runner holds it): nothing is changed then.

    `pending` (what the runner's `EventWriter.drain` handed over) is stored first, then the
    terminal event: one transaction, so a stream always closes with exactly one terminal event
    and nothing after it. `final_text` is what the stored `text` events say, so it always
    equals their concatenation.
    """
    stored: list[StoredEvent] = []
    try:
        if pending:
            rows = [(name, data) for name, data, _ in pending]
            cursor = next((cursor for _, _, cursor in reversed(pending) if cursor), None)
            seqs = await events_repo.append_next_events(
                session, turn_id, rows, runner_id=runner_id, cursor=cursor
            )
            stored = [
                StoredEvent(seq, name, data, cursor)
                for seq, (name, data, cursor) in zip(seqs, pending, strict=True)
            ]
        else:
            # Locked before reading the events, so no batch lands between the read and the end.
            await lock_row(session, Turn.id, turn_id, touch=Turn.last_event_seq)
    except turns_repo.TurnNotWritable:
        await _check_ended_already(session, turn_id, ending.status)
        return None
    fields: dict[str, Any] = {
        "finished_at": utcnow(),
        "final_text": await stored_text(session, turn_id),
        "error_code": ending.error_code,
    }
    if usage is not None:
        fields["usage"] = usage
    if ending.status in _ERROR_STATUSES:
        fields["error_message"] = ending.message
    turn = await turns_repo.finish_turn(
        session,
        turn_id,
        from_statuses=sources_of(ending.status),
        to_status=ending.status,
        runner_id=runner_id,
        **fields,
    )
    if turn is None:
        await _check_ended_already(session, turn_id, ending.status)
        return None
    terminal = StoredEvent(
        turn.last_event_seq,
        TERMINAL_EVENT_BY_STATUS[ending.status],
        terminal_payload(turn, ending.message),
    )
    row = (terminal.seq, terminal.name, terminal.data)
    await events_repo.append_events(session, turn_id, [row])
    await event_channel.notify_stored(session, turn_id, terminal.seq)
    await sessions_repo.set_last_active(session, turn.session_id, utcnow())
    return Ended(turn, [*stored, terminal])


async def _check_ended_already(session: AsyncSession, turn_id: uuid.UUID, target: str) -> None:
    """The compare-and-set missed: fine if the turn has an ending (or another runner), a bug
    if it is in a status the state machine does not let reach `target`."""
    current = await turns_repo.get_turn(session, turn_id)
    if current is None:
        raise IllegalTurnTransition(f"turn {turn_id} does not exist; cannot end it")
    if TurnStatus(current.status) not in FINAL_STATUSES:
        check_transition(current.status, target)


async def stored_text(session: AsyncSession, turn_id: uuid.UUID) -> str:
    """The reply as stored: the turn's `text` events concatenated (what clients have seen)."""
    return "".join(await events_repo.text_deltas(session, turn_id))


def terminal_payload(turn: Turn, message: str | None) -> dict[str, Any]:
    return {
        "turn_id": str(turn.id),
        "status": turn.status,
        "final_text": turn.final_text,
        "error_code": turn.error_code,
        "message": message or turn.error_message,
        "usage": turn.usage,
    }


async def announce_cancelling(db: Database, notifier: EventNotifier, turn_id: uuid.UUID) -> None:
    """Store `turn.cancelling` once per turn, whoever reaches the cancel's deadline first (the
    request that answers 202, or the runner); nothing for a turn that has ended. Its number is
    taken in the transaction that stores it, like every event's, so it cannot overtake one."""
    seq = await _store_cancelling(db, turn_id)
    if seq is not None:
        notifier.stored(turn_id, seq)


async def _store_cancelling(db: Database, turn_id: uuid.UUID) -> int | None:
    async with db.session() as session:
        if not await turns_repo.mark_cancelling(session, turn_id):
            return None
        detail = {"detail": "Paseo has not confirmed the stop yet; still checking"}
        [seq] = await events_repo.append_next_events(
            session, turn_id, [("turn.cancelling", detail)]
        )
        await event_channel.notify_stored(session, turn_id, seq)
    return seq


class TurnStore:
    """The records of one turn, as the runner holding it (`runner_id`) sees and changes them."""

    def __init__(self, db: Database, notifier: EventNotifier, turn: Turn, runner_id: str) -> None:
        self.db = db
        self.notifier = notifier
        self.turn_id = turn.id
        self.session_id = turn.session_id
        self.runner_id = runner_id
        self.writer = EventWriter(db, notifier, turn.id, runner_id)

    async def load_turn(self) -> Turn:
        async with self.db.session() as session:
            turn = await turns_repo.get_turn(session, self.turn_id)
        if turn is None:
            raise IllegalTurnTransition(f"turn {self.turn_id} is gone")
        return turn

    async def load_session(self) -> GatewaySession:
        async with self.db.session() as session:
            record = await sessions_repo.get_session(session, self.session_id)
        if record is None:
            raise IllegalTurnTransition(f"turn {self.turn_id} has no session")
        return record

    async def update_session(
        self, *, default_title: str | None = None, **changes: Unpack[SessionChanges]
    ) -> None:
        """Change this turn's session (its agent found or gone); a title it has stays."""
        async with self.db.session() as session:
            record = await sessions_repo.get_session(session, self.session_id)
            if record is None:
                return
            if default_title and not record.title:
                changes["title"] = default_title
            await sessions_repo.update_session(session, record, **changes)

    async def claim_running(self) -> Turn | None:
        """queued -> running; None if the turn was ended meanwhile (its ender stored that)."""
        check_transition(TurnStatus.QUEUED, TurnStatus.RUNNING)
        async with self.db.session() as session:
            return await turns_repo.transition_turn(
                session,
                self.turn_id,
                from_statuses=[TurnStatus.QUEUED],
                to_status=TurnStatus.RUNNING,
            )

    async def set_waiting(self, waiting: bool) -> None:
        """running <-> waiting_permission: the agent asked a person; answered, it runs on.
        A turn ended meanwhile is left as it is (the run learns so at its next write)."""
        source, target = (
            (TurnStatus.RUNNING, TurnStatus.WAITING_PERMISSION)
            if waiting
            else (TurnStatus.WAITING_PERMISSION, TurnStatus.RUNNING)
        )
        check_transition(source, target)
        async with self.db.session() as session:
            await turns_repo.transition_turn(
                session, self.turn_id, from_statuses=[source], to_status=target
            )

    async def recorded_answer(self, permission_id: str) -> Resolution | None:
        """The answer given through the gateway (any replica), if any."""
        async with self.db.session() as session:
            answer = await permissions_repo.get_answer(session, self.turn_id, permission_id)
        if answer is None:
            return None
        return Resolution(answer.behavior, answer.answered_by, answer.message)

    async def record_timeout_answer(self, permission_id: str, message: str) -> bool:
        """Record the gateway's own deny of an unanswered request; False if a person
        answered it first."""
        try:
            async with self.db.session() as session:
                await permissions_repo.record_answer(
                    session,
                    self.turn_id,
                    permission_id,
                    behavior="deny",
                    message=message,
                    answered_by=PERMISSION_TIMEOUT_BY,
                )
        except permissions_repo.AlreadyAnswered:
            return False
        return True

    async def open_permission_requests(self) -> list[str]:
        """The requests the stored events show asked and not yet resolved (recovery)."""
        names = (PERMISSION_REQUESTED, PERMISSION_RESOLVED)
        async with self.db.session() as session:
            events = await events_repo.events_named(session, self.turn_id, names)
        asked = [e.data["permission_id"] for e in events if e.name == PERMISSION_REQUESTED]
        resolved = {e.data["permission_id"] for e in events if e.name == PERMISSION_RESOLVED}
        return [permission_id for permission_id in asked if permission_id not in resolved]

    async def mark_prompt_sent(self) -> Turn | Literal["cancelled", "gone"]:
        """The prompt goes out now (the turn as it is then), unless it was cancelled or the
        turn is gone: one write, which sees a cancel stored by any process."""
        async with self.db.session() as session:
            return await turns_repo.mark_prompt_sent(session, self.turn_id, self.runner_id)

    async def mark_prompt_delivered(self) -> None:
        async with self.db.session() as session:
            await turns_repo.mark_prompt_delivered(session, self.turn_id)

    async def earlier_deliveries(self, turn: Turn) -> int:
        """How many earlier turns of the session put the same prompt into Paseo."""
        async with self.db.session() as session:
            prompts = await turns_repo.delivered_prompts_before(
                session, self.session_id, turn.number
            )
        mine = js_trim(turn.prompt)
        return sum(1 for prompt in prompts if js_trim(prompt) == mine)

    async def earlier_prompt_sent(self, turn: Turn) -> bool:
        """Whether an earlier turn of the session sent its prompt (it may have made an agent)."""
        async with self.db.read() as session:
            return await turns_repo.any_prompt_sent_before(session, self.session_id, turn.number)

    async def cancel_requested_at(self) -> datetime | None:
        return (await self.load_turn()).cancel_requested_at

    async def announce_cancelling(self) -> None:
        await announce_cancelling(self.db, self.notifier, self.turn_id)

    async def resume_cursor(self) -> str | None:
        """The transport's cursor after the last stored event (everything emitted stored
        first, so it is this writer's last word)."""
        await self.writer.flush()
        return (await self.load_turn()).resume_cursor

    async def end(self, ending: Ending, *, usage: dict[str, Any] | None = None) -> Turn | None:
        """End the turn as its runner, with every event still waiting stored first."""
        try:
            pending = await self.writer.drain()
        except turns_repo.TurnNotWritable:
            return None  # ended (or taken) elsewhere while a batch was being written
        async with self.db.session() as session:
            ended = await end_turn(
                session,
                self.turn_id,
                ending,
                runner_id=self.runner_id,
                pending=pending,
                usage=usage,
            )
        if ended is None:
            self.notifier.notify(self.turn_id)
            return None
        self.writer.stored_elsewhere(ended.events)
        return ended.turn

    async def let_go(self) -> None:
        """This process stops following the turn (it ended, or the gateway shuts down)."""
        async with self.db.session() as session:
            await turns_repo.let_go(session, self.turn_id, self.runner_id)

    async def wait_for_replaced(self, replaced_id: uuid.UUID, stale_seconds: float) -> None:
        """Before sending, wait until the turn this one replaced can no longer send its own
        prompt: not sent, delivered, or its runner let go (or went stale)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + stale_seconds
        while loop.time() < give_up:
            async with self.db.session() as session:
                other = await turns_repo.get_turn(session, replaced_id)
            if other is None or not _may_still_send(other, stale_seconds):
                return
            await asyncio.sleep(REPLACED_POLL_SECONDS)


def _may_still_send(turn: Turn, stale_seconds: float) -> bool:
    if turn.prompt_sent_at is None or turn.prompt_delivered_at is not None:
        return False
    if turn.runner_id is None or turn.heartbeat_at is None:
        return False
    return turn.heartbeat_at > utcnow() - timedelta(seconds=stale_seconds)
