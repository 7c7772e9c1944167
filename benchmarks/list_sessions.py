#!/usr/bin/env python3
"""Benchmark: `GET /sessions` (one page of 20 rows, with an API key) against a hello world.

Starts, all on 127.0.0.1 and one uvicorn worker each: a bare uvicorn app that answers
`hello` (the ceiling of this machine and client), and a real `paseo-gateway serve` on a
fresh database holding 20 sessions. Each target gets the same load: C keep-alive
connections sending GETs back to back for D seconds after a warm-up. Prints, side by side,
req/s and latency (p50/p99) for the hello world, `/healthz` and `GET /sessions`, each as a
percentage of the hello world (the target for `GET /sessions` is at least 50 %), and the
server's CPU time per answer, which does not depend on how fast the client is.

    .venv/bin/python benchmarks/list_sessions.py                   # SQLite and PostgreSQL
    .venv/bin/python benchmarks/list_sessions.py --backend sqlite --connections 32 --seconds 10
    .venv/bin/python benchmarks/list_sessions.py --backend sqlite --profile /tmp/prof \
        --path '/sessions/{id}' --path '/sessions/{id}/turns' --path /agents

`--path` adds routes to load after those two (with the key; `{id}` is a session of the
gateway's): the gateway then runs on the fake Paseo daemon of tests/fakes (daemon transport,
so `GET /agents` has a daemon to ask), and `{id}` is a session made through the API with
TURNS_FOR_PATHS quick turns, so its page and its agent are real. `--profile DIR` records each
measured window with `py-spy record --format raw` (the project's `bench` extra:
`.venv/bin/pip install -c constraints.txt -e '.[test,bench]'`) and writes one
collapsed-stack file per target into DIR (benchmarks/profile_summary.py reads them); py-spy
takes some CPU of its own, so req/s of a profiled run read low.

PostgreSQL needs 127.0.0.1:5432 (user postgres, trust auth; `--pg-admin-dsn` to change): a
database is created for the run and dropped at the end. The load generator is a single
asyncio process speaking HTTP/1.1 itself (no client library in the measured path). Exits 1
if any answer was not a 200, 2 if the set-up failed. Not a test: pytest collects tests/ only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _common import (  # noqa: E402
    ADMIN_KEY,
    PY_SPY_MISSING,
    admin_execute,
    free_port,
    percentile,
    py_spy_path,
    py_spy_recording,
    running_server,
    wait_until_answering,
    wait_until_listening,
)

if TYPE_CHECKING:
    from tests.fakes.harness import FakePaseoDaemon

SESSIONS = 20
# Quick turns of the session `{id}` stands for in a --path (a page of them for `…/turns`).
TURNS_FOR_PATHS = 20
# How long a server gets to listen, and from SIGTERM to SIGKILL.
START_SECONDS = 60
STOP_SECONDS = 15


async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The baseline: the least an ASGI app can do for a GET (served by uvicorn below)."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
        }
    )
    await send({"type": "http.response.body", "body": b"hello"})


# --- the load generator ----------------------------------------------------------------------


@dataclass
class Load:
    """What one target answered during the measured window."""

    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    server_cpu_seconds: float = 0.0  # the server process's CPU time over the whole run

    @property
    def cpu_ms_per_request(self) -> float:
        """Server CPU per answer: what the route costs, whatever the client can send."""
        return 1000 * self.server_cpu_seconds / self.requests if self.requests else 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def _read_response(reader: asyncio.StreamReader) -> int:
    """One HTTP/1.1 response with a Content-Length body; returns its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def _connection(
    port: int, request: bytes, warm_until: float, stop_at: float, load: Load
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            started = time.perf_counter()
            if started >= stop_at:
                return
            writer.write(request)
            status = await _read_response(reader)
            if started >= warm_until:
                load.statuses[status] = load.statuses.get(status, 0) + 1
                load.latencies.append(time.perf_counter() - started)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def measure(
    port: int, path: str, *, key: str | None, connections: int, warm_up: float, seconds: float
) -> Load:
    """C connections sending GET `path` back to back: `warm_up` s unmeasured, then `seconds`."""
    headers = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n"
    if key:
        headers += f"Authorization: Bearer {key}\r\n"
    request = (headers + "\r\n").encode()
    load = Load()
    warm_until = time.perf_counter() + warm_up
    stop_at = warm_until + seconds
    await asyncio.gather(
        *(_connection(port, request, warm_until, stop_at, load) for _ in range(connections))
    )
    # Requests in flight at stop_at finish after it; they count, and so does their time.
    load.seconds = max(seconds, time.perf_counter() - warm_until)
    return load


async def measure_profiled(
    pid: int,
    port: int,
    path: str,
    *,
    key: str | None,
    connections: int,
    warm_up: float,
    seconds: float,
    profile: Path | None = None,
) -> Load:
    """`measure`, with py-spy recording process `pid` over the measured window into `profile`
    (collapsed stacks) when one is given."""
    loading = measure(
        port, path, key=key, connections=connections, warm_up=warm_up, seconds=seconds
    )
    if profile is None:
        return await loading

    async def window() -> None:
        await asyncio.sleep(warm_up)
        async with py_spy_recording(pid, profile):
            await asyncio.sleep(seconds)

    recording = asyncio.create_task(window())
    try:
        load = await loading
        await recording  # ends with the window, as the load does; raises if py-spy failed
    finally:
        recording.cancel()
    return load


def timed_load(
    pid: int,
    port: int,
    path: str,
    key: str | None,
    *,
    connections: int,
    warm_up: float,
    seconds: float,
    profile: Path | None = None,
) -> Load:
    """One target's Load (asyncio.run of measure_profiled), with the server's CPU time over
    the measured window."""
    before = cpu_seconds(pid)
    load = asyncio.run(
        measure_profiled(
            pid, port, path, key=key, connections=connections,
            warm_up=warm_up, seconds=seconds, profile=profile,
        )
    )  # fmt: skip
    # Warm-up answers are not counted: scale the CPU to the measured window.
    spent = cpu_seconds(pid) - before
    load.server_cpu_seconds = spent * load.seconds / (load.seconds + warm_up)
    return load


def profile_file(folder: Path | None, prefix: str, path: str) -> Path | None:
    """Where the collapsed stacks of `path` (a --path template) go, None when not profiling:
    `sqlite-sessions-id-turns.collapsed` for prefix `sqlite`, `/sessions/{id}/turns`."""
    if folder is None:
        return None
    slug = "-".join(part.strip("{}") for part in path.split("/") if part) or "root"
    return folder / f"{prefix}-{slug}.collapsed"


# --- the servers ------------------------------------------------------------------------------


@contextlib.contextmanager
def server(
    argv: list[str], port: int, env: dict[str, str], log: Path, *, ready_path: str | None = None
) -> Iterator[int]:
    """The server's pid, once it listens on `port` (and answers 200 on `ready_path`)."""
    with running_server(argv, env=env, log_path=log, stop_timeout=STOP_SECONDS) as process:
        if not wait_until_listening(process, port, timeout=START_SECONDS):
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode} before listening")
            raise RuntimeError(f"nothing listens on port {port} after {START_SECONDS} s")
        if ready_path is not None and not wait_until_answering(
            process, f"http://127.0.0.1:{port}{ready_path}", timeout=START_SECONDS,
            request_timeout=30,
        ):  # fmt: skip
            raise RuntimeError(f"{ready_path} did not answer 200 within {START_SECONDS} s")
        yield process.pid


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hello_argv(port: int, app: str = "list_sessions:hello_app") -> list[str]:
    """uvicorn serving `app` of this folder (hello_fastapi:app is the FastAPI baseline)."""
    return [
        sys.executable, "-m", "uvicorn", app,
        "--app-dir", str(Path(__file__).parent), "--port", str(port),
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def gateway_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "app", "serve", "--port", str(port)]


