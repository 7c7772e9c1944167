#!/usr/bin/env python3
"""Benchmark: the prompt path on the daemon transport, for SQLite and PostgreSQL (issue #20).

Starts, all on 127.0.0.1: the fake Paseo daemon of tests/fakes with FAKE_PASEO_EMIT_LOG on (it
notes, on the host's CLOCK_MONOTONIC, when it hands each text chunk to its sockets) and, per
database (a SQLite file; a fresh PostgreSQL database, dropped at the end), a gateway on the
daemon transport. The gateway is this script run again as a child (`--serve-gateway`): the
app of app/main.py's factory under uvicorn, as `paseo-gateway serve` runs it, wrapped in an
ASGI middleware that counts the database's units of work (`Database.units`: each
`session()` or `read()` block) between a prompt's request coming in and its first body byte
going out, and notes who began each one. It runs in a process of its own so that the client
does not share its event loop. Per database it then creates a session, sends a first prompt
(the agent is made; not measured) and prints:

1. database units before the first byte of a later prompt (the units begun by that request
   and the tasks it started; the target is <= 6), listed by caller;
2. POST -> `turn.started` of a later prompt, next to the fake daemon's own round trip for a
   send over a direct WebSocket. Both over --prompts prompts, one after another; each
   streams like a real answer and is cancelled once `turn.started` arrives, so its turn is
   still running when the first byte goes out;
3. the latency each text chunk gains from the daemon sending it to the SSE client of the
   prompt receiving it, p50/p95/max over at least --chunks chunks (streamed turns of the
   mock's `ten-second-stream`; the target is <= 20 ms p50).

    .venv/bin/python benchmarks/prompt_path.py
    .venv/bin/python benchmarks/prompt_path.py --database sqlite --prompts 10 --chunks 100

Needs PostgreSQL on 127.0.0.1:5432 for `--database postgresql|both` (user postgres, trust
auth; `--pg-admin-dsn` to change). Linux only (one monotonic clock for all processes).
Not a test: pytest collects only tests/.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import contextvars
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _common import (  # noqa: E402
    AUTH,
    TERMINAL_EVENTS,
    admin_execute,
    free_port,
    gateway_env,
    host_clock,
    kill_leftover_fakes,
    percentile,
    read_json_lines,
    sse_events,
    start_server,
    stop_server,
    wait_until_answering,
    with_database,
)

from tests.fakes.harness import FakePaseoDaemon  # noqa: E402

# The mock's quickest turn: one text chunk, then the end at once.
QUICK_PROMPT = "emit 1 coalesced agent stream updates"
# Anything else streams the session model's canned cycle.
STREAM_MODEL = "ten-second-stream"
# A later prompt streams like any agent's answer (so its turn is still running when the first
# byte goes out, as a real one is) and is cancelled once `turn.started` arrives.
LATER_PROMPT = "explain the scroll anchor again"
QUIET_SECONDS = 0.1
EMIT_LOG_ENV = "FAKE_PASEO_EMIT_LOG"
STARTUP_TIMEOUT_SECONDS = 90.0
DATABASES = ("sqlite", "postgresql")
MAX_STREAM_TURNS = 30
# The daemon's direct WebSocket client says it is a CLI of the release the fake speaks.
DIRECT_HELLO = {"type": "hello", "clientType": "cli", "protocolVersion": 1, "appVersion": "0.1.65"}


# -- the gateway child: the app, with its database units counted -------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class Probe:
    """One prompt request, from coming in to its first body byte going out."""

    path: str
    arrived: float
    units_before: int
    task: asyncio.Task[Any] | None
    units: list[dict[str, Any]] = field(default_factory=list)
    status: int | None = None
    turn_id: str | None = None
    first_byte: float | None = None
    units_all: int | None = None

    @property
    def open(self) -> bool:
        return self.first_byte is None


# Set in the request's task; every task it starts (the turn's run, the SSE writer) inherits it.
PROBE: contextvars.ContextVar[Probe | None] = contextvars.ContextVar("bench_probe", default=None)


def _callers(frame: FrameType | None, depth: int = 2) -> str:
    """`caller < its caller`: the coroutines' own chain, up to where a task began (the event
    loop's frames are left out)."""
    names: list[str] = []
    while frame is not None and len(names) < depth:
        if f"{os.sep}asyncio{os.sep}" in frame.f_code.co_filename:
            break
        names.append(frame.f_code.co_qualname)
        frame = frame.f_back
    return " < ".join(names)


