"""Request and response bodies of the HTTP API (what /docs shows)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from app.paseo.daemon_config import DAEMON_NAME_PATTERN
from app.paseo.types import AgentDetail, AgentSummary, PermissionAction, ProviderInfo

# Values that reach the paseo argv: strict shapes, never anything that could look like a flag.
# Patterns (not code) carry every rule, so /docs states exactly what is accepted.
PROVIDER_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
MODEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,127}$"
# gateway.* and paseo.* label keys are reserved (the session label, Paseo's own).
LABEL_KEY_PATTERN = r"^(?!gateway\.|paseo\.)[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
# A filter may name any label, the reserved ones too (`gateway.session=<id>`).
LABEL_FILTER_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
# No NUL, newline or comma: `agent update` joins labels with commas.
LABEL_VALUE_PATTERN = r"^[^\x00\n\r,]*$"
LABEL_VALUE_MAX_CHARS = 256
MAX_LABELS = 32
LABEL_FILTER_DESCRIPTION = (
    "key=value; repeat to require several labels (at most 32). The key matches "
    f"`{LABEL_FILTER_KEY_PATTERN}`, the value `{LABEL_VALUE_PATTERN}` (at most 256 characters)."
)
NO_NUL_PATTERN = r"^[^\x00]*$"
AGENT_ID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
IMPORT_PROVIDERS = Literal["claude", "codex", "opencode", "acp"]
ItemT = TypeVar("ItemT", bound=BaseModel)
# Far beyond any real list, and within a 32-bit SQL integer on every backend.
MAX_OFFSET = 2**31 - 1


Provider = Annotated[str, StringConstraints(pattern=PROVIDER_PATTERN)]
# A mode id as providers spell them (`acceptEdits`, `https://…/session-modes#plan`): no
# control characters, no leading `-` or space. Which ids exist is checked against the
# provider's list, which answers a label sent instead with its id.
MODE_PATTERN = r"^[^\x00-\x20\x7f-][^\x00-\x1f\x7f]{0,127}$"
ModeId = Annotated[str, StringConstraints(pattern=MODE_PATTERN)]
Model = Annotated[str, StringConstraints(pattern=MODEL_PATTERN)]
LabelKey = Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN)]
LabelValue = Annotated[
    str, StringConstraints(max_length=LABEL_VALUE_MAX_CHARS, pattern=LABEL_VALUE_PATTERN)
]
Labels = Annotated[dict[LabelKey, LabelValue], Field(max_length=MAX_LABELS)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL_PATTERN)]
Cwd = Annotated[str, StringConstraints(max_length=4096, pattern=r"^/[^\x00]*$")]
PromptText = Annotated[str, StringConstraints(pattern=NO_NUL_PATTERN)]
DaemonName = Annotated[str, StringConstraints(pattern=DAEMON_NAME_PATTERN)]
DAEMON_FIELD_DESCRIPTION = (
    "The daemon to run the agent on (`GET /readyz` lists them); unset, the gateway places the "
    "session on an up daemon whose workspace roots hold `cwd`, with the fewest active turns."
)


class _Strict(BaseModel):
    # python-re: the label key pattern needs a look-ahead (reserved prefixes).
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")


IMAGES_DESCRIPTION = (
    "Images the agent sees with the prompt: at most 8, each at most 5 MiB decoded and "
    "20 MiB together; png, jpeg, gif or webp (413 too large or too many, 415 another type, "
    "422 not base64). Both transports carry them. Not stored: the turn's `turn.started` "
    "event lists their types and sizes."
)
ATTACHMENTS_DESCRIPTION = (
    "Text handed to the agent beside the prompt (Paseo's `text` attachment): at most 16, and "
    "with the prompt at most PASEO_GATEWAY_MAX_PROMPT_BYTES together. Daemon transport only "
    "(422 `media_unsupported` on the CLI's). Not stored: `turn.started` lists titles and sizes."
)


class PromptImageIn(_Strict):
    """An image sent with a prompt."""

    media_type: str = Field(
        max_length=100, description="`image/png`, `image/jpeg`, `image/gif` or `image/webp`"
    )
    data: str = Field(
        description="The image's bytes, base64 (standard alphabet, padded), no `data:` prefix"
    )


class TextAttachmentIn(_Strict):
    """Text handed to the agent beside the prompt."""

    type: Literal["text"] = "text"
    title: Title | None = Field(default=None, description="What the text is (a file name, ...)")
    text: PromptText


PROMPT_IMAGE_EXAMPLE: dict[str, Any] = {
    "media_type": "image/png",
    "data": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/"
    "iZk9HQAAAABJRU5ErkJggg==",
}  # a 1x1 red PNG


class SessionCreate(_Strict):
    """A new session. Its agent is created with the first prompt (`paseo run` needs one)."""

    provider: Provider | None = Field(
        default=None, description="Agent provider (claude, codex, ...); server default if unset."
    )
    model: Model | None = Field(
        default=None,
        description=(
            "One of the ids the provider lists (`GET /v1/models` shows them as "
            "`provider/model`); else 422 `unknown_model` with the list in `models`, and 503 "
            "`provider_not_ready` (with Retry-After) while the provider's list is loading. "
            "Unset: the server's default model (with `provider` unset) or the provider's."
        ),
    )
    mode: ModeId | None = Field(
        default=None,
        description=(
            "The `id` of one of the provider's modes (`GET /providers` lists `{id, label}`); "
            "else 422 `unknown_mode` with the ids in `modes`. A provider that lists no modes "
            "takes any (Paseo decides)."
        ),
    )
    title: Title | None = None
    cwd: Cwd | None = Field(
        default=None,
        description=(
            "Agent working directory on the daemon's machine, inside its workspace roots "
            "(symlinks followed; else 422 `invalid_input`). Under a root the gateway can see "
            "(a directory on its machine too), it must exist (422 `cwd_not_found`) and be a "
            "directory (422 `cwd_not_a_directory`). Unset: the server's default."
        ),
    )
    labels: Labels = Field(default_factory=dict)
    prompt: PromptText | None = Field(
        default=None,
        description="Optional first prompt: creates the agent at once and starts a turn.",
    )
    images: list[PromptImageIn] = Field(
        default_factory=list, description=f"With `prompt` only. {IMAGES_DESCRIPTION}"
    )
    attachments: list[TextAttachmentIn] = Field(
        default_factory=list, description=f"With `prompt` only. {ATTACHMENTS_DESCRIPTION}"
    )
    daemon: DaemonName | None = Field(default=None, description=DAEMON_FIELD_DESCRIPTION)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "provider": "claude",
                    "title": "Fix the flaky test",
                    "cwd": "/home/dev/project",
                    "labels": {"team": "qa"},
                }
            ]
        },
    )


class SessionImport(_Strict):
    """Register an existing provider session (`paseo import`) as a gateway session."""

    provider: IMPORT_PROVIDERS
    provider_session_id: Annotated[
        str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
    ]
    cwd: Cwd | None = None
    title: Title | None = None
    labels: Labels = Field(default_factory=dict)
    daemon: DaemonName | None = Field(
        default=None, description="The daemon that has the provider session; placed if unset."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "provider": "claude",
                    "provider_session_id": "5e1c8a5e-7c1b-4a59-9d1e-2f7f1f0c3b4a",
                    "cwd": "/home/dev/project",
                }
            ]
        },
    )


class SessionUpdate(_Strict):
    """What `PATCH /sessions/{id}` changes; a field left out stays as it is."""

    title: Title | None = Field(default=None, description="The session's and its agent's name.")
    labels: Labels | None = Field(
        default=None,
        description=(
            "Merged into the session's labels and its agent's. A label cannot be removed "
            "(Paseo keeps every label an agent was given)."
        ),
    )
    mode: ModeId | None = Field(
        default=None,
        description=(
            "A mode `id` (claude: `plan`, `acceptEdits`, ...), not its label: one of the "
            "agent's modes once it has an agent (Paseo switches it even while a turn runs), "
            "before that one of its provider's (`GET /providers`). Else 422 `unknown_mode` "
            "with the ids in `modes`; 503 `provider_not_ready` while the provider is loading."
        ),
    )

    model_config = ConfigDict(
        extra="forbid",
        regex_engine="python-re",
        json_schema_extra={"examples": [{"title": "Plan first", "mode": "plan"}]},
    )

    @model_validator(mode="after")
    def _changes_something(self) -> SessionUpdate:
        if self.title is None and self.labels is None and self.mode is None:
            raise ValueError("send at least one of title, labels, mode")
        return self


class PermissionAnswerIn(_Strict):
    """A person's answer to one of the agent's permission requests."""

    behavior: Literal["allow", "deny"]
    message: Annotated[str, StringConstraints(max_length=4000, pattern=NO_NUL_PATTERN)] | None = (
        Field(default=None, description="deny: why; the agent is told.")
    )
    interrupt: bool = Field(default=False, description="deny: also stop the agent's turn.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"behavior": "deny", "message": "Not this file"}]},
    )


class PermissionAnswered(BaseModel):
    """Paseo has taken the answer; the turn's stream says `turn.permission_resolved`."""

    permission_id: str
    behavior: Literal["allow", "deny"]
    turn_id: uuid.UUID


