"""What the gateway knows of Paseo: agents, providers and a turn's events, in its own terms.

Every transport maps what it hears (the CLI's JSON, the daemon's messages) to these types, so
no CLI spelling ("5 minutes ago", "mock/model", "Enabled", a `~` path) reaches the HTTP API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.paseo.tool_calls import ToolKind

AgentStatus = Literal["initializing", "idle", "running", "error", "closed"]
TurnOutcome = Literal["completed", "error", "timeout", "interrupted"]
ProviderStatus = Literal["ready", "loading", "unavailable", "error"]


class _GatewayModel(BaseModel):
    """What the gateway says of Paseo's things, whichever transport heard it."""

    model_config = ConfigDict(frozen=True)


class AgentSummary(_GatewayModel):
    """One agent of the daemon's list."""

    id: str
    title: str | None = Field(description="null when the agent has no title")
    provider: str
    model: str | None = Field(description="null when Paseo does not say (the provider's default)")
    thinking: str = Field(description="The thinking option in effect (`auto`: the provider's)")
    status: str = Field(description="initializing, idle, running, error or closed")
    cwd: str = Field(description="Absolute path")
    created_at: datetime | None = Field(
        description="null when the transport knows it only roughly (the CLI's list says '5 "
        "minutes ago')"
    )


def _unreported(value: object) -> bool:
    return value is None


class Usage(_GatewayModel):
    """What a turn used, as Paseo reports it (None: not reported).

    The context window fields are left out of a dump when Paseo does not report them (the
    CLI's `inspect` never does), so stored usage has them only where they are known.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = Field(default=None, description="The turn's cost in US dollars")
    context_window_used_tokens: int | None = Field(
        default=None,
        exclude_if=_unreported,
        description="Tokens of the context window in use after the turn (daemon transport)",
    )
    context_window_max_tokens: int | None = Field(
        default=None,
        exclude_if=_unreported,
        description="The model's context window in tokens (daemon transport)",
    )


class Capabilities(_GatewayModel):
    streaming: bool
    persistence: bool
    dynamic_modes: bool
    mcp_servers: bool


class AgentMode(_GatewayModel):
    id: str
    label: str


class PendingPermission(_GatewayModel):
    id: str
    tool: str


class PermissionAction(_GatewayModel):
    """One way to answer a request, as the agent offers it (e.g. plan: Implement, Dismiss)."""

    id: str
    label: str
    behavior: Literal["allow", "deny"]


class PermissionRequest(_GatewayModel):
    """An agent asks before it acts: what Paseo says of the request, as data."""

    id: str
    name: str = Field(description="The tool or request name (`MockPlanApproval`, `Bash`)")
    kind: str | None = Field(
        description="tool, plan, question, mode or other; null where the transport does not "
        "say (the CLI)"
    )
    title: str | None = None
    description: str | None = None
    input: dict[str, Any] | None = Field(
        default=None, description="What the agent wants to do (e.g. the plan); null on the CLI"
    )
    actions: list[PermissionAction] = Field(default_factory=list)


@dataclass(frozen=True)
class PermissionAnswer:
    """A person's answer to a request."""

    behavior: Literal["allow", "deny"]
    message: str | None = None  # deny: why (the agent sees it)
    interrupt: bool = False  # deny: also stop the turn


class AgentDetail(_GatewayModel):
    """One agent, whole."""

    id: str
    title: str | None
    provider: str
    model: str | None
    thinking: str
    status: str
    archived: bool
    archived_at: datetime | None
    mode: str
    cwd: str
    created_at: datetime
    updated_at: datetime
    last_usage: Usage | None = None
    capabilities: Capabilities | None = None
    available_modes: list[AgentMode] = Field(default_factory=list)
    pending_permissions: list[PendingPermission] = Field(default_factory=list)
    worktree: str | None = None
    parent_agent_id: str | None = None


class CreatedAgent(_GatewayModel):
    """An agent just created or imported."""

    agent_id: str
    provider: str
    cwd: str
    title: str | None = None


class StopResult(_GatewayModel):
    stopped_count: int
    agent_ids: list[str]


class ArchiveResult(_GatewayModel):
    agent_id: str
    archived_at: datetime


class DeleteResult(_GatewayModel):
    deleted_count: int
    agent_ids: list[str]


class ProviderMode(_GatewayModel):
    """One mode of a provider, as `GET /providers` lists it."""

    id: str | None = Field(
        description="What `mode` takes. null only where an older Paseo CLI printed the label "
        "alone and the mode is not one of Paseo's built-in ones (CLI transport)"
    )
    label: str


class ProviderInfo(_GatewayModel):
    """One agent provider the daemon knows, and whether it can run agents now."""

    provider: str
    label: str
    status: str = Field(description="ready, loading, unavailable or error")
    enabled: bool
    default_mode: str = Field(description="The id of the mode its agents start in")
    modes: list[ProviderMode] = Field(
        description="Its modes: `id` is what `mode` takes (`POST /sessions`, `PATCH "
        "/sessions/{id}`), `label` what a person reads. Empty while the provider is `loading`."
    )

    @property
    def usable(self) -> bool:
        """Whether a new agent of this provider can start (loading ones soon can)."""
        return self.enabled and self.status not in ("unavailable", "error")


class ModelInfo(_GatewayModel):
    """One model a provider offers (`mock` / `ten-second-stream`)."""

    provider: str
    id: str
    label: str
    description: str | None = None


