"""`PaseoClient` over the daemon's WebSocket: about 20 ms a request, events pushed as they happen.

Every request has a timeout (the reference client's, ../paseo-daemon.md §2.5): some daemon
failures send no reply at all. Where the daemon answers "success" for what the CLI refuses
(deleting an unknown agent, archiving an archived one, cancelling an unknown one: no reply),
the agent is fetched first, so both transports give the service layer the same answers.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.paseo.daemon import wire
from app.paseo.daemon.connection import (
    AgentFollower,
    DaemonConnection,
    Disconnected,
    Reconnected,
    StreamItem,
)
from app.paseo.daemon.protocol import DaemonProtocol, Feature, version_note
from app.paseo.daemon.target import DaemonTarget
from app.paseo.daemon.timeline import Row, parse_cursor, prompt_history, rows_of, turn_so_far
from app.paseo.daemon_config import DEFAULT_DAEMON
from app.paseo.errors import PaseoError
from app.paseo.media import NO_MEDIA, PromptMedia
from app.paseo.types import (
    AgentDetail,
    AgentStarted,
    AgentSummary,
    ArchiveResult,
    CreatedAgent,
    DaemonFacts,
    DaemonLink,
    DeleteResult,
    ModelInfo,
    NewAgent,
    PermissionAnswer,
    PermissionRequest,
    PermissionRequested,
    PromptDelivered,
    PromptHistory,
    PromptSteered,
    ProviderInfo,
    StopResult,
    TextDelta,
    TurnEnded,
    TurnEvent,
    TurnOutcome,
    TurnStarted,
)

FETCH_TIMEOUT_SECONDS = 10.0
SEND_TIMEOUT_SECONDS = 15.0
CREATE_TIMEOUT_SECONDS = 60.0
# The daemon gives a provider's model list this long (it may ask the provider).
PROVIDER_MODELS_TIMEOUT_SECONDS = 45.0
# `wait_for_finish` is asked only for a turn that already ended (it answers at once then).
WAIT_TIMEOUT_SECONDS = 15.0
# A turn whose daemon connection dropped waits this long for it to come back (two reconnect
# attempts) before it fails: a daemon that died took the turn with it.
RECONNECT_GRACE_SECONDS = 8.0
_BUSY = frozenset({"running", "initializing"})
_WAIT_OUTCOME: dict[str, TurnOutcome] = {
    "idle": "completed",
    "error": "error",
}


class DaemonPaseoClient:
    """Talks to Paseo over one WebSocket to its daemon (it takes frames up to 100 MiB: the
    gateway's own prompt limit is the one that counts)."""

    def __init__(
        self,
        target: DaemonTarget,
        *,
        connection: DaemonConnection | None = None,
        name: str = DEFAULT_DAEMON,
    ) -> None:
        self.connection = connection or DaemonConnection(target, name=name)

    async def _call(
        self, message: dict[str, Any], reply: str, timeout: float = FETCH_TIMEOUT_SECONDS
    ) -> dict[str, Any]:
        return await self.connection.request(message, replies={reply}, timeout=timeout)

    # --- short calls ---------------------------------------------------------------------------

    async def ping(self) -> DaemonFacts:
        info = await self.connection.wait_connected()
        await self._call({"type": "ping", "clientSentAt": 0}, "pong")
        protocol = await self._protocol()
        return DaemonFacts(
            "daemon",
            version=protocol.version,
            server_id=str(info.get("serverId") or "") or None,
            warning=version_note(protocol.version),
            protocol=protocol.delivery.value,
        )

    @property
    def link(self) -> DaemonLink:
        return self.connection.link

    async def connect(self, timeout: float) -> DaemonLink:
        return await self.connection.connect_now(timeout)

    async def _protocol(self) -> DaemonProtocol:
        await self.connection.wait_connected()
        assert self.connection.protocol is not None
        return self.connection.protocol

    async def list_agents(
        self, *, include_archived: bool = False, labels: Mapping[str, str] | None = None
    ) -> list[AgentSummary]:
        message: dict[str, Any] = {
            "type": "fetch_agents_request",
            "filter": {"labels": dict(labels or {}), "includeArchived": include_archived},
        }
        if not include_archived:
            message["scope"] = "active"  # what `paseo ls` asks without -a
        reply = await self._call(message, "fetch_agents_response")
        return [wire.agent_summary(entry["agent"]) for entry in reply.get("entries") or []]

    async def _snapshot(self, agent_id: str) -> dict[str, Any]:
        reply = await self._call(
            {"type": "fetch_agent_request", "agentId": agent_id}, "fetch_agent_response"
        )
        agent = reply.get("agent")
        if not isinstance(agent, dict):
            raise PaseoError(
                "AGENT_NOT_FOUND", str(reply.get("error") or f"Agent not found: {agent_id}")
            )
        return agent

    async def inspect_agent(self, agent_id: str) -> AgentDetail:
        return wire.agent_detail(await self._snapshot(agent_id))

    async def import_agent(
        self,
        *,
        provider: str,
        session_id: str,
        cwd: str,
        labels: Mapping[str, str] | None = None,
    ) -> CreatedAgent:
        # Without a workspace for its cwd the agent would be missing from every list.
        await self._call(
            {"type": "open_project_request", "cwd": cwd},
            "open_project_response",
            SEND_TIMEOUT_SECONDS,
        )
        reply = await self.connection.request(
            {
                "type": "import_agent_request",
                "provider": provider,
                "sessionId": session_id,
                "cwd": cwd,
                "labels": dict(labels or {}),
            },
            replies={"agent_resumed", "agent_create_failed"},
            timeout=SEND_TIMEOUT_SECONDS,
        )
        if reply["type"] == "agent_create_failed":
            raise PaseoError("AGENT_IMPORT_FAILED", str(reply.get("error") or "import failed"))
        return _created(reply, provider=provider, cwd=cwd)

    async def update_agent(
        self, agent_id: str, *, title: str | None = None, labels: Mapping[str, str] | None = None
    ) -> None:
        message: dict[str, Any] = {"type": "update_agent_request", "agentId": agent_id}
        if title:
            message["name"] = title
        if labels:
            message["labels"] = dict(labels)
        reply = await self._call(message, "update_agent_response", SEND_TIMEOUT_SECONDS)
        _check_accepted(reply, "UPDATE_AGENT_FAILED", agent_id)

    async def set_agent_mode(self, agent_id: str, mode: str) -> None:
        await self._snapshot(agent_id)  # it answers an unknown id "Unknown agent '<id>'"
        reply = await self._call(
            {"type": "set_agent_mode_request", "agentId": agent_id, "modeId": mode},
            "set_agent_mode_response",
            SEND_TIMEOUT_SECONDS,
        )
        _check_accepted(reply, "MODE_OPERATION_FAILED", agent_id)

    async def list_permissions(self, agent_id: str) -> list[PermissionRequest]:
        agent = await self._snapshot(agent_id)
        return [wire.permission_request(r) for r in agent.get("pendingPermissions") or []]

    async def answer_permission(
        self, agent_id: str, permission_id: str, answer: PermissionAnswer
    ) -> None:
        """No direct reply: `agent_permission_resolved` (or an `rpc_error`) carries the
        permission's id as its requestId."""
        response: dict[str, Any] = {"behavior": answer.behavior}
        if answer.behavior == "deny":
            if answer.message:
                response["message"] = answer.message
            if answer.interrupt:
                response["interrupt"] = True
        await self.connection.request(
            {"type": "agent_permission_response", "agentId": agent_id, "response": response},
            replies={"agent_permission_resolved"},
            timeout=SEND_TIMEOUT_SECONDS,
            request_id=permission_id,
        )

    async def stop_agent(self, agent_id: str) -> StopResult:
        """Cancel a busy agent's turn; an idle or unloaded one has nothing to stop.

        The daemon sends no reply at all to a cancel of an unknown or unloaded (`closed`)
        agent, so the agent is looked at first and only a busy one is sent the cancel.
        """
        if (await self._snapshot(agent_id)).get("status") not in _BUSY:
            return StopResult(stopped_count=0, agent_ids=[])
        await self._call(
            {"type": "cancel_agent_request", "agentId": agent_id},
            "cancel_agent_response",
            SEND_TIMEOUT_SECONDS,
        )
        return StopResult(stopped_count=1, agent_ids=[agent_id])

    async def archive_agent(self, agent_id: str, *, force: bool = False) -> ArchiveResult:
        agent = await self._snapshot(agent_id)
        if agent.get("archivedAt"):
            raise PaseoError("AGENT_ALREADY_ARCHIVED", f"Agent {agent_id} is already archived")
        if agent.get("status") in _BUSY and not force:
            raise PaseoError(
                "AGENT_RUNNING", f"Agent {agent_id} is running; archive it with force to stop it"
            )
        reply = await self._call(
            {"type": "archive_agent_request", "agentId": agent_id}, "agent_archived"
        )
        archived_at = wire.parse_time(reply.get("archivedAt"))
        if archived_at is None:
            raise PaseoError("BAD_OUTPUT", "agent_archived carried no archivedAt")
        return ArchiveResult(agent_id=agent_id, archived_at=archived_at)

    async def delete_agent(self, agent_id: str) -> DeleteResult:
        await self._snapshot(agent_id)  # the daemon answers success for an unknown id
        await self._call({"type": "delete_agent_request", "agentId": agent_id}, "agent_deleted")
        return DeleteResult(deleted_count=1, agent_ids=[agent_id])

    async def list_providers(self) -> list[ProviderInfo]:
        reply = await self._call(
            {"type": "get_providers_snapshot_request"}, "get_providers_snapshot_response"
        )
        return [wire.provider_info(entry) for entry in reply.get("entries") or []]

    async def list_models(self, provider: str) -> list[ModelInfo]:
        reply = await self._call(
            {"type": "list_provider_models_request", "provider": provider},
            "list_provider_models_response",
            PROVIDER_MODELS_TIMEOUT_SECONDS,
        )
        if reply.get("error"):
            raise PaseoError("PROVIDER_ERROR", str(reply["error"]))
        return [wire.model_info(provider, model) for model in reply.get("models") or []]

    async def _timeline(self, agent_id: str, **cursor: Any) -> dict[str, Any]:
        request = {
            "type": "fetch_agent_timeline_request",
            "agentId": agent_id,
            "projection": "canonical",
            "limit": 0,
            **(cursor or {"direction": "tail"}),
        }
        reply = await self._call(request, "fetch_agent_timeline_response", SEND_TIMEOUT_SECONDS)
        if reply.get("error"):
            raise PaseoError("TIMELINE_FAILED", str(reply["error"]))
        return reply

    async def prompt_history(
        self, agent_id: str, prompt: str, *, turn_key: str | None = None
    ) -> PromptHistory:
        reply = await self._timeline(agent_id)
        return prompt_history(rows_of(reply.get("entries") or []), prompt, turn_key)

    # --- turns ---------------------------------------------------------------------------------

    async def start_agent_turn(
        self,
        agent: NewAgent,
        prompt: str,
        *,
        turn_key: str | None = None,
        media: PromptMedia = NO_MEDIA,
    ) -> AsyncIterator[TurnEvent]:
        """Create the agent, follow it, then send the prompt (and its media): a daemon that
        pushes only what a socket subscribed to needs the agent's id before its first turn
        speaks."""
        yield TurnStarted()
        reply = await self.connection.request(
            {
                "type": "create_agent_request",
                "config": _config(agent),
                "labels": dict(agent.labels),
            },
            replies={"agent_created", "agent_create_failed"},
            timeout=CREATE_TIMEOUT_SECONDS,
        )
        if reply["type"] == "agent_create_failed":
            raise PaseoError("AGENT_CREATE_FAILED", str(reply.get("error") or "create failed"))
        created = _created(reply, provider=agent.provider, cwd=agent.cwd)
        yield AgentStarted(created)
        async for event in self._send(created.agent_id, prompt, turn_key, media):
            yield event

    async def prompt_agent_turn(
        self,
        agent_id: str,
        prompt: str,
        *,
        turn_key: str | None = None,
        media: PromptMedia = NO_MEDIA,
    ) -> AsyncIterator[TurnEvent]:
        yield TurnStarted()
        async for event in self._send(agent_id, prompt, turn_key, media):
            yield event

    async def _send(
        self, agent_id: str, prompt: str, turn_key: str | None, media: PromptMedia = NO_MEDIA
    ) -> AsyncIterator[TurnEvent]:
        """Send a prompt that starts (or replaces) the agent's turn and follow that turn."""
        turn = _Turn(message_id=turn_key or str(uuid.uuid4()))
        async with self.connection.following(agent_id) as follower:
            reply = await self._call(
                {
                    "type": "send_agent_message_request",
                    "agentId": agent_id,
                    "text": prompt,
                    "messageId": turn.message_id,
                    **_media_fields(media),
                },
                "send_agent_message_response",
                SEND_TIMEOUT_SECONDS,
            )
            if not reply.get("accepted"):
                error = str(reply.get("error") or "the daemon did not start the turn")
                raise PaseoError("SEND_FAILED", error)
            async for event in self._follow(follower, turn, prompt):
                yield event

    async def steer_agent_turn(
        self, agent_id: str, prompt: str, *, turn_key: str | None = None
    ) -> None:
        """Send with `activeTurnBehavior: "steer"`, then see which turn recorded the text.

        A daemon whose provider cannot steer may replace the turn instead (0.5 does;
        `steerFallback: "reject"` asks newer ones not to): that is STEER_REPLACED, and the
        running turn ends `interrupted`.
        """
        protocol = await self._protocol()
        if not protocol.has(Feature.STEERING):
            raise PaseoError(
                "STEER_UNSUPPORTED",
                f"Paseo {protocol.version or '(version unknown)'} cannot steer a running turn "
                "(steering came in 0.5.0); send the prompt with mode=interrupt instead",
            )
        agent = await self._snapshot(agent_id)
        if agent.get("status") not in _BUSY:
            raise PaseoError("NO_ACTIVE_TURN", f"agent {agent_id} runs no turn to steer")
        running = _active_turn_id(agent)
        message_id = turn_key or str(uuid.uuid4())
        async with self.connection.following(agent_id) as follower:
            reply = await self._call(
                {
                    "type": "send_agent_message_request",
                    "agentId": agent_id,
                    "text": prompt,
                    "messageId": message_id,
                    "activeTurnBehavior": "steer",
                    "steerFallback": "reject",
                },
                "send_agent_message_response",
                SEND_TIMEOUT_SECONDS,
            )
            if not reply.get("accepted"):
                raise PaseoError("SEND_FAILED", str(reply.get("error") or "steering refused"))
            recorded = await _recorded(follower, message_id)
        if running is not None and recorded.turn_id not in (None, running):
            raise PaseoError(
                "STEER_REPLACED",
                "Paseo replaced the running turn instead of steering it (its provider "
                "cannot steer)",
            )

    async def resume_agent_turn(
        self, agent_id: str, prompt: str, cursor: str | None, *, turn_key: str | None = None
    ) -> AsyncIterator[TurnEvent]:
        """The rows after `cursor` (after the turn's prompt without one), then live output."""
        async with self.connection.following(agent_id) as follower:  # first: nothing between
            reply = await self._timeline(agent_id)
            epoch = reply.get("epoch")
            so_far = turn_so_far(rows_of(reply.get("entries") or []), prompt, turn_key)
            position = parse_cursor(cursor)
            ending = _unresumable(so_far.found, position, epoch)
            if ending is not None:
                yield TurnStarted()
                yield ending
                return
            after = position[1] if position is not None else so_far.prompt_seq
            turn = _Turn(delivered=True, started=True, epoch=epoch, seq=after)
            for row in so_far.rows:
                replayed = _row_event(agent_id, row, epoch)
                if row.seq <= after:  # streamed and stored before the restart
                    if isinstance(output := wire.turn_output(replayed), TextDelta):
                        turn.texts.append(output.text)
                    continue
                for missed in turn.take(replayed):
                    yield missed
            yield TurnStarted()
            async for event in self._ended_unseen(agent_id, turn):
                yield event
                if isinstance(event, TurnEnded):
                    return
            for request in await self.list_permissions(agent_id):  # not replayable
                yield PermissionRequested(request)
            async for event in self._follow(follower, turn, prompt):
                yield event

    async def _follow(
        self, follower: AgentFollower, turn: _Turn, prompt: str
    ) -> AsyncIterator[TurnEvent]:
        """This turn's events from the stream until its end; resynchronised after a drop."""
        while True:
            item = await follower.queue.get()
            if isinstance(item, Disconnected):
                item = await _reconnected(follower, item)
            if isinstance(item, Reconnected):
                assert follower.agent_id is not None
                async for event in self._catch_up(follower.agent_id, turn, prompt):
                    yield event
                    if isinstance(event, TurnEnded):
                        return
                continue
            for event in turn.take(item):
                yield event
                if isinstance(event, TurnEnded):
                    return

    async def _catch_up(self, agent_id: str, turn: _Turn, prompt: str) -> AsyncIterator[TurnEvent]:
        """After a reconnect: the rows missed (by seq), then the end if it came meanwhile."""
        async for event in self._rows_after(agent_id, turn):
            yield event
            if isinstance(event, TurnEnded):
                return
        async for event in self._ended_unseen(agent_id, turn):
            yield event

    async def _rows_after(self, agent_id: str, turn: _Turn) -> AsyncIterator[TurnEvent]:
        """The turn events of the timeline rows after the follower's cursor."""
        if turn.epoch is None:
            return
        reply = await self._timeline(
            agent_id, direction="after", cursor={"epoch": turn.epoch, "seq": turn.seq}
        )
        if reply.get("reset"):
            yield TurnEnded(
                "error",
                "the daemon lost the agent's timeline (it restarted); the turn is gone",
                turn.text,
            )
            return
        for row in rows_of(reply.get("entries") or []):
            for event in turn.take(_row_event(agent_id, row, reply.get("epoch"))):
                yield event
                if isinstance(event, TurnEnded):
                    return

    async def _ended_unseen(self, agent_id: str, turn: _Turn) -> AsyncIterator[TurnEvent]:
        """If the turn ended while nobody read its stream: the rows it wrote since the
        cursor, then its end. The end is asked first, so by then every row the turn wrote
        is in the timeline (the daemon flushes text before a turn event)."""
        ended = await self._ended_meanwhile(agent_id)
        if ended is None:
            return
        async for event in self._rows_after(agent_id, turn):
            yield event
            if isinstance(event, TurnEnded):
                return
        outcome, message = ended
        yield TurnEnded(outcome, message, turn.text)

    async def _ended_meanwhile(self, agent_id: str) -> tuple[TurnOutcome, str] | None:
        """Turn events are not replayable: an agent no longer busy ended the turn unseen
        (its outcome and message; None: it still runs)."""
        if (await self._snapshot(agent_id)).get("status") in _BUSY:
            return None
        reply = await self._call(
            {"type": "wait_for_finish_request", "agentId": agent_id, "timeoutMs": 1000},
            "wait_for_finish_response",
            WAIT_TIMEOUT_SECONDS,
        )
        status = str(reply.get("status"))
        if status in ("timeout", "permission"):
            return None  # still running (a pending permission waits for a person)
        return _WAIT_OUTCOME.get(status, "error"), str(
            reply.get("error") or f"turn ended ({status})"
        )

    async def aclose(self) -> None:
        await self.connection.aclose()


@dataclass
class _Turn:
    """What a follower knows of one turn: whether its prompt was recorded and its turn began
    (and the daemon's id for it, where the daemon says), the timeline cursor reached, and
    the text so far."""

    message_id: str | None = None
    delivered: bool = False
    started: bool = False
    turn_id: str | None = None
    epoch: str | None = None
    seq: int = 0
    texts: list[str] = field(default_factory=list)
    # The id of the last turn start seen before our prompt (0.5+ starts a turn first).
    last_start: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.texts)

    def take(self, event: wire.StreamEvent) -> list[TurnEvent]:
        """The turn events `event` means, in order (empty for other turns' events)."""
        if event.seq is not None:
            if event.epoch == self.epoch and event.seq <= self.seq:
                return []  # seen already (a replay after a reconnect)
            self.epoch, self.seq = event.epoch, event.seq
        if not self.delivered:
            return self._before_prompt(event)
        if not self.started:
            # Between our prompt and our turn's start: the replaced turn's last events.
            if event.type == "turn_started" and event.turn_id in (None, self.turn_id):
                self.started = True
            return []
        if None not in (event.turn_id, self.turn_id) and event.turn_id != self.turn_id:
            return []  # the turn that replaced this one (its end came first)
        out: list[TurnEvent] = []
        if (steered := self._steered(event)) is not None:
            out.append(steered)
        if (asked := wire.permission_event(event)) is not None:
            out.append(asked)
        output = wire.turn_output(event)
        if output is not None:
            if isinstance(output, TextDelta):
                self.texts.append(output.text)
            out.append(output)
        end = wire.turn_end(event)
        if end is not None:
            out.append(TurnEnded(end.outcome, end.message, self.text, end.usage))
        return out

    def _before_prompt(self, event: wire.StreamEvent) -> list[TurnEvent]:
        """Until our prompt is recorded: only its record matters (and the start before it:
        0.1 records the prompt then starts the turn, 0.5+ the other way round, both with
        the same turn id)."""
        if event.type == "turn_started":
            self.last_start = event.turn_id
            return []
        if self.message_id is None or not wire.is_user_message(event, self.message_id):
            return []  # the tail of an earlier turn
        self.delivered = True
        self.turn_id = event.turn_id
        self.started = self.turn_id is not None and self.turn_id == self.last_start
        return [PromptDelivered()]

    def _steered(self, event: wire.StreamEvent) -> PromptSteered | None:
        """Another prompt recorded inside this very turn joined it (steering). Without turn
        ids (0.1) a prompt mid-turn is always a replacement, never steering."""
        text = wire.user_message_text(event)
        if text is None or self.turn_id is None or event.turn_id != self.turn_id:
            return None
        if event.item.get("messageId") == self.message_id:
            return None
        return PromptSteered(text, event.cursor)