class PromptRequest(_Strict):
    prompt: PromptText = Field(
        description="What to ask the agent. Any text; never parsed as flags."
    )
    images: list[PromptImageIn] = Field(default_factory=list, description=IMAGES_DESCRIPTION)
    attachments: list[TextAttachmentIn] = Field(
        default_factory=list, description=ATTACHMENTS_DESCRIPTION
    )
    mode: Literal["queue", "interrupt", "steer"] = Field(
        default="queue",
        description=(
            "`queue`: refuse (409) while a turn runs. `interrupt`: end the running turn "
            "(`interrupted`) and start this one. `steer`: hand the text to the running turn, "
            "which goes on with it (Paseo 0.5+, daemon transport): the answer is that turn's "
            "stream, where a `turn.steered` event marks where the text joined; 409 "
            "`no_running_turn` when none runs, 409 `steer_unsupported` where Paseo cannot."
        ),
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"prompt": "Summarise the failing tests"},
                {"prompt": "What does this screenshot show?", "images": [PROMPT_IMAGE_EXAMPLE]},
            ]
        },
    )


class TurnOut(BaseModel):
    id: uuid.UUID
    session_id: uuid.UUID
    number: int
    prompt: str
    status: str
    final_text: str | None
    error_code: str | None
    error_message: str | None
    usage: dict[str, Any] | None
    cancel_requested_at: datetime | None
    started_at: datetime
    finished_at: datetime | None

    model_config = ConfigDict(from_attributes=True)