def _task_label(probe: Probe) -> str:
    task = asyncio.current_task()
    if task is None or task is probe.task:
        return "request"
    coro = task.get_coro()
    return "task " + str(getattr(coro, "__qualname__", task.get_name()))


def instrument_database() -> None:
    """Note who begins each unit of work while a probe is open (this child process only)."""
    from app.db import Database

    def counted(kind: str) -> Callable[..., Any]:
        original = getattr(Database, kind)

        def begin(self: Database) -> Any:
            probe = PROBE.get()
            if probe is not None and probe.open:
                probe.units.append(
                    {
                        "kind": kind,
                        "caller": _callers(sys._getframe(1)),
                        "task": _task_label(probe),
                        "at_ms": round((host_clock() - probe.arrived) * 1000, 2),
                    }
                )
            return original(self)

        return begin

    Database.session = counted("session")  # type: ignore[method-assign]
    Database.read = counted("read")  # type: ignore[method-assign]


class UnitsMiddleware:
    """Around the whole app: for each `POST …/prompt`, the units begun between the request
    coming in and the first `http.response.body` with bytes, written as one JSON line."""

    def __init__(self, app: Any, log_path: Path) -> None:
        self.app = app
        self.log = log_path.open("a", buffering=1, encoding="utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].endswith("/prompt")
        ):
            await self.app(scope, receive, send)
            return
        db = self.app.state.db
        probe = Probe(scope["path"], host_clock(), db.units, asyncio.current_task())
        token = PROBE.set(probe)

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                probe.status = int(message["status"])
                for key, value in message.get("headers", ()):
                    if key.lower() == b"x-turn-id":
                        probe.turn_id = value.decode()
            elif probe.open and message["type"] == "http.response.body" and message.get("body"):
                probe.first_byte = host_clock()
                probe.units_all = db.units - probe.units_before
                await send(message)
                self.write(probe)
                return
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            PROBE.reset(token)
            if probe.open:  # no body at all
                probe.first_byte = host_clock()
                probe.units_all = db.units - probe.units_before
                self.write(probe)

    def write(self, probe: Probe) -> None:
        record = {
            "path": probe.path,
            "status": probe.status,
            "turn_id": probe.turn_id,
            "first_byte_ms": round(((probe.first_byte or 0.0) - probe.arrived) * 1000, 2),
            "units_all": probe.units_all,
            "units": probe.units,
        }
        self.log.write(json.dumps(record) + "\n")


def serve_gateway(port: int, units_log: Path) -> int:
    """`paseo-gateway serve` (app/cli.py's single-process path), wrapped in UnitsMiddleware;
    settings from the environment."""
    import uvicorn

    from app.main import create_app
    from app.settings import get_settings

    instrument_database()
    app = UnitsMiddleware(create_app(get_settings()), units_log)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None)
    return 0


# -- the client --------------------------------------------------------------------------------


@dataclass
class Prompted:
    """One prompt's stream as the client saw it (times on host_clock)."""

    post_at: float
    status: int | None = None
    error: str | None = None
    headers_at: float | None = None
    started_at: float | None = None
    terminal: str | None = None
    terminal_at: float | None = None
    turn_id: str | None = None
    agent_id: str | None = None
    deltas: list[tuple[float, str]] = field(default_factory=list)

    @property
    def first_text_at(self) -> float | None:
        """When the first `text` event arrived (None without one)."""
        return self.deltas[0][0] if self.deltas else None


