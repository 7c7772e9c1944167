"""The fake Paseo daemon's WebSocket listener against /work/shared/paseo-daemon.md.

A future WebSocket transport of the gateway will be tested against this fake, so these tests pin
the protocol facts it relies on: handshake and close codes, password and host checks, appVersion
gating, reply shapes and quirks (replies that never come), stream ordering, seq/epoch replay,
and that the WebSocket and the fake CLI share one daemon state. Every wait is on a message or a
condition, with a timeout; none sleeps.

The fake speaks three releases (FAKE_PASEO_VERSION, /work/shared/paseo-versions.md): the tests
up to "Later releases" pin 0.1.65; those after it run daemons of 0.5.0-beta.4 and of `current`
(the newest Paseo with its legacy delivery and auth paths removed).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.fakes.harness import FakePaseoDaemon

SCALE = 0.05  # a "ten-second-stream" turn lasts 0.5 s
LEASE_S = 2.0  # the socket lease of the 0.5 and current daemons here (45 s in Paseo)
INSTANT = "emit 3 coalesced agent stream updates"
INSTANT_REPLY = "stress-update-0stress-update-1stress-update-2"
WAIT_S = 20.0  # generous: the machine may be busy
TURN_ENDS = ("turn_completed", "turn_failed", "turn_canceled")

Message = dict[str, Any]


class Peer:
    """One WebSocket client: sends session requests, keeps every frame it has read.

    Waits are conditions over everything read so far (`seen`), because stream events of a
    request can arrive before its reply.
    """

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[Message] = []

    @classmethod
    async def open(
        cls,
        daemon: FakePaseoDaemon,
        client_id: str | None = None,
        app_version: str | None = "0.1.65",
        **hello: Any,
    ) -> Peer:
        """Connect and say hello; returns once server_info arrived."""
        ws = await websockets.connect(
            daemon.ws_url,
            subprotocols=daemon.ws_subprotocols or None,  # type: ignore[arg-type]
            max_size=None,
        )
        peer = cls(ws)
        await peer.hello(client_id or f"gw_{uuid.uuid4().hex}", app_version, **hello)
        return peer

    async def hello(self, client_id: str, app_version: str | None, **extra: Any) -> Message:
        message = {
            "type": "hello",
            "clientId": client_id,
            "clientType": "cli",
            "protocolVersion": 1,
        }
        if app_version is not None:
            message["appVersion"] = app_version
        message.update(extra)
        await self.ws.send(json.dumps(message))
        return await self.next(lambda m: payload(m).get("status") == "server_info")

    async def send(self, kind: str, **fields: Any) -> str:
        """Send a session request; returns its requestId."""
        rid = fields.pop("requestId", None) or str(uuid.uuid4())
        inner = {"type": kind, "requestId": rid, **fields}
        await self.ws.send(json.dumps({"type": "session", "message": inner}))
        return rid

    async def request(self, kind: str, **fields: Any) -> Message:
        """Send a request and return the inner reply message carrying its requestId."""
        rid = await self.send(kind, **fields)
        return await self.reply(rid)

    async def reply(self, rid: str) -> Message:
        """The inner message whose payload.requestId is `rid`."""
        return inner(await self.next(lambda m: payload(m).get("requestId") == rid))

    async def until(self, cond: Callable[[], Any], timeout: float = WAIT_S) -> Any:
        """Read frames until `cond()` is truthy; returns its value."""
        async with asyncio.timeout(timeout):
            while not (result := cond()):
                self.seen.append(json.loads(await self.ws.recv()))
        return result

    async def next(self, pred: Callable[[Message], bool], timeout: float = WAIT_S) -> Message:
        """The first frame read (so far or from now on) that satisfies `pred`."""
        message: Message = await self.until(
            lambda: next((m for m in self.seen if pred(m)), None), timeout
        )
        return message

    def stream(self, agent_id: str) -> list[Message]:
        """agent_stream payloads of one agent read so far, in order."""
        return [
            payload(m)
            for m in self.seen
            if inner(m).get("type") == "agent_stream" and payload(m)["agentId"] == agent_id
        ]

    async def stream_event(self, agent_id: str, event_type: str, nth: int = 1) -> Message:
        """The `nth` agent_stream payload of `agent_id` with this event type."""

        def found() -> Message | None:
            matches = [p for p in self.stream(agent_id) if p["event"]["type"] == event_type]
            return matches[nth - 1] if len(matches) >= nth else None

        result: Message = await self.until(found)
        return result

    async def close(self) -> None:
        await self.ws.close()


def inner(message: Message) -> Message:
    """The session message inside a frame ({} for top-level frames)."""
    return message.get("message") or {} if message.get("type") == "session" else {}


def payload(message: Message) -> Message:
    """Its payload ({} when none)."""
    return inner(message).get("payload") or {}


async def close_of(ws: ClientConnection) -> tuple[int, str]:
    """Read until the daemon closes the socket; its close code and reason."""
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        assert exc.rcvd is not None
        return exc.rcvd.code, exc.rcvd.reason
    raise AssertionError("unreachable")


def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """A plain HTTP GET against the daemon; (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_S)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def create_fields(cwd: Path, prompt: str, model: str = "ten-second-stream", **extra: Any) -> Any:
    """create_agent_request fields for a mock agent."""
    config = {"provider": "mock", "cwd": str(cwd), "model": model, "title": "ws-test"}
    return {"config": config, "initialPrompt": prompt, **extra}


def release_env(mode: str) -> dict[str, str]:
    """The daemon environment of one release (set even for 0.1.65, whatever the caller's)."""
    return {"FAKE_PASEO_VERSION": mode, "FAKE_PASEO_SOCKET_LEASE_SECONDS": str(LEASE_S)}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakePaseoDaemon]:
    home = tmp_path_factory.mktemp("ws-home")
    with FakePaseoDaemon(home, time_scale=SCALE, extra_env=release_env("0.1.65")) as fake:
        yield fake


@pytest.fixture(scope="module")
def daemon_05(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakePaseoDaemon]:
    home = tmp_path_factory.mktemp("ws-home-05")
    with FakePaseoDaemon(home, time_scale=SCALE, extra_env=release_env("0.5")) as fake:
        yield fake


@pytest.fixture(scope="module")
def daemon_current(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakePaseoDaemon]:
    home = tmp_path_factory.mktemp("ws-home-current")
    with FakePaseoDaemon(home, time_scale=SCALE, extra_env=release_env("current")) as fake:
        yield fake


