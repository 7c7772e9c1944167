"""The daemon's messages in the gateway's terms: pure functions, no I/O.

Dispatch is lenient on purpose (../paseo-daemon.md §7): unknown message, event and item types
are ignored, missing optional fields default, enums are open strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.paseo import types
from app.paseo.daemon.timeline import format_cursor
from app.paseo.errors import PaseoError
from app.paseo.tool_calls import ToolKind, capped, capped_detail, kind_of_name

# The client version sent in `hello`: below 0.1.45 the daemon hides the mock provider and more
# (newer daemons skip that check for `all_providers`).
APP_VERSION = "0.1.65"
# Declared in every hello. A daemon ignores what it does not know, and each one it knows is
# acted on by the connection (`app.paseo.daemon.protocol` says which it has): a selective or
# owned socket gets only the agents it subscribes to (../paseo-versions.md §2.2).
CAPABILITIES = (
    "reasoning_merge_enum",
    "all_providers",
    "selective_agent_timeline",
    "owned_subscriptions",
    "explicit_event_subscriptions",
    "hello_rejection",
)

WORKTREE_LABEL = "paseo.worktree"
PARENT_LABEL = "paseo.parent-agent-id"


def envelope(message: dict[str, Any]) -> dict[str, Any]:
    """Every request travels wrapped in a `session` message."""
    return {"type": "session", "message": message}


def hello(client_id: str, password: str | None = None) -> dict[str, Any]:
    """The hello every daemon version takes; the password also rides in `auth` (the way
    that outlives the bearer subprotocol; older daemons drop the key)."""
    message: dict[str, Any] = {
        "type": "hello",
        "clientId": client_id,
        "clientType": "cli",
        "protocolVersion": 1,
        "appVersion": APP_VERSION,
        "capabilities": dict.fromkeys(CAPABILITIES, True),
    }
    if password:
        message["auth"] = {"kind": "password", "password": password}
    return message


def bearer_subprotocol(password: str) -> str:
    """The subprotocol carrying `password` at the upgrade: verbatim where HTTP allows it
    (every version reads that), else hex (only newer daemons; older ones cannot take such a
    password at all)."""
    if _TOKEN.fullmatch(password):
        return f"paseo.bearer.{password}"
    return f"paseo.bearer-hex.{password.encode().hex()}"


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def parse_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _thinking(agent: dict[str, Any]) -> str:
    return str(agent.get("effectiveThinkingOptionId") or agent.get("thinkingOptionId") or "auto")


def _model(agent: dict[str, Any]) -> str | None:
    runtime = agent.get("runtimeInfo") or {}
    model = agent.get("model") or runtime.get("model")
    return str(model) if model else None


def _identity(agent: dict[str, Any]) -> dict[str, Any]:
    """The fields a list row and a whole agent share."""
    return {
        "id": str(agent["id"]),
        "title": agent.get("title") or None,
        "provider": str(agent.get("provider", "")),
        "model": _model(agent),
        "thinking": _thinking(agent),
        "status": str(agent.get("status", "")),
        "cwd": str(agent.get("cwd", "")),
    }


def agent_summary(agent: dict[str, Any]) -> types.AgentSummary:
    """An `AgentSnapshot` as one agent of a list."""
    return types.AgentSummary(**_identity(agent), created_at=parse_time(agent.get("createdAt")))


def usage(raw: dict[str, Any] | None) -> types.Usage | None:
    if not raw:
        return None
    return types.Usage(
        input_tokens=raw.get("inputTokens"),
        output_tokens=raw.get("outputTokens"),
        cached_tokens=raw.get("cachedInputTokens"),
        cost_usd=raw.get("totalCostUsd"),
        context_window_used_tokens=raw.get("contextWindowUsedTokens"),
        context_window_max_tokens=raw.get("contextWindowMaxTokens"),
    )


def agent_detail(agent: dict[str, Any]) -> types.AgentDetail:
    """An `AgentSnapshot`, whole."""
    labels = agent.get("labels") or {}
    capabilities = agent.get("capabilities")
    created = parse_time(agent.get("createdAt"))
    if created is None:
        raise PaseoError("BAD_OUTPUT", f"agent {agent.get('id')} has no createdAt")
    return types.AgentDetail(
        **_identity(agent),
        archived=agent.get("archivedAt") is not None,
        archived_at=parse_time(agent.get("archivedAt")),
        mode=str(agent.get("currentModeId") or "default"),
        created_at=created,
        updated_at=parse_time(agent.get("updatedAt")) or created,
        last_usage=usage(agent.get("lastUsage")),
        capabilities=(
            types.Capabilities(
                streaming=bool(capabilities.get("supportsStreaming")),
                persistence=bool(capabilities.get("supportsSessionPersistence")),
                dynamic_modes=bool(capabilities.get("supportsDynamicModes")),
                mcp_servers=bool(capabilities.get("supportsMcpServers")),
            )
            if isinstance(capabilities, dict)
            else None
        ),
        available_modes=[
            types.AgentMode(id=str(mode.get("id")), label=str(mode.get("label", mode.get("id"))))
            for mode in agent.get("availableModes") or []
        ],
        pending_permissions=[
            types.PendingPermission(id=str(p.get("id")), tool=str(p.get("name", "")))
            for p in agent.get("pendingPermissions") or []
        ],
        worktree=labels.get(WORKTREE_LABEL),
        parent_agent_id=labels.get(PARENT_LABEL),
    )


def provider_info(entry: dict[str, Any]) -> types.ProviderInfo:
    """One entry of `get_providers_snapshot_response`."""
    return types.ProviderInfo(
        provider=str(entry["provider"]),
        label=str(entry.get("label") or entry["provider"]),
        status=str(entry.get("status", "error")),
        enabled=entry.get("enabled", True) is not False,
        default_mode=str(entry.get("defaultModeId") or "default"),
        modes=[
            types.ProviderMode(id=str(mode["id"]), label=str(mode.get("label") or mode["id"]))
            for mode in entry.get("modes") or []
            if mode.get("id")
        ],
    )


def model_info(provider: str, model: dict[str, Any]) -> types.ModelInfo:
    """One model of `list_provider_models_response`."""
    return types.ModelInfo(
        provider=provider,
        id=str(model["id"]),
        label=str(model.get("label") or model["id"]),
        description=str(model["description"]) if model.get("description") else None,
    )


# --- the live stream -------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamEvent:
    """One `agent_stream` payload: the event, and the timeline position it has (if any)."""

    agent_id: str
    event: dict[str, Any]
    epoch: str | None = None
    seq: int | None = None

    @property
    def type(self) -> str:
        return str(self.event.get("type", ""))

    @property
    def item(self) -> dict[str, Any]:
        item = self.event.get("item")
        return item if isinstance(item, dict) else {}

    @property
    def cursor(self) -> str | None:
        """Where a turn can resume after this event (timeline events only have one)."""
        if self.epoch is None or self.seq is None:
            return None
        return format_cursor(self.epoch, self.seq)

    @property
    def turn_id(self) -> str | None:
        """The daemon's turn this event belongs to (from 0.1.98; None before)."""
        turn_id = self.event.get("turnId") or self.item.get("turnId")
        return str(turn_id) if turn_id else None


