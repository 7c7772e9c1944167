"""The fake Paseo daemon: one long-lived asyncio process per PASEO_HOME.

It owns every agent (state, timeline, turns of the mock and claude providers) and persists them
under $PASEO_HOME/agents so they survive a restart (coming back `closed`). One listener (TCP
host:port or a unix socket) speaks two protocols, told apart by a connection's first line:

- an HTTP request line: HTTP, like the real daemon. `GET /ws` with an upgrade is the real
  Paseo WebSocket protocol (/work/shared/paseo-daemon.md), handled by `WsHub` in
  fake_paseo_ws_hub.py (RFC 6455 framing in fake_paseo_ws.py); `GET /api/health` and
  `GET /api/status` are the probes, anything else 404. The gateway's WebSocket transport is
  tested against this side.
- anything else: the fake CLI's own JSON-lines protocol (`Daemon.handle_lines`; the CLI hides
  the real transport, so its wire format is ours).

Both sides drive the same `Manager`: an agent created over the WebSocket is in the CLI's `ls`
and the other way round, and every stream event reaches both (the WebSocket gets the wire
shapes: seq/epoch on timeline rows, no internal usage_updated; turnId from 0.5 on). Behaviour
follows the CLI contract, the recordings and the daemon fact sheet; where the fake and a
contract disagree, the fake is wrong.

FAKE_PASEO_VERSION picks the release (fake_paseo_versions.py, `RELEASE` here): what a turn
streams first (0.1.65: the user_message, then `turn_started`; later: `turn_started` first, the
user_message with `clientMessageId`), steering, the snapshot fields (`workspaceId`,
`activeTurn`) and everything the WebSocket side does differently (fake_paseo_ws_hub.py).

Started by `paseo daemon start` (internally `paseo __fake-daemon-worker`), never imported by
tests. Knobs: FAKE_PASEO_TIME_SCALE multiplies every mock duration and interval (not the 15 s
WebSocket hello timeout, the 90 s session grace nor the socket lease);
FAKE_PASEO_SOCKET_LEASE_SECONDS shortens the 45 s WebSocket lease of 0.5 and current;
FAKE_PASEO_EMIT_LOG (a file, opt-in, for benchmarks) gets one JSON line per assistant text chunk
the daemon sends on: `{"at": <CLOCK_MONOTONIC seconds>, "agent": id, "turn": id, "text": ...}`,
timed just before the chunk is handed to its sockets (CLOCK_MONOTONIC is one clock for every
process of a Linux host, so a benchmark on the same machine can compare it with its own).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import ipaddress
import json
import os
import re
import secrets
import signal
import socket
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from fake_paseo_common import (
    JS_TRIM_CHARS,
    LOG_FILENAME,
    PID_FILENAME,
    PROVIDER_INFO,
    PROVIDERS,
    RECEIVED_MEDIA,
    VERSION,
    config_listen,
    iso_now,
    js_trim,
    load_config,
    parse_listen,
    pid_alive,
    read_pid_file,
    resolve_home,
    write_json_atomic,
)
from fake_paseo_versions import release
from fake_paseo_ws import (
    HttpRequest,
    WebSocket,
    handshake_response,
    http_response,
    is_http_request_line,
    is_upgrade,
    offered_subprotocols,
    read_http_request,
    upgrade_problem,
)
from fake_paseo_ws_hub import BEARER_PREFIX, WsHub

RELEASE = release()  # which Paseo this daemon speaks (FAKE_PASEO_VERSION)

COALESCE_WINDOW_S = 0.060
EMIT_LOG_ENV = "FAKE_PASEO_EMIT_LOG"
TIMER_OVERHEAD_MS = 0.27  # Node's setTimeout(5) really fires every ~5.27 ms (recorded cadence)
PROVIDER_LOADING_S = 3.0
CLAUDE_FAILURE_DELAY_S = 1.5
CLAUDE_FAILURE = "Claude Code process exited with code 1"
CLAUDE_DEFAULT_MODEL = "claude-opus-4-6"
SAVE_INTERVAL_S = 0.5
READ_LIMIT = 64 * 1024 * 1024

MOCK_MODELS: list[tuple[str, str, str, int, int]] = [
    (
        "five-minute-stream",
        "Five minute stream",
        "Realistic agent flow streamed as sub-word tokens for five minutes "
        "(good for scroll/coalesce debugging).",
        300_000,
        40,
    ),
    (
        "thirty-minute-stream",
        "Thirty minute stream",
        "Long-running realistic stream for extended scroll-anchor debugging.",
        1_800_000,
        50,
    ),
    (
        "one-minute-stream",
        "One minute stream",
        "Shorter realistic stream for quick manual checks.",
        60_000,
        40,
    ),
    (
        "ten-second-stream",
        "Ten second stream",
        "Fast realistic stream for tests and smoke checks.",
        10_000,
        5,
    ),
]
CLAUDE_MODELS = [
    ("claude-opus-4-6", "Opus 4.6", "Most capable Claude model."),
    ("claude-sonnet-4-5", "Sonnet 4.5", "Balanced Claude model for everyday coding."),
    ("claude-haiku-4-5", "Haiku 4.5", "Fastest Claude model."),
]
CAPABILITIES = {
    "mock": {
        "supportsStreaming": True,
        "supportsSessionPersistence": True,
        "supportsDynamicModes": False,
        "supportsMcpServers": False,
    },
    "claude": {
        "supportsStreaming": True,
        "supportsSessionPersistence": True,
        "supportsDynamicModes": True,
        "supportsMcpServers": True,
    },
}
IMPORT_FAILURES = {
    "codex": "Codex binary not found. Install the Codex CLI (https://github.com/openai/codex) "
    "and ensure it is available in your shell PATH.",
    "opencode": "OpenCode binary not found. Install OpenCode (https://opencode.ai) and ensure it "
    "is available in your shell PATH.",
    "acp": "No client registered for provider 'acp'",
}

INTRO = (
    "I'll take a look at the scroll anchor behavior you described. Let me start by walking "
    "through how the conversation list currently handles streaming updates and where the "
    "auto-scroll logic actually lives. My instinct is that the anchor is supposed to pin to the "
    "bottom only when the user is already there, but I want to confirm that against the code "
    "rather than guess. This kind of behavior is usually a thin layout effect over a ref, and "
    "the bugs tend to come from event ordering rather than the math itself, so the first useful "
    "step is to read the relevant files."
)
REASONING = (
    "Need to find the scroll container, the layout effect that watches for new messages, and "
    "any gesture handler that might fight with programmatic scrolling. Probably a ref on the "
    "FlatList plus a near-bottom threshold."
)
MID = "\n".join(
    [
        "Now I have a clearer picture. The auto-scroll uses a ref on the FlatList and tracks "
        "whether the user has scrolled away from the bottom by comparing the offset against the "
        "content size. There are a few subtle issues worth flagging before we change anything:",
        "",
        "- The threshold for 'near the bottom' is hardcoded at 80px, which feels too tight on "
        "dense content where headers and tool calls take up a lot of vertical space.",
        "- We rely on `onContentSizeChange` to detect new content, but that fires after layout, "
        "not as the streaming delta arrives, so we end up scrolling one frame late on fast "
        "streams.",
        "- The gesture handler does not pause scroll-to-bottom while the user is actively "
        "dragging, which means a drag in progress can be visually overridden mid-frame.",
        "- Coalescing happens upstream, so the FlatList sees fewer updates than the wire \u2014 "
        "but each batch can still cause a relayout.",
        "",
        "Let me make a small adjustment to the threshold and add a flag for active gestures, then "
        "run a quick command to confirm the order of events when streaming is fast.",
    ]
)
CLOSING = (
    "The change should keep scroll-to-bottom working when the user is at the bottom while not "
    "yanking the viewport when they are reading earlier messages. The bash output confirms the "
    "`userIsAtBottom` flag flips correctly during a simulated streaming burst, and the gesture "
    "flag suppresses scroll while a drag is active. If you want, I can follow up with a "
    "regression test that drives the FlatList with synthetic deltas at high frequency to lock in "
    "the behavior. For now, I'll stop here so you can take a look."
)
END_MARKER = "\n\n_(end of synthetic stream)_\n"
EDIT_FILE = "packages/app/src/hooks/use-scroll-anchor.ts"
READ_FILE = "packages/app/src/components/conversation-list.tsx"
SHELL_COMMAND = "node scripts/simulate-stream-burst.mjs"


def js_regex(pattern: str) -> re.Pattern[str]:
    """A JS `/.../i` regex (no `u` flag): JS \\s and \\d, ASCII-only case folding.

    The mock's magic phrases are searched anywhere in the prompt (surrounding whitespace and
    extra lines do not matter), like `regex.exec(text)` in mock-load-test-agent.ts.
    """
    space = "[" + re.escape(JS_TRIM_CHARS) + "]"
    return re.compile(pattern.replace(r"\s", space).replace(r"\d", "[0-9]"), re.I | re.ASCII)


PLAN_RE = js_regex(r"emit\s+(?:a\s+)?synthetic\s+plan\s+approval")
STRESS_RE = js_regex(r"emit\s+(\d+)\s+(coalesced\s+)?agent stream updates")
PAYLOAD_RE = js_regex(
    r"emit\s+(\d+)\s+(?:byte\s+)?(?:large\s+)?(diff|file|image)\s+agent stream (?:update|payload)"
)
# Fake-only (no real mock has it): `keep streaming until PATH exists` streams the model's canned
# cycle past the model's duration (at the model's unscaled pace from there), until that file
# exists (checked every HOLD_CHECK_S, not time-scaled), then ends as a finished stream does;
# stop, interrupt or a kill end it sooner.
# A long-running agent that a test releases; a real daemon streams such a prompt for the
# model's duration.
HOLD_RE = js_regex(r"keep\s+streaming\s+until\s+(\S+)\s+exists")
HOLD_CHECK_S = 0.05
ONE_PIXEL_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mP8/x8AAusB9Wl4Kj8AAAAASUVORK5CYII="
)


class OpError(Exception):
    """A request failed; the message goes back to the CLI verbatim."""


def default_model(provider: str) -> str:
    """The model an agent runs when none was chosen (runtimeInfo.model, isDefault)."""
    return "five-minute-stream" if provider == "mock" else CLAUDE_DEFAULT_MODEL


# ---------------------------------------------------------------------------------------------
# Mock provider content


def tokenize(text: str) -> list[str]:
    """Sub-word tokens exactly as mock-load-test-agent.ts cuts them (words > 5 chars in 4s)."""
    tokens: list[str] = []
    for match in re.finditer(r"(\s*)(\S+)|(\s+)", text):
        lead, word, lonely = match.group(1), match.group(2), match.group(3)
        if lonely is not None:
            tokens.append(lonely)
            continue
        if len(word) <= 5:
            tokens.append(lead + word)
            continue
        tokens.append(lead + word[:4])
        tokens.extend(word[i : i + 4] for i in range(4, len(word), 4))
    return tokens


_REASONING_TOKENS = tokenize(REASONING)
_MID_TOKENS = tokenize(MID)
_CLOSING_TOKENS = tokenize(CLOSING)


def tool_item(call_id: str, name: str, status: str, detail: dict[str, Any]) -> dict[str, Any]:
    """A tool_call timeline item."""
    return {
        "type": "tool_call",
        "callId": call_id,
        "name": name,
        "status": status,
        "error": None,
        "detail": detail,
    }


def edit_diff(path: str) -> str:
    """The unified diff the mock's edit carries (buildEditDiff in mock-load-test-agent.ts)."""
    return "\n".join(
        [
            f"diff --git a/{path} b/{path}",
            f"--- a/{path}",
            f"+++ b/{path}",
            "@@ -42,7 +42,9 @@",
            "   const ref = useRef<FlatList>(null);",
            "   const [userIsAtBottom, setUserIsAtBottom] = useState(true);",
            "-  const NEAR_BOTTOM_PX = 80;",
            "+  const NEAR_BOTTOM_PX = 160;",
            "+  const isDraggingRef = useRef(false);",
            "",
            "-  if (userIsAtBottom) ref.current?.scrollToEnd({ animated: true });",
            "+  if (userIsAtBottom && !isDraggingRef.current) {",
            "+    ref.current?.scrollToEnd({ animated: true });",
            "+  }",
        ]
    )