@pytest.fixture(scope="module")
def project() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="wsp", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def peer(daemon: FakePaseoDaemon) -> AsyncIterator[Peer]:
    client = await Peer.open(daemon)
    yield client
    await client.close()


async def create(peer: Peer, cwd: Path, prompt: str, **kwargs: Any) -> str:
    """Create a mock agent and return its id (after agent_created)."""
    reply = await peer.request("create_agent_request", **create_fields(cwd, prompt, **kwargs))
    assert reply["payload"]["status"] == "agent_created", reply
    return str(reply["payload"]["agentId"])


# ---------------------------------------------------------------------------------------------
# HTTP on the same port


def test_http_probes_and_host_check(daemon: FakePaseoDaemon) -> None:
    assert daemon.port is not None
    status, body = http_get(daemon.port, "/api/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert "timestamp" in json.loads(body)
    status, body = http_get(daemon.port, "/api/status")
    info = json.loads(body)
    assert status == 200 and info["status"] == "server_info"
    assert info["listen"] == f"127.0.0.1:{daemon.port}" and info["version"] == "0.1.65-beta.5"
    assert set(info) == {"status", "serverId", "hostname", "version", "listen"}
    assert http_get(daemon.port, "/nope")[0] == 404
    assert http_get(daemon.port, "/api/health", {"Host": "evil.example"}) == (
        403,
        "Host not allowed",
    )
    assert http_get(daemon.port, "/api/health", {"Host": "app.localhost:9"})[0] == 200


async def test_upgrade_host_and_origin_checks(daemon: FakePaseoDaemon) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(daemon.ws_url, origin="http://evil.example")  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    assert refused.value.response.body == b"Origin not allowed"
    same = f"http://127.0.0.1:{daemon.port}"
    async with websockets.connect(daemon.ws_url, origin=same) as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}
    reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    async with asyncio.timeout(WAIT_S):
        response = await reader.read()
    writer.close()
    assert response.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert response.endswith(b"\r\n\r\nHost not allowed")


# ---------------------------------------------------------------------------------------------
# Handshake, close codes, envelope errors


async def test_hello_and_close_codes(daemon: FakePaseoDaemon) -> None:
    async def closed_after(*frames: str | bytes) -> tuple[int, str]:
        async with websockets.connect(daemon.ws_url) as ws:
            for frame in frames:
                await ws.send(frame)
            return await close_of(ws)

    hello = {"type": "hello", "clientId": "c1", "clientType": "cli", "protocolVersion": 1}
    assert await closed_after(json.dumps(hello | {"protocolVersion": 2})) == (
        4003,
        "Incompatible protocol version",
    )
    assert await closed_after(json.dumps(hello | {"clientType": "robot"})) == (
        4002,
        "Invalid hello",
    )
    assert await closed_after(json.dumps(hello | {"clientId": "  "})) == (4002, "Invalid hello")
    assert await closed_after("not json") == (4002, "Invalid hello")
    assert await closed_after(b"\x00binary") == (4002, "Invalid hello")
    assert await closed_after(json.dumps({"type": "session", "message": {}})) == (
        4002,
        "Session message before hello",
    )
    # A ping before hello is answered; a second hello closes the socket.
    async with websockets.connect(daemon.ws_url) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}
        await ws.send(json.dumps(hello))
        info = json.loads(await ws.recv())
        assert info["type"] == "session" and info["message"]["type"] == "status"
        assert info["message"]["payload"]["status"] == "server_info"
        assert info["message"]["payload"]["features"] == {"providersSnapshot": True}
        await ws.send(json.dumps(hello))
        assert await close_of(ws) == (4002, "Unexpected hello")


async def test_envelope_errors_and_session_ping(peer: Peer) -> None:
    await peer.ws.send("{not json")
    error = await peer.next(lambda m: payload(m).get("status") == "error")
    assert payload(error)["message"].startswith("Invalid message")
    unknown = await peer.request("frobnicate_request")
    assert unknown == {
        "type": "rpc_error",
        "payload": {
            "requestId": unknown["payload"]["requestId"],
            "requestType": "frobnicate_request",
            "error": "Unknown request schema",
            "code": "unknown_schema",
        },
    }
    too_many = await peer.request("fetch_agents_request", page={"limit": 500})
    assert (too_many["type"], too_many["payload"]["code"]) == ("rpc_error", "unknown_schema")
    empty_title = create_fields(Path("/tmp"), INSTANT)
    empty_title["config"]["title"] = ""
    bad = await peer.request("create_agent_request", **empty_title)
    assert (bad["type"], bad["payload"]["code"]) == ("rpc_error", "unknown_schema")
    pong = await peer.request("ping", clientSentAt=123)
    assert pong["type"] == "pong" and pong["payload"]["clientSentAt"] == 123
    assert {"serverReceivedAt", "serverSentAt"} <= set(pong["payload"])


@pytest.mark.slow
async def test_hello_timeout_is_15_seconds_whatever_the_time_scale(
    daemon: FakePaseoDaemon,
) -> None:
    loop = asyncio.get_running_loop()
    async with websockets.connect(daemon.ws_url) as ws:
        started = loop.time()
        assert await close_of(ws) == (4001, "Hello timeout")
    assert 14 < loop.time() - started < WAIT_S


async def test_password_subprotocol(tmp_path: Path) -> None:
    with FakePaseoDaemon(
        tmp_path / "home", time_scale=SCALE, password="s3cret", extra_env=release_env("0.1.65")
    ) as fake:
        assert fake.port is not None
        for offered, reason in (
            (None, "Password required"),
            (["paseo.bearer.wrong"], "Incorrect password"),
        ):
            async with websockets.connect(fake.ws_url, subprotocols=offered) as ws:  # type: ignore[arg-type]
                assert await close_of(ws) == (4401, reason)
        client = await Peer.open(fake)
        assert client.ws.subprotocol == "paseo.bearer.s3cret"
        await client.close()
        assert http_get(fake.port, "/api/status")[0] == 401
        authorized = {"Authorization": "Bearer s3cret"}
        assert json.loads(http_get(fake.port, "/api/status", authorized)[1])["serverId"]
        assert http_get(fake.port, "/api/health")[0] == 200
        assert fake.cli("ls", "--json").stdout == "[]\n"  # the JSON-lines side still works


# ---------------------------------------------------------------------------------------------
# Agents


