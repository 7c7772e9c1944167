#!/usr/bin/env python3
"""Benchmark: many concurrent turns, each followed by many event-stream readers.

Starts, all on 127.0.0.1: a fresh PostgreSQL database (dropped at the end), the fake Paseo
daemon of tests/fakes (mock provider, FAKE_PASEO_TIME_SCALE so a `ten-second-stream` turn
takes a few seconds) and a real `paseo-gateway serve` process. It then creates N sessions,
sends N prompts at once (`POST /sessions/{id}/prompt`, read as a stream like `curl -N`) and,
for every turn, opens R readers on `GET /sessions/{id}/turns/{turn_id}/events`, started
spread over the turn (from its first moment to about its end), each reading to the terminal
event. Afterwards it reads what the database stored and prints:

- events stored (total, per turn min/max) and gaps in the stored numbering;
- events received per reader (min/max/mean), duplicates (an id twice in one reader's stream)
  and gaps (ids missing between 1 and the terminal event's id), summed over readers;
- the turns' terminal statuses, POST -> `turn.started` latency (p50/p99) and wall time.

It exits 1 if any reader (or prompt stream) saw a duplicate or a gap, missed its terminal
event, or a turn did not complete; 2 if the set-up failed or the run timed out.

    .venv/bin/python benchmarks/turn_streams.py                  # 20 turns x 10 readers
    .venv/bin/python benchmarks/turn_streams.py --turns 5 --readers 3 --keep-db
    .venv/bin/python benchmarks/turn_streams.py --warm-up   # measured prompts are `send`s

`--help` lists the rest (--time-scale, --spread, --seed, --timeout, --keep-logs, ...).

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth; `--pg-admin-dsn` to change).
Not a test: pytest collects only tests/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import asyncpg
import httpx

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _common import (  # noqa: E402
    ADMIN_KEY,
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

from tests.fakes.harness import FakePaseoDaemon  # noqa: E402

# The mock's nominal turn length for each model, in seconds at FAKE_PASEO_TIME_SCALE=1.
MODEL_SECONDS = {
    "ten-second-stream": 10.0,
    "one-minute-stream": 60.0,
    "five-minute-stream": 300.0,
    "thirty-minute-stream": 1800.0,
}
# The mock's fastest turn (a magic prompt, ends at once).
WARM_UP_PROMPT = "emit 1 coalesced agent stream updates"
STARTUP_TIMEOUT_SECONDS = 60.0
# A reader whose connection ends before the terminal event reconnects (with Last-Event-ID,
# as EventSource does) at most this many times.
MAX_RECONNECTS = 20
RECONNECT_DELAY_SECONDS = 0.2


class BenchmarkTimeout(Exception):
    """The overall time limit passed."""


# -- what the streams saw ---------------------------------------------------------------------


@dataclass
class StreamLog:
    """Everything one stream (a prompt POST or an events reader) received."""

    kind: str  # "prompt" or "reader"
    turn: int
    ids: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    terminal: str | None = None
    terminal_id: int | None = None
    final_text: str | None = None
    reconnects: int = 0
    shutdowns: int = 0
    error: str | None = None
    opened_at: float | None = None  # perf_counter when the request went out
    ended_at: float | None = None

    def duplicates(self) -> int:
        return len(self.ids) - len(set(self.ids))

    def gaps(self, last: int) -> int:
        """Ids missing between 1 and `last` (the terminal id, or the stored maximum)."""
        return len(set(range(1, last + 1)) - set(self.ids))

    def out_of_order(self) -> int:
        return sum(1 for a, b in zip(self.ids, self.ids[1:], strict=False) if b <= a)


@dataclass
class TurnRun:
    index: int
    session_id: str
    turn_id: str | None = None
    events_url: str | None = None
    status_code: int | None = None
    post_at: float = 0.0
    headers_at: float | None = None
    started_at: float | None = None  # turn.started received on the prompt stream
    terminal_at: float | None = None
    prompt: StreamLog | None = None
    readers: list[StreamLog] = field(default_factory=list)
    reader_starts: list[float] = field(default_factory=list)
    error: str | None = None


async def read_sse(
    response: httpx.Response,
    log: StreamLog,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> str | None:
    """Record events until the terminal one; return the event name that ended the read
    (terminal, or `gateway.shutdown`), or None when the connection ended first."""
    async with contextlib.aclosing(sse_events(response)) as events:
        async for name, event_id, payload in events:
            if name == "gateway.shutdown":
                log.shutdowns += 1
                return name
            if event_id is not None:
                log.ids.append(int(event_id))
            log.names.append(name)
            if on_event is not None:
                on_event(name, payload)
            if name == "text":
                log.text.append(str(payload.get("delta", "")))
            if name in TERMINAL_EVENTS:
                log.terminal = name
                log.terminal_id = int(event_id) if event_id is not None else None
                log.final_text = payload.get("final_text")
                return name
    return None


async def follow_events(
    client: httpx.AsyncClient, url: str, log: StreamLog, headers: dict[str, str]
) -> None:
    """Read an events URL from the start to the terminal event, reconnecting if need be."""
    log.opened_at = time.perf_counter()
    for attempt in range(MAX_RECONNECTS + 1):
        request_headers = dict(headers)
        if log.ids:
            request_headers["Last-Event-ID"] = str(max(log.ids))
        if attempt:
            log.reconnects += 1
        try:
            async with client.stream("GET", url, headers=request_headers) as response:
                if response.status_code != 200:
                    await response.aread()
                    log.error = f"HTTP {response.status_code}: {response.text[:200]}"
                else:
                    await read_sse(response, log)
                    log.error = None
        except (httpx.TransportError, json.JSONDecodeError, ValueError) as exc:
            log.error = f"{type(exc).__name__}: {exc}"
        if log.terminal is not None:
            break
        await asyncio.sleep(RECONNECT_DELAY_SECONDS)
    if log.terminal is None and log.error is None:
        log.error = f"no terminal event after {MAX_RECONNECTS} reconnects"
    log.ended_at = time.perf_counter()


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Options:
    turns: int
    readers: int
    model: str
    prompt: str
    time_scale: float
    spread: float
    timeout: float
    seed: int | None
    warm_up: bool


async def run_turn(
    client: httpx.AsyncClient,
    run: TurnRun,
    go: asyncio.Event,
    opts: Options,
    rng: random.Random,
    auth: dict[str, str],
) -> None:
    """Send the prompt, read its stream to the end, start this turn's readers on the way."""
    prompt_log = StreamLog("prompt", run.index)
    run.prompt = prompt_log
    reader_tasks: list[asyncio.Task[None]] = []
    # Reader 0 starts as soon as the turn id is known (the response headers); reader j at a
    # random moment in the j-th of R equal slices of `spread` seconds: mid-turn, and some
    # near or after the end.
    offsets = [0.0] + [
        opts.spread * (j + rng.random()) / opts.readers for j in range(1, opts.readers)
    ]

    async def start_readers(turn_id_at: float) -> None:
        assert run.events_url is not None
        for j, offset in enumerate(offsets):
            await asyncio.sleep(max(0.0, turn_id_at + offset - time.perf_counter()))
            log = StreamLog("reader", run.index)
            run.readers.append(log)
            run.reader_starts.append(time.perf_counter())
            reader_tasks.append(
                asyncio.create_task(
                    follow_events(client, run.events_url, log, auth), name=f"r{run.index}.{j}"
                )
            )

    starter: asyncio.Task[None] | None = None

    def on_event(name: str, payload: dict[str, Any]) -> None:
        nonlocal starter
        now = time.perf_counter()
        if name == "turn.started" and run.started_at is None:
            run.started_at = now
            if starter is None:  # no X-Turn-Id header: take the turn from the event
                run.turn_id = str(payload["turn_id"])
                run.events_url = str(payload["events_url"])
                starter = asyncio.create_task(start_readers(now))
        elif name in TERMINAL_EVENTS:
            run.terminal_at = now

    await go.wait()
    run.post_at = prompt_log.opened_at = time.perf_counter()
    try:
        async with client.stream(
            "POST",
            f"/sessions/{run.session_id}/prompt",
            json={"prompt": opts.prompt},
            headers=auth,
        ) as response:
            run.headers_at = time.perf_counter()
            run.status_code = response.status_code
            if response.status_code != 200:
                await response.aread()
                run.error = f"prompt: HTTP {response.status_code}: {response.text[:300]}"
                return
            run.turn_id = response.headers.get("x-turn-id")
            run.events_url = response.headers.get("content-location")
            if run.turn_id and run.events_url:
                starter = asyncio.create_task(start_readers(run.headers_at))
            await read_sse(response, prompt_log, on_event)
            if prompt_log.terminal is None:
                prompt_log.error = "prompt stream ended before the terminal event"
    except (httpx.TransportError, json.JSONDecodeError, ValueError, KeyError) as exc:
        prompt_log.error = f"{type(exc).__name__}: {exc}"
    finally:
        prompt_log.ended_at = time.perf_counter()
        if starter is not None:
            await starter
        if reader_tasks:
            await asyncio.gather(*reader_tasks)