def stream_event(payload: dict[str, Any]) -> StreamEvent | None:
    """An `agent_stream` payload, or None when it is not one the gateway can read."""
    agent_id, event = payload.get("agentId"), payload.get("event")
    if not isinstance(agent_id, str) or not isinstance(event, dict):
        return None
    seq = payload.get("seq")
    epoch = payload.get("epoch")
    return StreamEvent(
        agent_id,
        event,
        epoch=epoch if isinstance(epoch, str) else None,
        seq=seq if isinstance(seq, int) else None,
    )


def permission_request(request: dict[str, Any]) -> types.PermissionRequest:
    """A daemon PermissionRequest as the gateway's (the actions it can be answered with)."""
    actions = [
        types.PermissionAction(
            id=str(action.get("id", "")),
            label=str(action.get("label", "")),
            behavior=action["behavior"],
        )
        for action in request.get("actions") or []
        if isinstance(action, dict) and action.get("behavior") in ("allow", "deny")
    ]
    given = request.get("input")
    return types.PermissionRequest(
        id=str(request.get("id", "")),
        name=str(request.get("name", "")),
        kind=str(request["kind"]) if request.get("kind") else None,
        title=str(request["title"]) if request.get("title") else None,
        description=str(request["description"]) if request.get("description") else None,
        input=given if isinstance(given, dict) else None,
        actions=actions,
    )


def permission_event(
    event: StreamEvent,
) -> types.PermissionRequested | types.PermissionResolved | None:
    """A permission request or its resolution, if `event` is one."""
    if event.type == "permission_requested":
        return types.PermissionRequested(permission_request(event.event.get("request") or {}))
    if event.type == "permission_resolved":
        resolution = event.event.get("resolution") or {}
        behavior = resolution.get("behavior")
        return types.PermissionResolved(
            str(event.event.get("requestId", "")), str(behavior) if behavior else None
        )
    return None


def turn_output(event: StreamEvent) -> types.TurnOutput | None:
    """What a turn's follower shows of a stream event (None: nothing, or not output), with
    the event's timeline position as its resume cursor."""
    cursor = event.cursor
    if event.type == "timeline":
        return _timeline_output(event.item, cursor)
    if event.type == "attention_required":
        return types.AgentNotice("attention", str(event.event.get("reason", "")), cursor)
    if event.type == "turn_failed":
        return types.AgentNotice("turn_failed", str(event.event.get("error", "")), cursor)
    return None