async def test_worked_example_of_the_fact_sheet(peer: Peer, project: Path) -> None:
    labels = {"gw.session": "s1"}
    rid = await peer.send(
        "create_agent_request",
        **create_fields(project, INSTANT, clientMessageId="m-1", labels=labels),
    )
    created = await peer.reply(rid)
    assert created["type"] == "status" and created["payload"]["status"] == "agent_created"
    agent_id = created["payload"]["agentId"]
    assert created["payload"]["agent"]["labels"] == labels
    assert created["payload"]["agent"]["status"] == "idle"
    # The first prompt was dispatched before the reply: its user_message came first.
    before = peer.seen[
        : next(i for i, m in enumerate(peer.seen) if payload(m) is created["payload"])
    ]
    first = [payload(m) for m in before if inner(m).get("type") == "agent_stream"]
    assert first[0]["agentId"] == agent_id and first[0]["seq"] == 1
    assert first[0]["event"] == {
        "type": "timeline",
        "provider": "mock",
        "item": {"type": "user_message", "text": INSTANT, "messageId": "m-1"},
    }
    await peer.stream_event(agent_id, "attention_required")
    waited = await peer.request("wait_for_finish_request", agentId=agent_id, timeoutMs=60000)
    assert waited["type"] == "wait_for_finish_response"
    assert waited["payload"]["status"] == "idle" and waited["payload"]["error"] is None
    assert waited["payload"]["lastMessage"] == INSTANT_REPLY
    assert waited["payload"]["final"]["id"] == agent_id
    events = [p["event"]["type"] for p in peer.stream(agent_id)]
    assert events == [
        "timeline",
        "turn_started",
        "timeline",
        "turn_completed",
        "attention_required",
    ]
    stream = peer.stream(agent_id)
    assert stream[2]["seq"] == 2 and stream[2]["epoch"] == stream[0]["epoch"]
    assert stream[2]["event"]["item"] == {"type": "assistant_message", "text": INSTANT_REPLY}
    assert all("seq" not in p and "epoch" not in p for p in stream[1::2])
    assert stream[4]["event"]["reason"] == "finished"


async def test_ten_second_stream(peer: Peer, project: Path) -> None:
    agent_id = await create(peer, project, "write a haiku", model="ten-second-stream")
    await peer.until(lambda: any(p["event"]["type"] in TURN_ENDS for p in peer.stream(agent_id)))
    waited = await peer.request("wait_for_finish_request", agentId=agent_id)
    assert waited["payload"]["lastMessage"].endswith("_(end of synthetic stream)_\n")
    stream = peer.stream(agent_id)
    timeline = [p for p in stream if p["event"]["type"] == "timeline"]
    assert [p["seq"] for p in timeline] == list(range(1, len(timeline) + 1))
    assert len(timeline) > 20 and len({p["epoch"] for p in timeline}) == 1
    kinds = [p["event"]["type"] for p in stream]
    assert [k for k in kinds if k in TURN_ENDS] == ["turn_completed"]
    assert "usage_updated" not in kinds
    assert all("turnId" not in p["event"] for p in stream)
    items = {p["event"]["item"]["type"] for p in timeline}
    assert {"assistant_message", "reasoning", "tool_call"} <= items
    assert stream[kinds.index("turn_completed")]["event"]["usage"]["outputTokens"] > 0


async def test_cancel_and_send_while_running(peer: Peer, project: Path) -> None:
    agent_id = await create(peer, project, "write a long story", model="five-minute-stream")
    await peer.stream_event(agent_id, "turn_started")
    sent = await peer.request(
        "send_agent_message_request", agentId=agent_id, text="  another one  ", messageId="m-2"
    )
    assert sent["payload"] == {
        "requestId": sent["payload"]["requestId"],
        "agentId": agent_id,
        "accepted": True,
        "error": None,
    }
    canceled = await peer.stream_event(agent_id, "turn_canceled")
    assert canceled["event"] == {
        "type": "turn_canceled",
        "provider": "mock",
        "reason": "Interrupted",
    }
    user = await peer.next(
        lambda m: (
            inner(m).get("type") == "agent_stream"
            and payload(m)["agentId"] == agent_id
            and payload(m)["event"].get("item", {}).get("messageId") == "m-2"
        )
    )
    assert payload(user)["event"]["item"]["messageId"] == "m-2"
    assert (
        payload(user)["event"]["item"]["text"] == "  another one  "
    )  # send records the text as sent
    await peer.stream_event(agent_id, "turn_started", nth=2)
    cancel = await peer.request("cancel_agent_request", agentId=agent_id)
    assert cancel["type"] == "cancel_agent_response" and cancel["payload"]["agentId"] == agent_id
    await peer.stream_event(agent_id, "turn_canceled", nth=2)
    waited = await peer.request("wait_for_finish_request", agentId=agent_id, timeoutMs=10000)
    assert waited["payload"]["status"] == "idle"
    kinds = [p["event"]["type"] for p in peer.stream(agent_id)]
    assert [k for k in kinds if k in TURN_ENDS] == ["turn_canceled", "turn_canceled"]
    assert kinds.count("turn_started") == 2


async def test_cancel_of_an_unknown_agent_gets_no_reply(peer: Peer) -> None:
    rid = await peer.send("cancel_agent_request", agentId="no-such-agent")
    await peer.next(lambda m: inner(m).get("type") == "activity_log")
    barrier = await peer.request("ping", clientSentAt=1)  # handled after the cancel
    assert barrier["type"] == "pong"
    with pytest.raises(TimeoutError):
        await peer.next(lambda m: payload(m).get("requestId") == rid, timeout=0.5)


async def test_archive_and_delete(peer: Peer, project: Path) -> None:
    agent_id = await create(peer, project, INSTANT)
    archived = await peer.request("archive_agent_request", agentId=agent_id)
    assert archived["type"] == "agent_archived"
    assert archived["payload"]["agentId"] == agent_id and archived["payload"]["archivedAt"]
    again = await peer.request("archive_agent_request", agentId=agent_id)
    assert again["payload"]["archivedAt"] == archived["payload"]["archivedAt"]
    fetched = await peer.request("fetch_agent_request", agentId=agent_id)
    assert fetched["payload"]["agent"]["status"] == "closed"
    unknown = await peer.request("archive_agent_request", agentId="nope")
    assert unknown["type"] == "rpc_error"
    assert unknown["payload"]["code"] == "handler_error"
    assert unknown["payload"]["error"] == "Request failed: Agent not found: nope"
    deleted = await peer.request("delete_agent_request", agentId=agent_id)
    assert deleted["type"] == "agent_deleted" and deleted["payload"]["agentId"] == agent_id
    missing = await peer.request("fetch_agent_request", agentId=agent_id)
    assert missing["payload"]["agent"] is None
    assert missing["payload"]["error"] == f"Agent not found: {agent_id}"
    ghost = await peer.request("delete_agent_request", agentId="nope")
    assert ghost["type"] == "agent_deleted" and ghost["payload"]["agentId"] == "nope"