def gateway_env(
    database_url: str, workdir: Path, daemon: FakePaseoDaemon | None = None
) -> dict[str, str]:
    """The gateway's settings: no daemon at all, or the fake one on the daemon transport."""
    if daemon is not None:
        import _common

        return _common.gateway_env(
            daemon, database_url, workdir,
            PASEO_GATEWAY_TRANSPORT="daemon", PASEO_GATEWAY_LOG_LEVEL="WARNING",
        )  # fmt: skip
    return {
        **os.environ,
        "PASEO_GATEWAY_DATABASE_URL": database_url,
        "PASEO_GATEWAY_ADMIN_KEY": ADMIN_KEY,
        "PASEO_GATEWAY_DEFAULT_CWD": str(workdir),
        # No daemon runs: the background readiness check fails quietly; these routes don't care.
        "PASEO_GATEWAY_PASEO_BIN": "false",
        "PASEO_GATEWAY_LOG_LEVEL": "WARNING",
    }


async def seed_sessions(database_url: str, workdir: Path) -> None:
    """SESSIONS rows, as the gateway would have stored them (no daemon is needed to list)."""
    from app.db import Database
    from app.migrations import upgrade_to_head
    from app.repositories import sessions as sessions_repo

    await asyncio.to_thread(upgrade_to_head, database_url)
    db = Database.from_url(database_url)
    try:
        async with db.session() as session:
            for number in range(SESSIONS):
                await sessions_repo.add_session(
                    session,
                    provider="mock",
                    cwd=str(workdir),
                    agent_id=f"bench-agent-{number:02d}",
                    title=f"benchmark session {number}",
                    labels={"team": "bench", "n": str(number)},
                    status="idle",
                )
    finally:
        await db.dispose()