async def send_prompt(
    client: Any, session_id: str, text: str, *, cancel_once_started: bool = False
) -> Prompted:
    """POST a prompt and read its stream to the terminal event, timing what arrives; with
    `cancel_once_started`, the turn is cancelled as soon as `turn.started` arrives."""
    seen = Prompted(host_clock())
    cancelling: asyncio.Task[Any] | None = None
    url = f"/sessions/{session_id}/prompt"
    async with client.stream("POST", url, json={"prompt": text}) as response:
        seen.headers_at = host_clock()
        seen.status = response.status_code
        if response.status_code != 200:
            await response.aread()
            seen.error = f"HTTP {response.status_code}: {response.text[:300]}"
            return seen
        seen.turn_id = response.headers.get("x-turn-id")
        async with contextlib.aclosing(sse_events(response)) as events:
            async for name, _id, data in events:
                now = host_clock()
                if name == "turn.started" and seen.started_at is None:
                    seen.started_at = now
                    seen.agent_id = data.get("agent_id")
                    if cancel_once_started:
                        cancel_url = f"/sessions/{session_id}/cancel"
                        cancelling = asyncio.create_task(client.post(cancel_url))
                elif name == "text":
                    seen.deltas.append((now, str(data.get("delta", ""))))
                elif name in TERMINAL_EVENTS:
                    seen.terminal, seen.terminal_at = name, now
                    break
    if cancelling is not None:
        answer = await cancelling
        if answer.status_code not in (200, 202):
            seen.error = f"cancel: HTTP {answer.status_code}: {answer.text[:300]}"
    if seen.terminal is None:
        seen.error = "the stream ended before its terminal event"
    return seen


def chunk_latencies(
    emitted: list[tuple[float, str]], received: list[tuple[float, str]]
) -> tuple[list[float], int]:
    """For each received delta: its arrival minus when the daemon sent the chunk that
    completed it (ms), found by its place in the concatenated text; and how many deltas were
    not found there."""
    text, ends, times = "", [], []
    for at, chunk in emitted:
        text += chunk
        ends.append(len(text))
        times.append(at)
    cursor, out, lost = 0, [], 0
    for received_at, delta in received:
        if not delta:
            continue
        index = text.find(delta, cursor)
        if index < 0:
            lost += 1
            continue
        cursor = index + len(delta)
        sent_at = times[bisect.bisect_left(ends, cursor)]
        out.append((received_at - sent_at) * 1000)
    return out, lost


async def direct_round_trips(
    daemon: FakePaseoDaemon, agent_id: str, count: int
) -> dict[str, list[float]]:
    """The daemon's own cost: `send_agent_message_request` on a direct WebSocket, to its
    response, to the turn's `turn_started` and to its first assistant text (ms)."""
    import websockets

    figures: dict[str, list[float]] = {"response": [], "turn_started": [], "first_text": []}
    async with websockets.connect(daemon.ws_url, max_size=None) as ws:  # no password set
        await ws.send(json.dumps({**DIRECT_HELLO, "clientId": f"bench-{uuid.uuid4().hex}"}))
        await ws.recv()  # server_info
        for index in range(count):
            request_id = f"bench-send-{index}"
            request = {
                "type": "send_agent_message_request",
                "requestId": request_id,
                "agentId": agent_id,
                "text": QUICK_PROMPT,
                "messageId": str(uuid.uuid4()),
            }
            began = host_clock()
            await ws.send(json.dumps({"type": "session", "message": request}))
            answered = started = texted = ended = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    while not (answered and ended):
                        message = json.loads(await ws.recv()).get("message") or {}
                        now, payload = host_clock(), message.get("payload") or {}
                        kind = message.get("type")
                        if kind == "send_agent_message_response":
                            if payload.get("requestId") == request_id:
                                answered = True
                                figures["response"].append((now - began) * 1000)
                        elif kind == "agent_stream" and payload.get("agentId") == agent_id:
                            event = (payload.get("event") or {}).get("type")
                            if event == "turn_started" and not started:
                                started = True
                                figures["turn_started"].append((now - began) * 1000)
                            item = (payload.get("event") or {}).get("item") or {}
                            if item.get("type") == "assistant_message" and not texted:
                                texted = True
                                figures["first_text"].append((now - began) * 1000)
                            ended = ended or event in ("turn_completed", "turn_failed")
    return figures


@dataclass
class Figures:
    """What one database's run measured."""

    later: list[Prompted] = field(default_factory=list)
    units: list[dict[str, Any]] = field(default_factory=list)  # the child's records
    chunk_ms: list[float] = field(default_factory=list)
    chunk_turns: int = 0
    chunks_lost: int = 0
    direct: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