async def _recorded(follower: AgentFollower, message_id: str) -> wire.StreamEvent:
    """The stream's record of the prompt sent with `message_id`."""
    try:
        async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
            while True:
                item = await follower.queue.get()
                if isinstance(item, Disconnected):
                    raise PaseoError("DAEMON_NOT_RUNNING", f"lost the daemon: {item.reason}")
                if isinstance(item, wire.StreamEvent) and wire.is_user_message(item, message_id):
                    return item
    except TimeoutError:
        raise PaseoError(
            "DAEMON_TIMEOUT", "the daemon took the prompt but never recorded it"
        ) from None


def _active_turn_id(agent: dict[str, Any]) -> str | None:
    """The running turn's id in a snapshot (0.3+ has `activeTurn`)."""
    active = agent.get("activeTurn")
    turn_id = active.get("turnId") if isinstance(active, dict) else None
    return str(turn_id) if turn_id else None


async def _reconnected(
    follower: AgentFollower, lost: Disconnected
) -> wire.StreamEvent | Reconnected:
    """The next item after a drop, if it comes within the grace; else the turn fails."""
    try:
        async with asyncio.timeout(RECONNECT_GRACE_SECONDS):
            while True:
                item: StreamItem = await follower.queue.get()
                if not isinstance(item, Disconnected):
                    return item
    except TimeoutError:
        raise PaseoError(
            "DAEMON_NOT_RUNNING", f"lost the daemon in the middle of the turn: {lost.reason}"
        ) from None