@dataclass
class StoredTurn:
    turn_id: str
    status: str
    error_code: str | None
    count: int
    max_seq: int
    distinct: int
    terminal: str | None
    missing: list[int] = field(default_factory=list)
    replayed: int | None = None


async def stored_turns(dsn: str) -> dict[str, StoredTurn]:
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        rows = await conn.fetch(
            """
            SELECT t.id::text AS turn_id, t.status, t.error_code,
                   count(e.id) AS n, coalesce(max(e.seq), 0) AS max_seq,
                   count(DISTINCT e.seq) AS distinct_seq,
                   max(e.name) FILTER (WHERE e.name = ANY($1::text[])) AS terminal,
                   array_remove(array_agg(e.seq ORDER BY e.seq), NULL) AS seqs
            FROM turns t LEFT JOIN turn_events e ON e.turn_id = t.id
            GROUP BY t.id, t.status, t.error_code
            """,
            sorted(TERMINAL_EVENTS),
        )
    finally:
        await conn.close()
    return {
        row["turn_id"]: StoredTurn(
            row["turn_id"],
            row["status"],
            row["error_code"],
            int(row["n"]),
            int(row["max_seq"]),
            int(row["distinct_seq"]),
            row["terminal"],
            sorted(set(range(1, int(row["max_seq"]) + 1)) - set(row["seqs"])),
        )
        for row in rows
    }