async def test_timeline_replay_after_cursor_and_stale_epoch(peer: Peer, project: Path) -> None:
    agent_id = await create(peer, project, INSTANT)
    await peer.stream_event(agent_id, "turn_completed")
    await peer.request("send_agent_message_request", agentId=agent_id, text=INSTANT)
    await peer.stream_event(agent_id, "turn_completed", nth=2)
    rows = [p for p in peer.stream(agent_id) if "seq" in p]
    epoch = rows[0]["epoch"]
    assert [p["seq"] for p in rows] == [1, 2, 3, 4]
    after = await peer.request(
        "fetch_agent_timeline_request",
        agentId=agent_id,
        direction="after",
        cursor={"epoch": epoch, "seq": 2},
        projection="canonical",
        limit=0,
    )
    body = after["payload"]
    assert (body["reset"], body["staleCursor"], body["gap"], body["epoch"]) == (
        False,
        False,
        False,
        epoch,
    )
    assert [(e["seqStart"], e["seqEnd"], e["item"]["type"]) for e in body["entries"]] == [
        (3, 3, "user_message"),
        (4, 4, "assistant_message"),
    ]
    assert body["window"] == {"minSeq": 1, "maxSeq": 4, "nextSeq": 5}
    assert body["endCursor"] == {"epoch": epoch, "seq": 4} and body["hasOlder"] is True
    stale = await peer.request(
        "fetch_agent_timeline_request",
        agentId=agent_id,
        cursor={"epoch": "old-epoch", "seq": 2},
        projection="canonical",
    )
    body = stale["payload"]
    assert (body["reset"], body["staleCursor"], body["direction"]) == (True, True, "after")
    assert [e["seqStart"] for e in body["entries"]] == [1, 2, 3, 4]
    tail = await peer.request("fetch_agent_timeline_request", agentId=agent_id, limit=2)
    assert tail["payload"]["projection"] == "projected"
    assert [e["seqStart"] for e in tail["payload"]["entries"]] == [3, 4]
    missing = await peer.request("fetch_agent_timeline_request", agentId="nope")
    assert missing["payload"]["error"] == "Agent not found: nope"
    assert missing["payload"]["epoch"] == "" and missing["payload"]["entries"] == []


async def test_a_first_prompt_is_recorded_trimmed_and_a_later_one_as_sent(
    daemon: FakePaseoDaemon, peer: Peer, project: Path
) -> None:
    """As the real daemon records them (create trims `initialPrompt`; send keeps `text`),
    whether the text came over the WebSocket or through the CLI's prompt file."""
    agent_id = await create(peer, project, f"  {INSTANT}\n")
    await peer.stream_event(agent_id, "turn_completed")
    later = f"  {INSTANT}\nsecond line\n\n"
    await peer.request("send_agent_message_request", agentId=agent_id, text=later)
    await peer.stream_event(agent_id, "turn_completed", nth=2)
    prompt_file = project / "prompt.txt"
    prompt_file.write_text(later + "by the CLI\n", encoding="utf-8")
    sent = await asyncio.to_thread(
        daemon.cli, "send", "--json", f"--prompt-file={prompt_file}", "--", agent_id, cwd=project
    )
    assert sent.returncode == 0, sent.stderr
    timeline = await peer.request(
        "fetch_agent_timeline_request", agentId=agent_id, projection="canonical", limit=0
    )
    recorded = [
        e["item"]["text"]
        for e in timeline["payload"]["entries"]
        if e["item"]["type"] == "user_message"
    ]
    assert recorded == [INSTANT, later, later + "by the CLI\n"]


async def test_unknown_provider_and_wait_for_unknown_agent(peer: Peer, project: Path) -> None:
    fields = create_fields(project, INSTANT)
    fields["config"]["provider"] = "nosuch"
    failed = await peer.request("create_agent_request", **fields)
    assert failed["type"] == "status" and failed["payload"]["status"] == "agent_create_failed"
    assert failed["payload"]["error"].startswith("Unknown provider 'nosuch'")
    waited = await peer.request("wait_for_finish_request", agentId="nope")
    assert waited["payload"] == {
        "requestId": waited["payload"]["requestId"],
        "status": "error",
        "final": None,
        "error": "Agent not found: nope",
        "lastMessage": None,
    }


async def test_permission_round_trip_and_import(peer: Peer, project: Path) -> None:
    agent_id = await create(peer, project, "emit a synthetic plan approval")
    requested = await peer.stream_event(agent_id, "permission_requested")
    request = requested["event"]["request"]
    assert request["kind"] == "plan" and request["id"].startswith("mock-plan-")
    copy = await peer.next(lambda m: inner(m).get("type") == "agent_permission_request")
    assert payload(copy) == {"agentId": agent_id, "request": request}
    attention = await peer.stream_event(agent_id, "attention_required")
    assert attention["event"]["reason"] == "permission"
    waited = await peer.request("wait_for_finish_request", agentId=agent_id)
    assert waited["payload"]["status"] == "permission"
    assert waited["payload"]["final"]["pendingPermissions"] == [request]
    wrong = await peer.send(
        "agent_permission_response",
        agentId=agent_id,
        requestId="no-such-permission",
        response={"behavior": "allow"},
    )
    failed = await peer.reply(wrong)
    assert (failed["type"], failed["payload"]["code"]) == ("rpc_error", "handler_error")
    await peer.send(
        "agent_permission_response",
        agentId=agent_id,
        requestId=request["id"],
        response={"behavior": "allow"},
    )
    # As the real daemon streams it: the turn completes first, the resolution follows.
    completed = await peer.stream_event(agent_id, "turn_completed")
    resolved = await peer.stream_event(agent_id, "permission_resolved")
    assert resolved["event"]["resolution"] == {"behavior": "allow"}
    stream = peer.stream(agent_id)
    assert stream.index(completed) < stream.index(resolved)
    await peer.next(lambda m: inner(m).get("type") == "agent_permission_resolved")
    imported = await peer.request(
        "import_agent_request", provider="claude", sessionId="sess-1", cwd=str(project)
    )
    assert imported["type"] == "status" and imported["payload"]["status"] == "agent_resumed"
    assert imported["payload"]["agent"]["persistence"]["sessionId"] == "sess-1"
    opened = await peer.request("open_project_request", cwd=str(project))
    assert opened["payload"]["error"] is None and opened["payload"]["workspace"]["cwd"]