@contextlib.contextmanager
def postgres_database(admin_dsn: str) -> Iterator[str]:
    name = f"bench_{uuid.uuid4().hex[:12]}"

    def run(sql: str) -> None:
        # asyncpg's default connect timeout, 60 s (the other scripts give it 30 s).
        asyncio.run(admin_execute(admin_dsn, sql, connect_timeout=60))

    run(f'CREATE DATABASE "{name}"')
    host = admin_dsn.split("@", 1)[1].rsplit("/", 1)[0]
    user = admin_dsn.split("//", 1)[1].split("@", 1)[0]
    try:
        yield f"postgresql+asyncpg://{user}@{host}/{name}"
    finally:
        run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def session_with_turns(port: int, turns: int) -> str:
    """A session made through the API, with `turns` quick turns (the daemon makes its agent
    on the first): what `{id}` stands for in a --path. Returns its id."""
    import httpx
    from _common import AUTH
    from prompt_path import QUICK_PROMPT, send_prompt

    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=60.0, trust_env=False
    ) as client:
        created = await client.post("/sessions", json={"title": "benchmark: paths"})
        if created.status_code != 201:
            raise RuntimeError(f"POST /sessions: HTTP {created.status_code}: {created.text}")
        session_id = str(created.json()["id"])
        for _ in range(turns):
            seen = await send_prompt(client, session_id, QUICK_PROMPT)
            if seen.terminal != "turn.completed":
                raise RuntimeError(f"a turn for {{id}}: {seen.error or seen.terminal}")
    return session_id


@contextlib.contextmanager
def fake_daemon(home: Path) -> Iterator[FakePaseoDaemon]:
    """The fake Paseo daemon of tests/fakes on PASEO_HOME `home`, stopped (and its leftovers
    killed) at the end."""
    from _common import kill_leftover_fakes

    from tests.fakes.harness import FakePaseoDaemon

    daemon = FakePaseoDaemon(home)
    try:
        yield daemon.start()
    finally:
        with contextlib.suppress(Exception):
            daemon.stop()
        kill_leftover_fakes(daemon.home)


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    load: Load


def print_table(rows: list[Row], baseline: Load) -> None:
    width = max(30, *(len(row.name) for row in rows))  # 30 unless a --path is longer
    print(
        f"{'target':<{width}} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'of hello':>9}"
        f" {'cpu ms/req':>11}  non-200"
    )
    for row in rows:
        load = row.load
        share = 100 * load.per_second / baseline.per_second if baseline.per_second else 0.0
        bad = {status: n for status, n in load.statuses.items() if status != 200}
        p50 = percentile(load.latencies, 50, method="floor-index")
        p99 = percentile(load.latencies, 99, method="floor-index")
        print(
            f"{row.name:<{width}} {load.per_second:>9.0f} {1000 * p50:>8.1f}"
            f" {1000 * p99:>8.1f} {share:>8.0f}%"
            f" {load.cpu_ms_per_request:>11.2f}  {bad or '-'}"
        )