def _timeline_output(item: dict[str, Any], cursor: str | None) -> types.TurnOutput | None:
    kind = item.get("type")
    if kind == "assistant_message" and item.get("text"):
        return types.TextDelta(str(item["text"]), cursor)
    if kind == "reasoning" and item.get("text"):
        return types.ReasoningDelta(str(item["text"]), cursor)
    if kind == "tool_call":
        return tool_call(item, cursor)
    if kind == "todo":
        return todo_update(item, cursor)
    if kind == "error":
        return types.AgentNotice("error", str(item.get("message", "")), cursor)
    return None


# Paseo's detail fields (by detail type) and the gateway's names for them.
_DETAIL_FIELDS: dict[str, tuple[ToolKind, dict[str, str]]] = {
    "shell": (
        "shell",
        {"command": "command", "cwd": "cwd", "output": "output", "exitCode": "exit_code"},
    ),
    "read": ("read", {"filePath": "path", "content": "content"}),
    "edit": (
        "edit",
        {
            "filePath": "path",
            "oldString": "old_string",
            "newString": "new_string",
            "unifiedDiff": "diff",
        },
    ),
    "write": ("write", {"filePath": "path", "content": "content"}),
    "search": ("search", {"query": "query", "content": "content"}),
    "plan": ("plan", {"text": "content"}),
    "fetch": ("other", {"url": "url"}),
}


def tool_detail(name: str, detail: object) -> tuple[ToolKind, dict[str, Any]]:
    """A `tool_call.detail` as the gateway's kind and snake_case detail (only the fields
    that apply, text capped). A detail type the gateway does not know gives the name's kind
    and no detail."""
    raw = detail if isinstance(detail, dict) else {}
    known = _DETAIL_FIELDS.get(str(raw.get("type", "")))
    if known is None:
        return kind_of_name(name), {}
    kind, fields = known
    out: dict[str, Any] = {}
    for theirs, ours in fields.items():
        value = raw.get(theirs)
        if isinstance(value, str) or (ours == "exit_code" and isinstance(value, int)):
            out[ours] = value
    return kind, capped_detail(out)


def tool_call(item: dict[str, Any], cursor: str | None = None) -> types.ToolActivity:
    """A `tool_call` timeline item: one state of one call."""
    name = str(item.get("name", ""))
    kind, detail = tool_detail(name, item.get("detail"))
    error = item.get("error")
    call_id = item.get("callId")
    return types.ToolActivity(
        name=name,
        status=str(item.get("status", "")),
        call_id=str(call_id) if call_id else None,
        kind=kind,
        detail=detail,
        error=capped(str(error))[0] if error else None,
        cursor=cursor,
    )


def todo_update(item: dict[str, Any], cursor: str | None = None) -> types.TodoUpdate:
    """A `todo` timeline item: the whole task list as it stands."""
    entries = [entry for entry in item.get("items") or [] if isinstance(entry, dict)]
    items = tuple(
        types.TodoItem(capped(str(entry.get("text", "")))[0], bool(entry.get("completed")))
        for entry in entries
    )
    return types.TodoUpdate(
        completed=sum(entry.done for entry in items), total=len(items), items=items, cursor=cursor
    )


@dataclass(frozen=True)
class TurnEnd:
    """How a turn ended, as its stream said it."""

    outcome: types.TurnOutcome
    message: str
    usage: types.Usage | None = None


def turn_end(event: StreamEvent) -> TurnEnd | None:
    """The end of the turn this stream event closes, if it closes one.

    A permission request does not end it (the turn waits for a person, then goes on);
    `turn_canceled` is an interrupt, whoever asked for it.
    """
    if event.type == "turn_completed":
        return TurnEnd("completed", "turn completed", usage(event.event.get("usage")))
    if event.type == "turn_failed":
        return TurnEnd("error", str(event.event.get("error") or "the turn failed"))
    if event.type == "turn_canceled":
        return TurnEnd("interrupted", str(event.event.get("reason") or "interrupted"))
    return None


def user_message_text(event: StreamEvent) -> str | None:
    """The prompt text, if this is Paseo's record of a prompt."""
    item = event.item
    if event.type != "timeline" or item.get("type") != "user_message":
        return None
    return str(item.get("text") or "")


def is_user_message(event: StreamEvent, message_id: str) -> bool:
    """Whether this is Paseo's record of the prompt sent with `message_id`."""
    return user_message_text(event) is not None and event.item.get("messageId") == message_id