async def prepare_session(client: Any) -> tuple[str, str]:
    """A session whose agent exists: created, then a first (quick) prompt makes the agent.
    Returns the session's id and the agent's."""
    created = await client.post("/sessions", json={"title": "prompt path"})
    if created.status_code != 201:
        raise RuntimeError(f"POST /sessions: HTTP {created.status_code}: {created.text}")
    session_id = str(created.json()["id"])
    first = await send_prompt(client, session_id, QUICK_PROMPT)  # makes the agent
    if first.terminal != "turn.completed":
        raise RuntimeError(f"first prompt: {first.error or first.terminal}")
    agent_id = first.agent_id or (await client.get(f"/sessions/{session_id}")).json().get(
        "agent_id"
    )
    if not agent_id:
        raise RuntimeError("the session has no agent after its first prompt")
    return session_id, str(agent_id)


async def later_prompts(
    client: Any,
    session_id: str,
    count: int,
    prompt_of: Callable[[int], str],
    *,
    cancel_once_started: bool = False,
) -> list[Prompted]:
    """`count` later prompts, one after another, each after a quiet moment (the turn before
    has let go); `prompt_of(index)` is each one's text."""
    seen = []
    for index in range(count):
        await asyncio.sleep(QUIET_SECONDS)
        prompted = await send_prompt(
            client, session_id, prompt_of(index), cancel_once_started=cancel_once_started
        )
        seen.append(prompted)
    return seen


async def measure(
    base_url: str,
    daemon: FakePaseoDaemon,
    units_log: Path,
    emit_log: Path,
    args: argparse.Namespace,
) -> Figures:
    import httpx

    figures = Figures()
    timeout = httpx.Timeout(30.0, read=120.0)
    async with httpx.AsyncClient(
        base_url=base_url, headers=AUTH, timeout=timeout, trust_env=False
    ) as client:
        session_id, agent_id = await prepare_session(client)
        _, offset = read_json_lines(units_log)  # the first prompt's record is not measured

        # 1 and 2: later prompts, one after another.
        figures.later = await later_prompts(
            client,
            session_id,
            args.prompts,
            lambda index: f"{LATER_PROMPT}, take {index}",
            cancel_once_started=True,
        )
        figures.errors += [f"later prompt: {seen.error}" for seen in figures.later if seen.error]
        await asyncio.sleep(0.2)  # the child writes a record as the first byte goes out
        figures.units, _ = read_json_lines(units_log, offset)

        # 3: streamed turns until enough chunks were timed.
        _, emit_offset = read_json_lines(emit_log)
        while len(figures.chunk_ms) < args.chunks and figures.chunk_turns < MAX_STREAM_TURNS:
            prompt = f"explain the scroll anchor, streamed take {figures.chunk_turns}"
            seen = await send_prompt(client, session_id, prompt)
            figures.chunk_turns += 1
            await asyncio.sleep(0.05)
            lines, emit_offset = read_json_lines(emit_log, emit_offset)
            if seen.error or seen.terminal_at is None:
                figures.errors.append(f"streamed turn: {seen.error or seen.terminal}")
                break
            emitted = [
                (float(line["at"]), str(line["text"]))
                for line in lines
                if line.get("agent") == agent_id and seen.post_at <= line["at"] <= seen.terminal_at
            ]
            added, lost = chunk_latencies(emitted, seen.deltas)
            figures.chunk_ms += added
            figures.chunks_lost += lost
            if not added:
                figures.errors.append("a streamed turn had no text chunk the daemon logged")
                break

    if args.direct:
        figures.direct = await direct_round_trips(daemon, agent_id, args.prompts)
    return figures


# -- one database ------------------------------------------------------------------------------