def run(args: argparse.Namespace) -> int:
    def load_of(
        pid: int, port: int, path: str, key: str | None, name: str, template: str = ""
    ) -> Load:
        return timed_load(
            pid, port, path, key, connections=args.connections, warm_up=args.warm_up,
            seconds=args.seconds, profile=profile_file(args.profile, name, template or path),
        )  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="bench-list-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        with server(hello_argv(port), port, dict(os.environ), workdir / "hello.log") as pid:
            hello = load_of(pid, port, "/", None, "hello")
        rows = [Row("hello world (bare uvicorn)", hello)]
        for backend in args.backend:
            with contextlib.ExitStack() as stack:
                home = workdir / f"paseo-home-{backend}"  # each backend's agents its own
                daemon = stack.enter_context(fake_daemon(home)) if args.path else None
                if backend == "sqlite":
                    url = f"sqlite+aiosqlite:///{workdir / 'gateway.db'}"
                else:
                    url = stack.enter_context(postgres_database(args.pg_admin_dsn))
                asyncio.run(seed_sessions(url, workdir))
                port = free_port()
                log = workdir / f"gateway-{backend}.log"
                env = gateway_env(url, workdir, daemon)
                ready = "/readyz" if daemon else None
                pid = stack.enter_context(
                    server(gateway_argv(port), port, env, log, ready_path=ready)
                )
                healthz = load_of(pid, port, "/healthz", None, backend)
                rows.append(Row(f"{backend}: GET /healthz", healthz))
                listing = load_of(pid, port, "/sessions", ADMIN_KEY, backend)
                rows.append(Row(f"{backend}: GET /sessions", listing))
                session_id = ""
                if args.path:
                    session_id = asyncio.run(session_with_turns(port, TURNS_FOR_PATHS))
                for template in args.path or ():
                    path = template.replace("{id}", session_id)
                    load = load_of(pid, port, path, ADMIN_KEY, backend, template)
                    rows.append(Row(f"{backend}: GET {template}", load))
        print(
            f"{args.connections} connections, {args.seconds:g} s each after {args.warm_up:g} s"
            f" warm-up, {SESSIONS} sessions a page, one uvicorn worker, {os.cpu_count()} CPUs"
        )
        print_table(rows, hello)
        if args.profile:
            print(f"collapsed stacks (py-spy, {args.seconds:g} s a target) in {args.profile}")
    failed = any(status != 200 for row in rows for status in row.load.statuses)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend", choices=("sqlite", "postgres"), action="append",
        help="database behind the gateway (repeatable; default: both)",
    )  # fmt: skip
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per target")
    parser.add_argument("--warm-up", type=float, default=2.0, help="unmeasured time first")
    parser.add_argument(
        "--pg-admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="where to create (and drop) the run's PostgreSQL database",
    )  # fmt: skip
    parser.add_argument(
        "--path", action="append", metavar="PATH",
        help="another GET route to load after /healthz and /sessions, `{id}` for a session's id"
        " (repeatable; runs the gateway on the fake daemon), e.g. '/sessions/{id}/turns'",
    )  # fmt: skip
    parser.add_argument(
        "--profile", type=Path, metavar="DIR",
        help="py-spy each measured window into DIR, one collapsed-stack file per target",
    )  # fmt: skip
    args = parser.parse_args()
    args.backend = args.backend or ["sqlite", "postgres"]
    for path in args.path or ():
        if not path.startswith("/"):
            parser.error(f"--path {path!r}: a path starts with /")
    if args.profile is not None:
        if py_spy_path() is None:
            print(PY_SPY_MISSING, file=sys.stderr)
            return 2
        args.profile.mkdir(parents=True, exist_ok=True)
    try:
        return run(args)
    except (RuntimeError, OSError) as error:
        print(f"set-up failed: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
