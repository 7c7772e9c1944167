"""Typed results of the paseo CLI, parsed from the JSON it prints (real field names as aliases)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AgentStatus = Literal["initializing", "idle", "running", "error", "closed"]
TurnOutcome = Literal["completed", "error", "permission", "timeout", "interrupted"]


class _CliModel(BaseModel):
    """Parses the CLI's own key names; tolerates keys a newer CLI may add."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class AgentSummary(_CliModel):
    """One row of `paseo ls --json`: every field is a string."""

    id: str
    short_id: str = Field(validation_alias="shortId")
    name: str
    provider: str
    thinking: str
    status: str
    cwd: str
    created: str


class Usage(_CliModel):
    input_tokens: int | None = Field(default=None, validation_alias="InputTokens")
    output_tokens: int | None = Field(default=None, validation_alias="OutputTokens")
    cached_tokens: int | None = Field(default=None, validation_alias="CachedTokens")
    cost_usd: float | None = Field(default=None, validation_alias="CostUsd")


class Capabilities(_CliModel):
    streaming: bool = Field(validation_alias="Streaming")
    persistence: bool = Field(validation_alias="Persistence")
    dynamic_modes: bool = Field(validation_alias="DynamicModes")
    mcp_servers: bool = Field(validation_alias="McpServers")


class AgentMode(_CliModel):
    id: str
    label: str


class PendingPermission(_CliModel):
    id: str
    tool: str


class AgentDetail(_CliModel):
    """`paseo inspect --json`: PascalCase keys, no labels."""

    id: str = Field(validation_alias="Id")
    name: str = Field(validation_alias="Name")
    provider: str = Field(validation_alias="Provider")
    model: str = Field(validation_alias="Model")
    thinking: str = Field(validation_alias="Thinking")
    status: str = Field(validation_alias="Status")
    archived: bool = Field(validation_alias="Archived")
    archived_at: str | None = Field(validation_alias="ArchivedAt")
    mode: str = Field(validation_alias="Mode")
    cwd: str = Field(validation_alias="Cwd")
    created_at: str = Field(validation_alias="CreatedAt")
    updated_at: str = Field(validation_alias="UpdatedAt")
    last_usage: Usage | None = Field(default=None, validation_alias="LastUsage")
    capabilities: Capabilities | None = Field(default=None, validation_alias="Capabilities")
    available_modes: list[AgentMode] | None = Field(default=None, validation_alias="AvailableModes")
    pending_permissions: list[PendingPermission] = Field(
        default_factory=list, validation_alias="PendingPermissions"
    )
    worktree: str | None = Field(default=None, validation_alias="Worktree")
    parent_agent_id: str | None = Field(default=None, validation_alias="ParentAgentId")


class CreatedAgent(_CliModel):
    """`run -d --json` and `import --json` both print this shape."""

    agent_id: str = Field(validation_alias="agentId")
    status: str
    provider: str
    cwd: str
    title: str | None = None


class SendResult(_CliModel):
    agent_id: str = Field(validation_alias="agentId")
    status: str
    message: str


class WaitResult(_CliModel):
    agent_id: str = Field(validation_alias="agentId")
    status: str
    message: str


class StopResult(_CliModel):
    stopped_count: int = Field(validation_alias="stoppedCount")
    agent_ids: list[str] = Field(validation_alias="agentIds")


class ArchiveResult(_CliModel):
    agent_id: str = Field(validation_alias="agentId")
    status: str
    archived_at: str = Field(validation_alias="archivedAt")


class DeleteResult(_CliModel):
    deleted_count: int = Field(validation_alias="deletedCount")
    agent_ids: list[str] = Field(validation_alias="agentIds")


class ProviderInfo(_CliModel):
    """`paseo provider ls --json`; `enabled` is the text "Enabled" or "Disabled"."""

    provider: str
    label: str
    status: str
    enabled: str
    default_mode: str = Field(validation_alias="defaultMode")
    modes: str


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


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ToolActivity:
    name: str
    status: str


@dataclass(frozen=True)
class AgentNotice:
    """Other lines the stream shows: todo progress, permission prompts, attention, errors."""

    kind: Literal["todo", "permission", "permission_resolved", "attention", "error", "turn_failed"]
    text: str


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
    | TextDelta
    | ReasoningDelta
    | ToolActivity
    | AgentNotice
    | TurnEnded
)


@dataclass(frozen=True)
class PromptHistory:
    """What an agent's transcript says of one prompt (as Paseo records it).

    `times_recorded`: how many `[User]` items carry it. `latest_reply`: the reply to it when
    the agent's latest turn is this prompt's (None otherwise, or with no reply text yet).
    """

    times_recorded: int
    latest_is_this_prompt: bool
    latest_reply: str | None