# The tool calls of one cycle as mock-load-test-agent.ts (buildCycleQueue) makes them: each
# call's detail while it runs, then when it completes (the read gains its content, the grep
# its matches; edit and bash carry everything from the start). Every release's mock the same.
READ_DETAIL = {"type": "read", "filePath": READ_FILE}
READ_CONTENT = (
    "export function ConversationList() {\n  const ref = useRef<FlatList>(null);\n  // ...\n}"
)
GREP_DETAIL = {
    "type": "search",
    "query": "scrollToEnd",
    "toolName": "grep",
    "mode": "files_with_matches",
}
GREP_MATCHES = {"filePaths": [READ_FILE, EDIT_FILE], "numFiles": 2, "numMatches": 5}
EDIT_DETAIL = {
    "type": "edit",
    "filePath": EDIT_FILE,
    "oldString": "const NEAR_BOTTOM_PX = 80;",
    "newString": "const NEAR_BOTTOM_PX = 160;",
    "unifiedDiff": edit_diff(EDIT_FILE),
}
SHELL_DETAIL = {
    "type": "shell",
    "command": SHELL_COMMAND,
    "cwd": "/tmp/paseo-mock-load",
    "output": "[burst] tick 1 userIsAtBottom=true\n[burst] tick 2 userIsAtBottom=true\n"
    "[burst] drag-start isDragging=true\n[burst] tick 3 suppressed\n"
    "[burst] drag-end isDragging=false\n",
    "exitCode": 0,
}


def tool_events(
    turn_id: str, cycle: int, name: str, running: dict[str, Any], done: dict[str, Any]
) -> list[tuple[str, Any]]:
    """One tool call of a cycle: `running` with its first detail, `completed` with the last."""
    call_id = f"{turn_id}:{name}:{cycle}"
    return [
        ("tool", tool_item(call_id, name, "running", running)),
        ("tool", tool_item(call_id, name, "completed", done)),
    ]


def cycle_events(turn_id: str, cycle: int) -> list[tuple[str, Any]]:
    """One canned cycle: intro, reasoning, read+grep, mid text, edit+bash, closing, usage."""
    intro = tokenize(f"## Cycle {cycle}\n\n{INTRO}")
    events: list[tuple[str, Any]] = [("assistant", t) for t in intro]
    events += [("reasoning", t) for t in _REASONING_TOKENS]
    events += tool_events(
        turn_id, cycle, "read", READ_DETAIL, {**READ_DETAIL, "content": READ_CONTENT}
    )
    events += tool_events(turn_id, cycle, "grep", GREP_DETAIL, {**GREP_DETAIL, **GREP_MATCHES})
    events += [("assistant", t) for t in _MID_TOKENS]
    events += tool_events(turn_id, cycle, "edit", EDIT_DETAIL, EDIT_DETAIL)
    events += tool_events(turn_id, cycle, "bash", SHELL_DETAIL, SHELL_DETAIL)
    events += [("assistant", t) for t in _CLOSING_TOKENS]
    events.append(("usage", None))
    return events


def mock_profile(model: str | None) -> tuple[int, int]:
    """(duration ms, interval ms); unknown models behave as the default five-minute stream."""
    for model_id, _label, _desc, duration, interval in MOCK_MODELS:
        if model_id == model:
            return duration, interval
    return MOCK_MODELS[0][3], MOCK_MODELS[0][4]


def make_usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """Usage as the daemon stores it on the agent snapshot."""
    return {
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        "cachedInputTokens": 0,
        "totalCostUsd": 0,
        "contextWindowUsedTokens": output_tokens * 2,
        "contextWindowMaxTokens": 128_000,
    }


# ---------------------------------------------------------------------------------------------
# Agents


class Coalescer:
    """Batches assistant/reasoning chunks and tool-call updates like agent-stream-coalescer.

    The recorded daemon flushes on a trailing 60 ms timer started by the first buffered item,
    at once on a terminal tool call, and before any other event (see `Manager.emit`). Each
    item keeps the id of the turn it belongs to (None outside a turn); items of different
    turns are never merged.
    """

    def __init__(
        self, window: float, on_flush: Callable[[dict[str, Any], str | None], None]
    ) -> None:
        self.window = window
        self.on_flush = on_flush
        self.entries: list[tuple[dict[str, Any], str | None]] = []
        self.tool_index: dict[str, int] = {}
        self.timer: asyncio.TimerHandle | None = None

    def add(self, item: dict[str, Any], turn_id: str | None = None) -> None:
        """Buffer one item, flushing when the rules say so."""
        if item["type"] in ("assistant_message", "reasoning") and item["text"] == "":
            return
        if item["type"] == "tool_call":
            index = self.tool_index.get(item["callId"])
            if index is not None:
                self.entries[index] = (dict(item), turn_id)
            else:
                self.tool_index[item["callId"]] = len(self.entries)
                self.entries.append((dict(item), turn_id))
            if item["status"] in ("completed", "failed", "canceled"):
                self.flush()
                return
        else:
            self.entries.append((dict(item), turn_id))
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.window, self.flush)

    def discard(self) -> None:
        """Drop whatever is buffered (a deleted agent streams nothing more)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.entries.clear()
        self.tool_index.clear()

    def flush(self) -> None:
        """Deliver the buffered items, merging runs of the same text stream."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        entries, self.entries = self.entries, []
        self.tool_index.clear()
        merged: list[tuple[dict[str, Any], str | None]] = []
        for item, turn_id in entries:
            last = merged[-1] if merged else None
            if last is not None and last[1] == turn_id and same_text_stream(last[0], item):
                last[0]["text"] += item["text"]
            else:
                merged.append((item, turn_id))
        for item, turn_id in merged:
            self.on_flush(item, turn_id)


