#!/usr/bin/env python3
"""Benchmark: the gateway as a share of its framework and of its daemon, in one run (#22).

Starts, all on 127.0.0.1: a bare FastAPI hello world (benchmarks/hello_fastapi.py under
uvicorn, one process), the same hello world as a raw ASGI callable (once, for scale), the fake
Paseo daemon of tests/fakes, and per database (a SQLite file; a fresh PostgreSQL database,
dropped at the end) a real `paseo-gateway serve` on the daemon transport. Per database it
prints, each figure beside its target (the targets of issue #22; a missed one is marked, it
does not fail the run):

1. `GET /sessions` (a page of 20 rows, with a key) req/s ÷ the FastAPI hello world's (>= 0.5),
   and `GET /healthz` ÷ the same hello world; the hello world is loaded right before and
   right after the gateway's routes and the ratios use the mean, so both see the same
   machine. Same client as benchmarks/list_sessions.py.
2. A later prompt on the daemon transport, POST -> first `text` SSE event, p50 over --prompts
   prompts, ÷ and minus the same prompt sent over a direct WebSocket to the same fake daemon
   (send -> first assistant text): "gateway adds X ms p50" (<= 15 ms). The prompt is the
   mock's quickest turn (one text chunk, then the end), as in benchmarks/prompt_path.py.
3. --subscribers idle SSE readers of a running turn that stays quiet (as in
   benchmarks/event_fanout.py): time to open them all (<= 10 s), gateway RSS added
   (<= 250 MiB), gateway CPU while nothing happens, % of one core (<= 5 %), and how many
   failed to open or ended (0).

Then the machine: CPUs, load average at start and end, Python.

    .venv/bin/python benchmarks/ratios.py                       # both databases, ~4 min
    .venv/bin/python benchmarks/ratios.py --database sqlite --seconds 3 --subscribers 200 \\
        --prompts 5
    .venv/bin/python benchmarks/ratios.py --profile /tmp/prof   # + py-spy of the list routes

PostgreSQL needs 127.0.0.1:5432 (user postgres, trust auth; `--pg-admin-dsn` to change).
`--profile DIR` writes py-spy's collapsed stacks of the gateway over each list route's
measured window (see benchmarks/README.md). Exits 2 if a set-up failed, 1 if any answer was
not a 2xx (or a prompt's stream broke off), else 0, whatever the targets say. Linux only. Not
a test: pytest collects tests/ only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _common import (  # noqa: E402
    ADMIN_KEY,
    AUTH,
    PY_SPY_MISSING,
    free_port,
    gateway_env,
    kill_leftover_fakes,
    percentile,
    py_spy_path,
    spawn_gateway,
    start_server,
    stop_server,
    wait_until_answering,
    wait_until_listening,
)
from event_fanout import IdleFigures, hold_idle_subscribers  # noqa: E402
from list_sessions import (  # noqa: E402
    SESSIONS,
    Load,
    hello_argv,
    postgres_database,
    profile_file,
    seed_sessions,
    timed_load,
)
from prompt_path import (  # noqa: E402
    QUICK_PROMPT,
    Prompted,
    direct_round_trips,
    later_prompts,
    prepare_session,
)

from tests.fakes.harness import FakePaseoDaemon  # noqa: E402

DATABASES = ("sqlite", "postgresql")
FASTAPI_HELLO = "hello_fastapi:app"
RAW_HELLO = "list_sessions:hello_app"
STARTUP_TIMEOUT_SECONDS = 90.0
# From SIGTERM to SIGKILL for a hello world (nothing to finish).
HELLO_STOP_SECONDS = 15.0
# A prompt's whole stream, and the set-up calls around it.
CLIENT_TIMEOUT_SECONDS = 60.0
# The targets of issue #22.
SESSIONS_SHARE_TARGET = 0.5
ADDED_MS_TARGET = 15.0
OPEN_SECONDS_TARGET = 10.0
RSS_MIB_TARGET = 250.0
IDLE_CPU_PERCENT_TARGET = 5.0
MIB = 1024 * 1024


# -- one database ------------------------------------------------------------------------------


@dataclass
class Figures:
    """What one database's run measured, and what went wrong on the way."""

    hello: Load | None = None
    hello_after: Load | None = None  # loaded again after the gateway's routes
    healthz: Load | None = None
    sessions: Load | None = None
    page_rows: int | None = None
    later: list[Prompted] = field(default_factory=list)
    direct: dict[str, list[float]] = field(default_factory=dict)
    idle: IdleFigures | None = None
    bad_answers: list[str] = field(default_factory=list)


