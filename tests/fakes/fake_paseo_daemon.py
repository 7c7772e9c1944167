"""The fake Paseo daemon: one long-lived asyncio process per PASEO_HOME.

It owns every agent (state, timeline, turns of the mock and claude providers) and persists them
under $PASEO_HOME/agents so they survive a restart (coming back `closed`). One listener (TCP
host:port or a unix socket) speaks two protocols, told apart by a connection's first line:

- an HTTP request line: HTTP, like the real daemon. `GET /ws` with an upgrade is the real
  Paseo WebSocket protocol (/work/shared/paseo-daemon.md; RFC 6455 in fake_paseo_ws.py),
  `GET /api/health` and `GET /api/status` the probes, anything else 404. A future WebSocket
  transport of the gateway is tested against this side (`WsHub`).
- anything else: the fake CLI's own JSON-lines protocol (`Daemon.handle_lines`; the CLI hides
  the real transport, so its wire format is ours).

Both sides drive the same `Manager`: an agent created over the WebSocket is in the CLI's `ls`
and the other way round, and every stream event reaches both (the WebSocket gets the wire
shapes: seq/epoch on timeline rows, no internal usage_updated or turnId). Behaviour follows the
CLI contract, the recordings and the daemon fact sheet; where the fake and a contract disagree,
the fake is wrong.

Started by `paseo daemon start` (internally `paseo __fake-daemon-worker`), never imported by
tests. Knob: FAKE_PASEO_TIME_SCALE multiplies every mock duration and interval (not the 15 s
WebSocket hello timeout nor the 90 s session grace).
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

COALESCE_WINDOW_S = 0.060
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
ONE_PIXEL_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mP8/x8AAusB9Wl4Kj8AAAAASUVORK5CYII="
)


class OpError(Exception):
    """A request failed; the message goes back to the CLI verbatim."""


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


def cycle_events(turn_id: str, cycle: int) -> list[tuple[str, Any]]:
    """One canned cycle: intro, reasoning, read+grep, mid text, edit+bash, closing, usage."""
    intro = tokenize(f"## Cycle {cycle}\n\n{INTRO}")
    events: list[tuple[str, Any]] = [("assistant", t) for t in intro]
    events += [("reasoning", t) for t in _REASONING_TOKENS]
    tools = [
        ("read", {"type": "read", "filePath": READ_FILE}),
        ("grep", {"type": "search", "query": "scrollToEnd", "toolName": "grep"}),
    ]
    for name, detail in tools:
        call_id = f"{turn_id}:{name}:{cycle}"
        events += [("tool", tool_item(call_id, name, s, detail)) for s in ("running", "completed")]
    events += [("assistant", t) for t in _MID_TOKENS]
    tools = [
        (
            "edit",
            {
                "type": "edit",
                "filePath": EDIT_FILE,
                "oldString": "const NEAR_BOTTOM_PX = 80;",
                "newString": "const NEAR_BOTTOM_PX = 160;",
            },
        ),
        ("bash", {"type": "shell", "command": SHELL_COMMAND, "exitCode": 0}),
    ]
    for name, detail in tools:
        call_id = f"{turn_id}:{name}:{cycle}"
        events += [("tool", tool_item(call_id, name, s, detail)) for s in ("running", "completed")]
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
    at once on a terminal tool call, and before any other event (see `Manager.emit`).
    """

    def __init__(self, window: float, on_flush: Callable[[dict[str, Any]], None]) -> None:
        self.window = window
        self.on_flush = on_flush
        self.entries: list[dict[str, Any]] = []
        self.tool_index: dict[str, int] = {}
        self.timer: asyncio.TimerHandle | None = None

    def add(self, item: dict[str, Any]) -> None:
        """Buffer one item, flushing when the rules say so."""
        if item["type"] in ("assistant_message", "reasoning") and item["text"] == "":
            return
        if item["type"] == "tool_call":
            index = self.tool_index.get(item["callId"])
            if index is not None:
                self.entries[index] = dict(item)
            else:
                self.tool_index[item["callId"]] = len(self.entries)
                self.entries.append(dict(item))
            if item["status"] in ("completed", "failed", "canceled"):
                self.flush()
                return
        else:
            self.entries.append(dict(item))
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
        merged: list[dict[str, Any]] = []
        for entry in entries:
            last = merged[-1] if merged else None
            if last is not None and same_text_stream(last, entry):
                last["text"] += entry["text"]
            else:
                merged.append(entry)
        for entry in merged:
            self.on_flush(entry)


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
        if self.model:
            return self.model
        return "five-minute-stream" if self.provider == "mock" else CLAUDE_DEFAULT_MODEL

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
            lambda item: self.deliver(agent, {"type": "timeline", "item": item}),
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
        """The initialPrompt (trimmed) starts the first turn; clientMessageId is its messageId."""
        prompt = js_trim(str(req.get("initialPrompt") or ""))
        if prompt:
            self.start_turn(agent, prompt, req.get("clientMessageId") or None)

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

    def start_turn(self, agent: Agent, prompt: str, message_id: str | None = None) -> None:
        """Begin a turn; a running one is interrupted first (send replaces the turn).

        `prompt` is already trimmed like JS trim() (create's initialPrompt, send's text): the
        user_message is recorded that way and the mock's magic phrases are searched in it.
        `message_id` (the client's messageId / clientMessageId) becomes the user_message's
        messageId; a UUID otherwise.
        """
        if agent.turn is not None:
            self.interrupt(agent, attention=False)
        self.make_live(agent)
        agent.archived_at = None
        agent.status = "running"
        agent.updated_at = agent.last_user_message_at = iso_now()
        turn = Turn(id=str(uuid.uuid4()), prompt=prompt, message_id=str(uuid.uuid4()))
        agent.turn = turn
        user_message = {
            "type": "user_message",
            "text": prompt,
            "messageId": message_id or str(uuid.uuid4()),
        }
        self.emit(agent, {"type": "timeline", "item": user_message})
        self.emit(agent, {"type": "turn_started", "turnId": turn.id})
        turn.task = asyncio.get_running_loop().create_task(self.drive(agent, turn))
        self.save(agent)
        self.notify(agent)

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
        """One event per tick on a virtual clock, so content does not depend on load."""
        duration_ms, interval_ms = mock_profile(agent.runtime_model())
        tick = (interval_ms + TIMER_OVERHEAD_MS) / 1000 * self.scale
        duration = duration_ms / 1000 * self.scale
        loop = asyncio.get_running_loop()
        start = loop.time()
        queue: deque[tuple[str, Any]] = deque()
        index = 0
        while True:
            elapsed = loop.time() - start
            while index * tick <= elapsed:
                if index * tick >= duration:
                    self.emit_text(agent, turn, END_MARKER)
                    self.complete_turn(agent, turn, make_usage(turn.cycle * 32, turn.emitted))
                    return
                if not queue:
                    turn.cycle += 1
                    queue.extend(cycle_events(turn.id, turn.cycle))
                self.dispatch_cycle_event(agent, turn, queue.popleft())
                index += 1
            await asyncio.sleep(max(start + index * tick - loop.time(), 0))

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
        }
        agent.pending.append(request)
        self.emit(agent, {"type": "permission_requested", "request": request, "turnId": turn.id})
        if len(agent.pending) == 1:
            self.raise_attention(agent, "permission")
        self.notify(agent)
        self.save(agent)

    def respond_permission(self, agent: Agent, request_id: str, response: dict[str, Any]) -> None:
        """Resolve a pending request; the mock then completes the turn."""
        request = next((p for p in agent.pending if p["id"] == request_id), None)
        if request is None:
            raise OpError(f"Permission request not found: {request_id}")
        agent.pending.remove(request)
        self.emit(
            agent, {"type": "permission_resolved", "requestId": request_id, "resolution": response}
        )
        if agent.turn is not None:
            self.complete_turn(
                agent, agent.turn, make_usage(agent.turn.cycle * 32, agent.turn.emitted)
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
        """Provider event in: coalescable timeline items are buffered, the rest flush first."""
        assert agent.coalescer is not None
        item = event.get("item") if event["type"] == "timeline" else None
        if item is not None and item["type"] in ("assistant_message", "reasoning", "tool_call"):
            agent.coalescer.add(item)
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
        for conn in list(self.subscribers.get(agent.id, ())):
            conn.send(message)
        for observer in self.observers:
            observer.agent_stream(agent, event, row)

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
        self.hub = WsHub(self)

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT or a shutdown request; returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self.manager.load()
        server, listen_text = await self.bind()
        self.listen_text = listen_text
        self.hub.start()
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
                "version": VERSION,
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
        """101 Switching Protocols (echoing the bearer subprotocol), then the Paseo protocol."""
        offered = offered_subprotocols(request)
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
                    "version": VERSION,
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
        self.manager.start_turn(agent, js_trim(str(req.get("text") or "")))
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
            "version": VERSION,
            "pid": os.getpid(),
            "runningAgents": sum(a.status == "running" for a in agents),
            "idleAgents": sum(a.status == "idle" for a in agents),
        }

    def op_shutdown(self, _conn: Connection, _req: dict[str, Any]) -> dict[str, Any]:
        """Graceful lifecycle shutdown (daemon stop)."""
        asyncio.get_running_loop().call_later(0.05, self.stopping.set)
        return {"ok": True}


