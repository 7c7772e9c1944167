"""Durable prompt turns: start, replay, cancel, and take over turns whose gateway died.

A turn runs in a task of its own, never in the HTTP request, and every event it produces is
stored. Rules that must hold across gateway processes live in the database: one active turn
per session (a partial unique index), idempotency keys (a unique index), the cancel request
(`cancel_requested_at`), and who runs a turn (`runner_id` plus a heartbeat that others watch).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.aio import shielded
from app.db import Database
from app.errors import (
    GatewayError,
    IdempotencyKeyReused,
    MediaUnsupported,
    NoRunningTurn,
    PayloadTooLarge,
    SessionClosed,
    TurnInProgress,
    TurnNotFound,
    named_by_daemon,
)
from app.logs import turn_log_context
from app.models import ACTIVE_TURN_STATUSES, GatewaySession, SessionStatus, Turn, TurnStatus, utcnow
from app.paseo.daemon_config import DEFAULT_DAEMON
from app.paseo.daemons import Daemon
from app.paseo.errors import PaseoError
from app.paseo.media import NO_MEDIA, PromptMedia
from app.repositories import sessions as sessions_repo
from app.repositories import turn_events as events_repo
from app.repositories import turns as turns_repo
from app.repositories.turns import TurnNotWritable
from app.services import audit
from app.services.access import get_visible_session, visible
from app.services.auth import Principal
from app.services.daemons import Daemons
from app.services.key_admission import admit_key, check_budget_left
from app.services.prompt_media import media_digest, media_summary
from app.services.turn.decisions import (
    REPLACED,
    EndedElsewhere,
    Failure,
    Outcome,
    admit_prompt,
    admit_steer,
    cancel_deadline,
    ending_for_unserved_daemon,
)
from app.services.turn.events import EventNotifier, StoredEvent, follow_events
from app.services.turn.run import TurnLimits, TurnRun, events_url
from app.services.turn.states import FINAL_STATUSES
from app.services.turn.store import TurnStore, announce_cancelling, end_turn
from app.services.turn.tracing import turn_span

logger = logging.getLogger(__name__)

CANCEL_POLL_SECONDS = 0.25
RETRY_AFTER_SECONDS = "5"
# Sessions whose agent may not take prompts any more.
_CLOSED_SESSION_STATUSES = (SessionStatus.CLOSED, SessionStatus.AGENT_MISSING)


@dataclass
class TurnSettings:
    timeout_seconds: float
    max_concurrent: int
    idle_timeout_seconds: float = 900.0
    permission_timeout_seconds: float = 3600.0
    heartbeat_seconds: float = 5.0
    stale_seconds: float = 30.0
    cancel_confirm_seconds: float = 15.0
    prompt_rate_per_minute: int = 0
    # The largest first prompt (the one that creates an agent) the transport can carry;
    # None: no limit of its own (only the CLI has one: it passes that prompt as an argument).
    max_first_prompt_bytes: int | None = None
    # Whether the transport hands Paseo text attachments (the daemon's does, the CLI cannot).
    takes_attachments: bool = True

    def limits(self, workspace_roots: tuple[str, ...]) -> TurnLimits:
        """The limits of a turn on a daemon whose agents may work in `workspace_roots`."""
        return TurnLimits(
            self.timeout_seconds,
            self.idle_timeout_seconds,
            self.cancel_confirm_seconds,
            self.stale_seconds,
            workspace_roots,
            self.permission_timeout_seconds,
        )


def request_hash(prompt: str, mode: str, media: str = "") -> str:
    """What an Idempotency-Key retry must repeat exactly (`media`: the images' and
    attachments' digest, empty without any, so a text-only request hashes as it always did)."""
    extra = f"\0{media}" if media else ""
    return hashlib.sha256(f"{mode}\0{prompt}{extra}".encode()).hexdigest()


class TurnService:
    """`settings.max_concurrent` turns stream at once per daemon in this process; more wait
    (queued) for their daemon's next free place."""

    def __init__(self, db: Database, daemons: Daemons, settings: TurnSettings) -> None:
        self.db = db
        self.daemons = daemons
        self.settings = settings
        self.runner_id = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.notifier = EventNotifier()
        self._runs: dict[uuid.UUID, TurnRun] = {}
        self._slots = {name: asyncio.Semaphore(settings.max_concurrent) for name in daemons.names}
        self._loops: list[asyncio.Task[None]] = []

    # --- lifecycle ------------------------------------------------------------------------------

    def start_background(self) -> None:
        """Heartbeats for our turns and the scan for turns whose gateway died."""
        self._loops = [
            asyncio.create_task(self._heartbeat_loop(), name="turn-heartbeat"),
            asyncio.create_task(self._recovery_loop(), name="turn-recovery"),
        ]

    async def aclose(self) -> None:
        """Shutdown: stop following turns but leave them running and at once recoverable."""
        for task in self._loops:
            task.cancel()
        tasks = [run.task for run in self._runs.values() if run.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*self._loops, *tasks, return_exceptions=True)

    # --- starting -------------------------------------------------------------------------------

    async def start_turn(
        self,
        session_id: uuid.UUID,
        prompt: str,
        principal: Principal | None = None,
        *,
        idempotency_key: str | None = None,
        interrupt: bool = False,
        media: PromptMedia = NO_MEDIA,
    ) -> tuple[Turn, bool]:
        """Start a turn, or return the one an earlier request with the same key started.

        Returns the turn and whether it is new. Returns once Paseo has the prompt (or the
        turn is queued), so a failure to start is raised here rather than inside the stream.
        The session row read under its lock, and the turn made then, travel with the run: the
        way to the first byte reads neither again. `media` (checked) is held in memory only,
        by the run: `turn.started` says what it was.
        """
        self.check_media(media)
        digest = request_hash(prompt, "interrupt" if interrupt else "queue", media_digest(media))
        if idempotency_key is not None:
            earlier = await self._turn_for_key(session_id, idempotency_key, digest, principal)
            if earlier is not None:
                return earlier, False
        await self._admit_daemon(session_id, principal)
        turn, record, daemon = await self._insert_turn(
            session_id, prompt, idempotency_key, digest, interrupt, principal, media
        )
        if record is None:
            return turn, False  # a concurrent retry with the same key won the race
        run = self._new_run(turn, daemon, record, media)
        run.task = asyncio.create_task(self._drive(run, run.start(self._slots[daemon.name])))
        await run.started
        return run.turn, True

    async def steer_turn(
        self, session_id: uuid.UUID, prompt: str, principal: Principal | None = None
    ) -> Turn:
        """Hand `prompt` to the session's running turn; returns that turn once Paseo has
        taken it. Nothing is stored here: the turn's runner stores `turn.steered` where the
        stream shows the text joining the turn."""
        await self._admit_daemon(session_id, principal)
        async with self.db.session() as session:
            record = await get_visible_session(session, session_id, principal)
            await self._admit_key(session, principal)
            if record.status in _CLOSED_SESSION_STATUSES:
                raise SessionClosed(
                    f"session {session_id} is {record.status}; create a new session"
                )
            daemon = self.daemons.get(record.daemon)
            active = await turns_repo.get_active_turn(session, session_id)
        admission = admit_steer(
            active=TurnStatus(active.status) if active else None,
            has_agent=record.agent_id is not None,
        )
        if admission == "no_turn":
            raise NoRunningTurn(
                f"session {session_id} runs no turn to steer; send the prompt without mode=steer"
            )
        if admission == "busy":
            assert active is not None
            raise _busy(session_id, active.id)
        assert active is not None and record.agent_id is not None
        await daemon.steer_agent_turn(record.agent_id, prompt, turn_key=str(uuid.uuid4()))
        async with self.db.session() as session:
            await audit.record(session, "turn.steer", session_id=session_id, turn_id=active.id)
        return active

    def check_media(self, media: PromptMedia) -> None:
        """Refuse, before anything is stored, what the transport cannot hand Paseo."""
        if media.attachments and not self.settings.takes_attachments:
            raise MediaUnsupported(
                "attachments reach Paseo over the daemon transport only "
                "(PASEO_GATEWAY_TRANSPORT=daemon); put the text in the prompt instead",
                field="attachments",
            )

    async def _admit_daemon(self, session_id: uuid.UUID, principal: Principal | None) -> None:
        """503 before anything is stored while the session's daemon is down (after one attempt
        to reach it, outside any transaction); while none is down, no read at all."""
        if self.daemons.any_down():
            async with self.db.session() as session:
                record = await get_visible_session(session, session_id, principal)
            await self.daemons.admit(record.daemon)

    async def _turn_for_key(
        self, session_id: uuid.UUID, key: str, digest: str, principal: Principal | None
    ) -> Turn | None:
        async with self.db.session() as session:
            await get_visible_session(session, session_id, principal)
            turn = await turns_repo.get_turn_by_idempotency_key(session, session_id, key)
        if turn is not None:
            _check_same_request(turn, digest)
        return turn

    async def _insert_turn(
        self,
        session_id: uuid.UUID,
        prompt: str,
        idempotency_key: str | None,
        digest: str,
        interrupt: bool,
        principal: Principal | None,
        media: PromptMedia = NO_MEDIA,
    ) -> tuple[Turn, GatewaySession | None, Daemon]:
        """The new turn and its session as read under the lock; or an earlier turn with the
        same key and None (with the daemon of the session).

        One transaction under the session's row lock: read the active turn, decide, end it
        (with its terminal event) if the prompt replaces it, insert the new one with its
        `turn.started` event. A refusal (409) changes nothing; concurrent interrupts each
        replace the one before. A new turn that finds a free slot on its daemon takes it and
        is made running at once; else it is queued.
        """
        slot: asyncio.Semaphore | None = None
        try:
            async with self.db.session() as session:
                record = visible(
                    await turns_repo.lock_session(session, session_id), session_id, principal
                )
                if record.status in _CLOSED_SESSION_STATUSES:
                    raise SessionClosed(
                        f"session {session_id} is {record.status}; create a new session"
                    )
                daemon = self.daemons.get(record.daemon)
                if idempotency_key is not None:
                    earlier = await turns_repo.get_turn_by_idempotency_key(
                        session, session_id, idempotency_key
                    )
                    if earlier is not None:  # a retry that raced the first request
                        _check_same_request(earlier, digest)
                        return earlier, None, daemon
                self._check_first_prompt(record, prompt)
                await self._admit_key(session, principal)
                active = await turns_repo.get_active_turn(session, session_id)
                admission = admit_prompt(
                    active=TurnStatus(active.status) if active else None,
                    has_agent=record.agent_id is not None,
                    interrupt=interrupt,
                )
                if admission == "busy":
                    assert active is not None
                    raise _busy(session_id, active.id)
                replaced = None
                if admission == "replace":
                    assert active is not None
                    ended = await end_turn(session, active.id, REPLACED)
                    replaced = ended.turn if ended else None
                if not self._slots[daemon.name].locked():
                    slot = self._slots[daemon.name]
                    await slot.acquire()  # free: taken at once, without waiting
                turn = await turns_repo.add_turn(
                    session,
                    session_id=session_id,
                    prompt=prompt,
                    status=TurnStatus.RUNNING if slot else TurnStatus.QUEUED,
                    idempotency_key=idempotency_key,
                    request_hash=digest,
                    runner_id=self.runner_id,
                    heartbeat_at=utcnow(),
                    replaces_turn_id=replaced.id if replaced else None,
                    key_id=principal.key_id if principal else None,
                    last_event_seq=1,  # its `turn.started`, stored next
                    session_locked=True,
                )
                started = {
                    "turn_id": str(turn.id),
                    "session_id": str(session_id),
                    "agent_id": record.agent_id,
                    "daemon": daemon.name,
                    "events_url": events_url(session_id, turn.id),
                    **media_summary(media),
                }
                [seq] = await events_repo.add_first_events(
                    session, turn, [("turn.started", started)]
                )
                await audit.record(session, "turn.prompt", session_id=session_id, turn_id=turn.id)
        except turns_repo.DuplicateIdempotencyKey:
            if slot is not None:
                slot.release()
            # A concurrent request with the same key won the race: answer with its turn.
            assert idempotency_key is not None
            earlier = await self._turn_for_key(session_id, idempotency_key, digest, principal)
            if earlier is None:
                raise
            return earlier, None, daemon
        except turns_repo.ActiveTurnExists:
            if slot is not None:
                slot.release()
            raise await self._busy(session_id) from None
        except BaseException:
            if slot is not None:
                slot.release()
            raise
        # Committed: this process runs the turn, and its readers here start from what it
        # stored (the prompt's own stream reads nothing back).
        self.notifier.begin(turn.id, [StoredEvent(seq, "turn.started", started)])
        if replaced is not None:
            self.notifier.notify(replaced.id)
            run = self._runs.get(replaced.id)
            if run is not None:
                run.ended_elsewhere.set()  # stop following it now (elsewhere: at a heartbeat)
        return turn, record, daemon

    async def check_budget(self, principal: Principal) -> None:
        """Refuse now a key whose budget is used up (a first prompt's session would be stored
        before its turn is admitted); the prompt's own transaction decides for good."""
        if principal.key_id is None:
            return
        async with self.db.read() as session:
            await check_budget_left(session, principal.key_id, now=utcnow())

    async def _admit_key(self, session: AsyncSession, principal: Principal | None) -> None:
        """The key's budget and rate limit (app/services/key_admission.py), in `session`'s
        transaction: the one that stores the prompt, so a refusal stores nothing."""
        if principal is None or principal.key_id is None:
            return
        await admit_key(
            session,
            principal.key_id,
            rate_per_minute=self.settings.prompt_rate_per_minute,
            now=utcnow(),
        )

    def _check_first_prompt(self, record: GatewaySession, prompt: str) -> None:
        """Refuse, before recording a turn, a first prompt the transport cannot carry."""
        if record.agent_id is None:
            check_first_prompt(prompt, self.settings.max_first_prompt_bytes)

    async def _busy(self, session_id: uuid.UUID) -> TurnInProgress:
        active = await self.active_turn(session_id)
        return _busy(session_id, active.id if active else None)

    # --- running --------------------------------------------------------------------------------

    def _new_run(
        self,
        turn: Turn,
        daemon: Daemon,
        record: GatewaySession | None = None,
        media: PromptMedia = NO_MEDIA,
    ) -> TurnRun:
        run = TurnRun(
            store=TurnStore(self.db, self.notifier, turn, self.runner_id),
            daemon=daemon,
            limits=self.settings.limits(daemon.workspace_roots),
            turn=turn,
            started=asyncio.get_running_loop().create_future(),
            record=record,
            media=media,
        )
        self._runs[turn.id] = run
        return run

    async def _drive(self, run: TurnRun, body: Coroutine[Any, Any, Outcome]) -> None:
        """The run in its span (`paseo_gateway.turn`), which says how the turn ended."""
        with turn_span(run):
            await self._run_to_end(run, body)

    async def _run_to_end(self, run: TurnRun, body: Coroutine[Any, Any, Outcome]) -> None:
        """Run a turn's coroutine to its outcome, whatever it raises, and hand that to the
        run's one writer: every way it can end leaves the turn in a final state."""
        turn_log_context.set(
            (("session_id", str(run.turn.session_id)), ("turn_id", str(run.turn_id)))
        )
        error: BaseException | None = None
        try:
            try:
                outcome = await body
            except PaseoError as exc:
                error = exc
                outcome = Failure(exc.code.lower(), named_by_daemon(exc, exc.message))
            except GatewayError as exc:
                error = exc
                outcome = Failure(exc.code, exc.detail)  # e.g. a cwd that moved out
            except asyncio.CancelledError:
                if not run.taken_over:
                    await shielded(self._release(run))
                raise
            except TurnNotWritable:
                outcome = EndedElsewhere()
            except Exception as exc:
                logger.exception("turn %s crashed", run.turn_id)
                error = exc
                outcome = Failure("internal_error", "the gateway failed running this turn")
            await run.finish(outcome)
            if error is not None and not run.started.done():
                run.started.set_exception(error)
        except TurnNotWritable:
            logger.info("turn %s was ended or taken over elsewhere", run.turn_id)
        except Exception:
            # Storing the end failed too (database gone): hand the turn to recovery, which any
            # gateway (this one included) runs once the database answers again.
            logger.exception("could not record the end of turn %s", run.turn_id)
            with contextlib.suppress(Exception):
                await self._release(run)
        finally:
            run.stop_helpers()
            if not run.started.done():
                run.started.set_result(None)
            if not run.taken_over:
                with contextlib.suppress(Exception):
                    await shielded(run.store.let_go())
            self._runs.pop(run.turn_id, None)
            self.notifier.forget(run.turn_id)

    async def _release(self, run: TurnRun) -> None:
        """This process stops following the turn: store what it has, let another take it."""
        with contextlib.suppress(Exception):
            await run.store.writer.close()
        await run.store.let_go()

    # --- cancelling -----------------------------------------------------------------------------

    async def cancel(
        self,
        session_id: uuid.UUID,
        turn_id: uuid.UUID | None = None,
        principal: Principal | None = None,
    ) -> tuple[Turn, bool]:
        """Ask the active turn to stop and wait, until the cancel's deadline, for Paseo to
        confirm it.

        Returns the turn and whether it has ended. The request is stored in the database, so
        the process running the turn sees it even when another process took the request. Not
        ended by the deadline: the stream has said `turn.cancelling` before this returns.
        """
        record, turn = await self._store_cancel_request(session_id, turn_id, principal)
        if record.agent_id and turn.id not in self._runs:
            # Its runner is elsewhere; stop it now.
            await self.daemons.get(record.daemon).stop_agent(record.agent_id)
        assert turn.cancel_requested_at is not None
        deadline = cancel_deadline(turn.cancel_requested_at, self.settings.cancel_confirm_seconds)
        return await self._wait_until_final(session_id, turn.id, deadline)

    async def request_cancel(self, session_id: uuid.UUID) -> None:
        """Mark the active turn cancelled-on-purpose without stopping anything (forced close)."""
        with contextlib.suppress(NoRunningTurn):
            await self._store_cancel_request(session_id, None, None)

    async def _store_cancel_request(
        self, session_id: uuid.UUID, turn_id: uuid.UUID | None, principal: Principal | None
    ) -> tuple[GatewaySession, Turn]:
        """Record the cancel in the database (every process sees it); tell a local run now."""
        async with self.db.session() as session:
            record = await get_visible_session(session, session_id, principal)
            turn = await self._turn_to_cancel(session, session_id, turn_id)
            requested = await turns_repo.request_cancel(session, turn.id)
            if requested is not None and principal is not None:
                await audit.record(session, "turn.cancel", session_id=session_id, turn_id=turn.id)
        if requested is None:
            raise NoRunningTurn(f"turn {turn.id} has already ended")
        run = self._runs.get(turn.id)
        if run is not None:
            run.cancel_requested.set()
        return record, requested

    async def _turn_to_cancel(
        self, session: AsyncSession, session_id: uuid.UUID, turn_id: uuid.UUID | None
    ) -> Turn:
        if turn_id is None:
            active = await turns_repo.get_active_turn(session, session_id)
            if active is None:
                raise NoRunningTurn(f"session {session_id} has no running turn to cancel")
            return active
        turn = await turns_repo.get_turn(session, turn_id, session_id=session_id)
        if turn is None:
            raise TurnNotFound(f"session {session_id} has no turn {turn_id}")
        if turn.status not in ACTIVE_TURN_STATUSES:
            raise NoRunningTurn(f"turn {turn_id} is already {turn.status}")
        return turn

    async def _wait_until_final(
        self, session_id: uuid.UUID, turn_id: uuid.UUID, deadline: datetime
    ) -> tuple[Turn, bool]:
        while True:
            turn = await self.get_turn(session_id, turn_id)
            if TurnStatus(turn.status) in FINAL_STATUSES:
                return turn, True
            if utcnow() >= deadline:
                await announce_cancelling(self.db, self.notifier, turn_id)
                turn = await self.get_turn(session_id, turn_id)
                return turn, TurnStatus(turn.status) in FINAL_STATUSES
            await asyncio.sleep(CANCEL_POLL_SECONDS)

    # --- heartbeats and recovery ------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                await self._heartbeat()
            except Exception:
                logger.exception("turn heartbeat failed")

    async def _heartbeat(self) -> None:
        """Mark our turns alive, and learn of cancel requests other processes stored."""
        ids = list(self._runs)
        if not ids:
            return
        async with self.db.session() as session:
            await turns_repo.heartbeat_turns(session, self.runner_id, ids)
            turns = [await turns_repo.get_turn(session, turn_id) for turn_id in ids]
        for turn in turns:
            run = self._runs.get(turn.id) if turn is not None else None
            if turn is None or run is None:
                continue
            if turn.cancel_requested_at:
                run.cancel_requested.set()
            if TurnStatus(turn.status) in FINAL_STATUSES:
                run.ended_elsewhere.set()  # another process ended it (mode=interrupt)
            elif turn.runner_id != self.runner_id:
                # This process stalled and another took the turn over: stop following it.
                logger.warning("turn %s was taken over by %s", turn.id, turn.runner_id)
                run.taken_over = True
                if run.task is not None:
                    run.task.cancel()

    async def _recovery_loop(self) -> None:
        while True:
            try:
                await self.recover_stale_turns()
            except Exception:
                logger.exception("turn recovery failed")
            await asyncio.sleep(self.settings.heartbeat_seconds)

    async def recover_stale_turns(self) -> list[uuid.UUID]:
        """Take over turns no live gateway marks alive, and reconcile each with Paseo."""
        stale_before = utcnow() - timedelta(seconds=self.settings.stale_seconds)
        async with self.db.session() as session:
            claimed = await turns_repo.claim_stale_turns(
                session, self.runner_id, stale_before=stale_before
            )
        if not claimed:
            return []
        async with self.db.session() as session:
            pinned = await sessions_repo.daemons_of_sessions(
                session, {turn.session_id for turn in claimed}
            )
        for turn in claimed:
            logger.info("recovering turn %s (was %s)", turn.id, turn.status)
            daemon_name = pinned.get(turn.session_id, DEFAULT_DAEMON)
            if daemon_name not in self._slots:
                await self._fail_unserved(turn, daemon_name)
                continue
            run = self._new_run(turn, self.daemons.get(daemon_name))
            run.started.set_result(None)
            run.task = asyncio.create_task(self._drive(run, self._recover(run)))
        return [turn.id for turn in claimed]

    async def _recover(self, run: TurnRun) -> Outcome:
        async with self._slots[run.daemon]:  # recovered turns count against the same limit
            return await run.recover()

    async def _fail_unserved(self, turn: Turn, daemon: str) -> None:
        """A turn on a daemon no longer configured cannot be followed: it fails, saying so."""
        logger.warning(
            "turn %s is on daemon %r, which this gateway does not serve", turn.id, daemon
        )
        ending = ending_for_unserved_daemon(daemon)
        async with self.db.session() as session:
            await end_turn(session, turn.id, ending, runner_id=self.runner_id)
        self.notifier.notify(turn.id)

    # --- reading --------------------------------------------------------------------------------

    def events(self, turn_id: uuid.UUID, *, after: int = 0) -> AsyncIterator[StoredEvent]:
        return follow_events(self.db, self.notifier, turn_id, after=after)

    async def active_turn(self, session_id: uuid.UUID) -> Turn | None:
        async with self.db.session() as session:
            return await turns_repo.get_active_turn(session, session_id)

    async def get_turn(
        self, session_id: uuid.UUID, turn_id: uuid.UUID, principal: Principal | None = None
    ) -> Turn:
        async with self.db.session() as session:
            await get_visible_session(session, session_id, principal)
            turn = await turns_repo.get_turn(session, turn_id, session_id=session_id)
        if turn is None:
            raise TurnNotFound(f"session {session_id} has no turn {turn_id}")
        return turn

    async def list_turns(
        self,
        session_id: uuid.UUID,
        principal: Principal | None,
        reads: AsyncSession,
        *,
        limit: int,
        offset: int,
    ) -> tuple[list[Turn], int]:
        """One page of the session's turns, read in the route's read session."""
        await get_visible_session(reads, session_id, principal)
        return await turns_repo.list_turns(reads, session_id, limit=limit, offset=offset)


def _busy(session_id: uuid.UUID, active_id: uuid.UUID | None) -> TurnInProgress:
    turn = str(active_id) if active_id else None
    return TurnInProgress(
        f"session {session_id} is already running turn {turn}; wait for it, cancel it, or "
        "send with mode=interrupt",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
        turn_id=turn,
    )


def _check_same_request(turn: Turn, digest: str) -> None:
    if turn.request_hash != digest:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used with a different request body; use a new key",
            turn_id=str(turn.id),
        )


def check_first_prompt(prompt: str, limit: int | None) -> None:
    """A session's first prompt creates its agent; the transport may carry less than later
    prompts (`limit` bytes; None: no limit of its own)."""
    size = len(prompt.encode("utf-8"))
    if limit is not None and size > limit:
        raise PayloadTooLarge(
            f"a session's first prompt creates its agent and may be at most {limit} bytes "
            f"(this one is {size}); start with a shorter prompt, send the long one next"
        )
