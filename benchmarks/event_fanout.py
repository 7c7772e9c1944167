#!/usr/bin/env python3
"""Benchmark: how fast a turn's chunks reach SSE readers, and what idle readers cost.

Starts, all on 127.0.0.1: a fresh PostgreSQL database (dropped at the end), the fake Paseo
daemon of tests/fakes, and two real `paseo-gateway serve` processes on that one database
(A runs the turns; B is another replica). Then:

1. Latency. A session's agent is made (one quick warm-up turn), and for each measured turn
   a `paseo attach` of the agent runs beside the gateways: the moment it prints a chunk is
   when the daemon showed it. The prompt is sent to A; its own stream (a reader in the
   process that runs the turn) and a `GET …/events` reader on B (another process, woken by
   LISTEN/NOTIFY) time every `text` delta. Printed: the latency each chunk gains from the
   daemon to the SSE client, p50/p90, per reader, and the chunks' cadence.
2. Idle readers. A turn that is running but quiet (its row is written straight into the
   database, held by no gateway and never stale) gets N readers on A (`GET …/events`).
   Printed: the time to open them all, A's CPU (% of one core) while nothing happens, the
   memory they added (RSS), and how long one stored event (+ NOTIFY) takes to reach all.

Targets (not asserted): <= 20 ms p50 added per chunk; <= 5 % of a core for 1,000 idle readers.

    .venv/bin/python benchmarks/event_fanout.py
    .venv/bin/python benchmarks/event_fanout.py --turns 3 --subscribers 1000 --idle-seconds 20

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth; `--pg-admin-dsn` to change).
Not a test: pytest collects only tests/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _common import (  # noqa: E402
    AUTH,
    TERMINAL_EVENTS,
    admin_execute,
    gateway_env,
    kill_leftover_fakes,
    percentile,
    spawn_gateway,
    sse_events,
    stop_server,
    wait_until_answering,
    with_database,
)

from tests.fakes.harness import FAKE_PASEO_BIN, FakePaseoDaemon  # noqa: E402

WARM_UP_PROMPT = "emit 1 coalesced agent stream updates"
STARTUP_TIMEOUT_SECONDS = 90.0
# What `paseo attach` prints once its header (and the replayed history) is out.
ATTACH_HEADER_END = "\n\n"


# -- timing what arrives --------------------------------------------------------------------


@dataclass
class Attach:
    """A `paseo attach` of the agent: its output, with the time each byte arrived."""

    process: asyncio.subprocess.Process
    text: str = ""
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (time, length so far)
    header: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        assert self.process.stdout is not None
        while chunk := await self.process.stdout.read(65536):
            now = time.perf_counter()
            self.text += chunk.decode(errors="replace")
            self.arrivals.append((now, len(self.text)))
            if ATTACH_HEADER_END in self.text:
                self.header.set()

    def shown_at(self, end: int) -> float | None:
        """When the output first reached `end` characters."""
        for at, length in self.arrivals:
            if length >= end:
                return at
        return None


@dataclass
class Deltas:
    """`text` deltas of one SSE reader, with the time each arrived."""

    name: str
    attach: Attach
    opened_at: float = 0.0
    received: list[tuple[float, str]] = field(default_factory=list)
    terminal: str | None = None


async def read_sse(response: httpx.Response, deltas: Deltas | None) -> dict[str, Any]:
    """Read to the terminal event; returns `turn.started`'s data (or {})."""
    started: dict[str, Any] = {}
    async with contextlib.aclosing(sse_events(response)) as events:
        async for name, _id, payload in events:
            if name == "turn.started":
                started = payload
            if name == "text" and deltas is not None:
                deltas.received.append((time.perf_counter(), str(payload.get("delta", ""))))
            if name in TERMINAL_EVENTS:
                if deltas is not None:
                    deltas.terminal = name
                return started
    return started


def added_latencies(attach: Attach, marker: str, deltas: Deltas) -> list[float]:
    """For each delta: its arrival minus when attach showed its last character (ms). Chunks the
    daemon showed before the reader was open are left out."""
    cursor = attach.text.find(marker)
    if cursor < 0:
        return []
    cursor += len(marker)
    out = []
    for received_at, delta in deltas.received:
        if not delta:
            continue
        index = attach.text.find(delta, cursor)
        if index < 0:
            continue
        cursor = index + len(delta)
        shown_at = attach.shown_at(cursor)
        if shown_at is not None and shown_at >= deltas.opened_at:
            out.append((received_at - shown_at) * 1000)
    return out