# ---------------------------------------------------------------------------------------------
# WebSocket protocol (/work/shared/paseo-daemon.md): sessions, requests, pushed events

HELLO_TIMEOUT_S = 15.0  # not scaled by FAKE_PASEO_TIME_SCALE
SESSION_GRACE_S = 90.0
BEARER_PREFIX = "paseo.bearer."
CLIENT_TYPES = ("mobile", "browser", "cli", "mcp")
LEGACY_PROVIDERS = ("claude", "codex", "opencode")  # all an appVersion < 0.1.45 client sees
INTERNAL_EVENTS = ("usage_updated", "mode_changed", "model_changed", "thinking_option_changed")
STATUSES = ("initializing", "idle", "running", "error", "closed")
SORT_KEYS = ("status_priority", "created_at", "updated_at", "title")
STATUS_PRIORITY = {"running": 0, "initializing": 1, "error": 2, "idle": 3, "closed": 4}
TIMELINE_DEFAULT_LIMIT = 200


class SchemaError(Exception):
    """A request failed validation: rpc_error `unknown_schema` (or a status error without id)."""


def app_version_at_least(version: str | None, minimum: tuple[int, ...]) -> bool:
    """isAppVersionAtLeast: prerelease suffix stripped, numeric compare, missing = old."""
    if not version:
        return False
    core = re.split(r"[-+]", version.strip(), maxsplit=1)[0]
    try:
        parts = tuple(int(part) for part in core.split("."))
    except ValueError:
        return False
    return parts >= minimum


def need_str(msg: dict[str, Any], key: str, *, empty_ok: bool = True) -> str:
    """A required string field."""
    value = msg.get(key)
    if not isinstance(value, str) or (not empty_ok and not value):
        raise SchemaError(key)
    return value


def opt_str(msg: dict[str, Any], key: str) -> str | None:
    """An optional string field (null allowed)."""
    value = msg.get(key)
    if value is not None and not isinstance(value, str):
        raise SchemaError(key)
    return value


def opt_bool(msg: dict[str, Any], key: str) -> bool | None:
    """An optional boolean field."""
    value = msg.get(key)
    if value is not None and not isinstance(value, bool):
        raise SchemaError(key)
    return value


def opt_int(msg: dict[str, Any], key: str, low: int, high: int | None = None) -> int | None:
    """An optional integer field within [low, high] (JSON booleans are not integers)."""
    value = msg.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise SchemaError(key)
    if high is not None and value > high:
        raise SchemaError(key)
    return value


def opt_dict(msg: dict[str, Any], key: str) -> dict[str, Any]:
    """An optional object field ({} when absent)."""
    value = msg.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SchemaError(key)
    return value


