"""The WebSocket side of the fake Paseo daemon: sessions, requests and pushed events.

The real daemon's protocol (/work/shared/paseo-daemon.md) after the `GET /ws` upgrade, which
fake_paseo_daemon.py accepts and hands over (`WsHub.serve`; RFC 6455 framing in
fake_paseo_ws.py): the password check, hello within 15 s and its close codes, one `WsSession`
per clientId shared by its sockets and kept 90 s, `session` envelopes and requestId
correlation (rpc_error for bad or failed requests), the `*_request` handlers and the pushed
agent_stream, agent_update, permission, attention and providers_snapshot_update messages,
gated per appVersion.

Which Paseo it speaks is `FAKE_PASEO_VERSION` (fake_paseo_versions.py; the differences are
fields of `FakeRelease`, read here, never version strings; facts in
/work/shared/paseo-versions.md):

- `0.1.65`: legacy delivery: every agent_stream and global event to every socket, replies to
  every socket of the clientId; password only as the `paseo.bearer.<pw>` subprotocol.
- `0.5`: as 0.1.65 for sockets without capabilities; a hello with `selective_agent_timeline`
  gets agent_stream only for the agents its last `agent.timeline.set_subscription.request`
  named, and attention as `agent_attention_required`. Stream events carry `turnId`;
  `activeTurnBehavior: "steer"`; cancel with a requestId always answers; the socket lease.
- `current`: the legacy paths are gone. Every socket is an owned-subscription socket,
  whatever its hello says: a hello without `owned_subscriptions` is served, not refused (as
  the daemon will once the COMPAT branches are deleted), but it gets replies to its own
  requests and nothing pushed until it subscribes (`agent.timeline.set_subscription.request`,
  `session.events.set_subscription.request`, `fetch_agents_request.subscribe: {}`), and a
  client-chosen subscription id is refused. The password only in `hello.auth`.

Socket lease (0.5, current): once a socket sent a top-level `{"type":"ping"}`, it is
terminated (no close frame) after FAKE_PASEO_SOCKET_LEASE_SECONDS (default 45, not
time-scaled) without any inbound message.

It runs on the daemon's `Manager`, as one of its observers, so the agents are the ones the
JSON-lines side (the fake CLI) sees. The daemon imports this module and passes itself in;
this module never imports the daemon at run time (its TYPE_CHECKING import is for annotations).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fake_paseo_common import iso_now, js_trim
from fake_paseo_versions import FakeRelease, release
from fake_paseo_ws import WebSocket

if TYPE_CHECKING:
    from fake_paseo_daemon import Agent, Daemon

HELLO_TIMEOUT_S = 15.0  # not scaled by FAKE_PASEO_TIME_SCALE
SESSION_GRACE_S = 90.0
SOCKET_LEASE_ENV = "FAKE_PASEO_SOCKET_LEASE_SECONDS"
SOCKET_LEASE_S = 45.0  # APPLICATION_SOCKET_LEASE_MS, not time-scaled
SOCKET_LEASE_CHECK_S = 10.0  # APPLICATION_SOCKET_LEASE_CHECK_INTERVAL_MS
BEARER_PREFIX = "paseo.bearer."
ACTIVE_TURN_BEHAVIORS = ("interrupt", "steer")
TURN_ID_EVENTS = ("turn_started", "turn_completed", "turn_failed", "turn_canceled", "timeline")
# SessionEventSubscriptionSchema (an enum: any other name fails the whole request).
SESSION_EVENTS = (
    "project.update",
    "providers_snapshot_update",
    "agent_attention_required",
    "agent_permission_request",
    "agent_permission_resolved",
    "checkout_status_update",
    "script_status_update",
    "workspace_setup_progress",
    "agent.provider_subagents.update",
    "terminal_attention_required",
    "status.server_info",
    "status.daemon_config_changed",
    "status.plugin_catalog_changed",
    "status.plugin_settings_changed",
    "activity_log",
    "hub.execution.agent.update",
    "hub.execution.agent.stream",
    "browser.activity",
    "browser.handoff",
)
HOST_ASSIGNED_IDS = "Subscription IDs are assigned by the host"
CLIENT_TYPES = ("mobile", "browser", "cli", "mcp")
LEGACY_PROVIDERS = ("claude", "codex", "opencode")  # all an appVersion < 0.1.45 client sees
INTERNAL_EVENTS = ("usage_updated", "mode_changed", "model_changed", "thinking_option_changed")
STATUSES = ("initializing", "idle", "running", "error", "closed")
SORT_KEYS = ("status_priority", "created_at", "updated_at", "title")
STATUS_PRIORITY = {"running": 0, "initializing": 1, "error": 2, "idle": 3, "closed": 4}
TIMELINE_DEFAULT_LIMIT = 200


ATTACHMENT_KINDS = ("github_pr", "github_issue", "text", "review")
LATER_ATTACHMENT_KINDS = ("forge_change_request", "forge_issue", "uploaded_file")


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


def opt_images(msg: dict[str, Any]) -> list[dict[str, str]] | None:
    """`images`: `[{data (base64), mimeType}]` (every release)."""
    images = msg.get("images")
    if images is None:
        return None
    if not isinstance(images, list):
        raise SchemaError("images")
    for image in images:
        if not isinstance(image, dict):
            raise SchemaError("images")
        need_str(image, "data")
        need_str(image, "mimeType")
    return images


def opt_attachments(msg: dict[str, Any], later_kinds: bool) -> list[dict[str, Any]] | None:
    """`attachments`, a union on `type`: 0.1.65's kinds, and from 0.5 the forge ones and
    `uploaded_file`. A `text` one is `{mimeType: "text/plain", title?, text}`."""
    attachments = msg.get("attachments")
    if attachments is None:
        return None
    if not isinstance(attachments, list):
        raise SchemaError("attachments")
    kinds = ATTACHMENT_KINDS + (LATER_ATTACHMENT_KINDS if later_kinds else ())
    for item in attachments:
        if not isinstance(item, dict) or item.get("type") not in kinds:
            raise SchemaError("attachments")
        if item["type"] == "text":
            need_str(item, "text")
            opt_str(item, "title")
            if item.get("mimeType") != "text/plain":
                raise SchemaError("attachments")
    return attachments


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


def str_list(msg: dict[str, Any], key: str) -> list[str]:
    """A required list of strings."""
    value = msg.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SchemaError(key)
    return value


def valid_hello_auth(auth: Any) -> bool:
    """hello.auth: absent, `{kind: "password", password}` or `{kind: "localCredential", token}`."""
    if auth is None:
        return True
    if not isinstance(auth, dict):
        return False
    if auth.get("kind") == "password":
        return isinstance(auth.get("password"), str)
    return auth.get("kind") == "localCredential" and isinstance(auth.get("token"), str)


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


def wire_event(agent: Agent, event: dict[str, Any], turn_ids: bool) -> dict[str, Any] | None:
    """serializeAgentStreamEvent: internal events dropped, provider added, and `turnId` kept
    only where the release's schema has it (turn and timeline events)."""
    if event["type"] in INTERNAL_EVENTS:
        return None
    keep_turn_id = turn_ids and event["type"] in TURN_ID_EVENTS
    wire = {"type": event["type"], "provider": agent.provider}
    wire.update((k, v) for k, v in event.items() if k != "type" and (k != "turnId" or keep_turn_id))
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