def _absent(value: object) -> bool:
    """Left out of an answer when not known (an optional key, not a null)."""
    return value is None


class _TurnItemBase(BaseModel):
    id: str = Field(description="`<turn_id>:<first_seq>`: the same at every read of the turn")
    first_seq: int = Field(description="The number of the first event folded into the item")
    last_seq: int = Field(description="The number of the last event folded into the item")


class ContentPart(BaseModel):
    type: Literal["input_text", "output_text"] = Field(
        description="`input_text` in a user's message, `output_text` in the agent's"
    )
    text: str


class ImageSummary(BaseModel):
    media_type: str
    bytes: int


class AttachmentSummary(BaseModel):
    title: str | None
    bytes: int


class MessageItem(_TurnItemBase):
    """The prompt (`user`; a prompt steered into the turn is one more, where it joined), or
    one block of the agent's reply (`assistant`: contiguous `text` deltas)."""

    type: Literal["message"]
    role: Literal["user", "assistant"]
    content: list[ContentPart]
    images: list[ImageSummary] | None = Field(
        default=None, exclude_if=_absent, description="The prompt's images (types and sizes)"
    )
    attachments: list[AttachmentSummary] | None = Field(
        default=None, exclude_if=_absent, description="The prompt's text attachments (sizes)"
    )


class ReasoningItem(_TurnItemBase):
    """The agent's thinking: contiguous `reasoning` deltas."""

    type: Literal["reasoning"]
    text: str


class ToolCallItem(_TurnItemBase):
    """One tool call in its last state, where it first appeared (its `tool` events merged:
    each later event's detail keys over the earlier ones')."""

    type: Literal["tool_call"]
    call_id: str
    name: str | None
    kind: str | None = Field(description="shell, read, edit, write, search, plan or other")
    status: str | None = Field(description="running, completed, failed or canceled")
    detail: dict[str, Any]
    error: str | None


class TodoEntry(BaseModel):
    text: str
    done: bool


class TodoItem(_TurnItemBase):
    """The agent's task list as it stands, where it first appeared."""

    type: Literal["todo"]
    items: list[TodoEntry] | None = Field(description="null on the CLI transport (counts only)")
    completed: int | None
    total: int | None


class PermissionResolution(BaseModel):
    behavior: str = Field(description="allow, deny, or unknown (answered outside the gateway)")
    by: str | None = Field(description="The key's name, `timeout`, or `paseo`")
    message: str | None