LAG_SAMPLE_SECONDS = 0.05


async def loop_lag(lags: list[float]) -> None:
    """How late this process's event loop wakes up (the client's own delay in the figures)."""
    while True:
        before = time.perf_counter()
        await asyncio.sleep(LAG_SAMPLE_SECONDS)
        lags.append(max(0.0, time.perf_counter() - before - LAG_SAMPLE_SECONDS))


async def warm_up(client: httpx.AsyncClient, session_id: str, auth: dict[str, str]) -> None:
    """One quick turn, so the session's agent exists and the measured turn is a `send`."""
    log = StreamLog("warm-up", -1)
    async with client.stream(
        "POST", f"/sessions/{session_id}/prompt", json={"prompt": WARM_UP_PROMPT}, headers=auth
    ) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(f"warm-up prompt: HTTP {response.status_code}: {response.text}")
        await read_sse(response, log)
    if log.terminal != "turn.completed":
        raise RuntimeError(f"warm-up turn ended {log.terminal}")


async def benchmark(base_url: str, db_dsn: str, opts: Options) -> Report:
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    rng = random.Random(opts.seed)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    timeout = httpx.Timeout(30.0, read=120.0)
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=timeout, trust_env=False
    ) as client:
        sessions = []
        for i in range(opts.turns):
            response = await client.post(
                "/sessions",
                json={"title": f"bench-{i}", "model": opts.model, "labels": {"bench": "1"}},
                headers=auth,
            )
            if response.status_code != 201:
                raise RuntimeError(f"POST /sessions: HTTP {response.status_code}: {response.text}")
            sessions.append(str(response.json()["id"]))
        if opts.warm_up:
            await asyncio.gather(*(warm_up(client, sid, auth) for sid in sessions))
        runs = [TurnRun(i, session_id) for i, session_id in enumerate(sessions)]
        go = asyncio.Event()
        tasks = [
            asyncio.create_task(run_turn(client, run, go, opts, rng, auth), name=f"turn{run.index}")
            for run in runs
        ]
        lags: list[float] = []
        monitor = asyncio.create_task(loop_lag(lags))
        started = time.perf_counter()
        go.set()
        try:
            await asyncio.gather(*tasks)
        finally:
            monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor
        streams_seconds = time.perf_counter() - started

        stored = await stored_turns(db_dsn)
        # A last full replay of every turn through the API, after the fact.
        for run in runs:
            if run.turn_id is None or run.events_url is None or run.turn_id not in stored:
                continue
            replay = StreamLog("replay", run.index)
            await follow_events(client, run.events_url, replay, auth)
            stored[run.turn_id].replayed = len(replay.ids)
    return Report(opts, runs, stored, streams_seconds, lags)