@contextlib.contextmanager
def database_url(kind: str, folder: Path, pg_admin_dsn: str) -> Iterator[str]:
    """A SQLite file in `folder`, or a PostgreSQL database made for the run and dropped."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / 'gateway.db'}"
    else:
        with postgres_database(pg_admin_dsn) as url:
            yield url


@contextlib.contextmanager
def running_gateway(
    daemon: FakePaseoDaemon, url: str, folder: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`paseo-gateway serve` on the fake daemon's daemon transport, once /readyz says 200."""
    env = gateway_env(
        daemon, url, folder, PASEO_GATEWAY_TRANSPORT="daemon", PASEO_GATEWAY_LOG_LEVEL="WARNING"
    )
    log = folder / "gateway.log"
    process, base_url = spawn_gateway(env, log, cwd=folder)
    try:
        if not wait_until_answering(
            process, f"{base_url}/readyz", timeout=STARTUP_TIMEOUT_SECONDS, request_timeout=30
        ):
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the gateway did not become ready:\n{tail}")
        yield process, base_url
    finally:
        stop_server(process)


async def quiet_running_turn(url: str, session_id: str) -> str:
    """A running turn held by no gateway and never stale (its heartbeat is a day ahead), so
    its readers wait and nothing happens; written with the app's repository, on either
    database. Returns its id."""
    from app.db import Database
    from app.repositories import turns as turns_repo

    db = Database.from_url(url)
    try:
        async with db.session() as session:
            turn = await turns_repo.add_turn(
                session,
                session_id=uuid.UUID(session_id),
                prompt="idle",
                status="running",
                runner_id="bench-idle",
                heartbeat_at=datetime.now(UTC) + timedelta(days=1),
            )
            return str(turn.id)
    finally:
        await db.dispose()


async def page_size(base_url: str) -> int:
    """How many rows one `GET /sessions` answers (the load is meant to fetch SESSIONS)."""
    import httpx

    async with httpx.AsyncClient(base_url=base_url, headers=AUTH, trust_env=False) as client:
        answer = await client.get("/sessions")
        answer.raise_for_status()
        return len(answer.json()["items"])


async def prompts_and_subscribers(
    base_url: str, url: str, pid: int, daemon: FakePaseoDaemon, figures: Figures, args: Any
) -> None:
    """Later prompts through the gateway, the same sends on a direct WebSocket, then the idle
    subscribers (in that order: the readers' turn is the last thing made)."""
    import httpx

    async with httpx.AsyncClient(
        base_url=base_url, headers=AUTH, timeout=CLIENT_TIMEOUT_SECONDS, trust_env=False
    ) as client:
        session_id, agent_id = await prepare_session(client)
        if args.prompts:
            figures.later = await later_prompts(
                client, session_id, args.prompts, lambda _: QUICK_PROMPT
            )
            figures.bad_answers += [f"prompt: {p.error}" for p in figures.later if p.error]
            figures.direct = await direct_round_trips(daemon, agent_id, args.prompts)
        if not args.subscribers:
            return
        created = await client.post("/sessions", json={"title": "idle subscribers"})
        created.raise_for_status()
        idle_session = str(created.json()["id"])
    turn_id = await quiet_running_turn(url, idle_session)
    events = f"/sessions/{idle_session}/turns/{turn_id}/events"
    figures.idle = await hold_idle_subscribers(
        base_url, events, pid, args.subscribers, args.idle_seconds
    )
    if figures.idle.refused:
        figures.bad_answers.append(f"{figures.idle.refused} event streams refused (non-2xx)")