# ---------------------------------------------------------------------------------------------
# Sessions, gating, subscriptions


async def test_app_version_gating(daemon: FakePaseoDaemon, peer: Peer, project: Path) -> None:
    old = await Peer.open(daemon, app_version=None)
    try:
        agent_id = await create(peer, project, INSTANT)
        # agent_stream is not gated: the old client sees the mock agent's events.
        await old.stream_event(agent_id, "turn_completed")
        fetched = await old.request("fetch_agent_request", agentId=agent_id)
        assert fetched["payload"]["error"] == f"Agent not found: {agent_id}"
        listed = await old.request("fetch_agents_request")
        assert agent_id not in [e["agent"]["id"] for e in listed["payload"]["entries"]]
        listed = await peer.request("fetch_agents_request", filter={"includeArchived": True})
        entry = next(e for e in listed["payload"]["entries"] if e["agent"]["id"] == agent_id)
        assert entry["project"]["checkout"]["cwd"] == str(project)
        providers = await old.request("get_providers_snapshot_request")
        names = [e["provider"] for e in providers["payload"]["entries"]]
        assert "mock" not in names and "claude" in names
        new_providers = await peer.request("get_providers_snapshot_request")
        assert "mock" in [e["provider"] for e in new_providers["payload"]["entries"]]
        models = await peer.request("list_provider_models_request", provider="mock")
        assert "ten-second-stream" in [m["id"] for m in models["payload"]["models"]]
    finally:
        await old.close()


async def test_shared_session_and_agent_update_subscription(
    daemon: FakePaseoDaemon, project: Path
) -> None:
    client_id = f"gw_{uuid.uuid4().hex}"
    first = await Peer.open(daemon, client_id)
    second = await Peer.open(daemon, client_id)
    try:
        labels = {"gw.test": uuid.uuid4().hex}
        agent_id = await create(first, project, INSTANT, labels=labels)
        # Replies of the shared Session reach every socket with that clientId.
        await second.next(lambda m: payload(m).get("status") == "agent_created")
        await first.stream_event(agent_id, "turn_completed")
        assert not [m for m in first.seen if inner(m).get("type") == "agent_update"]
        listed = await first.request(
            "fetch_agents_request", filter={"labels": labels}, subscribe={"subscriptionId": "s1"}
        )
        assert listed["payload"]["subscriptionId"] == "s1"
        assert [e["agent"]["id"] for e in listed["payload"]["entries"]] == [agent_id]
        await first.request("update_agent_request", agentId=agent_id, name="renamed")
        update = await second.next(
            lambda m: (
                inner(m).get("type") == "agent_update"
                and payload(m).get("agent", {}).get("id") == agent_id
                and payload(m)["agent"]["title"] == "renamed"
            )
        )
        assert payload(update)["kind"] == "upsert"
        assert payload(update)["project"]["checkout"]["cwd"] == str(project)
    finally:
        await first.close()
        await second.close()


async def test_state_is_shared_with_the_fake_cli(
    daemon: FakePaseoDaemon, peer: Peer, project: Path
) -> None:
    ws_agent = await create(peer, project, INSTANT)
    listed = await asyncio.to_thread(daemon.cli, "ls", "--json", "-a", cwd=project)
    assert ws_agent in [a["id"] for a in json.loads(listed.stdout)]
    ran = await asyncio.to_thread(
        daemon.cli, "run", "--json", "--provider", "mock", "--", INSTANT, cwd=project
    )
    assert ran.returncode == 0, ran.stderr
    cli_agent = json.loads(ran.stdout)["agentId"]
    # The CLI's agent streams to the WebSocket too, and fetch_agents lists it.
    await peer.stream_event(cli_agent, "turn_completed")
    listed_ws = await peer.request("fetch_agents_request")
    assert {ws_agent, cli_agent} <= {e["agent"]["id"] for e in listed_ws["payload"]["entries"]}
    logs = await asyncio.to_thread(daemon.cli, "logs", ws_agent, cwd=project)
    assert INSTANT_REPLY in logs.stdout


async def test_unix_socket_listener(tmp_path: Path) -> None:
    sock = tempfile.mktemp(prefix="paseo-ws-", suffix=".sock", dir="/tmp")
    with FakePaseoDaemon(
        tmp_path / "home", time_scale=SCALE, listen=sock, extra_env=release_env("0.1.65")
    ) as fake:
        assert fake.unix_path == sock and fake.host == f"unix://{sock}"
        async with websockets.unix_connect(sock, "ws://localhost/ws") as ws:
            hello = {"type": "hello", "clientId": "u1", "clientType": "cli", "protocolVersion": 1}
            await ws.send(json.dumps(hello))
            info = json.loads(await ws.recv())
            assert info["message"]["payload"]["status"] == "server_info"
        assert fake.cli("ls", "--json").stdout == "[]\n"


# ---------------------------------------------------------------------------------------------
# Later releases: 0.5.0-beta.4 and `current` (FAKE_PASEO_VERSION)

OWNED = {
    "owned_subscriptions": True,
    "explicit_event_subscriptions": True,
    "selective_agent_timeline": True,
    "hello_rejection": True,
}
PUSHED = (
    "agent_stream",
    "agent_update",
    "agent_permission_request",
    "agent_permission_resolved",
    "agent_attention_required",
    "providers_snapshot_update",
    "activity_log",
)


def pushed(peer: Peer) -> list[Message]:
    """Inner messages read so far that were pushed rather than asked for."""
    return [inner(m) for m in peer.seen if inner(m).get("type") in PUSHED]


def attention_of(agent_id: str) -> Callable[[Message], bool]:
    """Matches the top-level `agent_attention_required` of one agent."""

    def matches(message: Message) -> bool:
        kind = inner(message).get("type")
        return kind == "agent_attention_required" and payload(message)["agentId"] == agent_id

    return matches


async def barrier(peer: Peer) -> None:
    """Returns once everything the daemon sent this socket before now has been read."""
    assert (await peer.request("ping", clientSentAt=0))["type"] == "pong"


async def create_idle(peer: Peer, cwd: Path) -> str:
    """A mock agent without a first prompt (no turn runs)."""
    return await create(peer, cwd, "")