# -- the report -------------------------------------------------------------------------------


@dataclass
class Report:
    opts: Options
    runs: list[TurnRun]
    stored: dict[str, StoredTurn]
    streams_seconds: float
    loop_lags: list[float]
    failures: list[str] = field(default_factory=list)

    def render(self, wall_seconds: float, gateway_log: Path | None) -> str:
        out: list[str] = []
        opts = self.opts
        runs = self.runs
        nominal = MODEL_SECONDS.get(opts.model, 0) * opts.time_scale
        out.append(
            f"turns {opts.turns} x readers {opts.readers}; model {opts.model}, "
            f"FAKE_PASEO_TIME_SCALE {opts.time_scale} (nominal turn {nominal:.1f} s), "
            f"readers spread over {opts.spread:.1f} s"
            + ("; after a warm-up turn per session" if opts.warm_up else "")
        )
        for run in runs:
            if run.error:
                self.failures.append(f"turn {run.index}: {run.error}")
        ours = [self.stored.get(run.turn_id or "") for run in runs]
        stored = [s for s in ours if s is not None]
        missing = sum(1 for s in ours if s is None)
        if missing:
            self.failures.append(f"{missing} turn(s) not found in the database")
        counts = [s.count for s in stored]
        if counts:
            out.append(
                f"events stored: total {sum(counts)}, per turn min {min(counts)} "
                f"max {max(counts)} mean {statistics.fmean(counts):.1f}"
            )
        storage_gaps = sum(s.max_seq - s.distinct for s in stored)
        gap_turns = sum(1 for s in stored if s.max_seq != s.distinct)
        storage_dups = sum(s.count - s.distinct for s in stored)
        no_terminal_stored = sum(1 for s in stored if s.terminal is None)
        out.append(
            f"stored numbering: gaps {storage_gaps} (in {gap_turns} turns), duplicate seqs "
            f"{storage_dups}, turns without a stored terminal event {no_terminal_stored}"
        )
        for s in [s for s in stored if s.missing][:5]:
            out.append(
                f"  turn {s.turn_id[:8]}: seqs {_ranges(s.missing)} missing of 1-{s.max_seq} "
                f"({s.count} stored, last {s.terminal})"
            )
        replay_mismatch = [s for s in stored if s.replayed is not None and s.replayed != s.count]
        out.append(
            f"final full replay: {len(stored) - len(replay_mismatch)}/{len(stored)} turns "
            "replay exactly their stored events"
            + (
                ""
                if not replay_mismatch
                else " (" + ", ".join(f"{s.replayed}/{s.count}" for s in replay_mismatch) + ")"
            )
        )

        statuses = Counter(s.status for s in stored)
        out.append("terminal statuses (database): " + _counts(statuses))
        not_completed = sum(n for status, n in statuses.items() if status != "completed")
        if not_completed or missing:
            self.failures.append(f"{not_completed + missing} turn(s) did not complete")
        errors = Counter(s.error_code for s in stored if s.error_code)
        if errors:
            out.append("error codes: " + _counts(errors))

        # Readers and prompt streams, checked against the stored numbering.
        for kind, logs in (
            ("readers", [(run, log) for run in runs for log in run.readers]),
            ("prompt streams", [(run, run.prompt) for run in runs if run.prompt is not None]),
        ):
            out.extend(self._stream_lines(kind, logs))

        mid = before = after = 0
        for run in runs:
            for start in run.reader_starts:
                # Before turn.started reached the prompt stream (reader 0 starts as the
                # response headers arrive), during the turn, after its terminal event.
                if run.started_at is not None and start < run.started_at:
                    before += 1
                elif run.terminal_at is None or start < run.terminal_at:
                    mid += 1
                else:
                    after += 1
        out.append(
            f"reader starts: {before} before turn.started reached the prompt stream, "
            f"{mid} mid-turn, {after} after the turn ended"
        )

        to_headers = [
            (run.headers_at - run.post_at) * 1000 for run in runs if run.headers_at is not None
        ]
        if to_headers:
            out.append(
                f"POST -> response headers: p50 {percentile(to_headers, 50):.0f} ms, "
                f"p99 {percentile(to_headers, 99):.0f} ms"
            )
        latencies = [
            (run.started_at - run.post_at) * 1000 for run in runs if run.started_at is not None
        ]
        if latencies:
            out.append(
                f"POST -> turn.started: p50 {percentile(latencies, 50):.0f} ms, "
                f"p99 {percentile(latencies, 99):.0f} ms, max {max(latencies):.0f} ms "
                f"({len(latencies)} turns)"
            )
        if len(latencies) < len(runs):
            self.failures.append(f"{len(runs) - len(latencies)} prompt(s) never got turn.started")
        durations = [run.terminal_at - run.post_at for run in runs if run.terminal_at is not None]
        if durations:
            out.append(
                f"POST -> terminal event: p50 {percentile(durations, 50):.2f} s, "
                f"max {max(durations):.2f} s"
            )
        if self.loop_lags:
            lag_ms = [lag * 1000 for lag in self.loop_lags]
            out.append(
                f"benchmark client's event-loop lag: p50 {percentile(lag_ms, 50):.0f} ms, "
                f"p99 {percentile(lag_ms, 99):.0f} ms, max {max(lag_ms):.0f} ms"
            )
        out.append(
            f"wall time: {wall_seconds:.1f} s (prompts and readers {self.streams_seconds:.1f} s)"
        )
        if gateway_log is not None and gateway_log.exists():
            out.extend(log_problems(gateway_log))
        out.append("RESULT: " + ("OK" if not self.failures else "FAIL"))
        out.extend(f"  - {failure}" for failure in self.failures)
        return "\n".join(out)

    def _stream_lines(self, kind: str, logs: list[tuple[TurnRun, StreamLog]]) -> list[str]:
        if not logs:
            return [f"{kind}: none"]
        received = [len(log.ids) for _, log in logs]
        dups = gaps = disorder = no_terminal = text_mismatch = short = 0
        reconnects = shutdowns = 0
        for run, log in logs:
            stored = self.stored.get(run.turn_id or "")
            stored_max = stored.max_seq if stored else 0
            last = log.terminal_id or max([stored_max, *log.ids])
            dups += log.duplicates()
            gaps += log.gaps(last)
            disorder += log.out_of_order()
            reconnects += log.reconnects
            shutdowns += log.shutdowns
            if log.terminal is None:
                no_terminal += 1
            elif log.final_text is not None and "".join(log.text) != log.final_text:
                text_mismatch += 1
            if stored is not None and len(set(log.ids)) < stored.count:
                short += 1
        lines = [
            f"{kind} ({len(logs)}): events received per stream min {min(received)} "
            f"max {max(received)} mean {statistics.fmean(received):.1f}",
            f"{kind}: duplicates {dups}, gaps {gaps}, out of order {disorder}, "
            f"without terminal event {no_terminal}, fewer events than stored {short}, "
            f"text deltas != final_text {text_mismatch}, reconnects {reconnects}",
        ]
        if dups:
            self.failures.append(f"{kind}: {dups} duplicate event(s)")
        if gaps:
            self.failures.append(f"{kind}: {gaps} missing event(s) (gaps)")
        if no_terminal:
            self.failures.append(f"{kind}: {no_terminal} stream(s) without a terminal event")
        errors = Counter(log.error for _, log in logs if log.error)
        if errors:
            lines.append(f"{kind} errors: " + _counts(errors))
        return lines