def run_database(
    kind: str,
    daemon: FakePaseoDaemon,
    hello: tuple[int, int],
    work: Path,
    figures: Figures,
    args: Any,
) -> None:
    """Everything measured on one database, into `figures` as it goes (a failure part-way
    keeps what came before), in order: the hello world, /healthz, /sessions, the hello world
    again, prompts, idle subscribers. `hello` is the FastAPI hello world's (pid, port)."""
    folder = work / kind
    folder.mkdir()

    def load(pid: int, port: int, path: str, key: str | None, *, profiled: bool) -> Load:
        return timed_load(
            pid, port, path, key, connections=args.connections, warm_up=args.warm_up,
            seconds=args.seconds,
            profile=profile_file(args.profile, kind, path) if profiled else None,
        )  # fmt: skip

    with database_url(kind, folder, args.pg_admin_dsn) as url:
        asyncio.run(seed_sessions(url, folder))
        with running_gateway(daemon, url, folder) as (process, base_url):
            port = int(base_url.rsplit(":", 1)[1])
            figures.page_rows = asyncio.run(page_size(base_url))
            figures.hello = load(*hello, "/", None, profiled=False)
            figures.healthz = load(process.pid, port, "/healthz", None, profiled=True)
            figures.sessions = load(process.pid, port, "/sessions", ADMIN_KEY, profiled=True)
            figures.hello_after = load(*hello, "/", None, profiled=False)
            routes = {
                "hello world": figures.hello,
                "/healthz": figures.healthz,
                "/sessions": figures.sessions,
                "hello world (after)": figures.hello_after,
            }
            for name, figure in routes.items():
                bad = {status: n for status, n in figure.statuses.items() if status != 200}
                if bad:
                    figures.bad_answers.append(f"GET {name}: non-200 answers {bad}")
            asyncio.run(
                asyncio.wait_for(
                    prompts_and_subscribers(base_url, url, process.pid, daemon, figures, args),
                    args.timeout,
                )
            )


# -- the table ---------------------------------------------------------------------------------


def _p50(values: list[float]) -> float | None:
    return percentile(values, 50) if values else None


def _num(value: float | None, fmt: str = ",.0f", unit: str = "") -> str:
    return "-" if value is None else f"{value:{fmt}}{unit}"


def _judged(text: str, met: bool | None) -> str:
    """A figure beside its verdict: `ok`, `MISS`, or nothing when there is no target."""
    if met is None or text == "-":
        return text
    return f"{text} {'ok' if met else 'MISS'}"


def baseline(figures: Figures) -> float | None:
    """The hello world's req/s: the mean of its loads before and after the gateway's routes,
    so a machine whose load drifts during the run biases the ratios less."""
    loads = [load.per_second for load in (figures.hello, figures.hello_after) if load]
    return sum(loads) / len(loads) if loads else None


def _share(part: Load | None, whole: float | None) -> float | None:
    if part is None or not whole:
        return None
    return part.per_second / whole


def prompt_figures(figures: Figures) -> tuple[float | None, float | None]:
    """p50 ms of POST -> first text through the gateway, and of send -> first text direct."""
    through = [
        (p.first_text_at - p.post_at) * 1000 for p in figures.later if p.first_text_at is not None
    ]
    return _p50(through), _p50(figures.direct.get("first_text", []))


def rows_of(figures: Figures, subscribers: int) -> list[tuple[str, str, str]]:
    """(figure, target, value) rows for one database."""

    def route(load: Load | None) -> str:
        if load is None:
            return "-"
        p50 = percentile(load.latencies, 50, method="floor-index") * 1000
        return f"{load.per_second:,.0f} ({p50:.1f})"

    hello = baseline(figures)
    healthz = _share(figures.healthz, hello)
    sessions = _share(figures.sessions, hello)
    around = " / ".join(
        f"{load.per_second:,.0f}" for load in (figures.hello, figures.hello_after) if load
    )
    gateway, direct = prompt_figures(figures)
    started = _p50(
        [(p.started_at - p.post_at) * 1000 for p in figures.later if p.started_at is not None]
    )
    added = gateway - direct if gateway is not None and direct is not None else None
    times = gateway / direct if gateway is not None and direct else None
    idle = figures.idle
    lost = idle.failed_opens + idle.dropped if idle else None
    rss = idle.rss_added_mb * 1e6 / MIB if idle else None
    return [
        ("FastAPI hello world, req/s before / after", "", around or "-"),
        ("GET /healthz, req/s (p50 ms)", "", route(figures.healthz)),
        (f"GET /sessions ({figures.page_rows} rows), req/s (p50 ms)", "", route(figures.sessions)),
        ("GET /healthz ÷ hello world (mean)", "", _num(healthz, ".2f")),
        (
            "GET /sessions ÷ hello world (mean)",
            f">= {SESSIONS_SHARE_TARGET:g}",
            _judged(
                _num(sessions, ".2f"),
                None if sessions is None else sessions >= SESSIONS_SHARE_TARGET,
            ),
        ),
        ("later prompt, POST -> turn.started, ms p50", "", _num(started, ".1f")),
        ("later prompt, POST -> first text, ms p50", "", _num(gateway, ".1f")),
        ("direct WebSocket send -> first text, ms p50", "", _num(direct, ".1f")),
        ("gateway ÷ direct, p50", "", _num(times, ".1f", "x")),
        (
            "gateway adds, ms p50",
            f"<= {ADDED_MS_TARGET:g}",
            _judged(_num(added, ".1f"), None if added is None else added <= ADDED_MS_TARGET),
        ),
        (
            f"{subscribers} idle subscribers: time to open, s",
            f"<= {OPEN_SECONDS_TARGET:g}",
            _judged(
                _num(None if idle is None else idle.open_seconds, ".2f"),
                None if idle is None else idle.open_seconds <= OPEN_SECONDS_TARGET,
            ),
        ),
        (
            "  gateway RSS added, MiB",
            f"<= {RSS_MIB_TARGET:g}",
            _judged(_num(rss, ".1f"), None if rss is None else rss <= RSS_MIB_TARGET),
        ),
        (
            "  gateway CPU while idle, % of a core",
            f"<= {IDLE_CPU_PERCENT_TARGET:g}",
            _judged(
                _num(None if idle is None else idle.cpu_percent, ".2f"),
                None if idle is None else idle.cpu_percent <= IDLE_CPU_PERCENT_TARGET,
            ),
        ),
        (
            "  dropped or failed",
            "0",
            _judged(_num(lost, "d"), None if lost is None else lost == 0),
        ),
    ]