def str_map(msg: dict[str, Any], key: str) -> dict[str, str]:
    """An optional {string: string} field (labels)."""
    value = opt_dict(msg, key)
    if not all(isinstance(v, str) for v in value.values()):
        raise SchemaError(key)
    return dict(value)


def wire_item(item: dict[str, Any]) -> dict[str, Any]:
    """A timeline item as the wire schema has it (text chunks carry no messageId)."""
    if item["type"] in ("assistant_message", "reasoning"):
        return {"type": item["type"], "text": item["text"]}
    return dict(item)


def wire_event(agent: Agent, event: dict[str, Any]) -> dict[str, Any] | None:
    """serializeAgentStreamEvent: internal events dropped, turnId stripped, provider added."""
    if event["type"] in INTERNAL_EVENTS:
        return None
    wire = {"type": event["type"], "provider": agent.provider}
    wire.update((k, v) for k, v in event.items() if k not in ("type", "turnId"))
    if "item" in wire:
        wire["item"] = wire_item(wire["item"])
    return wire


def placement(cwd: str) -> dict[str, Any]:
    """ProjectPlacement of a workspace directory (no remote lookup: remoteUrl is null)."""
    git_dir = Path(cwd) / ".git"
    branch = None
    with contextlib.suppress(OSError):
        head = (git_dir / "HEAD").read_text().strip()
        if head.startswith("ref: refs/heads/"):
            branch = head[len("ref: refs/heads/") :]
    is_git = git_dir.exists()
    return {
        "projectKey": cwd,
        "projectName": os.path.basename(cwd.rstrip("/")) or cwd,
        "checkout": {
            "cwd": cwd,
            "isGit": is_git,
            "currentBranch": branch,
            "remoteUrl": None,
            "worktreeRoot": cwd if is_git else None,
            "isPaseoOwnedWorktree": False,
            "mainRepoRoot": None,
        },
    }


def project_entries(rows: list[dict[str, Any]], provider: str, merge_reasoning: bool) -> list:
    """`projected` timeline entries: text runs merged, one entry per tool callId."""
    entries: list[dict[str, Any]] = []
    by_call: dict[str, dict[str, Any]] = {}
    for row in rows:
        item = wire_item(row["item"])
        last = entries[-1] if entries else None
        kind = item["type"]
        mergeable = kind == "assistant_message" or (kind == "reasoning" and merge_reasoning)
        if last is not None and mergeable and last["item"]["type"] == kind:
            last["item"]["text"] += item["text"]
            extend_entry(
                last, row["seq"], "assistant_merge" if kind != "reasoning" else "reasoning_merge"
            )
            continue
        if kind == "tool_call" and item["callId"] in by_call:
            entry = by_call[item["callId"]]
            entry["item"] = item
            extend_entry(entry, row["seq"], "tool_lifecycle")
            continue
        entry = canonical_entry(row, provider)
        entry["item"] = item
        entries.append(entry)
        if kind == "tool_call":
            by_call[item["callId"]] = entry
    return entries


def canonical_entry(row: dict[str, Any], provider: str) -> dict[str, Any]:
    """One timeline row as a fetch_agent_timeline entry (seqStart == seqEnd)."""
    seq = row["seq"]
    return {
        "provider": provider,
        "item": wire_item(row["item"]),
        "timestamp": row["timestamp"],
        "seqStart": seq,
        "seqEnd": seq,
        "sourceSeqRanges": [{"startSeq": seq, "endSeq": seq}],
        "collapsed": [],
    }


def extend_entry(entry: dict[str, Any], seq: int, reason: str) -> None:
    """Fold one more row into a projected entry."""
    entry["seqEnd"] = seq
    ranges = entry["sourceSeqRanges"]
    if ranges[-1]["endSeq"] == seq - 1:
        ranges[-1]["endSeq"] = seq
    else:
        ranges.append({"startSeq": seq, "endSeq": seq})
    if reason not in entry["collapsed"]:
        entry["collapsed"].append(reason)


@dataclass
class WsSession:
    """The daemon-side Session of one clientId, shared by all sockets that said hello with it."""

    client_id: str
    app_version: str | None = None
    capabilities: dict[str, Any] = field(default_factory=dict)
    sockets: set[WebSocket] = field(default_factory=set)
    subscription: str | None = None
    cleanup: asyncio.TimerHandle | None = None

    def sees(self, provider: str) -> bool:
        """Old clients (appVersion < 0.1.45 or none) only see claude, codex and opencode."""
        return provider in LEGACY_PROVIDERS or app_version_at_least(self.app_version, (0, 1, 45))

    def send(self, message: dict[str, Any]) -> None:
        """Emit a session message to every socket (dropped while none is attached)."""
        data = json.dumps({"type": "session", "message": message})
        for ws in list(self.sockets):
            ws.send_text(data)