def log_problems(path: Path) -> list[str]:
    """The gateway log's warnings and errors, counted by logger and message (the note about
    the admin key from PASEO_GATEWAY_ADMIN_KEY left out)."""
    found: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        # text format: "date time LEVEL logger [request id] message"
        parts = line.split(" ", 5)
        if len(parts) < 6 or parts[2] not in ("WARNING", "ERROR", "CRITICAL"):
            continue
        if "admin API key from PASEO_GATEWAY_ADMIN_KEY" in parts[5]:
            continue
        found[f"{parts[2]} {parts[3]}: {parts[5][:160]}"] += 1
    if not found:
        return ["gateway log: no warnings or errors"]
    lines = [f"gateway log: {sum(found.values())} warning/error line(s)"]
    lines.extend(f"  {n} x {message}" for message, n in found.most_common(8))
    return lines


def _ranges(values: list[int]) -> str:
    """[3, 4, 5, 9] -> "3-5, 9"."""
    spans: list[list[int]] = []
    for value in values:
        if spans and value == spans[-1][1] + 1:
            spans[-1][1] = value
        else:
            spans.append([value, value])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)


def _counts(counter: Counter[Any]) -> str:
    return ", ".join(f"{key} {n}" for key, n in counter.most_common())


# -- processes and the database ----------------------------------------------------------------