def run_database(
    kind: str, daemon: FakePaseoDaemon, work: Path, emit_log: Path, args: argparse.Namespace
) -> Figures:
    folder = work / kind
    folder.mkdir(parents=True, exist_ok=True)
    db_name: str | None = None
    if kind == "postgresql":
        db_name = f"paseo_gw_prompt_{uuid.uuid4().hex[:10]}"
        asyncio.run(admin_execute(args.pg_admin_dsn, f'CREATE DATABASE "{db_name}"'))
        dsn = with_database(args.pg_admin_dsn, db_name)
        database_url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    else:
        database_url = f"sqlite+aiosqlite:///{folder / 'gateway.db'}"
    units_log = folder / "units.jsonl"
    log_path = folder / "gateway.log"
    env = gateway_env(
        daemon,
        database_url,
        folder,
        PASEO_GATEWAY_TRANSPORT="daemon",
        PASEO_GATEWAY_DEFAULT_MODEL=STREAM_MODEL,
        PASEO_GATEWAY_LOG_LEVEL="WARNING",
    )
    port = free_port()
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve-gateway",
        str(port),
        "--units-log",
        str(units_log),
    ]
    process: subprocess.Popen[bytes] | None = None
    try:
        process = start_server(argv, env=env, log_path=log_path, cwd=folder, new_session=True)
        url = f"http://127.0.0.1:{port}"
        if not wait_until_answering(
            process, f"{url}/readyz", timeout=STARTUP_TIMEOUT_SECONDS, request_timeout=30
        ):
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the {kind} gateway did not become ready:\n{tail}")
        figures = asyncio.run(
            asyncio.wait_for(measure(url, daemon, units_log, emit_log, args), args.timeout)
        )
        problems = [
            line
            for line in log_path.read_text(errors="replace").splitlines()
            if "ERROR" in line or "Traceback" in line
        ]
        figures.errors += [f"gateway log: {line[:200]}" for line in problems[:5]]
        return figures
    finally:
        if process is not None:
            stop_server(process)
        if db_name is not None and not args.keep_db:
            try:
                asyncio.run(
                    admin_execute(
                        args.pg_admin_dsn, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'
                    )
                )
            except Exception as exc:
                print(f"benchmark: could not drop database {db_name}: {exc}", file=sys.stderr)


# -- the report --------------------------------------------------------------------------------


def _ms(values: list[float], *pcts: float, with_max: bool = False) -> str:
    if not values:
        return "-"
    parts = [f"{percentile(values, pct):.1f}" for pct in pcts]
    if with_max:
        parts.append(f"{max(values):.1f}")
    return " / ".join(parts)


def _count(values: list[int], with_max: bool = True) -> str:
    if not values:
        return "-"
    text = f"{percentile(values, 50):.0f}"
    return f"{text} / {max(values)}" if with_max else text


def rows_of(figures: Figures) -> dict[str, str]:
    later = [p for p in figures.later if p.started_at is not None]
    mine = [len(record["units"]) for record in figures.units]
    return {
        "DB units before the first byte, p50 / max": _count(mine),
        "  every unit in that window (other tasks too)": _count(
            [int(record["units_all"] or 0) for record in figures.units]
        ),
        "POST -> turn.started, ms p50 / p95": _ms(
            [(p.started_at - p.post_at) * 1000 for p in later if p.started_at], 50, 95
        ),
        "POST -> response headers, ms p50 / p95": _ms(
            [(p.headers_at - p.post_at) * 1000 for p in later if p.headers_at], 50, 95
        ),
        "  in the gateway: request -> 1st byte, ms p50": _ms(
            [float(record["first_byte_ms"]) for record in figures.units], 50
        ),
        "daemon alone, direct WS send -> response, ms p50 / p95": _ms(
            figures.direct.get("response", []), 50, 95
        ),
        "daemon alone, direct WS send -> turn_started, p50 / p95": _ms(
            figures.direct.get("turn_started", []), 50, 95
        ),
        "added latency per chunk, ms p50 / p95 / max": _ms(figures.chunk_ms, 50, 95, with_max=True),
        "  chunks timed (turns), not matched": f"{len(figures.chunk_ms)} ({figures.chunk_turns})"
        f", {figures.chunks_lost}",
    }