def machine(load_before: tuple[float, ...]) -> str:
    def avg(values: tuple[float, ...]) -> str:
        return " / ".join(f"{value:.2f}" for value in values)

    return (
        f"machine: {os.cpu_count()} CPUs, load average (1/5/15 min) {avg(load_before)} at start,"
        f" {avg(os.getloadavg())} at end; Python {platform.python_version()}"
        f" ({platform.python_implementation()}), {platform.system()} {platform.machine()}"
    )


def render(
    results: dict[str, Figures], raw: Load | None, args: Any, load_before: tuple[float, ...]
) -> str:
    tables = {kind: rows_of(figures, args.subscribers) for kind, figures in results.items()}
    first = next(iter(tables.values()))
    labels = [label for label, _, _ in first]
    targets = [target for _, target, _ in first]
    width = max(len(label) for label in labels) + 2
    cell = 2 + max(len(value) for rows in tables.values() for _, _, value in rows)
    cell = max(cell, *(len(kind) + 2 for kind in tables))
    out = [
        "Paseo Gateway: the ratios of issue #22",
        machine(load_before),
        f"{args.connections} connections, {args.seconds:g} s a route after {args.warm_up:g} s"
        f" warm-up, one uvicorn process each; {SESSIONS} sessions seeded; {args.prompts} later"
        f" prompts; {args.subscribers} idle subscribers, {args.idle_seconds:g} s idle",
    ]
    if raw is not None:
        out.append(f"raw ASGI hello world (uvicorn, no framework): {raw.per_second:,.0f} req/s")
    out.append("")
    out.append(f"{'figure':<{width}}{'target':>10}" + "".join(f"{k:>{cell}}" for k in tables))
    for index, label in enumerate(labels):
        values = "".join(f"{rows[index][2]:>{cell}}" for rows in tables.values())
        out.append(f"{label:<{width}}{targets[index]:>10}{values}")
    out.append("")
    for kind, figures in results.items():
        gateway, direct = prompt_figures(figures)
        if gateway is not None and direct is not None:
            out.append(
                f"{kind}: gateway adds {gateway - direct:.1f} ms p50 to a later prompt's first"
                f" text ({gateway:.1f} vs {direct:.1f} ms direct; target <= {ADDED_MS_TARGET:g})"
            )
        out.extend(f"{kind}: {problem}" for problem in figures.bad_answers)
    if args.profile:
        out.append(f"py-spy collapsed stacks of the list routes in {args.profile}")
    return "\n".join(out)


# -- main --------------------------------------------------------------------------------------