# -- the two measurements -------------------------------------------------------------------


async def measure_latency(
    a: httpx.AsyncClient, b: httpx.AsyncClient, daemon: FakePaseoDaemon, turns: int
) -> dict[str, list[float]]:
    response = await a.post("/sessions", json={"title": "latency", "model": "ten-second-stream"})
    response.raise_for_status()
    session_id = response.json()["id"]
    async with a.stream(
        "POST", f"/sessions/{session_id}/prompt", json={"prompt": WARM_UP_PROMPT}
    ) as stream:
        started = await read_sse(stream, None)
    agent_id = (
        started.get("agent_id") or (await a.get(f"/sessions/{session_id}")).json()["agent_id"]
    )
    figures: dict[str, list[float]] = {"same process": [], "second process": [], "cadence": []}
    for index in range(turns):
        prompt = f"write a haiku, take {index} {uuid.uuid4().hex[:8]}"
        local, remote = await timed_turn(a, b, daemon, session_id, agent_id, prompt)
        marker = attach_marker(prompt)
        figures["same process"] += added_latencies(local.attach, marker, local)
        figures["second process"] += added_latencies(local.attach, marker, remote)
        times = [at for at, _ in local.received]
        figures["cadence"] += [(t2 - t1) * 1000 for t1, t2 in itertools.pairwise(times)]
    return figures


def attach_marker(prompt: str) -> str:
    return f"[User] {prompt}\n"


async def timed_turn(
    a: httpx.AsyncClient,
    b: httpx.AsyncClient,
    daemon: FakePaseoDaemon,
    session_id: str,
    agent_id: str,
    prompt: str,
) -> tuple[Deltas, Deltas]:
    """One turn sent to A, timed by `paseo attach`, by A's own stream and by a reader on B."""
    process = await asyncio.create_subprocess_exec(
        str(FAKE_PASEO_BIN),
        "attach",
        "--",
        agent_id,
        env=daemon.env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    attach = Attach(process)
    attaching = asyncio.create_task(attach.read())
    local, remote = Deltas("same process", attach), Deltas("second process", attach)
    try:
        async with asyncio.timeout(30):
            await attach.header.wait()
        await asyncio.sleep(0.5)  # the replayed history is out
        local.opened_at = time.perf_counter()
        async with a.stream(
            "POST", f"/sessions/{session_id}/prompt", json={"prompt": prompt}
        ) as stream:
            url = stream.headers["Content-Location"]
            following = asyncio.create_task(follow(b, url, remote))
            await read_sse(stream, local)
            await following
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        await process.wait()
        await asyncio.gather(attaching, return_exceptions=True)
    return local, remote


async def follow(client: httpx.AsyncClient, url: str, deltas: Deltas) -> None:
    deltas.opened_at = time.perf_counter()
    async with client.stream("GET", url) as events:
        await read_sse(events, deltas)


@dataclass
class IdleFigures:
    subscribers: int
    open_seconds: float
    cpu_percent: float
    idle_seconds: float
    rss_added_mb: float
    wake_all_ms: float | None
    failed_opens: int = 0  # no stream: refused (non-2xx) or the connection failed
    refused: int = 0  # of those, answered with a non-2xx status
    dropped: int = 0  # opened, then ended before the wake-up (or without it)


# Opens under way at once (the client's own limit, not the gateway's).
OPENING_AT_ONCE = 50
# After the last open, before the idle window: the last opens settle.
SETTLE_SECONDS = 2.0
# How long one stored event may take to reach every reader.
WAKE_TIMEOUT_SECONDS = 60.0


async def hold_idle_subscribers(
    base_url: str,
    events_path: str,
    gateway_pid: int,
    count: int,
    idle: float,
    wake: Callable[[], Awaitable[None]] | None = None,
) -> IdleFigures:
    """Open `count` readers of `events_path` (a turn that stays quiet) and keep them open:
    the time to open them all, the gateway's CPU (% of a core) over `idle` s where nothing
    happens and the RSS they added. With `wake`, which stores one `text` event, also the time
    until every reader had it. Failed opens and streams that end are counted, not raised."""
    gateway = psutil.Process(gateway_pid)
    rss_before = gateway.memory_info().rss
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    timeout = httpx.Timeout(30.0, read=None)
    async with (
        httpx.AsyncClient(
            base_url=base_url, headers=AUTH, limits=limits, timeout=timeout, trust_env=False
        ) as client,
        contextlib.AsyncExitStack() as streams,
    ):
        got_event = 0
        all_got = asyncio.Event()
        refused = 0

        async def open_one(gate: asyncio.Semaphore) -> httpx.Response:
            nonlocal refused
            async with gate:
                response = await streams.enter_async_context(client.stream("GET", events_path))
                if not response.is_success:
                    refused += 1
                response.raise_for_status()
                return response

        async def wait_for_event(response: httpx.Response) -> bool:
            nonlocal got_event
            async for line in response.aiter_lines():
                if line.startswith("event: text"):
                    got_event += 1
                    if got_event == len(readers):
                        all_got.set()
                    return True
            return False

        start = time.perf_counter()
        gate = asyncio.Semaphore(OPENING_AT_ONCE)
        opened = await asyncio.gather(
            *(open_one(gate) for _ in range(count)), return_exceptions=True
        )
        open_seconds = time.perf_counter() - start
        responses = [r for r in opened if isinstance(r, httpx.Response)]
        readers = [asyncio.create_task(wait_for_event(r)) for r in responses]
        await asyncio.sleep(SETTLE_SECONDS)
        cpu_before = sum(gateway.cpu_times()[:2])
        wall_before = time.perf_counter()
        await asyncio.sleep(idle)
        cpu_percent = (
            (sum(gateway.cpu_times()[:2]) - cpu_before) / (time.perf_counter() - wall_before) * 100
        )
        rss_added = (gateway.memory_info().rss - rss_before) / 1e6
        dropped = sum(reader.done() for reader in readers)  # nothing was sent: they ended
        wake_all_ms: float | None = None
        if wake is not None and readers:
            woke = time.perf_counter()
            await wake()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WAKE_TIMEOUT_SECONDS):
                    await all_got.wait()
                    wake_all_ms = (time.perf_counter() - woke) * 1000
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    failed = count - len(responses)
    return IdleFigures(
        count, open_seconds, cpu_percent, idle, rss_added, wake_all_ms, failed, refused, dropped
    )