def units_by_caller(kind: str, figures: Figures) -> list[str]:
    """Each caller's units before the first byte: how many per prompt, and when (p50 ms after
    the request came in), in that order; their order varies a little from prompt to prompt
    (the turn's task and the request race)."""
    if not figures.units:
        return []
    prompts = len(figures.units)
    seen: dict[tuple[str, str, str], list[float]] = {}
    for record in figures.units:
        for unit in record["units"]:
            key = (unit["kind"], unit["caller"], unit["task"])
            seen.setdefault(key, []).append(float(unit["at_ms"]))
    orders = {tuple(u["caller"] for u in record["units"]) for record in figures.units}
    total = sum(len(times) for times in seen.values())
    out = [
        f"\n{kind}: units before the first byte by caller, {total / prompts:.1f} a prompt "
        f"({prompts} prompts, {len(orders)} different orders); per prompt, ms after the "
        "request came in (p50), unit, caller < its caller [task]:"
    ]
    ordered = sorted(seen.items(), key=lambda item: percentile(item[1], 50))
    for (unit_kind, caller, task), times in ordered:
        out.append(
            f"  {len(times) / prompts:5.2f}  {percentile(times, 50):6.1f} ms  "
            f"{unit_kind:<7} {caller}  [{task}]"
        )
    return out


def render(results: dict[str, Figures], args: argparse.Namespace) -> str:
    names = list(results)
    table = {name: rows_of(figures) for name, figures in results.items()}
    labels = list(next(iter(table.values())))
    width = max(len(label) for label in labels) + 2
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    out = [
        f"prompt path, daemon transport, fake daemon (time scale {args.time_scale:g}), "
        f"{os.cpu_count()} CPUs (load average now {load}); {args.prompts} later prompts, "
        f">= {args.chunks} chunks",
    ]
    cell = 2 + max(len(text) for name in names for text in [name, *table[name].values()])
    out.append(f"{'':<{width}}" + "".join(f"{name:>{cell}}" for name in names))
    for label in labels:
        out.append(f"{label:<{width}}" + "".join(f"{table[n][label]:>{cell}}" for n in names))
    for name, figures in results.items():
        out.extend(units_by_caller(name, figures))
        out.extend(f"{name}: {error}" for error in figures.errors)
    return "\n".join(out)


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--database", choices=(*DATABASES, "both"), default="both", help="which to run on"
    )
    parser.add_argument(
        "--prompts", type=int, default=30, help="later prompts timed (and direct sends)"
    )
    parser.add_argument("--chunks", type=int, default=300, help="text chunks to time at least")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="FAKE_PASEO_TIME_SCALE (1: the real mock's 60 ms chunk cadence, 10 s turns)",
    )
    parser.add_argument(
        "--direct",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the daemon's own round trip for a send over a direct WebSocket",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="limit per database, s")
    parser.add_argument(
        "--pg-admin-dsn",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL to create the benchmark database in (any existing database)",
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the work folder (logs, PASEO_HOME)"
    )
    # The gateway child's role (this script, run again by itself).
    parser.add_argument("--serve-gateway", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--units-log", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prompts < 1 or args.chunks < 1:
        parser.error("--prompts and --chunks must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_gateway is not None:
        return serve_gateway(args.serve_gateway, Path(args.units_log))

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    work = Path(tempfile.mkdtemp(prefix="paseo-gw-prompt-path-"))
    emit_log = work / "emitted.jsonl"
    daemon = FakePaseoDaemon(
        work / "paseo-home", time_scale=args.time_scale, extra_env={EMIT_LOG_ENV: str(emit_log)}
    )
    kinds = DATABASES if args.database == "both" else (args.database,)
    results: dict[str, Figures] = {}
    status = 0
    try:
        daemon.start()
        for kind in kinds:
            print(f"{kind}: measuring ...", file=sys.stderr, flush=True)
            try:
                results[kind] = run_database(kind, daemon, work, emit_log, args)
            except (Exception, TimeoutError) as exc:
                print(f"benchmark: {kind}: {type(exc).__name__}: {exc}", file=sys.stderr)
                status = 1
        if results:
            print(render(results, args), flush=True)
        if any(figures.errors for figures in results.values()):
            status = 1
    except KeyboardInterrupt:
        print("benchmark: interrupted", file=sys.stderr)
        status = 2
    finally:
        with contextlib.suppress(Exception):
            daemon.stop()
        with contextlib.suppress(Exception):
            left = kill_leftover_fakes(daemon.home)
            if left:
                print(f"benchmark: killed {left} leftover fake paseo process(es)", file=sys.stderr)
        if args.keep_logs or status:
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