async def test_05_server_info_and_status(daemon_05: FakePaseoDaemon) -> None:
    peer = Peer(await websockets.connect(daemon_05.ws_url))
    try:
        info = payload(await peer.hello("c05", "0.1.65"))
    finally:
        await peer.close()
    assert info["version"] == "0.5.0-beta.4" and info["desktopManaged"] is False
    features = info["features"]
    assert all(value is True for value in features.values())
    assert {"selectiveAgentTimeline", "providersSnapshot", "agentConfigApply", "rewind"} <= set(
        features
    )
    assert not {"ownedSubscriptions", "explicitEventSubscriptions"} & set(features)
    assert "protocolVersion" not in info
    assert daemon_05.port is not None
    status = json.loads(http_get(daemon_05.port, "/api/status")[1])
    assert status["version"] == "0.5.0-beta.4"


async def test_05_turn_started_comes_first_and_events_carry_turn_ids(
    daemon_05: FakePaseoDaemon, project: Path
) -> None:
    """As measured on a real 0.5 daemon: turn_started, user_message, agent_created, text,
    turn_completed; the reply's snapshot is the running one."""
    peer = await Peer.open(daemon_05)
    try:
        rid = await peer.send(
            "create_agent_request", **create_fields(project, INSTANT, clientMessageId="m-1")
        )
        created = await peer.reply(rid)
        agent_id = created["payload"]["agentId"]
        completed = await peer.stream_event(agent_id, "turn_completed")
        turn_id = completed["event"]["turnId"]
        order = []
        for message in peer.seen:
            if payload(message).get("requestId") == rid:
                order.append("agent_created")
            elif inner(message).get("type") == "agent_stream":
                event = payload(message)["event"]
                order.append(event.get("item", {}).get("type", event["type"]))
        assert order[:5] == [
            "turn_started",
            "user_message",
            "agent_created",
            "assistant_message",
            "turn_completed",
        ]
        stream = peer.stream(agent_id)
        assert stream[0]["event"] == {"type": "turn_started", "provider": "mock", "turnId": turn_id}
        assert stream[1]["seq"] == 1 and stream[1]["event"] == {
            "type": "timeline",
            "provider": "mock",
            "item": {
                "type": "user_message",
                "text": INSTANT,
                "messageId": "m-1",
                "clientMessageId": "m-1",
            },
            "turnId": turn_id,
        }
        assert all(p["event"]["turnId"] == turn_id for p in stream if "seq" in p)
        snapshot = created["payload"]["agent"]
        assert snapshot["status"] == "running" and snapshot["workspaceId"] == str(project)
        assert snapshot["activeTurn"]["turnId"] == turn_id and snapshot["activeTurn"]["startedAt"]
        fetched = await peer.request("fetch_agent_request", agentId=agent_id)
        assert fetched["payload"]["agent"]["activeTurn"] is None
    finally:
        await peer.close()


async def test_05_selective_timeline_and_legacy_broadcasts(
    daemon_05: FakePaseoDaemon, project: Path
) -> None:
    legacy = await Peer.open(daemon_05)
    selective = await Peer.open(daemon_05, capabilities={"selective_agent_timeline": True})
    try:
        followed = await create_idle(legacy, project)
        other = await create_idle(legacy, project)
        reply = await selective.request(
            "agent.timeline.set_subscription.request", agentIds=[followed, followed]
        )
        assert reply["type"] == "agent.timeline.set_subscription.response"
        assert reply["payload"] == {
            "requestId": reply["payload"]["requestId"],
            "agentIds": [followed],
        }
        for agent_id in (other, followed):
            await legacy.request("send_agent_message_request", agentId=agent_id, text=INSTANT)
        # Attention reaches a selective socket for every agent, as a top-level message.
        for agent_id in (other, followed):
            await selective.next(attention_of(agent_id))
        await selective.stream_event(followed, "turn_completed")
        assert selective.stream(other) == []
        assert "attention_required" not in {p["event"]["type"] for p in selective.stream(followed)}
        # A socket without the capability still gets every stream, attention inside it.
        await legacy.stream_event(other, "attention_required")
        await legacy.stream_event(followed, "attention_required")
        assert not [m for m in legacy.seen if inner(m).get("type") == "agent_attention_required"]
        emptied = await selective.request("agent.timeline.set_subscription.request", agentIds=[])
        assert emptied["payload"]["agentIds"] == []
        await legacy.request("send_agent_message_request", agentId=followed, text=INSTANT)
        await legacy.stream_event(followed, "turn_completed", nth=2)
        await barrier(selective)
        kinds = [p["event"]["type"] for p in selective.stream(followed)]
        assert kinds.count("turn_completed") == 1  # nothing since the list was emptied
    finally:
        await legacy.close()
        await selective.close()


async def test_05_steering_hands_the_text_to_the_running_turn(
    daemon_05: FakePaseoDaemon, project: Path
) -> None:
    peer = await Peer.open(daemon_05)
    try:
        agent_id = await create(peer, project, "write a long story", model="five-minute-stream")
        started = await peer.stream_event(agent_id, "turn_started")
        turn_id = started["event"]["turnId"]
        steered = await peer.request(
            "send_agent_message_request",
            agentId=agent_id,
            text="also mention the tests",
            messageId="steer-1",
            activeTurnBehavior="steer",
        )
        assert steered["payload"]["accepted"] is True and steered["payload"]["error"] is None
        user = await peer.next(
            lambda m: (
                inner(m).get("type") == "agent_stream"
                and payload(m)["event"].get("item", {}).get("messageId") == "steer-1"
            )
        )
        assert payload(user)["event"]["turnId"] == turn_id
        assert payload(user)["event"]["item"] == {
            "type": "user_message",
            "text": "also mention the tests",
            "messageId": "steer-1",
            "clientMessageId": "steer-1",
        }
        fetched = await peer.request("fetch_agent_request", agentId=agent_id)
        assert fetched["payload"]["agent"]["activeTurn"]["turnId"] == turn_id
        kinds = [p["event"]["type"] for p in peer.stream(agent_id)]
        assert "turn_canceled" not in kinds and kinds.count("turn_started") == 1
        bad = await peer.request(
            "send_agent_message_request", agentId=agent_id, text="x", activeTurnBehavior="queue"
        )
        assert (bad["type"], bad["payload"]["code"]) == ("rpc_error", "unknown_schema")
        cancel = await peer.request("cancel_agent_request", agentId=agent_id)
        assert cancel["payload"]["error"] is None
        await peer.stream_event(agent_id, "turn_canceled")
        # Nothing runs: a steer starts a turn of its own.
        idle = await peer.request(
            "send_agent_message_request",
            agentId=agent_id,
            text=INSTANT,
            messageId="steer-2",
            activeTurnBehavior="steer",
        )
        assert idle["payload"]["accepted"] is True
        second = await peer.stream_event(agent_id, "turn_started", nth=2)
        assert second["event"]["turnId"] != turn_id
        await peer.stream_event(agent_id, "turn_completed")
    finally:
        await peer.close()