def _check_accepted(reply: dict[str, Any], code: str, agent_id: str) -> None:
    """An `accepted:false` reply as the error the CLI gives ("Agent not found: …" is
    classed not found by its message, as the CLI's is)."""
    if not reply.get("accepted"):
        raise PaseoError(code, str(reply.get("error") or f"the daemon refused it for {agent_id}"))


def _unresumable(found: bool, position: tuple[str, int] | None, epoch: object) -> TurnEnded | None:
    """Why a turn cannot be resumed from its cursor, as its ending (None: it can)."""
    if not found:
        return TurnEnded("interrupted", "another prompt replaced this turn", "")
    if position is not None and position[0] != epoch:
        return TurnEnded(
            "error", "the daemon lost the agent's timeline (it restarted); the turn is gone", ""
        )
    return None


def _row_event(agent_id: str, row: Row, epoch: object) -> wire.StreamEvent:
    """A replayed timeline row as the live event it was."""
    return wire.StreamEvent(
        agent_id,
        {"type": "timeline", "item": row.item},
        epoch=epoch if isinstance(epoch, str) else None,
        seq=row.seq,
    )


def _media_fields(media: PromptMedia) -> dict[str, Any]:
    """`images` and `attachments` of a send (left out when empty: every release has both)."""
    fields: dict[str, Any] = {}
    if media.images:
        fields["images"] = [
            {"data": base64.b64encode(image.data).decode("ascii"), "mimeType": image.media_type}
            for image in media.images
        ]
    if media.attachments:
        fields["attachments"] = [
            {
                "type": "text",
                "mimeType": "text/plain",
                "text": item.text,
                **({"title": item.title} if item.title is not None else {}),
            }
            for item in media.attachments
        ]
    return fields


def _config(agent: NewAgent) -> dict[str, Any]:
    config: dict[str, Any] = {"provider": agent.provider, "cwd": agent.cwd}
    for key, value in (
        ("title", agent.title),
        ("model", agent.model),
        ("modeId", agent.mode),
        ("thinkingOptionId", agent.thinking),
    ):
        if value:
            config[key] = value
    return config


def _created(reply: dict[str, Any], *, provider: str, cwd: str) -> CreatedAgent:
    agent = reply.get("agent") or {}
    return CreatedAgent(
        agent_id=str(reply["agentId"]),
        provider=str(agent.get("provider") or provider),
        cwd=str(agent.get("cwd") or cwd),
        title=agent.get("title") or None,
    )