async def measure_idle(
    a: httpx.AsyncClient, base_url: str, db_dsn: str, gateway_pid: int, count: int, idle: float
) -> IdleFigures:
    response = await a.post("/sessions", json={"title": "idle", "model": "ten-second-stream"})
    response.raise_for_status()
    session_id = uuid.UUID(response.json()["id"])
    turn_id = uuid.uuid4()
    connection = await asyncpg.connect(db_dsn)
    try:
        # Running, held by no gateway here, and never stale: nothing will happen to it.
        await connection.execute(
            "INSERT INTO turns (id, session_id, number, prompt, status, started_at, runner_id,"
            " heartbeat_at, last_event_seq) VALUES ($1, $2, 1, 'idle', 'running',"
            " CURRENT_TIMESTAMP, 'bench-idle', CURRENT_TIMESTAMP + interval '1 day', 0)",
            turn_id,
            session_id,
        )

        async def store_one_event() -> None:
            # One stored event (as a runner in another process would store it) and its NOTIFY.
            async with connection.transaction():
                await connection.execute(
                    "UPDATE turns SET last_event_seq = 1 WHERE id = $1", turn_id
                )
                await connection.execute(
                    "INSERT INTO turn_events (turn_id, seq, name, data, created_at)"
                    " VALUES ($1, 1, 'text', '{\"delta\": \"x\"}', CURRENT_TIMESTAMP)",
                    turn_id,
                )
                await connection.execute(
                    "SELECT pg_notify('paseo_turn_events', $1)", f"{turn_id}:1"
                )

        url = f"/sessions/{session_id}/turns/{turn_id}/events"
        figures = await hold_idle_subscribers(
            base_url, url, gateway_pid, count, idle, wake=store_one_event
        )
    finally:
        await connection.close()
    if figures.failed_opens:
        raise RuntimeError(f"{figures.failed_opens} of {count} readers could not open")
    return figures


# -- report ---------------------------------------------------------------------------------