class WsHub:
    """The WebSocket side of the fake daemon, on the same Manager the JSON-lines side uses."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.manager = daemon.manager
        self.sessions: dict[str, WsSession] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.handlers: dict[str, Callable[[WsSession, dict[str, Any]], Any]] = {
            "fetch_agents_request": self.fetch_agents,
            "fetch_agent_request": self.fetch_agent,
            "create_agent_request": self.create_agent,
            "import_agent_request": self.import_agent,
            "send_agent_message_request": self.send_agent_message,
            "wait_for_finish_request": self.wait_for_finish,
            "cancel_agent_request": self.cancel_agent,
            "archive_agent_request": self.archive_agent,
            "delete_agent_request": self.delete_agent,
            "update_agent_request": self.update_agent,
            "agent_permission_response": self.permission_response,
            "clear_agent_attention": self.clear_attention,
            "get_providers_snapshot_request": self.providers_snapshot,
            "list_provider_models_request": self.provider_models,
            "fetch_agent_timeline_request": self.fetch_timeline,
            "open_project_request": self.open_project,
        }
        self.manager.observers.append(self)

    def start(self) -> None:
        """providers_snapshot_update once the providers leave their `loading` phase."""
        delay = PROVIDER_LOADING_S * self.manager.scale + 0.01
        asyncio.get_running_loop().call_later(delay, self.push_providers)

    # -- connections ----------------------------------------------------------------------

    async def serve(self, ws: WebSocket, bearer: str | None) -> None:
        """One upgraded socket: password, hello, then every message handled concurrently."""
        problem = self.password_problem(bearer)
        if problem is not None:
            ws.close(4401, problem)
            await ws.drain_until_closed()
            return
        session = await self.await_hello(ws)
        if session is None:
            await ws.drain_until_closed()
            return
        try:
            while (raw := await ws.recv()) is not None:
                self.on_message(session, ws, raw)
        finally:
            self.detach(session, ws)

    def password_problem(self, bearer: str | None) -> str | None:
        """Checked after the upgrade, on the `paseo.bearer.<pw>` subprotocol only."""
        password = self.daemon.password
        if not password:
            return None
        if bearer is None:
            return "Password required"
        return None if bearer[len(BEARER_PREFIX) :] == password else "Incorrect password"

    async def await_hello(self, ws: WebSocket) -> WsSession | None:
        """Wait up to 15 s for a valid hello (top-level pings are answered meanwhile)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HELLO_TIMEOUT_S
        while True:
            try:
                raw = await asyncio.wait_for(ws.recv(), max(deadline - loop.time(), 0))
            except TimeoutError:
                ws.close(4001, "Hello timeout")
                return None
            if raw is None:
                return None
            msg = parse_json_object(raw) if isinstance(raw, str) else None
            kind = msg.get("type") if msg is not None else None
            if kind == "ping":
                ws.send_text(json.dumps({"type": "pong"}))
            elif kind == "recording_state":
                continue
            elif kind == "session":
                ws.close(4002, "Session message before hello")
                return None
            elif kind != "hello" or msg is None:
                ws.close(4002, "Invalid hello")
                return None
            else:
                return self.hello(ws, msg)

    def hello(self, ws: WebSocket, msg: dict[str, Any]) -> WsSession | None:
        """Validate a hello and attach the socket to its clientId's Session."""
        client_id = msg.get("clientId")
        version = msg.get("protocolVersion")
        valid = (
            isinstance(client_id, str)
            and client_id.strip()
            and msg.get("clientType") in CLIENT_TYPES
            and isinstance(version, int)
            and not isinstance(version, bool)
            and isinstance(msg.get("appVersion"), str | type(None))
            and isinstance(msg.get("capabilities"), dict | type(None))
        )
        if not valid:
            ws.close(4002, "Invalid hello")
            return None
        if version != 1:
            ws.close(4003, "Incompatible protocol version")
            return None
        assert isinstance(client_id, str)
        session = self.sessions.get(client_id.strip())
        if session is None:
            session = self.sessions[client_id.strip()] = WsSession(client_id.strip())
        if session.cleanup is not None:
            session.cleanup.cancel()
            session.cleanup = None
        session.app_version = msg.get("appVersion")
        session.capabilities = msg.get("capabilities") or {}
        session.sockets.add(ws)
        session.send({"type": "status", "payload": self.server_info()})
        return session

    def server_info(self) -> dict[str, Any]:
        """The `server_info` status payload (no speech capabilities in the fake)."""
        return {
            "status": "server_info",
            "serverId": self.daemon.server_id,
            "hostname": socket.gethostname(),
            "version": VERSION,
            "features": {"providersSnapshot": True},
        }

    def detach(self, session: WsSession, ws: WebSocket) -> None:
        """A socket closed; the Session outlives its last socket by 90 s."""
        session.sockets.discard(ws)
        if not session.sockets and session.cleanup is None:
            loop = asyncio.get_running_loop()
            session.cleanup = loop.call_later(SESSION_GRACE_S, self.drop_session, session)

    def drop_session(self, session: WsSession) -> None:
        """Grace period over: forget the Session and its subscription (agents keep running)."""
        session.cleanup = None
        if not session.sockets and self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]

    def on_message(self, session: WsSession, ws: WebSocket, raw: str | bytes) -> None:
        """One frame after hello; session requests run as concurrent tasks."""
        if isinstance(raw, bytes):
            return  # binary frames only carry terminal/file streams: ignored
        msg = parse_json_object(raw)
        if msg is None:
            send_status_error(ws, "Invalid message: Unexpected token, not a JSON object")
            return
        kind = msg.get("type")
        if kind == "ping":
            ws.send_text(json.dumps({"type": "pong"}))
        elif kind == "hello":
            ws.close(4002, "Unexpected hello")
        elif kind == "recording_state":
            pass
        elif kind == "session" and isinstance(msg.get("message"), dict):
            task = asyncio.get_running_loop().create_task(self.handle(session, ws, msg["message"]))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif isinstance(msg.get("requestId"), str):
            rpc = rpc_error(msg["requestId"], None, "Invalid message", "invalid_message")
            ws.send_text(json.dumps({"type": "session", "message": rpc}))
        else:
            send_status_error(ws, f"Invalid message: unknown message type {kind!r}")

    async def handle(self, session: WsSession, ws: WebSocket, msg: dict[str, Any]) -> None:
        """Validate and run one session request; the handler returns its reply (or None)."""
        rid = msg.get("requestId")
        kind = msg.get("type")
        rid = rid if isinstance(rid, str) else None
        try:
            if kind == "ping":
                reply = self.session_ping(msg)
            else:
                handler = self.handlers.get(str(kind))
                if handler is None:
                    raise SchemaError("type")
                reply = handler(session, msg)
                if asyncio.iscoroutine(reply):
                    reply = await reply
        except SchemaError as exc:
            if rid is None:
                send_status_error(ws, f"Invalid message: invalid field {exc}")
                return
            reply = rpc_error(rid, kind, "Unknown request schema", "unknown_schema")
        except OpError as exc:
            self.activity_error(session, str(exc))
            reply = rpc_error(rid, kind, f"Request failed: {exc}", "handler_error")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in the fake must not kill the daemon
            self.daemon.log(f"ERROR {kind}: {exc!r}")
            reply = rpc_error(rid, kind, "Invalid message", "invalid_message") if rid else None
        if reply is not None:
            session.send(reply)

    def session_ping(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Session-level ping -> pong with the server's receive/send times."""
        rid = need_str(msg, "requestId")
        now_ms = int(time.time() * 1000)
        payload = {
            "requestId": rid,
            "clientSentAt": msg.get("clientSentAt"),
            "serverReceivedAt": now_ms,
            "serverSentAt": int(time.time() * 1000),
        }
        return {"type": "pong", "payload": payload}

    def activity_error(self, session: WsSession, content: str) -> None:
        """The activity_log entry that accompanies handler errors and silent failures."""
        payload = {"id": str(uuid.uuid4()), "timestamp": iso_now(), "type": "error"}
        payload["content"] = content
        session.send({"type": "activity_log", "payload": payload})

    def broadcast(self, message: dict[str, Any], provider: str | None = None) -> None:
        """To every Session (only those allowed to see `provider`, when given)."""
        for session in list(self.sessions.values()):
            if provider is None or session.sees(provider):
                session.send(message)

    # -- Manager observer -----------------------------------------------------------------

    def agent_stream(self, agent: Agent, event: dict[str, Any], row: dict[str, Any] | None) -> None:
        """agent_stream to every Session (not gated by appVersion), plus permission copies."""
        wire = wire_event(agent, event)
        if wire is None:
            return
        self.broadcast(stream_message(agent, wire, row))
        if event["type"] == "permission_requested":
            payload = {"agentId": agent.id, "request": event["request"]}
            self.broadcast({"type": "agent_permission_request", "payload": payload})
        elif event["type"] == "permission_resolved":
            payload = {
                "agentId": agent.id,
                "requestId": event["requestId"],
                "resolution": event["resolution"],
            }
            self.broadcast({"type": "agent_permission_resolved", "payload": payload})

    def agent_changed(self, agent: Agent) -> None:
        """agent_update upsert, to subscribed Sessions only."""
        payload = {
            "kind": "upsert",
            "agent": agent.wire_snapshot(),
            "project": placement(agent.cwd),
        }
        self.push_update(agent, payload)

    def agent_removed(self, agent: Agent) -> None:
        """agent_update remove."""
        self.push_update(agent, {"kind": "remove", "agentId": agent.id})

    def push_update(self, agent: Agent, payload: dict[str, Any]) -> None:
        for session in list(self.sessions.values()):
            if session.subscription is not None and session.sees(agent.provider):
                session.send({"type": "agent_update", "payload": payload})

    def attention(self, agent: Agent, reason: str) -> None:
        """attention_required: a stream event without seq, sent after the turn end event."""
        now = iso_now()
        title = agent.title or "Agent"
        bodies = {"finished": "Finished", "error": "Failed", "permission": "Needs permission"}
        event = {
            "type": "attention_required",
            "provider": agent.provider,
            "reason": reason,
            "timestamp": now,
            "shouldNotify": False,
            "notification": {
                "title": title,
                "body": bodies.get(reason, reason),
                "data": {"serverId": self.daemon.server_id, "agentId": agent.id, "reason": reason},
            },
        }
        self.broadcast(stream_message(agent, event, None))

    def push_providers(self) -> None:
        """providers_snapshot_update to every Session, filtered per appVersion."""
        for session in list(self.sessions.values()):
            payload = {"entries": self.provider_entries(session), "generatedAt": iso_now()}
            session.send({"type": "providers_snapshot_update", "payload": payload})

    # -- requests -------------------------------------------------------------------------

    def fetch_agents(self, session: WsSession, msg: dict[str, Any]) -> dict[str, Any]:
        """Agents in registered workspaces, filtered, sorted, paged; optionally subscribe."""
        rid = need_str(msg, "requestId")
        flt = opt_dict(msg, "filter")
        labels = str_map(flt, "labels")
        include_archived = bool(opt_bool(flt, "includeArchived"))
        statuses = flt.get("statuses")
        if statuses is not None and (
            not isinstance(statuses, list) or any(s not in STATUSES for s in statuses)
        ):
            raise SchemaError("filter.statuses")
        attention = opt_bool(flt, "requiresAttention")
        thinking = opt_str(flt, "thinkingOptionId")
        if msg.get("scope") not in (None, "active"):
            raise SchemaError("scope")
        include_archived = include_archived and msg.get("scope") is None
        sort = parse_sort(msg.get("sort"))
        page = opt_dict(msg, "page")
        limit = opt_int(page, "limit", 1, 200) or 200
        cursor = opt_str(page, "cursor")
        subscribe = msg.get("subscribe")
        if subscribe is not None and not isinstance(subscribe, dict):
            raise SchemaError("subscribe")
        subscription = opt_str(subscribe, "subscriptionId") if subscribe else None
        offset = decode_cursor(cursor)
        if offset is None:
            return rpc_error(rid, msg["type"], "Invalid cursor", "invalid_cursor")
        agents = [
            a
            for a in self.manager.visible(include_archived)
            if session.sees(a.provider)
            and all(a.labels.get(k) == v for k, v in labels.items())
            and (statuses is None or a.status in statuses)
            and (attention is None or (a.attention_reason is not None) == attention)
            and (thinking is None or (a.thinking or "auto") == thinking)
        ]
        agents = sort_agents(agents, sort)
        chunk = agents[offset : offset + limit]
        has_more = offset + limit < len(agents)
        payload: dict[str, Any] = {"requestId": rid}
        if subscribe is not None:
            session.subscription = subscription or str(uuid.uuid4())
            payload["subscriptionId"] = session.subscription
        payload["entries"] = [
            {"agent": a.wire_snapshot(), "project": placement(a.cwd)} for a in chunk
        ]
        payload["pageInfo"] = {
            "nextCursor": f"offset:{offset + limit}" if has_more else None,
            "prevCursor": f"offset:{max(offset - limit, 0)}" if offset else None,
            "hasMore": has_more,
        }
        return {"type": "fetch_agents_response", "payload": payload}

    def fetch_agent(self, session: WsSession, msg: dict[str, Any]) -> dict[str, Any]:
        """One agent by id, prefix or title; failures are reported in the payload."""
        rid = need_str(msg, "requestId")
        ident = need_str(msg, "agentId")
        payload: dict[str, Any] = {"requestId": rid, "agent": None, "project": None, "error": None}
        try:
            agent = self.manager.resolve(ident)
            if not session.sees(agent.provider):
                raise OpError(f"Agent not found: {ident}")
        except OpError as exc:
            payload["error"] = str(exc)
        else:
            payload.update(agent=agent.wire_snapshot(), project=placement(agent.cwd))
        return {"type": "fetch_agent_response", "payload": payload}

    def create_agent(self, _session: WsSession, msg: dict[str, Any]) -> dict[str, Any]:
        """agent_created after the first prompt was dispatched (its events come first)."""
        rid = need_str(msg, "requestId")
        config = msg.get("config")
        if not isinstance(config, dict):
            raise SchemaError("config")
        title = opt_str(config, "title")
        if title is not None and not 1 <= len(js_trim(title)) <= 200:
            raise SchemaError("config.title")
        req = {
            "provider": need_str(config, "provider"),
            "cwd": need_str(config, "cwd"),
            "model": opt_str(config, "model"),
            "modeId": opt_str(config, "modeId"),
            "thinkingOptionId": opt_str(config, "thinkingOptionId"),
            "title": js_trim(title) if title is not None else None,
            "labels": str_map(msg, "labels"),
            "initialPrompt": opt_str(msg, "initialPrompt"),
            "clientMessageId": opt_str(msg, "clientMessageId"),
        }
        try:
            agent = self.manager.create_idle(req)
        except OpError as exc:
            payload = {"status": "agent_create_failed", "requestId": rid, "error": str(exc)}
            return {"type": "status", "payload": payload}
        snapshot = agent.wire_snapshot()
        self.manager.start_initial_turn(agent, req)
        payload = {
            "status": "agent_created",
            "agentId": agent.id,
            "requestId": rid,
            "agent": snapshot,
        }
        return {"type": "status", "payload": payload}

    def import_agent(self, _session: WsSession, msg: dict[str, Any]) -> dict[str, Any]:
        """agent_resumed (or agent_create_failed); no workspace is registered."""
        rid = need_str(msg, "requestId")
        req = {
            "provider": need_str(msg, "provider"),
            "sessionId": need_str(msg, "sessionId"),
            "cwd": opt_str(msg, "cwd"),
            "labels": str_map(msg, "labels"),
        }
        try:
            agent = self.manager.agents[self.manager.import_agent(req)["id"]]
        except OpError as exc:
            payload = {"status": "agent_create_failed", "requestId": rid, "error": str(exc)}
            return {"type": "status", "payload": payload}
        payload = {
            "status": "agent_resumed",
            "agentId": agent.id,
            "requestId": rid,
            "timelineSize": len(agent.rows),
            "agent": agent.wire_snapshot(),
        }
        return {"type": "status", "payload": payload}

    def send_agent_message(self, _session: WsSession, msg: dict[str, Any]) -> dict[str, Any]:
        """Record the user_message and start a run, replacing a running turn."""
        rid = need_str(msg, "requestId")
        ident = need_str(msg, "agentId")
        text = need_str(msg, "text")
        message_id = opt_str(msg, "messageId")
        payload: dict[str, Any] = {"requestId": rid, "agentId": ident, "accepted": False}
        try:
            agent = self.manager.resolve(ident)
            self.manager.start_turn(agent, js_trim(text), message_id)
        except OpError as exc:
            payload["error"] = str(exc)
        else:
            payload.update(agentId=agent.id, accepted=True, error=None)
        return {"type": "send_agent_message_response", "payload": payload}

    async def wait_for_finish(self, session: WsSession, msg: dict[str, Any]) -> dict[str, Any]:
        """idle | error | permission | timeout; an unknown id is an `error` outcome."""
        rid = need_str(msg, "requestId")
        ident = need_str(msg, "agentId")
        timeout_ms = opt_int(msg, "timeoutMs", 1) or 0
        try:
            agent = self.manager.resolve(ident)
        except OpError as exc:
            state: dict[str, Any] = {"status": "error", "error": str(exc), "lastMessage": None}
            final = None
        else:
            state = await self.manager.wait_for_finish(agent, timeout_ms)
            visible = not agent.deleted and session.sees(agent.provider)
            final = agent.wire_snapshot() if visible and state["final"] is not None else None
        payload = {
            "requestId": rid,
            "status": state["status"],
            "final": final,
            "error": state["error"],
            "lastMessage": state["lastMessage"],
        }
        return {"type": "wait_for_finish_response", "payload": payload}

    def cancel_agent(self, session: WsSession, msg: dict[str, Any]) -> dict[str, Any] | None:
        """Interrupt a loaded agent; unknown or not-loaded agents get no reply at all."""
        agent_id = need_str(msg, "agentId")
        rid = opt_str(msg, "requestId")
        agent = self.manager.agents.get(agent_id)
        if agent is None or not agent.live:
            self.activity_error(session, f"Agent not found: {agent_id}")
            return None
        self.manager.interrupt(agent)
        if rid is None:
            return None
        payload = {"requestId": rid, "agentId": agent.id, "agent": agent.wire_snapshot()}
        return {"type": "cancel_agent_response", "payload": payload}

    def archive_agent(self, _session: WsSession, msg: dict[str, Any]) -> dict[str, Any]:
        """Interrupt, flag, close; an unknown id is a handler_error."""
        rid = need_str(msg, "requestId")
        agent = self.exact_agent(need_str(msg, "agentId"))
        archived_at = self.manager.archive(agent)
        payload = {"agentId": agent.id, "archivedAt": archived_at, "requestId": rid}
        return {"type": "agent_archived", "payload": payload}

    def delete_agent(self, _session: WsSession, msg: dict[str, Any]) -> dict[str, Any]:
        """Remove the agent; success even for an unknown id."""
        rid = need_str(msg, "requestId")
        agent_id = need_str(msg, "agentId")
        agent = self.manager.agents.get(agent_id)
        if agent is not None:
            self.manager.delete(agent)
        return {"type": "agent_deleted", "payload": {"agentId": agent_id, "requestId": rid}}

    def update_agent(self, _session: WsSession, msg: dict[str, Any]) -> dict[str, Any]:
        """Rename and merge labels; failures reported as accepted:false."""
        rid = need_str(msg, "requestId")
        agent_id = need_str(msg, "agentId")
        name = opt_str(msg, "name")
        labels = str_map(msg, "labels")
        payload: dict[str, Any] = {"requestId": rid, "agentId": agent_id}
        agent = self.manager.agents.get(agent_id)
        if agent is None:
            payload.update(accepted=False, error=f"Agent not found: {agent_id}")
        elif not name and not labels:
            payload.update(accepted=False, error="Nothing to update")
        else:
            self.manager.update(agent, name, labels)
            payload.update(accepted=True, error=None)
        return {"type": "update_agent_response", "payload": payload}

    def permission_response(self, _session: WsSession, msg: dict[str, Any]) -> None:
        """No direct reply: permission_resolved on the stream (failures: handler_error)."""
        agent_id = need_str(msg, "agentId")
        need_str(msg, "requestId")
        response = msg.get("response")
        if not isinstance(response, dict) or response.get("behavior") not in ("allow", "deny"):
            raise SchemaError("response")
        agent = self.exact_agent(agent_id)
        self.manager.respond_permission(agent, msg["requestId"], response)

    def clear_attention(self, _session: WsSession, msg: dict[str, Any]) -> dict[str, Any] | None:
        """clear_agent_attention {agentId: str | str[]}; unknown ids are skipped silently."""
        raw = msg.get("agentId")
        ids = [raw] if isinstance(raw, str) else raw
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise SchemaError("agentId")
        rid = opt_str(msg, "requestId")
        agents = [self.manager.agents[i] for i in ids if i in self.manager.agents]
        for agent in agents:
            self.manager.clear_attention(agent)
        if rid is None:
            return None
        payload = {
            "requestId": rid,
            "agentId": raw,
            "agents": [a.wire_snapshot() for a in agents],
        }
        return {"type": "clear_agent_attention_response", "payload": payload}

    def providers_snapshot(self, session: WsSession, msg: dict[str, Any]) -> dict[str, Any]:
        """Provider entries (models included once ready), filtered per appVersion."""
        rid = need_str(msg, "requestId")
        opt_str(msg, "cwd")
        payload = {
            "requestId": rid,
            "generatedAt": iso_now(),
            "entries": self.provider_entries(session),
        }
        return {"type": "get_providers_snapshot_response", "payload": payload}

    def provider_entries(self, session: WsSession) -> list[dict[str, Any]]:
        now = iso_now()
        entries = []
        for entry in self.manager.providers_snapshot():
            if not session.sees(entry["provider"]):
                continue
            if entry["status"] == "ready":
                entry["models"] = self.wire_models(entry["provider"])
                entry["fetchedAt"] = now
            entries.append(entry)
        return entries

    def wire_models(self, provider: str) -> list[dict[str, Any]]:
        """A provider's models with `provider` and `isDefault` set."""
        default = "five-minute-stream" if provider == "mock" else CLAUDE_DEFAULT_MODEL
        return [
            {"provider": provider, **model, "isDefault": model["id"] == default}
            for model in self.manager.provider_models(provider)
        ]

    def provider_models(self, session: WsSession, msg: dict[str, Any]) -> dict[str, Any]:
        """list_provider_models: models, or `error` in the payload."""
        rid = need_str(msg, "requestId")
        provider = need_str(msg, "provider")
        opt_str(msg, "cwd")
        payload: dict[str, Any] = {"provider": provider}
        try:
            if not session.sees(provider):
                raise OpError(f"Unknown provider '{provider}'")
            payload["models"] = self.wire_models(provider)
        except OpError as exc:
            payload["error"] = str(exc)
        payload.update(fetchedAt=iso_now(), requestId=rid)
        return {"type": "list_provider_models_response", "payload": payload}

    def fetch_timeline(self, session: WsSession, msg: dict[str, Any]) -> dict[str, Any]:
        """Rows of the in-memory timeline by cursor; loads a closed agent (new epoch)."""
        rid = need_str(msg, "requestId")
        agent_id = need_str(msg, "agentId")
        direction = msg.get("direction")
        if direction not in (None, "tail", "before", "after"):
            raise SchemaError("direction")
        cursor = msg.get("cursor")
        if cursor is not None:
            if not isinstance(cursor, dict):
                raise SchemaError("cursor")
            need_str(cursor, "epoch")
            if opt_int(cursor, "seq", 0) is None:
                raise SchemaError("cursor.seq")
        limit = opt_int(msg, "limit", 0)
        projection = msg.get("projection") or "projected"
        if projection not in ("projected", "canonical"):
            raise SchemaError("projection")
        direction = direction or ("after" if cursor else "tail")
        agent = self.manager.agents.get(agent_id)
        if agent is None:
            payload = empty_timeline(rid, agent_id, direction, projection)
            payload["error"] = f"Agent not found: {agent_id}"
            return {"type": "fetch_agent_timeline_response", "payload": payload}
        self.manager.make_live(agent)
        if limit is None:
            limit = 0 if direction == "after" else TIMELINE_DEFAULT_LIMIT
        window = select_rows(agent, direction, cursor, limit)
        rows = window.pop("rows")
        merge_reasoning = bool(session.capabilities.get("reasoning_merge_enum"))
        if projection == "projected":
            entries = project_entries(rows, agent.provider, True)
            if not merge_reasoning:
                for entry in entries:
                    entry["collapsed"] = [c for c in entry["collapsed"] if c != "reasoning_merge"]
        else:
            entries = [canonical_entry(row, agent.provider) for row in rows]
        payload = {
            "requestId": rid,
            "agentId": agent.id,
            "agent": agent.wire_snapshot() if session.sees(agent.provider) else None,
            "direction": direction,
            "projection": projection,
            "epoch": agent.epoch,
            **window,
            "entries": entries,
            "error": None,
        }
        return {"type": "fetch_agent_timeline_response", "payload": payload}

    def open_project(self, _session: WsSession, msg: dict[str, Any]) -> dict[str, Any]:
        """Register the directory (its git root) as a workspace, so lists show its agents."""
        rid = need_str(msg, "requestId")
        raw = need_str(msg, "cwd")
        path = git_root(os.path.abspath(os.path.expanduser(raw)))
        payload: dict[str, Any] = {"requestId": rid, "workspace": None, "error": None}
        if not os.path.isdir(path):
            payload["error"] = f"Directory does not exist: {raw}"
        else:
            self.manager.register_workspace(path)
            project = placement(path)
            payload["workspace"] = {
                "id": path,
                "cwd": path,
                "name": project["projectName"],
                "projectKey": project["projectKey"],
                "project": project,
            }
        return {"type": "open_project_response", "payload": payload}

    def exact_agent(self, agent_id: str) -> Agent:
        """**X** resolution: the exact full id only."""
        agent = self.manager.agents.get(agent_id)
        if agent is None:
            raise OpError(f"Agent not found: {agent_id}")
        return agent


def parse_json_object(raw: str) -> dict[str, Any] | None:
    """A JSON object, or None for anything else."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def send_status_error(ws: WebSocket, message: str) -> None:
    """The reply to an invalid frame that has no requestId."""
    status = {"type": "status", "payload": {"status": "error", "message": message}}
    ws.send_text(json.dumps({"type": "session", "message": status}))


def rpc_error(rid: str | None, kind: Any, error: str, code: str) -> dict[str, Any]:
    """An rpc_error session message."""
    payload: dict[str, Any] = {"requestId": rid}
    if isinstance(kind, str):
        payload["requestType"] = kind
    payload.update(error=error, code=code)
    return {"type": "rpc_error", "payload": payload}


def stream_message(agent: Agent, event: dict[str, Any], row: dict[str, Any] | None) -> dict:
    """An agent_stream message; seq and epoch only for timeline rows."""
    payload: dict[str, Any] = {"agentId": agent.id, "timestamp": iso_now()}
    if row is not None:
        payload.update(seq=row["seq"], epoch=agent.epoch)
    payload["event"] = event
    return {"type": "agent_stream", "payload": payload}


def parse_sort(raw: Any) -> list[tuple[str, bool]]:
    """[(key, descending)], default updated_at desc."""
    if raw is None:
        return [("updated_at", True)]
    if not isinstance(raw, list):
        raise SchemaError("sort")
    sort = []
    for spec in raw:
        if not isinstance(spec, dict) or spec.get("key") not in SORT_KEYS:
            raise SchemaError("sort")
        if spec.get("direction", "asc") not in ("asc", "desc"):
            raise SchemaError("sort")
        sort.append((spec["key"], spec.get("direction") == "desc"))
    return sort


def sort_agents(agents: list[Agent], sort: list[tuple[str, bool]]) -> list[Agent]:
    """Stable multi-key sort, last key first."""
    keys: dict[str, Callable[[Agent], Any]] = {
        "status_priority": lambda a: STATUS_PRIORITY.get(a.status, 9),
        "created_at": lambda a: a.created_at,
        "updated_at": lambda a: a.updated_at,
        "title": lambda a: (a.title or "").lower(),
    }
    result = list(agents)
    for key, descending in reversed(sort):
        result.sort(key=keys[key], reverse=descending)
    return result


def decode_cursor(cursor: str | None) -> int | None:
    """A fetch_agents page cursor (`offset:N`, made by the fake) to an offset; None if bad."""
    if cursor is None:
        return 0
    prefix, _, number = cursor.partition(":")
    return int(number) if prefix == "offset" and number.isdigit() else None


def empty_timeline(rid: str, agent_id: str, direction: str, projection: str) -> dict[str, Any]:
    """A timeline reply without rows (unknown agent)."""
    return {
        "requestId": rid,
        "agentId": agent_id,
        "agent": None,
        "direction": direction,
        "projection": projection,
        "epoch": "",
        "reset": False,
        "staleCursor": False,
        "gap": False,
        "window": {"minSeq": 0, "maxSeq": 0, "nextSeq": 1},
        "startCursor": None,
        "endCursor": None,
        "hasOlder": False,
        "hasNewer": False,
        "entries": [],
    }


def select_rows(
    agent: Agent, direction: str, cursor: dict[str, Any] | None, limit: int
) -> dict[str, Any]:
    """The rows a timeline request selects plus reset/staleCursor/gap/window/cursors."""
    rows = agent.rows
    min_seq = rows[0]["seq"] if rows else 0
    max_seq = rows[-1]["seq"] if rows else 0
    stale = cursor is not None and cursor["epoch"] != agent.epoch
    gap = not stale and cursor is not None and rows and cursor["seq"] < min_seq - 1
    if stale or gap or cursor is None:
        direction = "tail"
    if direction == "after":
        picked = [r for r in rows if r["seq"] > cursor["seq"]]  # type: ignore[index]
        picked = picked[:limit] if limit else picked
    elif direction == "before":
        picked = [r for r in rows if r["seq"] < cursor["seq"]]  # type: ignore[index]
        picked = picked[-limit:] if limit else picked
    else:
        picked = rows[-limit:] if limit else list(rows)
    first = picked[0]["seq"] if picked else None
    last = picked[-1]["seq"] if picked else None
    return {
        "reset": bool(stale or gap),
        "staleCursor": bool(stale),
        "gap": bool(gap),
        "window": {"minSeq": min_seq, "maxSeq": max_seq, "nextSeq": max_seq + 1},
        "startCursor": {"epoch": agent.epoch, "seq": first} if first is not None else None,
        "endCursor": {"epoch": agent.epoch, "seq": last} if last is not None else None,
        "hasOlder": first is not None and first > min_seq,
        "hasNewer": last is not None and last < max_seq,
        "rows": picked,
    }


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