@contextlib.contextmanager
def hello_world(app: str, work: Path) -> Iterator[tuple[int, int]]:
    """uvicorn serving `app` of benchmarks/ (one process): its (pid, port), once it listens.

    It leads a session of its own, as the gateway does (spawn_gateway): where the kernel
    shares CPU per session (autogroup, on by default on desktop and many server kernels), a
    baseline in the client's session would get half the share the gateway gets on a busy
    machine, and the ratios would flatter the gateway.
    """
    port = free_port()
    log = work / f"{app.split(':')[0]}.log"
    process = start_server(
        hello_argv(port, app), env=dict(os.environ), log_path=log, new_session=True
    )
    try:
        if not wait_until_listening(process, port, timeout=STARTUP_TIMEOUT_SECONDS):
            raise RuntimeError(f"{app} did not listen on port {port}: see {log}")
        yield process.pid, port
    finally:
        stop_server(process, timeout=HELLO_STOP_SECONDS)


def measure_all(args: Any, work: Path) -> tuple[dict[str, Figures], Load | None, list[str]]:
    """Every database's figures, the raw ASGI hello world's load, and set-up failures."""
    results: dict[str, Figures] = {}
    failures: list[str] = []
    raw: Load | None = None
    daemon = FakePaseoDaemon(work / "paseo-home", time_scale=args.time_scale)
    kinds = DATABASES if args.database == "both" else (args.database,)
    try:
        if args.raw_baseline:
            with hello_world(RAW_HELLO, work) as (pid, port):
                raw = timed_load(
                    pid, port, "/", None, connections=args.connections,
                    warm_up=args.warm_up, seconds=args.seconds,
                )  # fmt: skip
        daemon.start()
        with hello_world(FASTAPI_HELLO, work) as hello:
            for kind in kinds:
                print(f"{kind}: measuring ...", file=sys.stderr, flush=True)
                results[kind] = Figures()
                try:
                    run_database(kind, daemon, hello, work, results[kind], args)
                except Exception as exc:
                    failures.append(f"{kind}: {type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(Exception):
            daemon.stop()
        with contextlib.suppress(Exception):
            kill_leftover_fakes(daemon.home)
    return results, raw, failures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add: Callable[..., Any] = parser.add_argument
    add("--database", choices=(*DATABASES, "both"), default="both", help="which to run on")
    add("--seconds", type=float, default=10.0, help="measured time per route, s")
    add("--warm-up", type=float, default=2.0, help="unmeasured time before each route, s")
    add("--connections", type=int, default=32, help="keep-alive connections per route")
    add("--prompts", type=int, default=30, help="later prompts (and direct sends) timed")
    add("--subscribers", type=int, default=1000, help="idle SSE readers (0: none)")
    add("--idle-seconds", type=float, default=10.0, help="idle window for the CPU figure, s")
    add("--time-scale", type=float, default=1.0, help="FAKE_PASEO_TIME_SCALE of the daemon")
    add(
        "--raw-baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also load the raw ASGI hello world once (printed above the table)",
    )
    add("--profile", type=Path, metavar="DIR", help="py-spy the list routes into DIR")
    add("--timeout", type=float, default=600.0, help="limit for prompts + subscribers, s")
    add(
        "--pg-admin-dsn",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="where to create (and drop) the run's PostgreSQL database",
    )
    add("--keep-logs", action="store_true", help="keep the work folder (logs, PASEO_HOME)")
    args = parser.parse_args(argv)
    if min(args.seconds, args.connections) <= 0 or min(args.prompts, args.subscribers) < 0:
        parser.error("--seconds and --connections must be positive, the counts not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profile is not None:
        if py_spy_path() is None:
            print(PY_SPY_MISSING, file=sys.stderr)
            return 2
        args.profile.mkdir(parents=True, exist_ok=True)

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    load_before = os.getloadavg()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="paseo-gw-ratios-"))
    status = 2
    try:
        results, raw, failures = measure_all(args, work)
        measured = {kind: figures for kind, figures in results.items() if figures.hello}
        if measured:
            print(render(measured, raw, args, load_before), flush=True)
        print(f"wall time {time.monotonic() - started:.0f} s", file=sys.stderr)
        for failure in failures:
            print(f"set-up failed: {failure}", file=sys.stderr)
        bad = any(figures.bad_answers for figures in results.values())
        status = 2 if failures or not results else 1 if bad else 0
    except KeyboardInterrupt:
        print("benchmark: interrupted", file=sys.stderr)
    except Exception as error:  # the daemon or a hello world did not start
        print(f"set-up failed: {type(error).__name__}: {error}", file=sys.stderr)
    finally:
        if args.keep_logs or status:
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