def render(latency: dict[str, list[float]], idle: IdleFigures | None, wall: float) -> str:
    lines = ["", "event fan-out benchmark", ""]
    lines.append("latency each chunk gains, daemon (paseo attach) -> SSE client:")
    for name in ("same process", "second process"):
        values = latency.get(name, [])
        p50 = percentile(values, 50, method="rounded-index")
        p90 = percentile(values, 90, method="rounded-index")
        lines.append(f"  {name:15} p50 {p50:7.1f} ms   p90 {p90:7.1f} ms   ({len(values)} chunks)")
    cadence = latency.get("cadence", [])
    if cadence:
        lines.append(
            "  chunk cadence at the same-process reader: median"
            f" {statistics.median(cadence):.1f} ms"
        )
    if idle is not None:
        lines.append("")
        lines.append(f"{idle.subscribers} idle subscribers of one turn (gateway A):")
        lines.append(f"  time to open them all     {idle.open_seconds:8.2f} s")
        lines.append(
            f"  gateway CPU while idle    {idle.cpu_percent:8.2f} % of a core"
            f" (over {idle.idle_seconds:.0f} s)"
        )
        lines.append(f"  memory added (RSS)        {idle.rss_added_mb:8.1f} MB")
        woke = f"{idle.wake_all_ms:8.1f} ms" if idle.wake_all_ms is not None else "not all woke"
        lines.append(f"  one event reaches all     {woke}")
    lines.append("")
    lines.append(f"wall time {wall:.1f} s")
    return "\n".join(lines)


# -- processes ------------------------------------------------------------------------------


def start_gateway(
    work: Path, name: str, database_url: str, daemon: FakePaseoDaemon
) -> tuple[subprocess.Popen[bytes], str]:
    cwd = work / "project"
    cwd.mkdir(parents=True, exist_ok=True)
    env = gateway_env(
        daemon,
        database_url,
        cwd,
        PASEO_GATEWAY_LOG_FORMAT="text",
        PASEO_GATEWAY_LOG_LEVEL="WARNING",
    )
    process, url = spawn_gateway(env, work / f"gateway-{name}.log", cwd=work)
    if wait_until_answering(process, f"{url}/healthz", timeout=STARTUP_TIMEOUT_SECONDS):
        return process, url
    if process.poll() is not None:
        raise RuntimeError(f"gateway {name} exited at start (log in {work})")
    stop_server(process)
    raise RuntimeError(f"gateway {name} did not start (log in {work})")


async def benchmark(
    url_a: str, url_b: str, pid_a: int, db_dsn: str, daemon: FakePaseoDaemon, args: Any
) -> tuple[dict[str, list[float]], IdleFigures | None]:
    timeout = httpx.Timeout(30.0, read=120.0)
    async with (
        httpx.AsyncClient(base_url=url_a, headers=AUTH, timeout=timeout, trust_env=False) as a,
        httpx.AsyncClient(base_url=url_b, headers=AUTH, timeout=timeout, trust_env=False) as b,
    ):
        latency = await measure_latency(a, b, daemon, args.turns)
        idle = None
        if args.subscribers:
            idle = await measure_idle(a, url_a, db_dsn, pid_a, args.subscribers, args.idle_seconds)
    return latency, idle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=3, help="measured turns")
    parser.add_argument("--subscribers", type=int, default=1000, help="idle readers (0: none)")
    parser.add_argument("--idle-seconds", type=float, default=15.0, help="idle CPU window")
    parser.add_argument("--time-scale", type=float, default=0.5, help="FAKE_PASEO_TIME_SCALE")
    parser.add_argument("--pg-admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    wall = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="paseo-gw-fanout-"))
    db_name = f"paseo_gw_fanout_{uuid.uuid4().hex[:10]}"
    db_dsn = with_database(args.pg_admin_dsn, db_name)
    database_url = db_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    daemon = FakePaseoDaemon(work / "paseo-home", time_scale=args.time_scale)
    gateways: list[subprocess.Popen[bytes]] = []
    status = 2
    try:
        asyncio.run(admin_execute(args.pg_admin_dsn, f'CREATE DATABASE "{db_name}"'))
        daemon.start()
        process_a, url_a = start_gateway(work, "a", database_url, daemon)
        gateways.append(process_a)
        process_b, url_b = start_gateway(work, "b", database_url, daemon)
        gateways.append(process_b)
        print(f"gateways {url_a} (A, pid {process_a.pid}), {url_b} (B); work {work}", flush=True)
        latency, idle = asyncio.run(benchmark(url_a, url_b, process_a.pid, db_dsn, daemon, args))
        print(render(latency, idle, time.perf_counter() - wall), flush=True)
        status = 0
    except Exception as exc:
        print(
            f"benchmark failed: {type(exc).__name__}: {exc} (work folder {work})", file=sys.stderr
        )
        return 2
    finally:
        for process in gateways:
            stop_server(process)
        with contextlib.suppress(Exception):
            daemon.stop()
        kill_leftover_fakes(daemon.home)
        with contextlib.suppress(Exception):
            asyncio.run(
                admin_execute(
                    args.pg_admin_dsn, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'
                )
            )
        if status == 0:
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
