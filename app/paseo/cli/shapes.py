"""The JSON the paseo CLI prints (its own key names), and how each maps to the gateway's types.

Only the CLI transport knows these shapes; `to_gateway()` is where its spellings stop: "mock/x"
becomes provider and model, "Enabled" a boolean, the "-" placeholder None, a `~` path an
absolute one. Mode and thinking ids stay as printed: "default" and "auto" are real ids there.
"""

from __future__ import annotations

import os
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.paseo import types
from app.paseo.cli.provider_modes import mode_id

# What the CLI prints where a value is unknown (no title, no model).
_NO_VALUE = "-"


class _CliModel(BaseModel):
    """Parses the CLI's own key names; tolerates keys a newer CLI may add."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


def _value(text: str | None) -> str | None:
    """None for an empty value or the CLI's placeholder."""
    if text is None or text in ("", _NO_VALUE):
        return None
    return text


def _home_expanded(path: str) -> str:
    """The CLI shortens its user's home to `~`; it runs as the gateway's user, so expand it."""
    if path == "~" or path.startswith("~/"):
        return os.path.expanduser(path)
    return path


def split_provider(text: str) -> tuple[str, str | None]:
    """`ls` shows "provider/model" when a model is known and not the default."""
    provider, _, model = text.partition("/")
    return provider, model or None


class CliAgentRow(_CliModel):
    """One row of `paseo ls --json`: every field is a string."""

    id: str
    short_id: str = Field(validation_alias="shortId")
    name: str
    provider: str
    thinking: str
    status: str
    cwd: str
    created: str  # relative text ("5 minutes ago"): not a time the gateway can report

    def to_gateway(self) -> types.AgentSummary:
        provider, model = split_provider(self.provider)
        return types.AgentSummary(
            id=self.id,
            title=_value(self.name),
            provider=provider,
            model=model,
            thinking=self.thinking,
            status=self.status,
            cwd=_home_expanded(self.cwd),
            created_at=None,
        )


class CliUsage(_CliModel):
    input_tokens: int | None = Field(default=None, validation_alias="InputTokens")
    output_tokens: int | None = Field(default=None, validation_alias="OutputTokens")
    cached_tokens: int | None = Field(default=None, validation_alias="CachedTokens")
    cost_usd: float | None = Field(default=None, validation_alias="CostUsd")

    def to_gateway(self) -> types.Usage:
        return types.Usage(**self.model_dump())


class CliCapabilities(_CliModel):
    streaming: bool = Field(validation_alias="Streaming")
    persistence: bool = Field(validation_alias="Persistence")
    dynamic_modes: bool = Field(validation_alias="DynamicModes")
    mcp_servers: bool = Field(validation_alias="McpServers")


class CliAgentMode(_CliModel):
    id: str
    label: str


class CliPendingPermission(_CliModel):
    id: str
    tool: str


class CliAgentDetail(_CliModel):
    """`paseo inspect --json`: PascalCase keys, no labels."""

    id: str = Field(validation_alias="Id")
    name: str = Field(validation_alias="Name")
    provider: str = Field(validation_alias="Provider")
    model: str = Field(validation_alias="Model")
    thinking: str = Field(validation_alias="Thinking")
    status: str = Field(validation_alias="Status")
    archived: bool = Field(validation_alias="Archived")
    archived_at: datetime | None = Field(validation_alias="ArchivedAt")
    mode: str = Field(validation_alias="Mode")
    cwd: str = Field(validation_alias="Cwd")
    created_at: datetime = Field(validation_alias="CreatedAt")
    updated_at: datetime = Field(validation_alias="UpdatedAt")
    last_usage: CliUsage | None = Field(default=None, validation_alias="LastUsage")
    capabilities: CliCapabilities | None = Field(default=None, validation_alias="Capabilities")
    available_modes: list[CliAgentMode] | None = Field(
        default=None, validation_alias="AvailableModes"
    )
    pending_permissions: list[CliPendingPermission] = Field(
        default_factory=list, validation_alias="PendingPermissions"
    )
    worktree: str | None = Field(default=None, validation_alias="Worktree")
    parent_agent_id: str | None = Field(default=None, validation_alias="ParentAgentId")

    def to_gateway(self) -> types.AgentDetail:
        return types.AgentDetail(
            id=self.id,
            title=_value(self.name),
            provider=self.provider,
            model=_value(self.model),
            thinking=self.thinking,
            status=self.status,
            archived=self.archived,
            archived_at=self.archived_at,
            mode=self.mode,
            cwd=self.cwd,
            created_at=self.created_at,
            updated_at=self.updated_at,
            last_usage=self.last_usage.to_gateway() if self.last_usage else None,
            capabilities=(
                types.Capabilities(**self.capabilities.model_dump()) if self.capabilities else None
            ),
            available_modes=[
                types.AgentMode(id=mode.id, label=mode.label) for mode in self.available_modes or []
            ],
            pending_permissions=[
                types.PendingPermission(id=p.id, tool=p.tool) for p in self.pending_permissions
            ],
            worktree=self.worktree,
            parent_agent_id=self.parent_agent_id,
        )