class PermissionRequestItem(_TurnItemBase):
    """The agent asked a person; `resolution` says the answer once there is one."""

    type: Literal["permission_request"]
    permission_id: str
    name: str | None
    kind: str | None
    title: str | None
    description: str | None
    input: dict[str, Any] | None
    actions: list[PermissionAction]
    resolution: PermissionResolution | None


class NoticeItem(_TurnItemBase):
    """Another line Paseo showed (`attention`, `error`, `turn_failed`)."""

    type: Literal["notice"]
    kind: str | None
    text: str | None


class UsageItem(_TurnItemBase):
    """What the turn used, as Paseo reported it at the end (null: not reported)."""

    type: Literal["usage"]
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    cost_usd: float | None
    context_window_used_tokens: int | None = Field(
        default=None, exclude_if=_absent, description="Where Paseo reports it (daemon transport)"
    )
    context_window_max_tokens: int | None = Field(
        default=None, exclude_if=_absent, description="Where Paseo reports it (daemon transport)"
    )


TurnItem = Annotated[
    MessageItem
    | ReasoningItem
    | ToolCallItem
    | TodoItem
    | PermissionRequestItem
    | NoticeItem
    | UsageItem,
    Field(discriminator="type"),
]

_EXAMPLE_TURN = "5f0c1d2e-0000-4000-8000-000000000001"
TURN_ITEMS_EXAMPLE: dict[str, Any] = {
    "turn_id": _EXAMPLE_TURN,
    "session_id": "9b1e6a3c-0000-4000-8000-000000000002",
    "status": "completed",
    "last_seq": 9,
    "items": [
        {
            "id": f"{_EXAMPLE_TURN}:1",
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Why does the test fail?"}],
            "first_seq": 1,
            "last_seq": 1,
        },
        {
            "id": f"{_EXAMPLE_TURN}:3",
            "type": "reasoning",
            "text": "Look at the test first.",
            "first_seq": 3,
            "last_seq": 3,
        },
        {
            "id": f"{_EXAMPLE_TURN}:4",
            "type": "tool_call",
            "call_id": "toolu_01",
            "name": "bash",
            "kind": "shell",
            "status": "completed",
            "detail": {"command": "pytest -x", "cwd": "/home/dev/project", "exit_code": 1},
            "error": None,
            "first_seq": 4,
            "last_seq": 5,
        },
        {
            "id": f"{_EXAMPLE_TURN}:6",
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "The fixture leaks a file."}],
            "first_seq": 6,
            "last_seq": 8,
        },
        {
            "id": f"{_EXAMPLE_TURN}:9",
            "type": "usage",
            "input_tokens": 1200,
            "output_tokens": 85,
            "cached_tokens": 0,
            "cost_usd": 0.0042,
            "context_window_used_tokens": 1285,
            "context_window_max_tokens": 200000,
            "first_seq": 9,
            "last_seq": 9,
        },
    ],
}


class TurnItemsOut(BaseModel):
    """A turn as the ordered items a client renders (a running turn: its items so far)."""

    turn_id: uuid.UUID
    session_id: uuid.UUID
    status: str
    last_seq: int = Field(
        description="The last event folded (0: none yet): follow the turn live from here with "
        "`GET …/events?after=<last_seq>`"
    )
    items: list[TurnItem]

    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [TURN_ITEMS_EXAMPLE]}
    )


class SessionUsage(BaseModel):
    """What the session's turns used, summed from the stored turns."""

    turns: int = Field(description="The session's turns (every status)")
    input_tokens: int = Field(description="Summed over the turns that reported usage")
    output_tokens: int
    cached_tokens: int
    cost_usd: float = Field(description="In US dollars, as Paseo reported it (0: none did)")

    model_config = ConfigDict(from_attributes=True)


class AgentLiveStatus(BaseModel):
    """What Paseo says of the session's agent right now (None fields: not known)."""

    status: str | None = None
    archived: bool | None = None
    pending_permissions: list[dict[str, str]] = Field(default_factory=list)
    error: str | None = Field(
        default=None, description="Why the live status could not be read, if it could not."
    )
    age_seconds: float | None = Field(
        default=None,
        description="How old this answer of Paseo's is: readers of one session within a few "
        "seconds share one CLI call.",
    )


class SessionOut(BaseModel):
    id: uuid.UUID
    agent_id: str | None
    provider: str
    model: str | None
    mode: str | None
    title: str | None
    cwd: str
    labels: dict[str, str]
    status: str
    daemon: str = Field(description="The daemon the session's agent lives on (fixed)")
    created_at: datetime
    last_active_at: datetime

    model_config = ConfigDict(from_attributes=True)