async def test_05_cancel_with_a_request_id_is_always_answered(daemon_05: FakePaseoDaemon) -> None:
    peer = await Peer.open(daemon_05)
    try:
        cancel = await peer.request("cancel_agent_request", agentId="no-such-agent")
        assert cancel == {
            "type": "cancel_agent_response",
            "payload": {
                "requestId": cancel["payload"]["requestId"],
                "agentId": "no-such-agent",
                "agent": None,
                "error": "Agent no-such-agent not found",
            },
        }
    finally:
        await peer.close()


async def lease_terminates_a_silent_pinged_socket(daemon: FakePaseoDaemon) -> None:
    """A top-level ping claims the lease; silence then ends the socket without a close frame,
    while a socket that never pinged, or keeps talking, stays."""
    loop = asyncio.get_running_loop()
    never_pinged = await Peer.open(daemon, capabilities=OWNED)
    talking = await Peer.open(daemon, capabilities=OWNED)
    silent = await Peer.open(daemon, capabilities=OWNED)
    try:
        for peer in (talking, silent):
            await peer.ws.send(json.dumps({"type": "ping"}))
            await peer.next(lambda m: m == {"type": "pong"})
        started = loop.time()

        async def keep_talking() -> None:
            while True:
                await talking.ws.send(json.dumps({"type": "recording_state"}))
                await asyncio.sleep(LEASE_S / 5)

        chatter = asyncio.create_task(keep_talking())
        try:
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(WAIT_S):
                    while True:
                        await silent.ws.recv()
        finally:
            chatter.cancel()
        assert closed.value.rcvd is None  # terminated: no close frame
        assert loop.time() - started >= LEASE_S * 0.9
        await barrier(never_pinged)
        await barrier(talking)
    finally:
        for peer in (never_pinged, talking, silent):
            await peer.close()


async def test_05_socket_lease(daemon_05: FakePaseoDaemon) -> None:
    await lease_terminates_a_silent_pinged_socket(daemon_05)


async def test_current_socket_lease(daemon_current: FakePaseoDaemon) -> None:
    await lease_terminates_a_silent_pinged_socket(daemon_current)


async def test_current_server_info(daemon_current: FakePaseoDaemon) -> None:
    peer = Peer(await websockets.connect(daemon_current.ws_url))
    try:
        info = payload(await peer.hello("c-cur", "0.11.0", capabilities=OWNED))
    finally:
        await peer.close()
    assert info["version"] == "0.11.0-beta.5" and info["protocolVersion"] == 1
    assert {
        "ownedSubscriptions",
        "explicitEventSubscriptions",
        "selectiveAgentTimeline",
        "providersSnapshot",
    } <= set(info["features"])
    assert "agentPromptQueue" not in info["features"]


async def test_current_timeline_subscription_is_owned(
    daemon_current: FakePaseoDaemon, project: Path
) -> None:
    """A socket subscribed to agent A hears nothing about agent B and no broadcasts."""
    follower = await Peer.open(daemon_current, capabilities=OWNED)
    driver = await Peer.open(daemon_current, capabilities=OWNED)
    try:
        followed = await create_idle(driver, project)
        other = await create_idle(driver, project)
        refused = await follower.request(
            "agent.timeline.set_subscription.request", agentIds=[followed], subscriptionId="mine"
        )
        assert refused["type"] == "rpc_error" and refused["payload"]["code"] == "handler_error"
        assert (
            refused["payload"]["error"]
            == "Request failed: Subscription IDs are assigned by the host"
        )
        first = await follower.request(
            "agent.timeline.set_subscription.request", agentIds=[followed]
        )
        first_id = first["payload"]["subscriptionId"]
        assert first["payload"]["agentIds"] == [followed] and uuid.UUID(first_id)
        watch_other = await driver.request(
            "agent.timeline.set_subscription.request", agentIds=[other]
        )
        for agent_id in (other, followed):
            await driver.request("send_agent_message_request", agentId=agent_id, text=INSTANT)
        await driver.stream_event(other, "turn_completed")
        completed = await follower.stream_event(followed, "turn_completed")
        assert completed["subscriptionId"] == first_id and completed["event"]["turnId"]
        await barrier(follower)
        assert follower.stream(other) == []
        assert {m["type"] for m in pushed(follower)} == {"agent_stream"}
        assert "attention_required" not in {p["event"]["type"] for p in follower.stream(followed)}
        assert all(
            p["subscriptionId"] == watch_other["payload"]["subscriptionId"]
            for p in driver.stream(other)
        )
        # Each request is a subscription of its own, until released.
        second = await follower.request(
            "agent.timeline.set_subscription.request", agentIds=[followed]
        )
        second_id = second["payload"]["subscriptionId"]
        assert second_id != first_id
        await driver.request("send_agent_message_request", agentId=followed, text=INSTANT)
        await follower.until(
            lambda: (
                {
                    p["subscriptionId"]
                    for p in follower.stream(followed)
                    if p["event"]["type"] == "turn_completed"
                }
                == {first_id, second_id}
            )
        )
        released = await follower.request("subscription.release.request", subscriptionId=first_id)
        assert released == {
            "type": "subscription.release.response",
            "payload": {"requestId": released["payload"]["requestId"], "subscriptionId": first_id},
        }
        await driver.request("send_agent_message_request", agentId=followed, text=INSTANT)
        await follower.stream_event(followed, "turn_completed", nth=4)
        await barrier(follower)
        last = [
            p["subscriptionId"]
            for p in follower.stream(followed)
            if p["event"]["type"] == "turn_completed"
        ]
        assert last[-1] == second_id and len(last) == 4
    finally:
        await follower.close()
        await driver.close()


