#!/usr/bin/env python3
"""Benchmark: the CLI transport and the daemon transport side by side, on one fake daemon.

Starts, all on 127.0.0.1: the fake Paseo daemon of tests/fakes (mock provider; every CLI call
costs FAKE_PASEO_STARTUP_DELAY, default 1.3 s like the real CLI on an idle machine) and, for
each transport, a real `paseo-gateway serve` on its own SQLite database. Then prints, per
transport:

- `POST …/prompt` → `turn.started` and → first `text`, for a session's first prompt and for a
  later prompt (p50/p90 over --prompts sessions, one prompt at a time);
- `GET /agents` through the gateway ÷ the same call made directly (CLI: `paseo ls --json`;
  daemon: one `fetch_agents_request` on a WebSocket), p50 over --calls calls, and 20
  concurrent `GET /agents` (wall time, `paseo ls` children started);
- resident memory of the gateway plus its children while 1 and 10 turns stream at once
  (--memory-turns to change), the added MiB per turn;
- with --many N (default 100): N concurrent streaming turns on the daemon transport, whether
  all completed and how many events a stream missed against the stored turn.

Chunk latency to SSE readers and 1,000 idle subscribers: benchmarks/event_fanout.py.

    .venv/bin/python benchmarks/transports.py
    .venv/bin/python benchmarks/transports.py --prompts 5 --many 0 --startup-delay 4

Not a test: pytest collects only tests/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import websockets

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _common import (  # noqa: E402
    AUTH,
    TERMINAL_EVENTS,
    free_port,
    gateway_env,
    percentile,
    running_server,
    wait_until_answering,
)

from tests.fakes.harness import FAKE_PASEO_BIN, FakePaseoDaemon  # noqa: E402

QUICK_PROMPT = "emit 3 coalesced agent stream updates"
TRANSPORTS = ("cli", "daemon")


@contextlib.contextmanager
def gateway(
    transport: str, daemon: FakePaseoDaemon, folder: Path, startup_delay: float
) -> Iterator[tuple[str, psutil.Process]]:
    port = free_port()
    env = gateway_env(
        daemon,
        f"sqlite+aiosqlite:///{folder / f'{transport}.db'}",
        folder,
        PASEO_GATEWAY_TRANSPORT=transport,
        PASEO_GATEWAY_DEFAULT_MODEL="ten-second-stream",
        PASEO_GATEWAY_MAX_CONCURRENT_TURNS="200",
        PASEO_GATEWAY_LOG_LEVEL="WARNING",
        FAKE_PASEO_STARTUP_DELAY=str(startup_delay),
    )
    log_path = folder / f"gateway-{transport}.log"
    argv = [sys.executable, "-m", "app", "serve", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with running_server(argv, env=env, log_path=log_path, cwd=folder) as process:
        # One /readyz can take seconds: it checks that the daemon answers.
        if not wait_until_answering(process, f"{url}/readyz", timeout=120, request_timeout=30):
            if process.poll() is not None:
                raise RuntimeError(f"the {transport} gateway exited:\n{log_path.read_text()}")
            raise RuntimeError(f"the {transport} gateway did not become ready")
        yield url, psutil.Process(process.pid)


# --- prompts ---------------------------------------------------------------------------------


@dataclass
class Prompted:
    started: float | None = None  # seconds from POST to turn.started
    first_text: float | None = None
    terminal: str | None = None
    ids: list[int] = field(default_factory=list)
    turn_id: str | None = None


async def prompt(client: httpx.AsyncClient, session_id: str, text: str) -> Prompted:
    """POST a prompt and read its stream to the end, timing the first events."""
    seen = Prompted()
    began = time.perf_counter()
    url = f"/sessions/{session_id}/prompt"
    async with client.stream("POST", url, json={"prompt": text}) as response:
        if response.status_code != 200:
            seen.terminal = f"HTTP {response.status_code}"
            return seen
        seen.turn_id = response.headers.get("x-turn-id")
        name = ""
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                seen.ids.append(int(line[4:]))
            elif line.startswith("event: "):
                name = line[7:]
                at = time.perf_counter() - began
                if name == "turn.started" and seen.started is None:
                    seen.started = at
                if name == "text" and seen.first_text is None:
                    seen.first_text = at
                if name in TERMINAL_EVENTS:
                    seen.terminal = name
            elif line == "" and name in TERMINAL_EVENTS:
                break
    return seen


async def prompt_latencies(url: str, sessions: int) -> dict[str, list[float]]:
    kinds = ("first started", "first text", "later started", "later text")
    figures: dict[str, list[float]] = {kind: [] for kind in kinds}
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=600) as client:
        for _ in range(sessions):
            session = (await client.post("/sessions", json={})).json()
            for kind, text in (("first", "work"), ("later", "work again")):
                seen = await prompt(client, session["id"], text)
                if seen.started is not None:
                    figures[f"{kind} started"].append(seen.started)
                if seen.first_text is not None:
                    figures[f"{kind} text"].append(seen.first_text)
    return figures


# --- GET /agents -----------------------------------------------------------------------------


async def direct_list(transport: str, daemon: FakePaseoDaemon, startup_delay: float) -> float:
    began = time.perf_counter()
    if transport == "cli":
        env = {**daemon.env(), "FAKE_PASEO_STARTUP_DELAY": str(startup_delay)}
        process = await asyncio.create_subprocess_exec(
            str(FAKE_PASEO_BIN), "ls", "--json", env=env, stdout=subprocess.DEVNULL
        )
        await process.wait()
        return time.perf_counter() - began
    async with websockets.connect(daemon.ws_url, max_size=None) as ws:
        hello = {"type": "hello", "clientId": f"bench-{uuid.uuid4().hex}", "clientType": "cli",
                 "protocolVersion": 1, "appVersion": "0.1.65"}  # fmt: skip
        await ws.send(json.dumps(hello))
        await ws.recv()  # server_info
        began = time.perf_counter()  # the call itself, as the gateway's open socket pays it
        request = {"type": "fetch_agents_request", "requestId": "r1", "scope": "active"}
        await ws.send(json.dumps({"type": "session", "message": request}))
        while "fetch_agents_response" not in str(await ws.recv()):
            pass
        return time.perf_counter() - began


async def agents_figures(
    url: str, transport: str, daemon: FakePaseoDaemon, calls: int, startup_delay: float
) -> dict[str, float]:
    gateway_times, direct_times = [], []
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=600) as client:
        for _ in range(calls):
            began = time.perf_counter()
            assert (await client.get("/agents")).status_code == 200
            gateway_times.append(time.perf_counter() - began)
            direct_times.append(await direct_list(transport, daemon, startup_delay))
        began = time.perf_counter()
        answers = await asyncio.gather(*(client.get("/agents") for _ in range(20)))
        concurrent = time.perf_counter() - began
    assert all(answer.status_code == 200 for answer in answers)
    gateway_p50 = statistics.median(gateway_times)
    direct_p50 = statistics.median(direct_times)
    return {
        "gateway p50 s": gateway_p50,
        "direct p50 s": direct_p50,
        "ratio": gateway_p50 / direct_p50 if direct_p50 else float("nan"),
        "20 at once s": concurrent,
    }


# --- memory and many turns -------------------------------------------------------------------


def tree_rss_mib(process: psutil.Process) -> float:
    total = 0
    for each in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += each.memory_info().rss
    return total / 2**20


async def concurrent_turns(url: str, count: int, process: psutil.Process) -> dict[str, float]:
    """`count` turns streaming at once: peak memory of the gateway tree, completions."""
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=900) as client:
        sessions = [(await client.post("/sessions", json={})).json()["id"] for _ in range(count)]
        peak = tree_rss_mib(process)
        tasks = [asyncio.create_task(prompt(client, sid, "work")) for sid in sessions]
        while not all(task.done() for task in tasks):
            peak = max(peak, tree_rss_mib(process))
            await asyncio.wait(tasks, timeout=0.25)
        results = [task.result() for task in tasks]
        missed = 0
        for session_id, seen in zip(sessions, results, strict=True):
            if seen.turn_id is None:
                continue
            stored = await client.get(f"/sessions/{session_id}/turns/{seen.turn_id}/events")
            stored_ids = [
                int(line[4:]) for line in stored.text.splitlines() if line.startswith("id: ")
            ]
            missed += len(set(stored_ids) - set(seen.ids))
    return {
        "peak MiB": peak,
        "completed": sum(seen.terminal == "turn.completed" for seen in results),
        "missed events": missed,
    }


# --- the run ---------------------------------------------------------------------------------


def show(title: str, rows: dict[str, dict[str, Any]]) -> None:
    print(f"\n{title}")
    names: list[str] = []
    for row in rows.values():
        names += [name for name in row if name not in names]
    print(f"  {'':<22}" + "".join(f"{transport:>14}" for transport in rows))
    for name in names:
        cells = []
        for row in rows.values():
            value = row.get(name)
            cells.append(f"{value:>14.3f}" if isinstance(value, float) else f"{value!s:>14}")
        print(f"  {name:<22}" + "".join(cells))


async def run(args: argparse.Namespace, daemon: FakePaseoDaemon, folder: Path) -> None:
    prompts: dict[str, dict[str, Any]] = {}
    agents: dict[str, dict[str, Any]] = {}
    memory: dict[str, dict[str, Any]] = {}
    for transport in TRANSPORTS:
        with gateway(transport, daemon, folder, args.startup_delay) as (url, process):
            latencies = await prompt_latencies(url, args.prompts)
            prompts[transport] = {
                f"{name} {tag}": percentile(values, pct, method="floor-index")
                for name, values in latencies.items()
                for tag, pct in (("p50", 50), ("p90", 90))
            }
            agents[transport] = await agents_figures(
                url, transport, daemon, args.calls, args.startup_delay
            )
            row: dict[str, Any] = {"idle MiB": tree_rss_mib(process)}
            for count in args.memory_turns:
                row[f"{count} turns MiB"] = (await concurrent_turns(url, count, process))[
                    "peak MiB"
                ]
            top = max(args.memory_turns)
            row["MiB per turn"] = (row[f"{top} turns MiB"] - row["idle MiB"]) / top
            memory[transport] = row
            if transport == "daemon" and args.many:
                many = await concurrent_turns(url, args.many, process)
                memory[transport][f"{args.many} turns done"] = int(many["completed"])
                memory[transport][f"{args.many} missed ev."] = int(many["missed events"])
    print(
        f"fake daemon, FAKE_PASEO_STARTUP_DELAY={args.startup_delay:g} s per CLI call, "
        f"time scale {args.time_scale:g}, {os.cpu_count()} CPUs"
    )
    show("POST /prompt latency, seconds (first prompt creates the agent)", prompts)
    show("GET /agents", agents)
    show("memory of the gateway and its children", memory)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=10, help="sessions, two prompts each")
    parser.add_argument("--calls", type=int, default=5, help="sequential GET /agents calls")
    parser.add_argument("--memory-turns", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--many", type=int, default=100, help="concurrent daemon turns (0: skip)")
    parser.add_argument("--startup-delay", type=float, default=1.3, help="seconds per CLI call")
    parser.add_argument("--time-scale", type=float, default=0.3, help="FAKE_PASEO_TIME_SCALE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-transports-") as tmp:
        folder = Path(tmp)
        with FakePaseoDaemon(folder / "home", time_scale=args.time_scale) as daemon:
            asyncio.run(run(args, daemon, folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