@dataclass(frozen=True)
class DaemonFacts:
    """What a transport learnt when it reached the daemon (readiness reports it)."""

    transport: Literal["cli", "daemon"]
    version: str | None = None
    server_id: str | None = None
    warning: str | None = None  # e.g. a daemon version this gateway was not tested with
    protocol: str | None = None  # how the transport speaks to it (version, delivery)


@dataclass(frozen=True)
class DaemonLink:
    """What a transport's own connection to the daemon says now, without asking it anything.

    The daemon transport keeps one WebSocket: `connected` once the daemon answered its hello,
    `disconnected` once an attempt failed or the socket closed (`reason` says why). `unknown`
    where there is no connection to speak of (the CLI runs a child per call), or before the
    first attempt has ended.
    """

    state: Literal["connected", "disconnected", "unknown"]
    reason: str | None = None


@dataclass(frozen=True)
class NewAgent:
    """What `paseo run -d` needs besides the first prompt."""

    provider: str
    cwd: str
    title: str | None = None
    model: str | None = None
    mode: str | None = None
    thinking: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


# --- What a turn produces while it runs --------------------------------------------------------


@dataclass(frozen=True)
class AgentStarted:
    """The agent for a session's first turn now exists (`run -d` answered)."""

    agent: CreatedAgent


@dataclass(frozen=True)
class TurnStarted:
    """The prompt goes to Paseo next (nothing has been sent yet): from here on the turn's
    output follows.

    A consumer that wants to call the turn off before it reaches Paseo closes the iterator
    on this event; the client sends nothing until it asks for the next one.
    """


@dataclass(frozen=True)
class PromptDelivered:
    """Paseo has recorded the prompt (a fact seen, not assumed): the turn is the agent's now."""


# Output events carry `cursor`: where this transport can resume the turn after this event
# (opaque, the transport's own; None where it cannot). The gateway stores the cursor of the
# last stored event and hands it back to `resume_agent_turn` after a restart.


@dataclass(frozen=True)
class TextDelta:
    text: str
    cursor: str | None = None


@dataclass(frozen=True)
class ReasoningDelta:
    text: str
    cursor: str | None = None


@dataclass(frozen=True)
class ToolActivity:
    """One state of one tool call (running, completed, failed, canceled), in the gateway's
    own terms: each transport translates Paseo's shape into this in one place.

    `detail` holds only the keys that apply, snake_case (`command`, `cwd`, `output`,
    `exit_code`, `path`, `old_string`, `new_string`, `diff`, `content`, `query`, `url`), its
    text fields capped (`app.paseo.tool_calls`, `truncated: true` when cut); empty where the
    transport does not see it (the CLI). `call_id` ties the states of one call together.
    """

    name: str
    status: str
    call_id: str | None = None
    kind: ToolKind = "other"
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    cursor: str | None = None


@dataclass(frozen=True)
class TodoItem:
    text: str
    done: bool


@dataclass(frozen=True)
class TodoUpdate:
    """The agent's task list as it stands now (each update replaces the last).

    `items` is None where the transport sees only the counts (the CLI's `[Todo] x/y
    completed`)."""

    completed: int
    total: int
    items: tuple[TodoItem, ...] | None = None
    cursor: str | None = None


@dataclass(frozen=True)
class AgentNotice:
    """Other lines the stream shows: permission prompts, attention, errors."""

    kind: Literal["permission", "permission_resolved", "attention", "error", "turn_failed"]
    text: str
    cursor: str | None = None


@dataclass(frozen=True)
class PromptSteered:
    """A prompt joined the running turn (steering): the turn goes on with it."""

    text: str
    cursor: str | None = None


TurnOutput = TextDelta | ReasoningDelta | ToolActivity | TodoUpdate | AgentNotice | PromptSteered


@dataclass(frozen=True)
class PermissionRequested:
    """The agent waits for a person's answer to `request`; the turn goes on once answered."""

    request: PermissionRequest


@dataclass(frozen=True)
class PermissionResolved:
    """A request is no longer pending. `behavior` where the transport saw the answer (the
    daemon streams it, sometimes only after the turn ended; the CLI sees it go)."""

    permission_id: str
    behavior: str | None = None


@dataclass(frozen=True)
class TurnEnded:
    """Always the last event of a turn. `final_text` equals the concatenated `TextDelta`s."""

    outcome: TurnOutcome
    message: str
    final_text: str
    usage: Usage | None = None


TurnEvent = (
    AgentStarted
    | TurnStarted
    | PromptDelivered
    | PermissionRequested
    | PermissionResolved
    | TextDelta
    | ReasoningDelta
    | ToolActivity
    | TodoUpdate
    | AgentNotice
    | PromptSteered
    | TurnEnded
)


@dataclass(frozen=True)
class PromptHistory:
    """What an agent's transcript says of one prompt (as Paseo records it).

    `times_recorded`: how many `[User]` items carry it; `latest_is_this_prompt`: whether the
    agent's latest turn is this prompt's. (What the turn answered is read by resuming it.)
    """

    times_recorded: int
    latest_is_this_prompt: bool
    # True when Paseo's record was matched by the turn's own key (the daemon keeps it as the
    # message id): then `times_recorded` counts this turn alone, not every prompt of its text.
    by_turn_key: bool = False