def start_gateway(
    work: Path, database_url: str, daemon: FakePaseoDaemon, opts: Options
) -> tuple[subprocess.Popen[bytes], str, Path]:
    cwd = work / "project"
    cwd.mkdir(parents=True, exist_ok=True)
    env = gateway_env(
        daemon,
        database_url,
        cwd,
        PASEO_GATEWAY_MAX_CONCURRENT_TURNS=str(max(20, opts.turns)),
        # `paseo run` (a session's first prompt) and `paseo logs` are short calls that share
        # this pool; let all turns start together.
        PASEO_GATEWAY_MAX_CLI_PROCESSES=str(min(64, max(20, opts.turns))),
        PASEO_GATEWAY_LOG_FORMAT="text",
        PASEO_GATEWAY_LOG_LEVEL="INFO",
    )
    log_path = work / "gateway.log"
    process, url = spawn_gateway(env, log_path, cwd=work)
    if wait_until_answering(process, f"{url}/readyz", timeout=STARTUP_TIMEOUT_SECONDS):
        return process, url, log_path
    if process.poll() is not None:
        raise RuntimeError(f"gateway exited at start (log: {log_path})")
    stop_server(process)
    raise RuntimeError(f"gateway not ready after {STARTUP_TIMEOUT_SECONDS:.0f} s (log: {log_path})")


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--turns", type=int, default=20, help="concurrent turns (sessions)")
    parser.add_argument("--readers", type=int, default=10, help="events readers per turn")
    parser.add_argument("--model", default="ten-second-stream", help="mock model of the sessions")
    parser.add_argument("--prompt", default="write a haiku", help="prompt (the mock ignores it)")
    parser.add_argument(
        "--time-scale", type=float, default=0.3, help="FAKE_PASEO_TIME_SCALE of the fake daemon"
    )
    parser.add_argument(
        "--spread",
        type=float,
        default=None,
        help="seconds over which a turn's readers start (default: the nominal turn length)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="overall limit, seconds")
    parser.add_argument("--seed", type=int, default=None, help="seed of the reader jitter")
    parser.add_argument(
        "--pg-admin-dsn",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL to create the benchmark database in (any existing database)",
    )
    parser.add_argument(
        "--warm-up",
        action="store_true",
        help=f"first send every session {WARM_UP_PROMPT!r} (not measured), so the agents "
        "exist and the measured prompts are `paseo send`, not `paseo run`",
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the work folder (gateway log, PASEO_HOME)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.turns <= 64:
        parser.error("--turns must be within 1..64 (the gateway's concurrent-turn limit)")
    if not 1 <= args.readers <= 100:
        parser.error("--readers must be within 1..100")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    nominal = MODEL_SECONDS.get(args.model, 10.0) * args.time_scale
    opts = Options(
        turns=args.turns,
        readers=args.readers,
        model=args.model,
        prompt=args.prompt,
        time_scale=args.time_scale,
        spread=args.spread if args.spread is not None else nominal,
        timeout=args.timeout,
        seed=args.seed,
        warm_up=args.warm_up,
    )
    wall_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="paseo-gw-bench-"))
    db_name = f"paseo_gw_bench_{uuid.uuid4().hex[:10]}"
    db_dsn = with_database(args.pg_admin_dsn, db_name)
    database_url = db_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    daemon = FakePaseoDaemon(work / "paseo-home", time_scale=args.time_scale)
    gateway: subprocess.Popen[bytes] | None = None
    gateway_log: Path | None = None
    db_created = False
    keep_work = args.keep_logs
    status = 2

    def on_timeout(signum: int, frame: FrameType | None) -> None:
        raise BenchmarkTimeout(f"overall timeout of {args.timeout:.0f} s")

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, on_timeout)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(max(1, math.ceil(args.timeout)))
    try:
        asyncio.run(admin_execute(args.pg_admin_dsn, f'CREATE DATABASE "{db_name}"'))
        db_created = True
        print(f"database {db_name}; work folder {work}", flush=True)
        daemon.start()
        gateway, url, gateway_log = start_gateway(work, database_url, daemon, opts)
        print(f"gateway {url} (pid {gateway.pid}), fake daemon {daemon.host}", flush=True)
        report = asyncio.run(benchmark(url, db_dsn, opts))
        signal.alarm(0)
        print(report.render(time.perf_counter() - wall_start, gateway_log), flush=True)
        status = 1 if report.failures else 0
        keep_work = keep_work or status != 0
    except BenchmarkTimeout as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        keep_work = True
    except KeyboardInterrupt:
        print("benchmark: interrupted", file=sys.stderr)
    except Exception as exc:
        print(f"benchmark: set-up or run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        keep_work = True
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        # Every step below is bounded: the gateway gets SIGTERM then SIGKILL, the daemon a
        # `daemon stop` (timeouts inside) then SIGKILL, the database a forced drop.
        if gateway is not None:
            stop_server(gateway)
        with contextlib.suppress(Exception):
            daemon.stop()
        with contextlib.suppress(Exception):
            left = kill_leftover_fakes(daemon.home)
            if left:
                print(f"benchmark: killed {left} leftover fake paseo process(es)", file=sys.stderr)
        if db_created and not args.keep_db:
            try:
                asyncio.run(
                    admin_execute(
                        args.pg_admin_dsn, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'
                    )
                )
            except Exception as exc:
                print(f"benchmark: could not drop database {db_name}: {exc}", file=sys.stderr)
        elif db_created:
            print(f"database kept: {database_url}")
        if keep_work:
            if gateway_log is not None and status != 0 and gateway_log.exists():
                lines = gateway_log.read_text(errors="replace").splitlines()
                tail = [line for line in lines if " uvicorn.access " not in line][-30:]
                print(
                    "gateway log (last lines but the access log):\n" + "\n".join(tail),
                    file=sys.stderr,
                )
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