async def test_current_event_subscription_and_permission_reply(
    daemon_current: FakePaseoDaemon, project: Path
) -> None:
    listener = await Peer.open(daemon_current, capabilities=OWNED)
    driver = await Peer.open(daemon_current, capabilities=OWNED)
    try:
        unknown = await listener.request("session.events.set_subscription.request", events=["nope"])
        assert unknown["payload"]["code"] == "unknown_schema"
        events = [
            "agent_permission_request",
            "agent_permission_resolved",
            "agent_attention_required",
        ]
        subscribed = await listener.request(
            "session.events.set_subscription.request", events=events
        )
        assert subscribed["type"] == "session.events.set_subscription.response"
        subscription_id = subscribed["payload"]["subscriptionId"]
        agent_id = await create(driver, project, "emit a synthetic plan approval")
        asked = await listener.next(lambda m: inner(m).get("type") == "agent_permission_request")
        assert payload(asked)["agentId"] == agent_id
        assert payload(asked)["subscriptionId"] == subscription_id
        request_id = payload(asked)["request"]["id"]
        attention = await listener.next(
            lambda m: inner(m).get("type") == "agent_attention_required"
        )
        assert payload(attention)["reason"] == "permission"
        assert payload(attention)["subscriptionId"] == subscription_id
        rid = await driver.send(
            "agent_permission_response",
            agentId=agent_id,
            requestId=request_id,
            response={"behavior": "allow"},
        )
        resolved = await driver.next(lambda m: inner(m).get("type") == "agent_permission_resolved")
        assert rid == request_id  # the permission's id is the request's id
        assert payload(resolved) == {
            "agentId": agent_id,
            "requestId": request_id,
            "resolution": {"behavior": "allow"},
        }
        broadcast = await listener.next(
            lambda m: inner(m).get("type") == "agent_permission_resolved"
        )
        assert payload(broadcast)["subscriptionId"] == subscription_id
        await barrier(driver)
        assert [m["type"] for m in pushed(driver)] == ["agent_permission_resolved"]
        assert listener.stream(agent_id) == []
    finally:
        await listener.close()
        await driver.close()


async def test_current_agent_updates_need_a_host_issued_subscription(
    daemon_current: FakePaseoDaemon, project: Path
) -> None:
    peer = await Peer.open(daemon_current, capabilities=OWNED)
    try:
        agent_id = await create_idle(peer, project)
        refused = await peer.request("fetch_agents_request", subscribe={"subscriptionId": "s1"})
        assert (
            refused["payload"]["error"]
            == "Request failed: Subscription IDs are assigned by the host"
        )
        listed = await peer.request("fetch_agents_request", subscribe={})
        subscription_id = listed["payload"]["subscriptionId"]
        assert uuid.UUID(subscription_id)
        await peer.request("update_agent_request", agentId=agent_id, name="renamed")
        update = await peer.next(
            lambda m: (
                inner(m).get("type") == "agent_update" and payload(m)["agent"]["title"] == "renamed"
            )
        )
        assert payload(update)["subscriptionId"] == subscription_id
    finally:
        await peer.close()


async def test_current_legacy_hello_gets_replies_only(
    daemon_current: FakePaseoDaemon, project: Path
) -> None:
    """The legacy paths are gone: a hello without capabilities is served as an owned socket.
    Nothing is pushed to it unless it subscribes, the 0.1.65 way of subscribing (its own id)
    is refused, and replies go only to the socket that asked (not to its clientId)."""
    client_id = f"gw_{uuid.uuid4().hex}"
    asking = await Peer.open(daemon_current, client_id)
    sibling = await Peer.open(daemon_current, client_id)
    try:
        agent_id = await create(asking, project, "emit a synthetic plan approval")
        waited = await asking.request("wait_for_finish_request", agentId=agent_id)
        assert waited["payload"]["status"] == "permission"
        await asking.request("cancel_agent_request", agentId=agent_id)
        legacy = await asking.request("fetch_agents_request", subscribe={"subscriptionId": "s1"})
        assert legacy["type"] == "rpc_error"
        await asking.request("update_agent_request", agentId=agent_id, name="renamed")
        await barrier(asking)
        await barrier(sibling)
        assert pushed(asking) == [] and pushed(sibling) == []
        assert not [m for m in sibling.seen if payload(m).get("agentId") == agent_id]
        listed = await asking.request("fetch_agents_request", subscribe={})
        await asking.request("update_agent_request", agentId=agent_id, name="again")
        update = await asking.next(lambda m: inner(m).get("type") == "agent_update")
        assert payload(update)["subscriptionId"] == listed["payload"]["subscriptionId"]
        await barrier(sibling)
        assert pushed(sibling) == []
    finally:
        await asking.close()
        await sibling.close()


async def test_current_ping_before_hello_closes(daemon_current: FakePaseoDaemon) -> None:
    async with websockets.connect(daemon_current.ws_url) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert await close_of(ws) == (4002, "Session message before hello")


async def test_current_password_only_in_hello_auth(tmp_path: Path) -> None:
    hello = {"type": "hello", "clientId": "c1", "clientType": "cli", "protocolVersion": 1}
    with FakePaseoDaemon(
        tmp_path / "home", time_scale=SCALE, password="s3cret", extra_env=release_env("current")
    ) as fake:

        async def answer(frame: Message, subprotocols: list[str] | None = None) -> list[Any]:
            """What the daemon sends back to one hello: frames, then the close (or None)."""
            async with websockets.connect(fake.ws_url, subprotocols=subprotocols) as ws:  # type: ignore[arg-type]
                assert ws.subprotocol is None  # the bearer subprotocol is not echoed
                await ws.send(json.dumps(frame))
                frames: list[Any] = []
                try:
                    async with asyncio.timeout(WAIT_S):
                        while True:
                            frames.append(json.loads(await ws.recv()))
                            if payload(frames[-1]).get("status") == "server_info":
                                return frames
                except ConnectionClosed as exc:
                    assert exc.rcvd is not None
                    return [*frames, (exc.rcvd.code, exc.rcvd.reason)]

        rejected = {"type": "hello.rejected", "accepts": ["password"]}
        assert await answer(hello) == [(4401, "Password required")]
        assert await answer(hello, ["paseo.bearer.s3cret"]) == [(4401, "Password required")]
        assert await answer(hello | {"capabilities": {"hello_rejection": True}}) == [
            rejected | {"reason": "password_required"},
            (4401, "Password required"),
        ]
        wrong = hello | {"auth": {"kind": "password", "password": "nope"}}
        assert await answer(wrong) == [
            rejected | {"reason": "incorrect_password"},
            (4401, "Incorrect password"),
        ]
        assert await answer(hello | {"auth": {"kind": "password"}}) == [(4002, "Invalid hello")]
        right = hello | {"auth": {"kind": "password", "password": "s3cret"}}
        accepted = await answer(right)
        assert payload(accepted[-1])["version"] == "0.11.0-beta.5"
