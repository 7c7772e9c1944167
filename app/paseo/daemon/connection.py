"""One persistent WebSocket to the Paseo daemon, shared by every call of this process.

A single reader task owns the socket: it routes replies to the requests waiting for them (by
reply type and `requestId`) and `agent_stream` events to the turns following those agents. When
the socket drops, the link is down and every pending request fails at once, every follower is
told (so it can resynchronise from its timeline cursor), and the task reconnects with backoff;
the client id stays the same, so the daemon re-attaches this gateway to its Session. Backoff is
for that background loop only: a call made while it waits asks for one attempt now
(`connect_now`), so a daemon that came back is used by the very next call.

What the daemon pushes depends on its protocol (`app.paseo.daemon.protocol`, read from its
`server_info`): a current daemon sends an agent's stream only to a socket that subscribed to
it (one host-issued subscription per followed agent), a 0.2-0.7 daemon to the agents the
socket listed, a 0.1 daemon to everyone. Following an agent subscribes to it where needed,
before anything is sent that makes it speak; a reconnect subscribes again before followers
resynchronise. Top-level pings every `KEEPALIVE_SECONDS` hold the daemon's application-socket
lease (from 0.2.3 a pinging socket silent for 45 s is cut).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from app.aio import cancel_and_wait
from app.metrics import DAEMON_CONNECTED, DAEMON_REQUEST_DURATION
from app.paseo.daemon import wire
from app.paseo.daemon.protocol import DaemonProtocol, Delivery, protocol_of
from app.paseo.daemon.target import DaemonTarget
from app.paseo.daemon_config import DEFAULT_DAEMON
from app.paseo.errors import PaseoError
from app.paseo.types import DaemonLink

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 15.0
BACKOFF_FIRST_SECONDS = 1.5
BACKOFF_MAX_SECONDS = 30.0
# A call made while the loop backs off waits this long for the attempt it asks for.
IMMEDIATE_ATTEMPT_SECONDS = 1.0
PING_INTERVAL_SECONDS = 20.0
# Top-level `ping` data frames, as Paseo's own clients send them (its lease wants one < 45 s).
KEEPALIVE_SECONDS = 10.0
SUBSCRIBE_TIMEOUT_SECONDS = 10.0
# The daemon accepts frames up to 100 MiB and sends larger ones; no client-side cap.
MAX_FRAME_BYTES: int | None = None
# Close codes the daemon uses for a refused handshake (../paseo-daemon.md §1.2).
_REFUSALS = {
    4001: "the daemon got no hello in time",
    4002: "the daemon refused the hello",
    4003: "the daemon speaks another protocol version",
    4401: "the daemon refused the password",
}


@dataclass(frozen=True)
class Disconnected:
    """The socket dropped: events may have been missed until `Reconnected`."""

    reason: str


@dataclass(frozen=True)
class Reconnected:
    """The socket is back: a follower resynchronises from its cursor now."""


StreamItem = wire.StreamEvent | Disconnected | Reconnected


@dataclass(eq=False)
class AgentFollower:
    """Stream events of one agent."""

    agent_id: str
    queue: asyncio.Queue[StreamItem] = field(default_factory=asyncio.Queue)


class _HelloRejected(Exception):
    """The daemon answered the hello with `hello.rejected` (it closes the socket next)."""


@dataclass
class _Pending:
    replies: frozenset[str]
    future: asyncio.Future[dict[str, Any]]


class DaemonConnection:
    def __init__(
        self,
        target: DaemonTarget,
        *,
        client_id: str | None = None,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        keepalive: float = KEEPALIVE_SECONDS,
        name: str = DEFAULT_DAEMON,
        backoff: tuple[float, float] = (BACKOFF_FIRST_SECONDS, BACKOFF_MAX_SECONDS),
    ) -> None:
        self.target = target
        self.name = name  # the daemon's name in the gateway's metrics
        self.client_id = client_id or f"gw_{uuid.uuid4().hex}"
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.backoff = backoff  # the reconnect loop's first and longest wait
        self.server_info: dict[str, Any] | None = None
        self.protocol: DaemonProtocol | None = None
        self._socket: ClientConnection | None = None
        # Set after each connection attempt ends; cleared while one is under way.
        self._attempt_over = asyncio.Event()
        self._tried = False  # an attempt has ended: no socket now means disconnected
        self._wake = asyncio.Event()  # ends the loop's backoff: someone wants an attempt now
        self._last_error = "not connected yet"
        self._pending: dict[str, _Pending] = {}
        self._followers: set[AgentFollower] = set()
        # Owned delivery: the subscription of each followed agent on the current socket.
        self._subscriptions: dict[str, str] = {}
        self._released: set[str] = set()  # their late frames are nobody's
        # Selective delivery: the agent list the daemon last took for the current socket.
        self._listed: frozenset[str] = frozenset()
        self._subscribing = asyncio.Lock()
        self._chores: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # --- requests ------------------------------------------------------------------------------

    async def request(
        self,
        message: dict[str, Any],
        *,
        replies: Iterable[str],
        timeout: float,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Send `message` (a request without `requestId`) and return its reply's payload.

        The reply is the first message of a type in `replies` (or an `rpc_error`) carrying
        this request's id: a new one, or `request_id` where the protocol fixes it (a
        permission response carries the permission's id). No reply within `timeout` is a
        TIMEOUT: some daemon failures send none at all.
        """
        request_id = request_id or uuid.uuid4().hex
        started = time.monotonic()
        socket = await self._open_socket()
        pending = _Pending(frozenset(replies), asyncio.get_running_loop().create_future())
        self._pending[request_id] = pending
        try:
            await socket.send(json.dumps(wire.envelope({**message, "requestId": request_id})))
            async with asyncio.timeout(timeout):
                return await pending.future
        except TimeoutError:
            raise PaseoError(
                "DAEMON_TIMEOUT",
                f"the daemon did not answer {message['type']} within {timeout:g} s",
            ) from None
        except ConnectionClosed:
            raise self._unavailable() from None
        finally:
            self._pending.pop(request_id, None)
            DAEMON_REQUEST_DURATION.labels(daemon=self.name, type=message["type"]).observe(
                time.monotonic() - started
            )

    async def wait_connected(self) -> dict[str, Any]:
        """The daemon's `server_info`, once connected; UNAVAILABLE if it cannot be reached."""
        await self._open_socket()
        assert self.server_info is not None
        return self.server_info

    @property
    def link(self) -> DaemonLink:
        """The socket now: open after the daemon's hello, or why not."""
        if self._socket is not None:
            return DaemonLink("connected")
        if not self._tried:
            return DaemonLink("unknown")
        return DaemonLink("disconnected", self._last_error)

    async def connect_now(self, timeout: float) -> DaemonLink:
        """End the loop's backoff so that it tries now, and wait at most `timeout` for that
        attempt (or the one under way): concurrent callers share one attempt. The attempt
        goes on after `timeout` if it takes longer."""
        self._start()
        if self._socket is None and not self._closed:
            if self._attempt_over.is_set():  # backing off: the next attempt starts now
                self._attempt_over.clear()
                self._wake.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._attempt_over.wait()
        return self.link

    # --- stream followers ----------------------------------------------------------------------

    async def follow(self, agent_id: str) -> AgentFollower:
        """Start receiving `agent_id`'s stream events; returns once the daemon will send them
        (call it before sending what makes the agent speak)."""
        follower = AgentFollower(agent_id)
        self._followers.add(follower)
        try:
            await self._open_socket()
            async with self._subscribing:
                await self._subscribe_all()
        except BaseException:
            self.unfollow(follower)
            raise
        return follower

    def unfollow(self, follower: AgentFollower) -> None:
        """Stop; the agent's subscription goes once nobody follows it (in the background)."""
        self._followers.discard(follower)
        legacy = self.protocol is None or self.protocol.delivery is Delivery.LEGACY
        if not legacy and self._socket is not None and follower.agent_id not in self._followed():
            self._chore(self._unsubscribe_unfollowed())  # after any subscription in flight

    @contextlib.asynccontextmanager
    async def following(self, agent_id: str) -> AsyncIterator[AgentFollower]:
        """`follow` for the length of a block."""
        follower = await self.follow(agent_id)
        try:
            yield follower
        finally:
            self.unfollow(follower)

    def _followed(self) -> frozenset[str]:
        return frozenset(follower.agent_id for follower in self._followers)

    async def _subscribe_all(self) -> None:
        """Make the daemon send every followed agent's stream to this socket (under
        `_subscribing`: one change at a time, so lists and ids stay consistent)."""
        delivery = self.protocol.delivery if self.protocol else Delivery.LEGACY
        followed = self._followed()
        if delivery is Delivery.SELECTIVE and followed - self._listed:
            await self._list(followed | self._listed)
        elif delivery is Delivery.OWNED:
            for agent_id in sorted(followed - self._subscriptions.keys()):
                reply = await self._subscription_request(
                    {"type": "agent.timeline.set_subscription.request", "agentIds": [agent_id]},
                    "agent.timeline.set_subscription.response",
                )
                subscription = reply.get("subscriptionId")
                if not isinstance(subscription, str) or not subscription:
                    raise PaseoError("BAD_OUTPUT", "the daemon gave no subscription id")
                self._subscriptions[agent_id] = subscription

    async def _unsubscribe_unfollowed(self) -> None:
        async with self._subscribing:
            followed = self._followed()
            if self._listed - followed:
                await self._list(followed & self._listed)
            for agent_id in sorted(self._subscriptions.keys() - followed):
                subscription = self._subscriptions.pop(agent_id)
                self._released.add(subscription)
                await self._subscription_request(
                    {"type": "subscription.release.request", "subscriptionId": subscription},
                    "subscription.release.response",
                )

    async def _list(self, agent_ids: frozenset[str]) -> None:
        """Selective delivery: the list replaces the socket's previous one."""
        await self._subscription_request(
            {"type": "agent.timeline.set_subscription.request", "agentIds": sorted(agent_ids)},
            "agent.timeline.set_subscription.response",
        )
        self._listed = agent_ids

    async def _subscription_request(self, message: dict[str, Any], reply: str) -> dict[str, Any]:
        return await self.request(message, replies={reply}, timeout=SUBSCRIBE_TIMEOUT_SECONDS)

    def _chore(self, work: Coroutine[Any, Any, None]) -> None:
        """Background upkeep whose failure only matters to the log (a dropped socket takes
        its subscriptions with it anyway)."""

        async def run() -> None:
            try:
                await work
            except PaseoError as exc:
                logger.info("daemon subscription upkeep failed: %s", exc.message)

        task = asyncio.get_running_loop().create_task(run())
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    # --- the reader task -----------------------------------------------------------------------

    def _start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _open_socket(self) -> ClientConnection:
        """The socket; a call made while an attempt to connect is under way waits for it
        (the first may take the whole connect timeout), one made while the loop backs off
        asks for an attempt now and waits `IMMEDIATE_ATTEMPT_SECONDS` for it."""
        self._start()
        if self._socket is None:
            under_way = not self._attempt_over.is_set()
            await self.connect_now(self.connect_timeout if under_way else IMMEDIATE_ATTEMPT_SECONDS)
        if self._socket is None:
            raise self._unavailable()
        return self._socket

    def _unavailable(self) -> PaseoError:
        return PaseoError(
            "DAEMON_NOT_RUNNING",
            f"cannot talk to the Paseo daemon at {self.target.describe()}: {self._last_error}",
        )

    async def _run(self) -> None:
        """Connect, read until the socket drops, tell everyone, back off, reconnect."""
        attempt = 0
        ever_connected = False
        while not self._closed:
            self._attempt_over.clear()
            self._wake.clear()
            connected = False  # this attempt got a socket: its end is a drop, not a retry
            try:
                async with self._connect() as socket:
                    await self._handshake(socket)
                    attempt, connected = 0, True
                    self._up(socket, resubscribe=ever_connected)
                    ever_connected = True
                    await self._serve(socket)
                self._last_error = "the daemon closed the connection"
            except _HelloRejected as exc:
                self._last_error = f"the daemon refused the hello ({exc})"
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed) as exc:
                self._last_error = _describe(exc)
            self._down()
            self._attempt_over.set()
            if connected:
                self._tell_followers(Disconnected(self._last_error))
            if self._closed:
                return
            if attempt == 0:  # the first failure since a connection, not every retry
                logger.warning("daemon connection lost (%s); reconnecting", self._last_error)
            first, longest = self.backoff
            await self._back_off(min(first * 2**attempt, longest))
            attempt += 1

    def _up(self, socket: ClientConnection, *, resubscribe: bool) -> None:
        """The daemon answered the hello: calls may use `socket` (after a reconnect, once
        followed agents are subscribed again)."""
        self._subscriptions.clear()
        self._released.clear()
        self._listed = frozenset()
        self._socket = socket
        DAEMON_CONNECTED.labels(daemon=self.name).set(1)
        if resubscribe:  # followers resynchronise once subscribed again
            self._chore(self._resubscribe())
        else:
            self._attempt_over.set()

    async def _serve(self, socket: ClientConnection) -> None:
        """Read and keep alive until the socket closes; from that instant the link is down
        and pending calls fail (closing our side of the socket may take a moment more)."""
        keepalive = asyncio.get_running_loop().create_task(self._keep_alive(socket))
        try:
            await self._read(socket)
        finally:
            self._last_error = "the daemon closed the connection"
            self._down()
            await cancel_and_wait(keepalive)

    def _down(self) -> None:
        self._socket = None
        self._tried = True
        DAEMON_CONNECTED.labels(daemon=self.name).set(0)
        self._fail_pending()

    async def _back_off(self, delay: float) -> None:
        """Wait `delay` before the next attempt, or less if a call wants one now."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()

    async def _resubscribe(self) -> None:
        """After a reconnect: subscribe again, then let waiting calls and followers on."""
        try:
            async with self._subscribing:
                await self._subscribe_all()
        finally:
            self._attempt_over.set()
            self._tell_followers(Reconnected())

    async def _keep_alive(self, socket: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(self.keepalive)
                await socket.send(json.dumps({"type": "ping"}))

    def _connect(self) -> Any:
        password = self.target.password
        subprotocols = [Subprotocol(wire.bearer_subprotocol(password))] if password else None
        options: dict[str, Any] = {
            "subprotocols": subprotocols,
            "max_size": MAX_FRAME_BYTES,
            "open_timeout": self.connect_timeout,
            "ping_interval": PING_INTERVAL_SECONDS,
            "compression": None,
        }
        if self.target.unix_path:
            return unix_connect(self.target.unix_path, self.target.url, **options)
        return connect(self.target.url, **options)

    async def _handshake(self, socket: ClientConnection) -> None:
        """Send hello; connected once the daemon's `server_info` status arrives."""
        await socket.send(json.dumps(wire.hello(self.client_id, self.target.password)))
        async with asyncio.timeout(self.connect_timeout):
            while True:
                frame = json.loads(await socket.recv())
                if frame.get("type") == "hello.rejected":
                    raise _HelloRejected(str(frame.get("reason") or "no reason given"))
                info = _server_info(frame)
                if info is not None:
                    self.server_info = info
                    self.protocol = protocol_of(info)
                    return

    async def _read(self, socket: ClientConnection) -> None:
        async for frame in socket:
            if isinstance(frame, bytes):
                continue  # terminal streams and downloads: never asked for
            try:
                self._route(json.loads(frame))
            except (ValueError, TypeError, KeyError):
                logger.warning("unreadable daemon message: %.200s", frame)

    def _route(self, frame: dict[str, Any]) -> None:
        if frame.get("type") != "session":
            return  # a top-level pong
        message = frame.get("message") or {}
        kind = message.get("type")
        payload = message.get("payload") or {}
        if kind == "agent_stream":
            event = wire.stream_event(payload)
            if event is not None and self._subscribed(payload):
                self._deliver(event)
            return
        if kind == "status":
            info = _server_info(frame)
            if info is not None:
                self.server_info = info
                return
            kind = payload.get("status")  # agent_created, agent_create_failed, ...
        pending = self._pending.get(str(payload.get("requestId")))
        if pending is None or pending.future.done():
            return
        if kind == "rpc_error":
            pending.future.set_exception(_rpc_error(payload))
        elif kind in pending.replies:
            pending.future.set_result({"type": kind, **payload})

    def _subscribed(self, payload: dict[str, Any]) -> bool:
        """Owned delivery tags each frame with the host's subscription id: a frame for one
        this socket released is nobody's (its reply may still be on its way)."""
        return payload.get("subscriptionId") not in self._released

    def _deliver(self, event: wire.StreamEvent) -> None:
        for follower in self._followers:
            if follower.agent_id == event.agent_id:
                follower.queue.put_nowait(event)

    def _tell_followers(self, item: Disconnected | Reconnected) -> None:
        for follower in self._followers:
            follower.queue.put_nowait(item)

    def _fail_pending(self) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(self._unavailable())

    async def aclose(self) -> None:
        self._closed = True
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close()
        if self._task is not None:
            await cancel_and_wait(self._task)
        for chore in list(self._chores):
            await cancel_and_wait(chore)
        self._fail_pending()


def _server_info(frame: dict[str, Any]) -> dict[str, Any] | None:
    message = frame.get("message") if frame.get("type") == "session" else None
    payload = (message or {}).get("payload") or {}
    if (message or {}).get("type") == "status" and payload.get("status") == "server_info":
        return dict(payload)
    return None


def _rpc_error(payload: dict[str, Any]) -> PaseoError:
    code = str(payload.get("code") or "handler_error").upper()
    return PaseoError(f"DAEMON_{code}", str(payload.get("error") or "request failed"))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionClosed):
        received = exc.rcvd
        if received is not None and received.code in _REFUSALS:
            return f"{_REFUSALS[received.code]} ({received.code} {received.reason})"
        return f"connection closed ({received.code if received else 'no close frame'})"
    if isinstance(exc, InvalidStatus):
        return f"the daemon refused the WebSocket upgrade (HTTP {exc.response.status_code})"
    return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