def same_text_stream(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Consecutive chunks that belong to one assistant message or one reasoning block."""
    if a["type"] != b["type"] or a["type"] not in ("assistant_message", "reasoning"):
        return False
    return a["type"] == "reasoning" or a.get("messageId") == b.get("messageId")


def append_projected(timeline: list[dict[str, Any]], item: dict[str, Any]) -> None:
    """Store the projected timeline: merged text runs, one entry per tool call."""
    last = timeline[-1] if timeline else None
    if last is not None and same_text_stream(last, item):
        last["text"] += item["text"]
        return
    if item["type"] == "tool_call":
        for index in range(len(timeline) - 1, max(len(timeline) - 50, -1), -1):
            if timeline[index].get("callId") == item["callId"]:
                timeline[index] = dict(item)
                return
    timeline.append(dict(item))


@dataclass
class Turn:
    """One provider turn in progress."""

    id: str
    prompt: str
    message_id: str
    started_at: str = ""
    task: asyncio.Task[None] | None = None
    cycle: int = 0
    emitted: int = 0


@dataclass
class Agent:
    """Daemon-side agent state; `record()` is what gets persisted."""

    id: str
    provider: str
    model: str | None
    title: str | None
    cwd: str
    labels: dict[str, str]
    mode_id: str | None
    thinking: str | None
    created_at: str
    updated_at: str
    archived_at: str | None = None
    status: str = "idle"
    last_error: str | None = None
    last_usage: dict[str, Any] | None = None
    session_id: str | None = None
    live: bool = True
    timeline: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    turn: Turn | None = None
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    coalescer: Coalescer | None = None
    dirty: bool = False
    deleted: bool = False
    last_user_message_at: str | None = None
    # Attention flag (agent-manager checkAndSetAttention): set on finished/error/permission,
    # skipped while already set, cleared by clear_agent_attention or archive.
    attention_reason: str | None = None
    attention_at: str | None = None
    # Canonical in-memory timeline of the WebSocket protocol: one row per delivered timeline
    # event, seq 1, 2, 3... under an epoch that changes whenever the agent is (re)loaded.
    epoch: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The persisted form."""
        return {
            "id": self.id,
            "provider": self.provider,
            "model": self.model,
            "title": self.title,
            "cwd": self.cwd,
            "labels": self.labels,
            "modeId": self.mode_id,
            "thinkingOptionId": self.thinking,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "archivedAt": self.archived_at,
            "lastStatus": self.status,
            "lastError": self.last_error,
            "sessionId": self.session_id,
            "timeline": self.timeline,
            "lastUserMessageAt": self.last_user_message_at,
            "attentionReason": self.attention_reason,
            "attentionTimestamp": self.attention_at,
        }

    def runtime_model(self) -> str | None:
        """What runtimeInfo.model would report."""
        return self.model or default_model(self.provider)

    def snapshot(self) -> dict[str, Any]:
        """The wire snapshot the CLI renders; closed sessions lose streaming and modes."""
        caps = dict(CAPABILITIES.get(self.provider, CAPABILITIES["claude"]))
        modes = [{"id": m, "label": label} for m, label in PROVIDER_INFO[self.provider][3]]
        if not self.live:
            caps["supportsStreaming"] = False
            modes = []
        return {
            "id": self.id,
            "provider": self.provider,
            "model": self.model,
            "runtimeModel": self.runtime_model(),
            "title": self.title,
            "cwd": self.cwd,
            "labels": dict(self.labels),
            "status": self.status,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "archivedAt": self.archived_at,
            "lastUsage": self.last_usage if self.live else None,
            "capabilities": caps,
            "availableModes": modes,
            "currentModeId": self.mode_id or PROVIDER_INFO[self.provider][2],
            "pendingPermissions": [dict(p) for p in self.pending],
            "thinkingOptionId": self.thinking,
            "lastError": self.last_error,
        }

    def wire_snapshot(self) -> dict[str, Any]:
        """AgentSnapshotPayload of the WebSocket protocol (paseo-daemon.md §3.13).

        Optional fields the real schema does not allow to be null (lastUsage, lastError) are
        left out instead; `runtimeModel` is a JSON-lines-only convenience of the fake CLI.
        """
        snap = self.snapshot()
        runtime_model = snap.pop("runtimeModel")
        snap["capabilities"].update(supportsReasoningStream=True, supportsToolInvocations=True)
        for key in ("lastUsage", "lastError"):
            if snap[key] is None:
                del snap[key]
        persistence = (
            {"provider": self.provider, "sessionId": self.session_id} if self.session_id else None
        )
        snap.update(
            lastUserMessageAt=self.last_user_message_at,
            persistence=persistence,
            runtimeInfo={
                "provider": self.provider,
                "sessionId": self.session_id,
                "model": runtime_model,
                "modeId": snap["currentModeId"],
            },
            requiresAttention=self.attention_reason is not None,
            attentionReason=self.attention_reason,
            attentionTimestamp=self.attention_at,
        )
        if RELEASE.workspace_ids:
            snap["workspaceId"] = self.cwd  # the fake's workspace id is its directory
        if RELEASE.active_turn:
            turn = self.turn
            snap["activeTurn"] = (
                {"turnId": turn.id, "startedAt": turn.started_at} if turn is not None else None
            )
        return snap


class ManagerObserver(Protocol):
    """What the WebSocket side needs to hear about (the JSON-lines side uses `subscribers`)."""

    def agent_stream(self, agent: Agent, event: dict[str, Any], row: dict[str, Any] | None) -> None:
        """A delivered stream event; `row` is the canonical timeline row of a timeline event."""

    def agent_changed(self, agent: Agent) -> None:
        """Status, snapshot or placement changed (agent_update upsert)."""

    def agent_removed(self, agent: Agent) -> None:
        """The agent was deleted (agent_update remove)."""

    def attention(self, agent: Agent, reason: str) -> None:
        """The attention flag was just raised (attention_required)."""


class Manager:
    """Owns agents, workspaces, persistence, turns and event fan-out."""

    def __init__(self, home: Path, scale: float, dev: bool, log: Callable[[str], None]) -> None:
        self.home = home
        self.scale = scale
        self.dev = dev
        self.log = log
        self.agents: dict[str, Agent] = {}
        self.workspaces: set[str] = set()
        self.subscribers: dict[str, set[Connection]] = {}
        self.observers: list[ManagerObserver] = []
        self.started = time.monotonic()
        self.store = home / "agents"
        self.store.mkdir(parents=True, exist_ok=True)
        self.config = load_config(home)
        emit_log = os.environ.get(EMIT_LOG_ENV)
        # Line-buffered: a benchmark reads each line while the turn goes on.
        self.emit_log: TextIO | None = (
            open(emit_log, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
            if emit_log
            else None
        )

    # -- persistence ----------------------------------------------------------------------

    def load(self) -> None:
        """Reload stored agents; after a restart none is live, so all show `closed`."""
        try:
            self.workspaces = set(json.loads((self.home / "workspaces.json").read_text()))
        except (OSError, ValueError):
            self.workspaces = set()
        for path in sorted(self.store.glob("*.json")):
            try:
                rec = json.loads(path.read_text(encoding="utf-8"))
                agent = Agent(
                    id=rec["id"],
                    provider=rec["provider"],
                    model=rec.get("model"),
                    title=rec.get("title"),
                    cwd=rec["cwd"],
                    labels=rec.get("labels") or {},
                    mode_id=rec.get("modeId"),
                    thinking=rec.get("thinkingOptionId"),
                    created_at=rec["createdAt"],
                    updated_at=rec["updatedAt"],
                    archived_at=rec.get("archivedAt"),
                    status="closed",
                    last_error=rec.get("lastError"),
                    session_id=rec.get("sessionId"),
                    live=False,
                    timeline=rec.get("timeline") or [],
                    last_user_message_at=rec.get("lastUserMessageAt"),
                    attention_reason=rec.get("attentionReason"),
                    attention_at=rec.get("attentionTimestamp"),
                )
            except (OSError, ValueError, KeyError):
                continue
            self.attach_coalescer(agent)
            self.agents[agent.id] = agent
        self.log(f"Loaded {len(self.agents)} stored agents")

    def save(self, agent: Agent) -> None:
        """Persist one agent now."""
        if agent.deleted:
            return
        agent.dirty = False
        write_json_atomic(self.store / f"{agent.id}.json", agent.record())

    def save_dirty(self) -> None:
        """Flush agents changed by streaming (called periodically and at shutdown)."""
        for agent in list(self.agents.values()):
            if agent.dirty:
                self.save(agent)

    def register_workspace(self, cwd: str) -> None:
        """`run` registers its cwd; `ls` only shows agents living in a registered workspace."""
        if cwd not in self.workspaces:
            self.workspaces.add(cwd)
            write_json_atomic(self.home / "workspaces.json", sorted(self.workspaces))

    # -- lookup ---------------------------------------------------------------------------

    def resolve(self, ident: str) -> Agent:
        """Server-side resolution: exact id, unique case-sensitive prefix, exact title."""
        if ident in self.agents:
            return self.agents[ident]
        prefixed = [a for a in self.agents.values() if ident and a.id.startswith(ident)]
        if len(prefixed) == 1:
            return prefixed[0]
        if len(prefixed) > 1:
            raise OpError(ambiguous(ident, prefixed))
        titled = [a for a in self.agents.values() if a.title is not None and a.title == ident]
        if len(titled) == 1:
            return titled[0]
        if len(titled) > 1:
            raise OpError(ambiguous(ident, titled))
        raise OpError(f"Agent not found: {ident}")

    def visible(self, include_archived: bool) -> list[Agent]:
        """Agents fetch_agents returns: registered workspace, archived only when asked."""
        return [
            a
            for a in self.agents.values()
            if a.cwd in self.workspaces and (include_archived or not a.archived_at)
        ]

    # -- providers ------------------------------------------------------------------------

    def provider_enabled(self, provider: str) -> bool:
        """config.json agents.providers.<id>.enabled (default true)."""
        agents = self.config.get("agents")
        providers = agents.get("providers") if isinstance(agents, dict) else None
        entry = providers.get(provider) if isinstance(providers, dict) else None
        return not (isinstance(entry, dict) and entry.get("enabled") is False)

    def provider_ids(self) -> list[str]:
        """Configured providers; mock only in development."""
        return [p[0] for p in PROVIDERS if p[0] != "mock" or self.dev]

    def check_provider(self, provider: str) -> None:
        """Errors the real daemon gives when creating an agent."""
        ids = self.provider_ids()
        if provider not in ids:
            raise OpError(f"Unknown provider '{provider}'. Configured providers: {', '.join(ids)}.")
        if not self.provider_enabled(provider):
            raise OpError(f"Provider '{provider}' is disabled")
        if provider not in ("claude", "mock"):
            available = [p for p in ("claude", "mock") if p in ids and self.provider_enabled(p)]
            raise OpError(
                f"Provider '{provider}' is not available. "
                f"Available providers: {', '.join(available)}"
            )

    def providers_snapshot(self) -> list[dict[str, Any]]:
        """Provider entries; everything is `loading` for the first seconds after start."""
        loading = time.monotonic() - self.started < PROVIDER_LOADING_S * self.scale
        entries = []
        for pid in self.provider_ids():
            _, label, default_mode, modes = PROVIDER_INFO[pid]
            ready = pid in ("claude", "mock") and self.provider_enabled(pid)
            status = "loading" if loading else ("ready" if ready else "unavailable")
            entries.append(
                {
                    "provider": pid,
                    "label": label,
                    "status": status,
                    "enabled": self.provider_enabled(pid),
                    "defaultModeId": default_mode or "default",
                    "modes": [{"id": m, "label": lbl} for m, lbl in modes]
                    if status == "ready"
                    else [],
                }
            )
        return entries

    def provider_models(self, provider: str) -> list[dict[str, Any]]:
        """Model catalogue of one provider."""
        if provider == "mock" and self.dev:
            return [
                {
                    "id": m,
                    "label": label,
                    "description": desc,
                    "thinkingOptions": [],
                    "defaultThinkingOptionId": None,
                }
                for m, label, desc, _d, _i in MOCK_MODELS
            ]
        if provider == "claude":
            return [
                {
                    "id": m,
                    "label": label,
                    "description": desc,
                    "thinkingOptions": [],
                    "defaultThinkingOptionId": None,
                }
                for m, label, desc in CLAUDE_MODELS
            ]
        if provider in self.provider_ids():
            raise OpError(f"Provider '{provider}' is not available")
        raise OpError(f"Unknown provider '{provider}'")

    # -- agent lifecycle ------------------------------------------------------------------

    def attach_coalescer(self, agent: Agent) -> None:
        """Each agent gets its own coalescing buffer."""
        agent.coalescer = Coalescer(
            COALESCE_WINDOW_S * self.scale,
            lambda item, turn_id: self.deliver(agent, timeline_event(item, turn_id)),
        )

    def new_agent(
        self,
        provider: str,
        model: str | None,
        title: str | None,
        cwd: str,
        labels: dict[str, str],
        mode_id: str | None,
        thinking: str | None,
    ) -> Agent:
        """Create, store and return an idle agent."""
        now = iso_now()
        agent = Agent(
            id=str(uuid.uuid4()),
            provider=provider,
            model=model,
            title=title,
            cwd=cwd,
            labels=dict(labels),
            mode_id=mode_id,
            thinking=thinking,
            created_at=now,
            updated_at=now,
            epoch=str(uuid.uuid4()),
        )
        self.attach_coalescer(agent)
        self.agents[agent.id] = agent
        self.save(agent)
        return agent

    def make_live(self, agent: Agent) -> None:
        """Load a closed agent into memory: a new epoch, rows rebuilt from its stored history.

        The real daemon rebuilds a reloaded timeline from the provider's own session files
        (mock agents come back empty); the fake replays its persisted projected timeline so
        `paseo logs` and fetch_agent_timeline_request agree after a restart.
        """
        if agent.live:
            return
        agent.live = True
        agent.epoch = str(uuid.uuid4())
        now = iso_now()
        agent.rows = [
            {"seq": index + 1, "item": dict(item), "timestamp": now}
            for index, item in enumerate(agent.timeline)
        ]
        if agent.status == "closed":
            agent.status = "idle"

    def create(self, req: dict[str, Any]) -> dict[str, Any]:
        """create_agent: the snapshot taken at creation, before the first turn starts."""
        agent = self.create_idle(req)
        snapshot = agent.snapshot()
        self.start_initial_turn(agent, req)
        return snapshot

    def start_initial_turn(self, agent: Agent, req: dict[str, Any]) -> None:
        """The initialPrompt (trimmed) starts the first turn; clientMessageId is its messageId;
        `images` and `attachments` go with it."""
        prompt = js_trim(str(req.get("initialPrompt") or ""))
        if prompt:
            media = {"images": req.get("images"), "attachments": req.get("attachments")}
            self.start_turn(agent, prompt, req.get("clientMessageId") or None, media)

    def create_idle(self, req: dict[str, Any]) -> Agent:
        """Validate the provider, create the agent, register its workspace (no turn yet)."""
        provider = str(req.get("provider") or "")
        self.check_provider(provider)
        cwd = git_root(os.path.abspath(str(req.get("cwd") or os.getcwd())))
        prompt = js_trim(str(req.get("initialPrompt") or ""))  # recorded (and run) trimmed
        title = req.get("title") or (prompt or None)
        agent = self.new_agent(
            provider,
            req.get("model") or None,
            title,
            cwd,
            req.get("labels") or {},
            req.get("modeId") or None,
            req.get("thinkingOptionId") or None,
        )
        self.register_workspace(cwd)
        self.log(f"Created agent {agent.id} ({provider})")
        self.notify(agent)
        return agent

    def import_agent(self, req: dict[str, Any]) -> dict[str, Any]:
        """import_agent: only claude 'works' here (any session id is accepted)."""
        provider = str(req.get("provider") or "")
        if provider in IMPORT_FAILURES:
            raise OpError(IMPORT_FAILURES[provider])
        if provider != "claude":
            raise OpError(f"No client registered for provider '{provider}'")
        if not self.provider_enabled(provider):
            raise OpError(f"Provider '{provider}' is disabled")
        session_id = str(req.get("sessionId") or "")
        labels = req.get("labels") or {}
        for agent in self.agents.values():
            if agent.provider == provider and agent.session_id == session_id:
                agent.archived_at = None
                agent.labels.update(labels)
                self.make_live(agent)
                self.save(agent)
                self.notify(agent)
                return agent.snapshot()
        cwd = os.path.abspath(str(req.get("cwd") or os.getcwd()))
        agent = self.new_agent(provider, None, None, cwd, labels, None, None)
        agent.session_id = session_id
        self.save(agent)
        self.notify(agent)
        return agent.snapshot()

    def update(self, agent: Agent, name: str | None, labels: dict[str, str]) -> None:
        """Rename and merge labels (keys are never removed)."""
        if name:
            agent.title = name
        agent.labels.update(labels)
        agent.updated_at = iso_now()
        self.save(agent)
        self.notify(agent)

    def set_mode(self, agent: Agent, mode_id: str) -> None:
        """Switch the agent's mode; the mock takes any id, even while a turn runs (recorded
        from the real daemon)."""
        agent.mode_id = mode_id
        agent.updated_at = iso_now()
        self.save(agent)
        self.notify(agent)

    def start_turn(
        self,
        agent: Agent,
        prompt: str,
        message_id: str | None = None,
        media: dict[str, Any] | None = None,
    ) -> None:
        """Begin a turn; a running one is interrupted first (send replaces the turn).

        `media` (`images`, `attachments`) reaches the provider with the prompt and is not in
        the user_message item (the real one has only text and ids): the fake records it in
        $PASEO_HOME/received-media.jsonl (`received_media`) for tests to read.

        `prompt` is recorded as the daemon does: create's initialPrompt trimmed like JS trim(),
        send's text exactly as sent; the mock's magic phrases are searched in it.
        `message_id` (the client's messageId / clientMessageId) becomes the user_message's
        messageId; a UUID otherwise. 0.1.65 streams the user_message before `turn_started`;
        later daemons publish `turn_started` first (`RELEASE.turn_started_first`).
        """
        if agent.turn is not None:
            self.interrupt(agent, attention=False)
        self.make_live(agent)
        agent.archived_at = None
        agent.status = "running"
        now = iso_now()
        agent.updated_at = agent.last_user_message_at = now
        turn = Turn(
            id=str(uuid.uuid4()), prompt=prompt, message_id=str(uuid.uuid4()), started_at=now
        )
        agent.turn = turn
        self.record_media(agent, prompt, message_id, media or {})
        started = {"type": "turn_started", "turnId": turn.id}
        if RELEASE.turn_started_first:
            self.emit(agent, started)
        self.emit(agent, {"type": "timeline", "item": user_message_item(prompt, message_id)})
        if not RELEASE.turn_started_first:
            self.emit(agent, started)
        turn.task = asyncio.get_running_loop().create_task(self.drive(agent, turn))
        self.save(agent)
        self.notify(agent)

    def record_media(
        self, agent: Agent, prompt: str, message_id: str | None, media: dict[str, Any]
    ) -> None:
        """Append what a prompt carried besides its text (nothing when it carried none)."""
        images, attachments = media.get("images") or [], media.get("attachments") or []
        if not images and not attachments:
            return
        line = {
            "agentId": agent.id,
            "messageId": message_id,
            "text": prompt,
            "images": images,
            "attachments": attachments,
        }
        with (self.home / RECEIVED_MEDIA).open("a", encoding="utf-8") as file:
            file.write(json.dumps(line) + "\n")

    def steer_turn(self, agent: Agent, text: str, message_id: str | None) -> bool:
        """Hand `text` to the running turn (activeTurnBehavior "steer"); False when none runs.

        The mock accepts every steer aimed at its current turn (steerActiveTurn) and the turn
        goes on unchanged. As recordAcceptedSteer does, the text is recorded (a user_message
        of the running turn) only when the client gave a messageId.
        """
        turn = agent.turn
        if turn is None:
            return False
        if message_id:
            agent.updated_at = agent.last_user_message_at = iso_now()
            item = user_message_item(text, message_id)
            self.emit(agent, {"type": "timeline", "item": item, "turnId": turn.id})
            self.save(agent)
            self.notify(agent)
        return True

    async def drive(self, agent: Agent, turn: Turn) -> None:
        """Run the provider side of one turn."""
        try:
            if agent.provider == "claude":
                await asyncio.sleep(CLAUDE_FAILURE_DELAY_S * self.scale)
                self.fail_turn(agent, turn, CLAUDE_FAILURE)
            else:
                await self.drive_mock(agent, turn)
        except asyncio.CancelledError:
            pass

    async def drive_mock(self, agent: Agent, turn: Turn) -> None:
        """Magic prompts finish at once; anything else streams the canned cycle."""
        await asyncio.sleep(0)
        if PLAN_RE.search(turn.prompt):
            self.request_plan_approval(agent, turn)
        elif match := PAYLOAD_RE.search(turn.prompt):
            self.emit_payload(
                agent, turn, min(int(match.group(1)), 1_000_000), match.group(2).lower()
            )
        elif (match := STRESS_RE.search(turn.prompt)) and int(match.group(1)) > 0:
            self.emit_stress(agent, turn, min(int(match.group(1)), 5000), bool(match.group(2)))
        else:
            await self.stream_cycles(agent, turn)

    async def stream_cycles(self, agent: Agent, turn: Turn) -> None:
        """One event per tick on a virtual clock, so content does not depend on load.

        A held turn (HOLD_RE) has no duration: it ends once its release file exists. Past
        the model's (scaled) duration it goes on at the model's own, unscaled pace, so that
        a turn held long on a slow machine does not flood it.
        """
        duration_ms, interval_ms = mock_profile(agent.runtime_model())
        tick = (interval_ms + TIMER_OVERHEAD_MS) / 1000 * self.scale
        duration = duration_ms / 1000 * self.scale
        held = HOLD_RE.search(turn.prompt)
        release = Path(held.group(1)) if held else None
        released = False
        # A held turn's events from the model's end on: the first of them, and their tick.
        past_end = next((i for i in range(int(duration / tick) + 2) if i * tick >= duration), 0)
        slow_tick = max(tick, (interval_ms + TIMER_OVERHEAD_MS) / 1000)

        def due(index: int) -> float:
            """When (virtual time) event `index` comes."""
            if release is None or index <= past_end:
                return index * tick
            return past_end * tick + (index - past_end) * slow_tick

        loop = asyncio.get_running_loop()
        start = next_check = loop.time()
        queue: deque[tuple[str, Any]] = deque()
        index = 0
        while True:
            now = loop.time()
            elapsed = now - start
            if release is not None and now >= next_check:
                released = release.exists()
                next_check = now + HOLD_CHECK_S
            while due(index) <= elapsed:
                if released or (release is None and index * tick >= duration):
                    self.emit_text(agent, turn, END_MARKER)
                    self.complete_turn(agent, turn, make_usage(turn.cycle * 32, turn.emitted))
                    return
                if not queue:
                    turn.cycle += 1
                    queue.extend(cycle_events(turn.id, turn.cycle))
                self.dispatch_cycle_event(agent, turn, queue.popleft())
                index += 1
            await asyncio.sleep(max(start + due(index) - loop.time(), 0))

    def dispatch_cycle_event(self, agent: Agent, turn: Turn, event: tuple[str, Any]) -> None:
        """Emit one queued cycle event."""
        kind, value = event
        if kind == "assistant":
            turn.emitted += 1
            self.emit_text(agent, turn, value)
        elif kind == "reasoning":
            turn.emitted += 1
            self.emit(agent, {"type": "timeline", "item": {"type": "reasoning", "text": value}})
        elif kind == "tool":
            self.emit(agent, {"type": "timeline", "item": value})
        else:
            usage = make_usage(turn.cycle * 32, turn.emitted)
            self.emit(agent, {"type": "usage_updated", "usage": usage})

    def emit_text(self, agent: Agent, turn: Turn, text: str) -> None:
        """An assistant chunk of the turn's single message."""
        item = {"type": "assistant_message", "text": text, "messageId": turn.message_id}
        self.emit(agent, {"type": "timeline", "item": item})

    def emit_stress(self, agent: Agent, turn: Turn, count: int, coalesced: bool) -> None:
        """`emit N [coalesced] agent stream updates`: N chunks or N todo items, then done."""
        for i in range(count):
            if coalesced:
                self.emit_text(agent, turn, f"stress-update-{i}")
            else:
                item = {
                    "type": "todo",
                    "items": [{"text": f"stress-update-{i}", "completed": i % 2 == 0}],
                }
                self.emit(agent, {"type": "timeline", "item": item})
        self.complete_turn(agent, turn, make_usage(1, count))

    def emit_payload(self, agent: Agent, turn: Turn, size: int, kind: str) -> None:
        """`emit N byte diff|file|image agent stream payload`: one large item."""
        line = f"{kind} {'x' * 96}\n"
        payload = (line * (size // len(line) + 1))[:size]
        if kind == "diff":
            detail = {
                "type": "edit",
                "filePath": "src/large-diff.ts",
                "unifiedDiff": f"diff --git a/src/large-diff.ts b/src/large-diff.ts\n{payload}",
            }
            self.emit(
                agent,
                {
                    "type": "timeline",
                    "item": tool_item(f"{turn.id}:edit:large", "edit", "completed", detail),
                },
            )
        elif kind == "file":
            detail = {"type": "read", "filePath": "src/large-file.txt", "content": payload}
            self.emit(
                agent,
                {
                    "type": "timeline",
                    "item": tool_item(f"{turn.id}:read:large", "read", "completed", detail),
                },
            )
        else:
            raw = base64.b64decode(ONE_PIXEL_PNG)
            data = base64.b64encode(raw + b"\0" * max(0, size - len(raw))).decode()
            self.emit_text(agent, turn, f"![Synthetic image](data:image/png;base64,{data})")
        self.complete_turn(agent, turn, make_usage(1, size))

    def request_plan_approval(self, agent: Agent, turn: Turn) -> None:
        """A pending `plan` permission; the turn stays running until someone answers."""
        request = {
            "id": f"mock-plan-{turn.id}",
            "provider": "mock",
            "name": "MockPlanApproval",
            "kind": "plan",
            "title": "Plan",
            "description": "Review the proposed plan before implementation starts.",
            "input": {
                "plan": "1. Add the README note.\n2. Keep the change scoped.\n3. Verify the diff."
            },
            "actions": [
                {
                    "id": "implement",
                    "label": "Implement",
                    "behavior": "allow",
                    "variant": "primary",
                    "intent": "implement",
                },
                {
                    "id": "dismiss",
                    "label": "Dismiss",
                    "behavior": "deny",
                    "variant": "secondary",
                    "intent": "dismiss",
                },
            ],
            "metadata": {"source": "mock_plan_approval"},
        }
        agent.pending.append(request)
        self.emit(agent, {"type": "permission_requested", "request": request, "turnId": turn.id})
        if len(agent.pending) == 1:
            self.raise_attention(agent, "permission")
        self.notify(agent)
        self.save(agent)

    def respond_permission(self, agent: Agent, request_id: str, response: dict[str, Any]) -> None:
        """Resolve a pending request; the mock then completes the turn, allowed or denied.

        As the real daemon streams it: `turn_completed` first, `permission_resolved` after it.
        """
        request = next((p for p in agent.pending if p["id"] == request_id), None)
        if request is None:
            raise OpError(f"Permission request not found: {request_id}")
        agent.pending.remove(request)
        if agent.turn is not None:
            self.complete_turn(
                agent, agent.turn, make_usage(agent.turn.cycle * 32, agent.turn.emitted)
            )
        self.emit(
            agent, {"type": "permission_resolved", "requestId": request_id, "resolution": response}
        )

    def complete_turn(self, agent: Agent, turn: Turn, usage: dict[str, Any]) -> None:
        """turn_completed: idle, usage recorded, waiters woken."""
        if agent.turn is not turn:
            return
        self.emit(agent, {"type": "turn_completed", "turnId": turn.id, "usage": usage})
        agent.last_usage = usage
        self.end_turn(agent, "idle")

    def fail_turn(self, agent: Agent, turn: Turn, error: str) -> None:
        """turn_failed: the agent goes to `error` with the provider's message."""
        if agent.turn is not turn:
            return
        self.emit_text(agent, turn, f"[System Error] {error}")
        self.emit(agent, {"type": "turn_failed", "turnId": turn.id, "error": error})
        agent.last_error = error
        self.end_turn(agent, "error")

    @staticmethod
    def stop_task(turn: Turn) -> None:
        """Stop the provider side of a turn (unless we are running inside it)."""
        if turn.task is not None and turn.task is not asyncio.current_task():
            turn.task.cancel()

    def interrupt(self, agent: Agent, *, attention: bool = True) -> bool:
        """Cancel the running turn (turn_canceled); False when nothing was running.

        Pending permissions are resolved as deny/"Interrupted" first. `attention=False` when the
        turn is replaced by a new one or the agent is being archived (no `finished` flag).
        """
        turn = agent.turn
        if turn is None:
            return False
        self.stop_task(turn)
        pending, agent.pending = agent.pending, []
        for request in pending:
            resolution = {"behavior": "deny", "message": "Interrupted"}
            self.emit(
                agent,
                {
                    "type": "permission_resolved",
                    "requestId": request["id"],
                    "resolution": resolution,
                },
            )
        self.emit(agent, {"type": "turn_canceled", "turnId": turn.id, "reason": "Interrupted"})
        self.end_turn(agent, "idle", attention=attention)
        return True

    def end_turn(self, agent: Agent, status: str, *, attention: bool = True) -> None:
        """Common bookkeeping when a turn ends (running -> idle|error raises attention)."""
        agent.turn = None
        agent.pending.clear()
        agent.status = status
        agent.updated_at = iso_now()
        if status != "error":
            agent.last_error = None
        if attention:
            self.raise_attention(agent, "error" if status == "error" else "finished")
        self.notify(agent)
        self.save(agent)

    def raise_attention(self, agent: Agent, reason: str) -> None:
        """Edge-triggered attention flag: skipped while it is already set."""
        if agent.attention_reason is not None:
            return
        agent.attention_reason = reason
        agent.attention_at = iso_now()
        for observer in self.observers:
            observer.attention(agent, reason)

    def clear_attention(self, agent: Agent) -> None:
        """clear_agent_attention (and archive)."""
        if agent.attention_reason is None:
            return
        agent.attention_reason = agent.attention_at = None
        self.save(agent)
        self.notify(agent)

    def archive(self, agent: Agent) -> str:
        """Soft delete: interrupt, close the session, stamp archivedAt (kept if already set)."""
        if agent.archived_at and not agent.live:
            return agent.archived_at
        self.interrupt(agent, attention=False)
        now = iso_now()
        agent.archived_at = now
        agent.updated_at = now
        agent.status = "closed"
        agent.live = False
        agent.attention_reason = agent.attention_at = None
        self.notify(agent)
        self.save(agent)
        return now

    def delete(self, agent: Agent) -> None:
        """Hard delete: stop the turn without streaming a turn event, forget, remove the file."""
        if agent.turn is not None:
            self.stop_task(agent.turn)
        assert agent.coalescer is not None
        agent.coalescer.discard()
        agent.turn = None
        agent.pending.clear()
        agent.deleted = True
        self.agents.pop(agent.id, None)
        with contextlib.suppress(OSError):
            (self.store / f"{agent.id}.json").unlink()
        self.notify(agent)
        for observer in self.observers:
            observer.agent_removed(agent)

    # -- events and waiting ---------------------------------------------------------------

    def emit(self, agent: Agent, event: dict[str, Any]) -> None:
        """Provider event in: coalescable timeline items are buffered, the rest flush first.

        A timeline item emitted while a turn runs belongs to that turn (its `turnId`).
        """
        assert agent.coalescer is not None
        item = event.get("item") if event["type"] == "timeline" else None
        if item is not None and agent.turn is not None:
            event.setdefault("turnId", agent.turn.id)
        if item is not None and item["type"] in ("assistant_message", "reasoning", "tool_call"):
            agent.coalescer.add(item, event.get("turnId"))
            return
        agent.coalescer.flush()
        self.deliver(agent, event)

    def deliver(self, agent: Agent, event: dict[str, Any]) -> None:
        """Store timeline items, push the event to subscribed CLI connections and observers."""
        row: dict[str, Any] | None = None
        if event["type"] == "timeline":
            append_projected(agent.timeline, event["item"])
            agent.dirty = True
            seq = agent.rows[-1]["seq"] + 1 if agent.rows else 1
            row = {"seq": seq, "item": dict(event["item"]), "timestamp": iso_now()}
            agent.rows.append(row)
        message = {
            "type": "agent_stream",
            "agentId": agent.id,
            "event": event,
            "timestamp": iso_now(),
        }
        emitted_at = time.clock_gettime(time.CLOCK_MONOTONIC)
        for conn in list(self.subscribers.get(agent.id, ())):
            conn.send(message)
        for observer in self.observers:
            observer.agent_stream(agent, event, row)
        if self.emit_log is not None and row is not None:
            self.log_emitted(agent, event, emitted_at)

    def log_emitted(self, agent: Agent, event: dict[str, Any], at: float) -> None:
        """FAKE_PASEO_EMIT_LOG: when an assistant text chunk went out (benchmarks only)."""
        item = event["item"]
        if self.emit_log is None or item.get("type") != "assistant_message":
            return
        line = {"at": at, "agent": agent.id, "turn": event.get("turnId"), "text": item["text"]}
        self.emit_log.write(json.dumps(line) + "\n")

    def notify(self, agent: Agent) -> None:
        """The agent changed: wake wait_for_finish callers, tell observers (agent_update)."""
        waiters, agent.waiters = agent.waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
        if not agent.deleted:
            for observer in self.observers:
                observer.agent_changed(agent)

    def finish_state(self, agent: Agent) -> dict[str, Any] | None:
        """wait_for_finish outcome, or None while the agent is still busy."""
        if agent.deleted:
            return {
                "status": "error",
                "final": None,
                "error": f"Agent not found: {agent.id}",
                "lastMessage": None,
            }
        if agent.pending:
            status, error = "permission", None
        elif agent.status in ("running", "initializing"):
            return None
        elif agent.status == "error":
            status, error = "error", agent.last_error or "Agent finished with error"
        else:
            status, error = "idle", None
        return {
            "status": status,
            "final": agent.snapshot(),
            "error": error,
            "lastMessage": last_message(agent.timeline) if agent.live else None,
        }

    async def wait_for_finish(self, agent: Agent, timeout_ms: int) -> dict[str, Any]:
        """Block until the agent is idle/errored/asking permission, or the timeout passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000 if timeout_ms > 0 else None
        while True:
            state = self.finish_state(agent)
            if state is not None:
                return state
            fut: asyncio.Future[None] = loop.create_future()
            agent.waiters.append(fut)
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                break
        return {"status": "timeout", "final": agent.snapshot(), "error": None, "lastMessage": None}


def timeline_event(item: dict[str, Any], turn_id: str | None) -> dict[str, Any]:
    """A timeline stream event, with the turn it belongs to when there is one."""
    event: dict[str, Any] = {"type": "timeline", "item": item}
    if turn_id is not None:
        event["turnId"] = turn_id
    return event


def user_message_item(text: str, message_id: str | None) -> dict[str, Any]:
    """A submitted prompt as a timeline item; the client's id also as `clientMessageId`."""
    item = {"type": "user_message", "text": text, "messageId": message_id or str(uuid.uuid4())}
    if RELEASE.client_message_ids and message_id:
        item["clientMessageId"] = message_id
    return item


def last_message(timeline: list[dict[str, Any]]) -> str | None:
    """wait_for_finish.lastMessage: the last contiguous run of assistant_message items.

    Like getLastAssistantMessageSegmentFromTimeline: trailing tool calls, todos and even user
    messages are skipped, so a turn without text reports an earlier turn's text.
    """
    end = len(timeline)
    while end > 0 and timeline[end - 1]["type"] != "assistant_message":
        end -= 1
    start = end
    while start > 0 and timeline[start - 1]["type"] == "assistant_message":
        start -= 1
    return "".join(str(item["text"]) for item in timeline[start:end]) or None


def ambiguous(ident: str, agents: list[Agent]) -> str:
    """Error text for an identifier matching several agents."""
    ids = ", ".join(sorted(a.id[:7] for a in agents))
    return f'Agent identifier "{ident}" is ambiguous ({len(agents)} matches: {ids})'


def git_root(path: str) -> str:
    """The daemon moves an agent to its git worktree root (`--cwd repo/sub` -> `repo`)."""
    current = Path(path)
    for candidate in (current, *current.parents):
        if (candidate / ".git").exists():
            return str(candidate)
    return path


# ---------------------------------------------------------------------------------------------
# Wire


class Connection:
    """One CLI connection: JSON lines out, subscriptions tracked for cleanup."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.subscriptions: set[str] = set()

    def send(self, message: dict[str, Any]) -> None:
        """Queue one line; silently dropped once the peer is gone."""
        if not self.writer.is_closing():
            self.writer.write(json.dumps(message).encode() + b"\n")


class Daemon:
    """Listener, handshake and request dispatch."""

    def __init__(self, home: Path, listen: str, log: Callable[[str], None]) -> None:
        env = os.environ
        self.home = home
        self.listen = listen
        self.log = log
        scale = float(env.get("FAKE_PASEO_TIME_SCALE") or "1")
        self.manager = Manager(home, scale, env.get("PASEO_NODE_ENV") == "development", log)
        config = self.manager.config
        auth = (
            (config.get("daemon") or {}).get("auth")
            if isinstance(config.get("daemon"), dict)
            else None
        )
        self.password = env.get("PASEO_PASSWORD") or (auth or {}).get("password") or None
        hostnames = f"{env.get('PASEO_HOSTNAMES') or ''},{env.get('PASEO_ALLOWED_HOSTS') or ''}"
        self.hostnames = [h.strip() for h in hostnames.split(",") if h.strip()]
        self.cors_origins = [
            o.strip() for o in (env.get("PASEO_CORS_ORIGINS") or "").split(",") if o.strip()
        ]
        self.server_id = load_server_id(home)
        self.stopping = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.listen_text = listen
        self.hub = WsHub(self, op_error=OpError, git_root=git_root, default_model=default_model)

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT or a shutdown request; returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self.manager.load()
        server, listen_text = await self.bind()
        self.listen_text = listen_text
        self.hub.start(PROVIDER_LOADING_S * self.manager.scale)
        write_json_atomic(
            self.home / PID_FILENAME,
            {
                "pid": os.getpid(),
                "startedAt": iso_now(),
                "hostname": socket.gethostname(),
                "uid": os.getuid(),
                "listen": listen_text,
            },
        )
        self.log(f"Server listening on {describe_listen(listen_text)}")
        self.log("WebSocket server initialized on /ws")
        saver = loop.create_task(self.save_periodically())
        await self.stopping.wait()
        self.log("Shutting down")
        server.close()
        saver.cancel()
        for ws_session in self.hub.sessions.values():
            for ws in list(ws_session.sockets):
                ws.abort()
        for agent in self.manager.agents.values():
            if agent.turn is not None and agent.turn.task is not None:
                agent.turn.task.cancel()
        self.manager.save_dirty()
        for task in list(self.tasks):
            task.cancel()
        pid_info = read_pid_file(self.home)
        if pid_info and pid_info.get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                (self.home / PID_FILENAME).unlink()
        kind, where = parse_listen(listen_text)
        if kind == "unix":
            with contextlib.suppress(OSError):
                os.unlink(str(where))
        self.log("Server closed")
        return 0

    async def bind(self) -> tuple[asyncio.AbstractServer, str]:
        """Start the TCP or unix listener; port 0 becomes the real port in the pid file."""
        kind, where = parse_listen(self.listen)
        if kind == "unix":
            path = str(where)
            with contextlib.suppress(OSError):
                os.unlink(path)
            server = await asyncio.start_unix_server(self.handle, path=path, limit=READ_LIMIT)
            return server, path
        host, port = where  # type: ignore[misc]
        server = await asyncio.start_server(
            self.handle, host, port, limit=READ_LIMIT, reuse_address=True
        )
        real_port = server.sockets[0].getsockname()[1]
        return server, f"{host}:{real_port}"

    async def save_periodically(self) -> None:
        """Streaming marks agents dirty; write them out twice a second."""
        while True:
            await asyncio.sleep(SAVE_INTERVAL_S)
            self.manager.save_dirty()

    def hello_rejection(self, hello: dict[str, Any]) -> int | None:
        """HTTP-ish status for a refused handshake (401 password, 403 host), else None."""
        if self.password and hello.get("password") != self.password:
            return 401
        host = str(hello.get("hostHeader") or "localhost").rsplit(":", 1)[0].strip("[]")
        if not host_allowed(host, self.hostnames):
            return 403
        return None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: an HTTP request line means HTTP/WebSocket, anything else JSON lines."""
        try:
            first = await reader.readline()
        except (ConnectionError, ValueError, asyncio.LimitOverrunError):
            writer.close()
            return
        if is_http_request_line(first):
            await self.handle_http(first, reader, writer)
        else:
            await self.handle_lines(first, reader, writer)

    async def handle_http(
        self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """One HTTP request: /ws upgrades, /api/health, /api/status, else 404."""
        try:
            request = await read_http_request(first, reader)
            response = self.http_route(request)
            if response is None:
                await self.upgrade(request, reader, writer)
                return
            writer.write(response)
            await writer.drain()
        except (ConnectionError, ValueError, asyncio.IncompleteReadError):
            with contextlib.suppress(ConnectionError):
                writer.write(http_response(400, "Bad Request"))
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def http_route(self, request: HttpRequest) -> bytes | None:
        """The response to a plain request, or None to go ahead with a WebSocket upgrade."""
        host = request.header("host")
        if host is not None and not host_allowed(host_name(host), self.hostnames):
            return http_response(403, "Host not allowed")
        if request.path == "/ws" and is_upgrade(request):
            problem = upgrade_problem(request)
            if problem is not None:
                return http_response(400, problem)
            origin = request.header("origin")
            if origin is not None and not self.origin_allowed(origin, host):
                return http_response(403, "Origin not allowed")
            return None
        if is_upgrade(request):
            return http_response(400, "Bad Request")  # ws only upgrades its own path
        if request.method == "GET" and request.path == "/api/health":
            return json_response(200, {"status": "ok", "timestamp": iso_now()})
        if request.method == "GET" and request.path == "/api/status":
            if self.password and request.header("authorization") != f"Bearer {self.password}":
                return json_response(401, {"error": "Unauthorized"})
            info = {
                "status": "server_info",
                "serverId": self.server_id,
                "hostname": socket.gethostname(),
                "version": RELEASE.version,
                "listen": self.listen_text,
            }
            return json_response(200, info)
        body = f"<pre>Cannot {request.method} {request.path}</pre>"
        return http_response(404, body, "text/html; charset=utf-8")

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        """Same-origin with Host, PASEO_CORS_ORIGINS, paseo://app or the daemon's own URLs."""
        if host is not None and origin in (f"http://{host}", f"https://{host}"):
            return True
        allowed = {"paseo://app", *self.cors_origins}
        kind, where = parse_listen(self.listen_text)
        if kind == "tcp":
            listen_host, port = where  # type: ignore[misc]
            allowed |= {f"http://{h}:{port}" for h in (listen_host, "localhost", "127.0.0.1")}
        return origin in allowed

    async def upgrade(
        self, request: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """101 Switching Protocols (echoing the bearer subprotocol), then the Paseo protocol.

        Without header auth (`current`) a `paseo.bearer.*` offer is ignored: neither echoed
        nor checked, as if the client had not sent it.
        """
        offered = offered_subprotocols(request)
        if not RELEASE.header_auth:
            offered = [p for p in offered if not p.startswith(BEARER_PREFIX)]
        bearer = next((p for p in offered if p.startswith(BEARER_PREFIX)), None)
        writer.write(handshake_response(request, bearer or (offered[0] if offered else None)))
        await self.hub.serve(WebSocket(reader, writer), bearer)

    async def handle_lines(
        self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """The fake CLI's JSON-lines connection: handshake, then concurrent requests."""
        conn = Connection(writer)
        try:
            hello = json.loads(first or b"{}")
            rejection = self.hello_rejection(hello)
            if rejection is not None:
                conn.send({"type": "rejected", "status": rejection})
                return
            conn.send(
                {
                    "type": "server_info",
                    "serverId": self.server_id,
                    "hostname": socket.gethostname(),
                    "version": RELEASE.version,
                }
            )
            while line := await reader.readline():
                task = asyncio.get_running_loop().create_task(self.dispatch(conn, json.loads(line)))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        except (
            ConnectionError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass
        finally:
            for agent_id in conn.subscriptions:
                self.manager.subscribers.get(agent_id, set()).discard(conn)
            with contextlib.suppress(Exception):
                writer.close()

    async def dispatch(self, conn: Connection, req: dict[str, Any]) -> None:
        """Run one request and answer it with the same rid."""
        rid = req.get("rid")
        handler = getattr(self, "op_" + str(req.get("op")), None)
        try:
            if handler is None:
                raise OpError(f"Unknown request: {req.get('op')}")
            result = handler(conn, req)
            if asyncio.iscoroutine(result):
                result = await result
            conn.send({"rid": rid, "ok": True, "result": result})
        except OpError as exc:
            conn.send({"rid": rid, "ok": False, "error": str(exc)})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in the fake must not kill the daemon
            self.log(f"ERROR {req.get('op')}: {exc!r}")
            conn.send({"rid": rid, "ok": False, "error": f"Internal error: {exc}"})

    # -- operations -----------------------------------------------------------------------

    def op_fetch_agents(self, _conn: Connection, req: dict[str, Any]) -> list[dict[str, Any]]:
        """fetch_agents: visible agents, daemon-side label/thinking filters."""
        flt = req.get("filter") or {}
        agents = self.manager.visible(bool(flt.get("includeArchived")))
        labels = flt.get("labels") or {}
        agents = [a for a in agents if all(a.labels.get(k) == v for k, v in labels.items())]
        if flt.get("thinkingOptionId"):
            agents = [a for a in agents if (a.thinking or "auto") == flt["thinkingOptionId"]]
        return [a.snapshot() for a in agents]

    def op_fetch_agent(self, _conn: Connection, req: dict[str, Any]) -> dict[str, Any]:
        """fetch_agent with server-side id resolution."""
        return self.manager.resolve(str(req.get("agentId") or "")).snapshot()

    def op_create_agent(self, _conn: Connection, req: dict[str, Any]) -> dict[str, Any]:
        """create_agent (+ initial prompt)."""
        return self.manager.create(req)

    def op_import_agent(self, _conn: Connection, req: dict[str, Any]) -> dict[str, Any]:
        """import_agent."""
        return self.manager.import_agent(req)

    def op_send_message(self, _conn: Connection, req: dict[str, Any]) -> dict[str, Any]:
        """send: unarchive/load, replace a running turn, reply once the new run started."""
        agent = self.manager.resolve(str(req.get("agentId") or ""))
        media = {"images": req.get("images")}
        self.manager.start_turn(agent, str(req.get("text") or ""), None, media)  # as sent
        return {"agentId": agent.id}

    async def op_wait_for_finish(self, _conn: Connection, req: dict[str, Any]) -> dict[str, Any]:
        """wait_for_finish; an unknown id is an `error` outcome, not a failure."""
        try:
            agent = self.manager.resolve(str(req.get("agentId") or ""))
        except OpError as exc:
            return {"status": "error", "final": None, "error": str(exc), "lastMessage": None}
        return await self.manager.wait_for_finish(agent, int(req.get("timeoutMs") or 0))

    def op_fetch_timeline(self, _conn: Connection, req: dict[str, Any]) -> dict[str, Any]:
        """Projected timeline of one agent."""
        agent = self.manager.resolve(str(req.get("agentId") or ""))
        return {"agentId": agent.id, "items": agent.timeline}

    def op_subscribe(self, conn: Connection, req: dict[str, Any]) -> dict[str, Any]:
        """Timeline snapshot plus live events from now on, atomically (attach, logs -f)."""
        agent = self.manager.resolve(str(req.get("agentId") or ""))
        self.manager.subscribers.setdefault(agent.id, set()).add(conn)
        conn.subscriptions.add(agent.id)
        return {"agentId": agent.id, "items": agent.timeline}

    def op_cancel_agent(self, _conn: Connection, req: dict[str, Any]) -> dict[str, Any]:
        """Interrupt the running turn, if any."""
        agent = self.manager.resolve(str(req.get("agentId") or ""))
        return {"agentId": agent.id, "interrupted": self.manager.interrupt(agent)}

    def op_archive_agent(self, _conn: Connection, req: dict[str, Any]) -> dict[str, Any]:
        """Soft delete."""
        agent = self.manager.resolve(str(req.get("agentId") or ""))
        return {"agentId": agent.id, "archivedAt": self.manager.archive(agent)}

    def op_delete_agent(self, _conn: Connection, req: dict[str, Any]) -> dict[str, Any]:
        """Hard delete."""
        agent = self.manager.resolve(str(req.get("agentId") or ""))
        self.manager.delete(agent)
        return {"agentId": agent.id}

    def op_update_agent(self, _conn: Connection, req: dict[str, Any]) -> dict[str, Any]:
        """Rename and merge labels."""
        agent = self.manager.resolve(str(req.get("agentId") or ""))
        self.manager.update(agent, req.get("name") or None, req.get("labels") or {})
        return agent.snapshot()

    def op_set_mode(self, _conn: Connection, req: dict[str, Any]) -> dict[str, Any]:
        """agent mode <id> <mode>."""
        agent = self.manager.resolve(str(req.get("agentId") or ""))
        self.manager.set_mode(agent, str(req.get("modeId") or ""))
        return {"agentId": agent.id, "modeId": agent.mode_id}

    def op_respond_permission(self, _conn: Connection, req: dict[str, Any]) -> dict[str, Any]:
        """Allow or deny one pending permission request."""
        agent = self.manager.resolve(str(req.get("agentId") or ""))
        self.manager.respond_permission(agent, str(req.get("requestId")), req.get("response") or {})
        return {"agentId": agent.id}

    def op_providers_snapshot(
        self, _conn: Connection, _req: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """get_providers_snapshot."""
        return self.manager.providers_snapshot()

    def op_provider_models(self, _conn: Connection, req: dict[str, Any]) -> list[dict[str, Any]]:
        """list_provider_models."""
        return self.manager.provider_models(str(req.get("provider") or ""))

    def op_status(self, _conn: Connection, _req: dict[str, Any]) -> dict[str, Any]:
        """What `daemon status` shows about the live daemon."""
        agents = list(self.manager.agents.values())
        return {
            "serverId": self.server_id,
            "hostname": socket.gethostname(),
            "version": RELEASE.version,
            "pid": os.getpid(),
            "runningAgents": sum(a.status == "running" for a in agents),
            "idleAgents": sum(a.status == "idle" for a in agents),
        }

    def op_shutdown(self, _conn: Connection, _req: dict[str, Any]) -> dict[str, Any]:
        """Graceful lifecycle shutdown (daemon stop)."""
        asyncio.get_running_loop().call_later(0.05, self.stopping.set)
        return {"ok": True}


def host_allowed(host: str, extra: list[str]) -> bool:
    """Host header rule: localhost, *.localhost, IP literals, or PASEO_HOSTNAMES entries."""
    if host in ("localhost", "") or host.endswith(".localhost") or "true" in extra:
        return True
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return True
    return any(host == h or (h.startswith(".") and host.endswith(h)) for h in extra)


def host_name(header: str) -> str:
    """The hostname part of a Host header (`[::1]:6767` -> `::1`)."""
    header = header.strip()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    name, sep, port = header.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else header


def json_response(status: int, body: dict[str, Any]) -> bytes:
    """An HTTP response with a JSON body."""
    return http_response(status, json.dumps(body), "application/json; charset=utf-8")


def describe_listen(listen: str) -> str:
    """Readiness log line target."""
    kind, where = parse_listen(listen)
    return f"unix:{where}" if kind == "unix" else f"http://{listen}"


def load_server_id(home: Path) -> str:
    """A stable server id per home (status shows it even when the daemon is down)."""
    path = home / "server-id"
    try:
        return path.read_text().strip()
    except OSError:
        server_id = "srv_" + secrets.token_urlsafe(9)[:12]
        with contextlib.suppress(OSError):
            path.write_text(server_id + "\n")
        return server_id


def open_log(home: Path, foreground: bool) -> tuple[TextIO, Callable[[str], None]]:
    """Daemon log: $PASEO_HOME/daemon.log when detached, stdout in the foreground."""
    stream: TextIO = sys.stdout if foreground else open(home / LOG_FILENAME, "a", encoding="utf-8")  # noqa: SIM115

    def log(message: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            stream.write(f"[{iso_now()}] {message}\n")
            stream.flush()

    return stream, log


def acquire_lock(home: Path) -> int | None:
    """One daemon per home: an flock held for the daemon's lifetime (released even on SIGKILL)."""
    fd = os.open(home / "paseo.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def worker_main(foreground: bool) -> int:
    """Entry point of the daemon process (`paseo __fake-daemon-worker`)."""
    home = resolve_home()
    _stream, log = open_log(home, foreground)
    lock = acquire_lock(home)
    if lock is None:
        info = read_pid_file(home)
        pid = info["pid"] if info and pid_alive(info["pid"]) else "unknown"
        message = f"Another Paseo daemon is already running (PID {pid})"
        log(message)
        print(message, file=sys.stderr)
        return 1
    listen = config_listen(load_config(home), os.environ)
    log(f"Starting fake Paseo daemon {VERSION} (pid {os.getpid()}, home {home}, listen {listen})")
    try:
        return asyncio.run(Daemon(home, listen, log).run())
    except (OSError, ValueError) as exc:
        log(f"Failed to start daemon: {exc}")
        print(f"Failed to start daemon: {exc}", file=sys.stderr)
        return 1