class CliCreatedAgent(_CliModel):
    """`run -d --json` and `import --json` both print this shape."""

    agent_id: str = Field(validation_alias="agentId")
    status: str
    provider: str
    cwd: str
    title: str | None = None

    def to_gateway(self) -> types.CreatedAgent:
        return types.CreatedAgent(
            agent_id=self.agent_id, provider=self.provider, cwd=self.cwd, title=self.title
        )


class CliSendResult(_CliModel):
    agent_id: str = Field(validation_alias="agentId")
    status: str
    message: str


class CliWaitResult(_CliModel):
    agent_id: str = Field(validation_alias="agentId")
    status: str
    message: str


class CliUpdateResult(_CliModel):
    """`agent update --json`: labels as one `k=v,k2=v2` string (`-` for none)."""

    agent_id: str = Field(validation_alias="agentId")
    name: str


class CliModeResult(_CliModel):
    """`agent mode --json <id> <mode>` (its `agentId` is the 7-character short id)."""

    agent_id: str = Field(validation_alias="agentId")
    mode: str


class CliPermitRow(_CliModel):
    """`permit ls --json`: its `id` is the request id's first 8 characters."""

    id: str
    agent_id: str = Field(validation_alias="agentId")
    name: str
    description: str | None = None


class CliPermitResult(_CliModel):
    """`permit allow|deny --json`: one row per answered request."""

    request_id: str = Field(validation_alias="requestId")
    agent_id: str = Field(validation_alias="agentId")
    result: str


class CliStopResult(_CliModel):
    stopped_count: int = Field(validation_alias="stoppedCount")
    agent_ids: list[str] = Field(validation_alias="agentIds")

    def to_gateway(self) -> types.StopResult:
        return types.StopResult(stopped_count=self.stopped_count, agent_ids=self.agent_ids)


class CliArchiveResult(_CliModel):
    agent_id: str = Field(validation_alias="agentId")
    status: str
    archived_at: datetime = Field(validation_alias="archivedAt")

    def to_gateway(self) -> types.ArchiveResult:
        return types.ArchiveResult(agent_id=self.agent_id, archived_at=self.archived_at)


class CliDeleteResult(_CliModel):
    deleted_count: int = Field(validation_alias="deletedCount")
    agent_ids: list[str] = Field(validation_alias="agentIds")

    def to_gateway(self) -> types.DeleteResult:
        return types.DeleteResult(deleted_count=self.deleted_count, agent_ids=self.agent_ids)


class CliProviderRow(_CliModel):
    """`paseo provider ls --json`: the daemon's status `ready` is printed `available`. Up to
    0.5 `enabled` is "Enabled" or "Disabled" and `modes` a joined string of labels (their ids
    come from Paseo's manifest); newer CLIs print a bool and `[{id, label}]`."""

    provider: str
    label: str
    status: str
    enabled: str | bool
    default_mode: str = Field(validation_alias="defaultMode")
    modes: str | list[CliAgentMode]

    def to_gateway(self) -> types.ProviderInfo:
        return types.ProviderInfo(
            provider=self.provider,
            label=self.label,
            status="ready" if self.status == "available" else self.status,
            enabled=self.enabled in ("Enabled", True),
            default_mode=self.default_mode,
            modes=self._modes(),
        )

    def _modes(self) -> list[types.ProviderMode]:
        if not isinstance(self.modes, str):
            return [types.ProviderMode(id=mode.id, label=mode.label) for mode in self.modes]
        labels = [label.strip() for label in self.modes.split(",") if label.strip() != "-"]
        return [
            types.ProviderMode(id=mode_id(self.provider, label), label=label)
            for label in labels
            if label
        ]


class CliModelRow(_CliModel):
    """`paseo provider models <provider> --json`: `model` is the label."""

    id: str
    model: str
    description: str | None = None

    def to_gateway(self, provider: str) -> types.ModelInfo:
        return types.ModelInfo(
            provider=provider, id=self.id, label=self.model, description=self.description or None
        )