class SessionDetail(SessionOut):
    agent: AgentLiveStatus | None = Field(
        default=None, description="Live agent status from Paseo (null before the agent exists)."
    )
    active_turn: TurnOut | None = None
    usage: SessionUsage | None = Field(
        default=None, description="The running total of the session's turns' usage."
    )


class SessionCreated(SessionOut):
    turn: TurnOut | None = Field(
        default=None, description="The first turn, when the request carried a prompt."
    )


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    total: int
    limit: int
    offset: int

    @classmethod
    def of(
        cls, model: type[ItemT], rows: Sequence[object], total: int, *, limit: int, offset: int
    ) -> Page[ItemT]:
        """A page of ORM rows, each read into `model`."""
        items = [model.model_validate(row) for row in rows]
        return cls(items=items, total=total, limit=limit, offset=offset)


class CancelResult(BaseModel):
    """200: the turn has ended (normally `cancelled`). 202: Paseo has not confirmed yet."""

    turn: TurnOut
    confirmed: bool
    detail: str


class ReadinessCheck(BaseModel):
    ok: bool
    detail: str
    state: Literal["up", "degraded", "down"] | None = Field(
        default=None,
        description="A daemon's state now (daemon lines only): `down` when its WebSocket is "
        "closed or nothing answers at its address; `degraded` when its check is slow or failed "
        "otherwise: it still takes prompts and counts as ready.",
    )
    age_seconds: float | None = Field(
        default=None,
        description="How old the daemon's last check is: it is checked in the background, so "
        "a probe never waits for a CLI call (on the daemon transport the state is its "
        "socket's, now).",
    )
    version: str | None = Field(default=None, description="The daemon's version, if it said")
    server_id: str | None = Field(default=None, description="The daemon's server id, if it said")
    protocol: str | None = Field(
        default=None,
        description="How the daemon transport speaks to it: `owned subscriptions` (Paseo 0.8+), "
        "`selective timeline` (0.2-0.7) or `legacy broadcast` (0.1)",
    )


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    transport: Literal["cli", "daemon"] = Field(
        description="How the gateway talks to Paseo (PASEO_GATEWAY_TRANSPORT)"
    )
    checks: dict[str, ReadinessCheck]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class KeyLimits(_Strict):
    """A key's budget: a prompt is refused (429 `budget_exceeded`) once any is used up.
    Days are UTC days and months UTC months; a turn counts in the day it started."""

    cost_usd_per_day: float | None = Field(default=None, ge=0, description="US dollars a day")
    cost_usd_per_month: float | None = Field(
        default=None, ge=0, description="US dollars a calendar month"
    )
    output_tokens_per_day: int | None = Field(default=None, ge=0, description="Output tokens a day")
    turns_per_day: int | None = Field(default=None, ge=0, description="Turns started a day")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"cost_usd_per_day": 5, "turns_per_day": 100}]},
    )

    def as_stored(self) -> dict[str, float] | None:
        """The limits that are set, or None when none is."""
        return self.model_dump(exclude_none=True) or None


class KeyCreate(_Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NO_NUL_PATTERN)]
    scopes: list[Literal["read", "prompt", "webhooks", "admin"]] = Field(min_length=1, max_length=4)
    limits: KeyLimits | None = Field(default=None, description="Its budget; none if left out")

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "ci", "scopes": ["prompt"]}]}
    )


class KeyOut(BaseModel):
    """An API key as listed: never its secret."""

    id: uuid.UUID
    name: str
    prefix: str = Field(description="The secret's first characters, to tell keys apart")
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    limits: KeyLimits | None = Field(description="Its budget (null: none)")

    model_config = ConfigDict(from_attributes=True)


class KeyPatch(_Strict):
    """What `PATCH /keys/{id}` changes: its budget (`null` removes every limit)."""

    limits: KeyLimits | None

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"limits": {"turns_per_day": 50}}]}
    )


class KeyCreated(KeyOut):
    secret: str = Field(description="The key itself; shown this once only")


class DaemonAgent(AgentSummary):
    """An agent of the list, with the daemon it lives on."""

    daemon: str


class DaemonAgentDetail(AgentDetail):
    """One agent, with the daemon it lives on."""

    daemon: str


class DaemonProvider(ProviderInfo):
    """A provider, as one daemon offers it."""

    daemon: str