def project_entries(
    rows: list[dict[str, Any]], provider: str, merge_reasoning: bool
) -> list[dict[str, Any]]:
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
    clients: dict[WebSocket, ClientSocket] = field(default_factory=dict)
    subscription: str | None = None  # the legacy agent_update subscription (one per Session)
    cleanup: asyncio.TimerHandle | None = None

    @property
    def sockets(self) -> list[WebSocket]:
        """Every socket attached to this Session."""
        return list(self.clients)

    def sees(self, provider: str) -> bool:
        """Old clients (appVersion < 0.1.45 or none) only see claude, codex and opencode."""
        return provider in LEGACY_PROVIDERS or app_version_at_least(self.app_version, (0, 1, 45))

    def send(self, message: dict[str, Any]) -> None:
        """Emit a session message to every legacy socket (dropped while none is attached).

        Owned-subscription sockets get only replies to their own requests and what they
        subscribed to, never what the Session emits for everyone.
        """
        data = json.dumps({"type": "session", "message": message})
        for client in list(self.clients.values()):
            if not client.owned:
                client.ws.send_text(data)


@dataclass(eq=False)
class OwnedSubscription:
    """One server-issued subscription of an owned socket (§2.4.3 of paseo-versions.md)."""

    id: str
    family: str  # "timeline" (agent_stream), "agents" (agent_update) or "events"
    agent_ids: frozenset[str] = frozenset()
    events: frozenset[str] = frozenset()


@dataclass(eq=False)
class ClientSocket:
    """One socket after its hello, with how it wants things delivered.

    `owned`: replies only to it, pushes only for its `subscriptions`, each tagged with the
    subscription's id. `selective` (a legacy socket of a 0.5 daemon that said
    `selective_agent_timeline`): agent_stream only for `timeline_agents`.
    """

    ws: WebSocket
    session: WsSession
    owned: bool = False
    selective: bool = False
    timeline_agents: frozenset[str] = frozenset()
    subscriptions: dict[str, OwnedSubscription] = field(default_factory=dict)

    def send(self, message: dict[str, Any]) -> None:
        """One session message to this socket only."""
        self.ws.send_text(json.dumps({"type": "session", "message": message}))

    def reply(self, message: dict[str, Any]) -> None:
        """The answer to a request from this socket: only here, or fanned out (legacy)."""
        if self.owned:
            self.send(message)
        else:
            self.session.send(message)

    def push(self, subscription: OwnedSubscription, message: dict[str, Any]) -> None:
        """A frame delivered for one subscription: `payload.subscriptionId` says which."""
        payload = {**message["payload"], "subscriptionId": subscription.id}
        self.send({**message, "payload": payload})

    def subscribed(self, family: str, agent_id: str) -> list[OwnedSubscription]:
        """This socket's live subscriptions of a family that cover one agent (or all)."""
        return [
            sub
            for sub in self.subscriptions.values()
            if sub.family == family and (family != "timeline" or agent_id in sub.agent_ids)
        ]

    def subscribed_to_event(self, event: str) -> list[OwnedSubscription]:
        """Its event subscriptions that listed `event`."""
        return [
            sub
            for sub in self.subscriptions.values()
            if sub.family == "events" and event in sub.events
        ]

    def subscribe(self, family: str, **scope: frozenset[str]) -> OwnedSubscription:
        """A new, independent subscription with a server-issued id."""
        subscription = OwnedSubscription(str(uuid.uuid4()), family, **scope)
        self.subscriptions[subscription.id] = subscription
        return subscription


class WsHub:
    """The WebSocket side of the fake daemon, on the same Manager the JSON-lines side uses."""

    def __init__(
        self,
        daemon: Daemon,
        *,
        op_error: type[Exception],
        git_root: Callable[[str], str],
        default_model: Callable[[str], str],
    ) -> None:
        """Observe `daemon.manager`; the rest is the daemon's, handed in (no import of it).

        `op_error` is the daemon's OpError: what the Manager raises for a failed request and
        what handlers raise for one (a handler_error reply). `git_root` maps a directory to the
        workspace an agent lives in, `default_model` a provider to the model it runs by default.
        """
        self.daemon = daemon
        self.manager = daemon.manager
        self.op_error = op_error
        self.git_root = git_root
        self.default_model = default_model
        self.release: FakeRelease = release()
        self.sessions: dict[str, WsSession] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.lease_s = float(os.environ.get(SOCKET_LEASE_ENV) or SOCKET_LEASE_S)
        self.lease_deadlines: dict[WebSocket, float] = {}
        self.handlers: dict[str, Callable[[ClientSocket, dict[str, Any]], Any]] = {
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
            "set_agent_mode_request": self.set_agent_mode,
            "agent_permission_response": self.permission_response,
            "clear_agent_attention": self.clear_attention,
            "get_providers_snapshot_request": self.providers_snapshot,
            "list_provider_models_request": self.provider_models,
            "fetch_agent_timeline_request": self.fetch_timeline,
            "open_project_request": self.open_project,
        }
        if self.release.selective_timeline or self.release.owned_subscriptions:
            self.handlers["agent.timeline.set_subscription.request"] = self.set_timeline
        if self.release.owned_subscriptions:
            self.handlers["session.events.set_subscription.request"] = self.set_events
            self.handlers["subscription.release.request"] = self.release_subscription
        self.manager.observers.append(self)

    def start(self, loading_s: float) -> None:
        """providers_snapshot_update once the providers leave their `loading` phase."""
        loop = asyncio.get_running_loop()
        loop.call_later(loading_s + 0.01, self.push_providers)
        if self.release.socket_lease:
            task = loop.create_task(self.expire_leases())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    # -- connections ----------------------------------------------------------------------

    async def serve(self, ws: WebSocket, bearer: str | None) -> None:
        """One upgraded socket: password, hello, then every message handled concurrently."""
        try:
            problem = self.password_problem(bearer) if self.release.header_auth else None
            if problem is not None:
                ws.close(4401, problem)
                await ws.drain_until_closed()
                return
            client = await self.await_hello(ws)
            if client is None:
                await ws.drain_until_closed()
                return
            try:
                while (raw := await ws.recv()) is not None:
                    self.renew_lease(ws)
                    self.on_message(client, raw)
            finally:
                self.detach(client)
        finally:
            self.lease_deadlines.pop(ws, None)

    def password_problem(self, bearer: str | None) -> str | None:
        """Checked after the upgrade, on the `paseo.bearer.<pw>` subprotocol only."""
        password = self.daemon.password
        if not password:
            return None
        if bearer is None:
            return "Password required"
        return None if bearer[len(BEARER_PREFIX) :] == password else "Incorrect password"

    async def await_hello(self, ws: WebSocket) -> ClientSocket | None:
        """Wait up to 15 s for a valid hello (top-level pings are answered meanwhile, except
        by the newest daemon, which closes 4002)."""
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
            self.renew_lease(ws)
            msg = parse_json_object(raw) if isinstance(raw, str) else None
            kind = msg.get("type") if msg is not None else None
            if kind == "ping" and self.release.ping_before_hello:
                self.claim_lease(ws)
                ws.send_text(json.dumps({"type": "pong"}))
            elif kind == "recording_state":
                continue
            elif kind in ("session", "ping"):
                ws.close(4002, "Session message before hello")
                return None
            elif kind != "hello" or msg is None:
                ws.close(4002, "Invalid hello")
                return None
            else:
                return self.hello(ws, msg)

    def hello(self, ws: WebSocket, msg: dict[str, Any]) -> ClientSocket | None:
        """Validate a hello (and its `auth`, where the release reads it) and attach the
        socket to its clientId's Session."""
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
            and (not self.release.hello_auth or valid_hello_auth(msg.get("auth")))
        )
        if not valid:
            ws.close(4002, "Invalid hello")
            return None
        if version != 1:
            ws.close(4003, "Incompatible protocol version")
            return None
        capabilities = msg.get("capabilities") or {}
        if self.release.hello_auth and not self.admitted(ws, msg, capabilities):
            return None
        assert isinstance(client_id, str)
        session = self.sessions.get(client_id.strip())
        if session is None:
            session = self.sessions[client_id.strip()] = WsSession(client_id.strip())
        if session.cleanup is not None:
            session.cleanup.cancel()
            session.cleanup = None
        session.app_version = msg.get("appVersion")
        session.capabilities = capabilities
        owned, selective = self.delivery(capabilities)
        client = ClientSocket(ws, session, owned=owned, selective=selective)
        session.clients[ws] = client
        client.send({"type": "status", "payload": self.server_info()})
        return client

    def admitted(self, ws: WebSocket, msg: dict[str, Any], capabilities: dict[str, Any]) -> bool:
        """hello.auth admission: `hello.rejected` (when the client can read it), then 4401."""
        password = self.daemon.password
        auth = msg.get("auth")
        if not password:
            return True
        if isinstance(auth, dict) and auth.get("kind") == "password":
            if auth.get("password") == password:
                return True
            reason, text = "incorrect_password", "Incorrect password"
        elif auth is None:
            reason, text = "password_required", "Password required"
        else:  # a local credential: the fake has none, so none is right
            reason, text = "incorrect_password", "Incorrect password"
        if auth is not None or capabilities.get("hello_rejection") is True:
            rejected = {"type": "hello.rejected", "reason": reason, "accepts": ["password"]}
            ws.send_text(json.dumps(rejected))
        ws.close(4401, text)
        return False

    def delivery(self, capabilities: dict[str, Any]) -> tuple[bool, bool]:
        """(owned, selective): how a socket with these hello capabilities gets its messages
        (see `ClientSocket`)."""
        owned = self.release.owned_subscriptions and (
            not self.release.legacy_delivery or capabilities.get("owned_subscriptions") is True
        )
        selective = (
            not owned
            and self.release.selective_timeline
            and capabilities.get("selective_agent_timeline") is True
        )
        return owned, selective

    def server_info(self) -> dict[str, Any]:
        """The `server_info` status payload (no speech capabilities in the fake)."""
        info: dict[str, Any] = {
            "status": "server_info",
            "serverId": self.daemon.server_id,
            "hostname": socket.gethostname(),
            "version": self.release.version,
        }
        if self.release.server_info_protocol_version:
            info["protocolVersion"] = 1
        if self.release.server_info_desktop_managed:
            info["desktopManaged"] = False
        info["features"] = dict.fromkeys(self.release.features, True)
        return info

    def detach(self, client: ClientSocket) -> None:
        """A socket closed (its subscriptions with it); the Session outlives its last socket
        by 90 s."""
        session = client.session
        session.clients.pop(client.ws, None)
        if not session.clients and session.cleanup is None:
            loop = asyncio.get_running_loop()
            session.cleanup = loop.call_later(SESSION_GRACE_S, self.drop_session, session)

    def drop_session(self, session: WsSession) -> None:
        """Grace period over: forget the Session and its subscription (agents keep running)."""
        session.cleanup = None
        if not session.clients and self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]

    def clients(self) -> list[ClientSocket]:
        """Every socket that said hello, across Sessions."""
        return [c for session in list(self.sessions.values()) for c in session.clients.values()]

    # -- socket lease ---------------------------------------------------------------------

    def claim_lease(self, ws: WebSocket) -> None:
        """A top-level ping: from now on the socket must send something within the lease."""
        if self.release.socket_lease:
            self.lease_deadlines[ws] = asyncio.get_running_loop().time() + self.lease_s

    def renew_lease(self, ws: WebSocket) -> None:
        """Any inbound message renews a claimed lease."""
        if ws in self.lease_deadlines:
            self.claim_lease(ws)

    async def expire_leases(self) -> None:
        """Terminate leased sockets that went silent (the real check runs every 10 s; a
        shortened lease is checked proportionally more often)."""
        interval = min(SOCKET_LEASE_CHECK_S, self.lease_s / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for ws, deadline in list(self.lease_deadlines.items()):
                if deadline <= now:
                    del self.lease_deadlines[ws]
                    ws.abort()

    # -- messages -------------------------------------------------------------------------

    def on_message(self, client: ClientSocket, raw: str | bytes) -> None:
        """One frame after hello; session requests run as concurrent tasks."""
        ws = client.ws
        if isinstance(raw, bytes):
            return  # binary frames only carry terminal/file streams: ignored
        msg = parse_json_object(raw)
        if msg is None:
            send_status_error(ws, "Invalid message: Unexpected token, not a JSON object")
            return
        kind = msg.get("type")
        if kind == "ping":
            self.claim_lease(ws)
            ws.send_text(json.dumps({"type": "pong"}))
        elif kind == "hello":
            ws.close(4002, "Unexpected hello")
        elif kind == "recording_state":
            pass
        elif kind == "session" and isinstance(msg.get("message"), dict):
            task = asyncio.get_running_loop().create_task(self.handle(client, msg["message"]))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif isinstance(msg.get("requestId"), str):
            rpc = rpc_error(msg["requestId"], None, "Invalid message", "invalid_message")
            ws.send_text(json.dumps({"type": "session", "message": rpc}))
        else:
            send_status_error(ws, f"Invalid message: unknown message type {kind!r}")

    async def handle(self, client: ClientSocket, msg: dict[str, Any]) -> None:
        """Validate and run one session request; the handler returns its reply (or None)."""
        rid = msg.get("requestId")
        kind = msg.get("type")
        rid = rid if isinstance(rid, str) else None
        reply: Any
        try:
            if kind == "ping":
                reply = self.session_ping(msg)
            else:
                handler = self.handlers.get(str(kind))
                if handler is None:
                    raise SchemaError("type")
                reply = handler(client, msg)
                if asyncio.iscoroutine(reply):
                    reply = await reply
        except SchemaError as exc:
            if rid is None:
                send_status_error(client.ws, f"Invalid message: invalid field {exc}")
                return
            reply = rpc_error(rid, kind, "Unknown request schema", "unknown_schema")
        except self.op_error as exc:
            self.activity_error(client.session, str(exc))
            reply = rpc_error(rid, kind, f"Request failed: {exc}", "handler_error")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in the fake must not kill the daemon
            self.daemon.log(f"ERROR {kind}: {exc!r}")
            reply = rpc_error(rid, kind, "Invalid message", "invalid_message") if rid else None
        if reply is not None:
            client.reply(reply)

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

    def publish(self, event: str, build: Callable[[ClientSocket], dict[str, Any] | None]) -> None:
        """A global event: broadcast to legacy sockets, to owned ones only if they subscribed
        to it (`session.events.set_subscription.request`). `build` may filter per socket."""
        for client in self.clients():
            subscriptions = client.subscribed_to_event(event) if client.owned else []
            if client.owned and not subscriptions:
                continue
            message = build(client)
            if message is None:
                continue
            if not client.owned:
                client.send(message)
            for subscription in subscriptions:
                client.push(subscription, message)

    # -- Manager observer -----------------------------------------------------------------

    def agent_stream(self, agent: Agent, event: dict[str, Any], row: dict[str, Any] | None) -> None:
        """agent_stream to every socket that wants this agent's stream (not gated by
        appVersion), plus the global permission copies."""
        wire = wire_event(agent, event, self.release.turn_ids)
        if wire is None:
            return
        message = stream_message(agent, wire, row)
        for client in self.clients():
            if client.owned:
                for subscription in client.subscribed("timeline", agent.id):
                    client.push(subscription, message)
            elif not client.selective or agent.id in client.timeline_agents:
                client.send(message)
        if event["type"] == "permission_requested":
            payload = {"agentId": agent.id, "request": event["request"]}
            request = {"type": "agent_permission_request", "payload": payload}
            self.publish("agent_permission_request", lambda _client: request)
        elif event["type"] == "permission_resolved":
            payload = {
                "agentId": agent.id,
                "requestId": event["requestId"],
                "resolution": event["resolution"],
            }
            resolved = {"type": "agent_permission_resolved", "payload": payload}
            self.publish("agent_permission_resolved", lambda _client: resolved)

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
        """agent_update: to Sessions with the legacy subscription and to owned subscribers."""
        message = {"type": "agent_update", "payload": payload}
        for session in list(self.sessions.values()):
            if not session.sees(agent.provider):
                continue
            if session.subscription is not None:
                session.send(message)
            for client in list(session.clients.values()):
                for subscription in client.subscribed("agents", agent.id) if client.owned else []:
                    client.push(subscription, message)

    def attention(self, agent: Agent, reason: str) -> None:
        """attention_required: a stream event without seq, sent after the turn end event;
        `agent_attention_required` for selective and owned sockets."""
        now = iso_now()
        title = agent.title or "Agent"
        bodies = {"finished": "Finished", "error": "Failed", "permission": "Needs permission"}
        data: dict[str, Any] = {"serverId": self.daemon.server_id}
        if self.release.workspace_ids:
            data["workspaceId"] = agent.cwd
        data.update(agentId=agent.id, reason=reason)
        notification = {"title": title, "body": bodies.get(reason, reason), "data": data}
        event = {
            "type": "attention_required",
            "provider": agent.provider,
            "reason": reason,
            "timestamp": now,
            "shouldNotify": False,
            "notification": notification,
        }
        in_stream = stream_message(agent, event, None)
        payload = {
            "agentId": agent.id,
            "reason": reason,
            "timestamp": now,
            "shouldNotify": False,
            "notification": notification,
        }
        direct = {"type": "agent_attention_required", "payload": payload}
        self.publish(
            "agent_attention_required",
            lambda client: direct if client.owned or client.selective else in_stream,
        )

    def push_providers(self) -> None:
        """providers_snapshot_update to every Session, filtered per appVersion."""
        self.publish(
            "providers_snapshot_update",
            lambda client: {
                "type": "providers_snapshot_update",
                "payload": {
                    "entries": self.provider_entries(client.session),
                    "generatedAt": iso_now(),
                },
            },
        )

    # -- requests -------------------------------------------------------------------------

    def fetch_agents(self, client: ClientSocket, msg: dict[str, Any]) -> dict[str, Any]:
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
            if client.session.sees(a.provider)
            and all(a.labels.get(k) == v for k, v in labels.items())
            and (statuses is None or a.status in statuses)
            and (attention is None or (a.attention_reason is not None) == attention)
            and (thinking is None or (a.thinking or "auto") == thinking)
        ]
        agents = sort_agents(agents, sort)
        chunk = agents[offset : offset + limit]
        has_more = offset + limit < len(agents)
        payload: dict[str, Any] = {"requestId": rid}
        if subscribe is not None and client.owned:
            if subscription is not None:
                raise self.op_error(HOST_ASSIGNED_IDS)
            payload["subscriptionId"] = client.subscribe("agents").id
        elif subscribe is not None:
            client.session.subscription = subscription or str(uuid.uuid4())
            payload["subscriptionId"] = client.session.subscription
        payload["entries"] = [
            {"agent": a.wire_snapshot(), "project": placement(a.cwd)} for a in chunk
        ]
        payload["pageInfo"] = {
            "nextCursor": f"offset:{offset + limit}" if has_more else None,
            "prevCursor": f"offset:{max(offset - limit, 0)}" if offset else None,
            "hasMore": has_more,
        }
        return {"type": "fetch_agents_response", "payload": payload}

    def fetch_agent(self, client: ClientSocket, msg: dict[str, Any]) -> dict[str, Any]:
        """One agent by id, prefix or title; failures are reported in the payload."""
        rid = need_str(msg, "requestId")
        ident = need_str(msg, "agentId")
        payload: dict[str, Any] = {"requestId": rid, "agent": None, "project": None, "error": None}
        try:
            agent = self.manager.resolve(ident)
            if not client.session.sees(agent.provider):
                raise self.op_error(f"Agent not found: {ident}")
        except self.op_error as exc:
            payload["error"] = str(exc)
        else:
            payload.update(agent=agent.wire_snapshot(), project=placement(agent.cwd))
        return {"type": "fetch_agent_response", "payload": payload}

    def create_agent(self, _client: ClientSocket, msg: dict[str, Any]) -> dict[str, Any]:
        """agent_created after the first prompt was dispatched (its events come first).

        0.1.65 answers with the snapshot taken before the run (`idle`); later daemons wait
        for the run to start and answer with the live one (`running`, its activeTurn).
        """
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
            "images": opt_images(msg),
            "attachments": opt_attachments(msg, self.release.forge_attachments),
        }
        try:
            agent = self.manager.create_idle(req)
        except self.op_error as exc:
            failed = {"status": "agent_create_failed", "requestId": rid, "error": str(exc)}
            return {"type": "status", "payload": failed}
        snapshot = agent.wire_snapshot()
        self.manager.start_initial_turn(agent, req)
        if self.release.turn_started_first:
            snapshot = agent.wire_snapshot()
        payload = {
            "status": "agent_created",
            "agentId": agent.id,
            "requestId": rid,
            "agent": snapshot,
        }
        return {"type": "status", "payload": payload}

    def import_agent(self, _client: ClientSocket, msg: dict[str, Any]) -> dict[str, Any]:
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
        except self.op_error as exc:
            failed = {"status": "agent_create_failed", "requestId": rid, "error": str(exc)}
            return {"type": "status", "payload": failed}
        payload = {
            "status": "agent_resumed",
            "agentId": agent.id,
            "requestId": rid,
            "timelineSize": len(agent.rows),
            "agent": agent.wire_snapshot(),
        }
        return {"type": "status", "payload": payload}

    def send_agent_message(self, _client: ClientSocket, msg: dict[str, Any]) -> dict[str, Any]:
        """Record the user_message and start a run, replacing a running turn.

        With steering, `activeTurnBehavior: "steer"` hands the text to a running turn instead
        (the mock always accepts); with no turn running it starts one as usual. Releases
        without steering strip the field (and so interrupt).
        """
        rid = need_str(msg, "requestId")
        ident = need_str(msg, "agentId")
        text = need_str(msg, "text")
        message_id = opt_str(msg, "messageId")
        media = {
            "images": opt_images(msg),
            "attachments": opt_attachments(msg, self.release.forge_attachments),
        }
        behavior = msg.get("activeTurnBehavior") if self.release.steering else None
        if behavior is not None and behavior not in ACTIVE_TURN_BEHAVIORS:
            raise SchemaError("activeTurnBehavior")
        payload: dict[str, Any] = {"requestId": rid, "agentId": ident, "accepted": False}
        try:
            agent = self.manager.resolve(ident)
            steered = behavior == "steer" and self.manager.steer_turn(agent, text, message_id)
            if not steered:
                self.manager.start_turn(agent, text, message_id, media)  # as sent, untrimmed
        except self.op_error as exc:
            payload["error"] = str(exc)
        else:
            payload.update(agentId=agent.id, accepted=True, error=None)
        return {"type": "send_agent_message_response", "payload": payload}

    async def wait_for_finish(self, client: ClientSocket, msg: dict[str, Any]) -> dict[str, Any]:
        """idle | error | permission | timeout; an unknown id is an `error` outcome."""
        rid = need_str(msg, "requestId")
        ident = need_str(msg, "agentId")
        timeout_ms = opt_int(msg, "timeoutMs", 1) or 0
        try:
            agent = self.manager.resolve(ident)
        except self.op_error as exc:
            state: dict[str, Any] = {"status": "error", "error": str(exc), "lastMessage": None}
            final = None
        else:
            state = await self.manager.wait_for_finish(agent, timeout_ms)
            visible = not agent.deleted and client.session.sees(agent.provider)
            final = agent.wire_snapshot() if visible and state["final"] is not None else None
        payload = {
            "requestId": rid,
            "status": state["status"],
            "final": final,
            "error": state["error"],
            "lastMessage": state["lastMessage"],
        }
        return {"type": "wait_for_finish_response", "payload": payload}

    def cancel_agent(self, client: ClientSocket, msg: dict[str, Any]) -> dict[str, Any] | None:
        """Interrupt a loaded agent. Unknown or not-loaded agents get no reply at all in
        0.1.65; from 0.1.108 a cancel with a requestId is always answered (`error` set)."""
        agent_id = need_str(msg, "agentId")
        rid = opt_str(msg, "requestId")
        agent = self.manager.agents.get(agent_id)
        answered = rid is not None and self.release.cancel_always_replies
        if agent is None or not agent.live:
            if not answered:
                self.activity_error(client.session, f"Agent not found: {agent_id}")
                return None
            error = f"Agent {agent_id} not found"
            failed = {"requestId": rid, "agentId": agent_id, "agent": None, "error": error}
            return {"type": "cancel_agent_response", "payload": failed}
        self.manager.interrupt(agent)
        if rid is None:
            return None
        payload: dict[str, Any] = {"requestId": rid, "agentId": agent.id}
        payload["agent"] = agent.wire_snapshot()
        if answered:
            payload["error"] = None
        return {"type": "cancel_agent_response", "payload": payload}

    def archive_agent(self, _client: ClientSocket, msg: dict[str, Any]) -> dict[str, Any]:
        """Interrupt, flag, close; an unknown id is a handler_error."""
        rid = need_str(msg, "requestId")
        agent = self.exact_agent(need_str(msg, "agentId"))
        archived_at = self.manager.archive(agent)
        payload = {"agentId": agent.id, "archivedAt": archived_at, "requestId": rid}
        return {"type": "agent_archived", "payload": payload}

    def delete_agent(self, _client: ClientSocket, msg: dict[str, Any]) -> dict[str, Any]:
        """Remove the agent; success even for an unknown id."""
        rid = need_str(msg, "requestId")
        agent_id = need_str(msg, "agentId")
        agent = self.manager.agents.get(agent_id)
        if agent is not None:
            self.manager.delete(agent)
        return {"type": "agent_deleted", "payload": {"agentId": agent_id, "requestId": rid}}

    def update_agent(self, _client: ClientSocket, msg: dict[str, Any]) -> dict[str, Any]:
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

    def set_agent_mode(self, _client: ClientSocket, msg: dict[str, Any]) -> dict[str, Any]:
        """Switch a loaded agent's mode; an unknown one is accepted:false."""
        rid = need_str(msg, "requestId")
        agent_id = need_str(msg, "agentId")
        mode_id = need_str(msg, "modeId")
        payload: dict[str, Any] = {"requestId": rid, "agentId": agent_id}
        agent = self.manager.agents.get(agent_id)
        if agent is None:  # worded unlike update_agent's, as the real daemon words it
            payload.update(accepted=False, error=f"Unknown agent '{agent_id}'")
        else:
            self.manager.set_mode(agent, mode_id)
            payload.update(accepted=True, error=None)
        return {"type": "set_agent_mode_response", "payload": payload}

    def permission_response(
        self, client: ClientSocket, msg: dict[str, Any]
    ) -> dict[str, Any] | None:
        """permission_resolved on the stream (failures: handler_error); an owned socket also
        gets `agent_permission_resolved` as the reply."""
        agent_id = need_str(msg, "agentId")
        need_str(msg, "requestId")
        response = msg.get("response")
        if not isinstance(response, dict) or response.get("behavior") not in ("allow", "deny"):
            raise SchemaError("response")
        agent = self.exact_agent(agent_id)
        self.manager.respond_permission(agent, msg["requestId"], response)
        if not client.owned:
            return None
        payload = {"agentId": agent.id, "requestId": msg["requestId"], "resolution": response}
        return {"type": "agent_permission_resolved", "payload": payload}

    # -- subscriptions (0.5 selective timelines; owned subscriptions) ---------------------

    def set_timeline(self, client: ClientSocket, msg: dict[str, Any]) -> None:
        """agent.timeline.set_subscription.request: an owned socket gets one more independent
        subscription; a selective one replaces its list (`[]` = none); either way the answer
        goes to this socket only."""
        rid = need_str(msg, "requestId")
        agent_ids = sorted(set(str_list(msg, "agentIds")))
        requested = opt_str(msg, "subscriptionId")
        payload: dict[str, Any] = {"requestId": rid, "agentIds": agent_ids}
        if client.owned:
            if requested is not None:
                raise self.op_error(HOST_ASSIGNED_IDS)
            subscription = client.subscribe("timeline", agent_ids=frozenset(agent_ids))
            payload["subscriptionId"] = subscription.id
        elif client.selective:
            client.timeline_agents = frozenset(agent_ids)
        client.send({"type": "agent.timeline.set_subscription.response", "payload": payload})

    def set_events(self, client: ClientSocket, msg: dict[str, Any]) -> dict[str, Any]:
        """session.events.set_subscription.request: the listed global events from now on."""
        rid = need_str(msg, "requestId")
        events = str_list(msg, "events")
        if any(event not in SESSION_EVENTS for event in events):
            raise SchemaError("events")
        if opt_str(msg, "subscriptionId") is not None:
            raise self.op_error(HOST_ASSIGNED_IDS)
        subscription = client.subscribe("events", events=frozenset(events))
        payload = {"requestId": rid, "subscriptionId": subscription.id}
        return {"type": "session.events.set_subscription.response", "payload": payload}

    def release_subscription(self, client: ClientSocket, msg: dict[str, Any]) -> dict[str, Any]:
        """subscription.release.request: ends one of this socket's subscriptions (an unknown
        id is answered the same way)."""
        rid = need_str(msg, "requestId")
        subscription_id = need_str(msg, "subscriptionId")
        client.subscriptions.pop(subscription_id, None)
        payload = {"requestId": rid, "subscriptionId": subscription_id}
        return {"type": "subscription.release.response", "payload": payload}

    def clear_attention(self, _client: ClientSocket, msg: dict[str, Any]) -> dict[str, Any] | None:
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

    def providers_snapshot(self, client: ClientSocket, msg: dict[str, Any]) -> dict[str, Any]:
        """Provider entries (models included once ready), filtered per appVersion."""
        rid = need_str(msg, "requestId")
        opt_str(msg, "cwd")
        payload = {
            "requestId": rid,
            "generatedAt": iso_now(),
            "entries": self.provider_entries(client.session),
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
        default = self.default_model(provider)
        return [
            {"provider": provider, **model, "isDefault": model["id"] == default}
            for model in self.manager.provider_models(provider)
        ]

    def provider_models(self, client: ClientSocket, msg: dict[str, Any]) -> dict[str, Any]:
        """list_provider_models: models, or `error` in the payload."""
        rid = need_str(msg, "requestId")
        provider = need_str(msg, "provider")
        opt_str(msg, "cwd")
        payload: dict[str, Any] = {"provider": provider}
        try:
            if not client.session.sees(provider):
                raise self.op_error(f"Unknown provider '{provider}'")
            payload["models"] = self.wire_models(provider)
        except self.op_error as exc:
            payload["error"] = str(exc)
        payload.update(fetchedAt=iso_now(), requestId=rid)
        return {"type": "list_provider_models_response", "payload": payload}

    def fetch_timeline(self, client: ClientSocket, msg: dict[str, Any]) -> dict[str, Any]:
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
        merge_reasoning = bool(client.session.capabilities.get("reasoning_merge_enum"))
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
            "agent": agent.wire_snapshot() if client.session.sees(agent.provider) else None,
            "direction": direction,
            "projection": projection,
            "epoch": agent.epoch,
            **window,
            "entries": entries,
            "error": None,
        }
        return {"type": "fetch_agent_timeline_response", "payload": payload}

    def open_project(self, _client: ClientSocket, msg: dict[str, Any]) -> dict[str, Any]:
        """Register the directory (its git root) as a workspace, so lists show its agents."""
        rid = need_str(msg, "requestId")
        raw = need_str(msg, "cwd")
        path = self.git_root(os.path.abspath(os.path.expanduser(raw)))
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
            raise self.op_error(f"Agent not found: {agent_id}")
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


def stream_message(
    agent: Agent, event: dict[str, Any], row: dict[str, Any] | None
) -> dict[str, Any]:
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
