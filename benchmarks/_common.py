"""What the benchmark scripts share: ports, percentiles, server processes, SSE, PostgreSQL.

The scripts run as `.venv/bin/python benchmarks/<name>.py`, so this folder is sys.path[0] and
`from _common import ...` finds this file; each script puts the repository root on sys.path
before importing it (tests.fakes is imported from here). httpx and asyncpg are imported where
they are used: list_sessions.py needs neither, and its bare uvicorn baseline imports that
module, so the baseline server loads no more than it did.

Not a test, and not a benchmark of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from tests.fakes.harness import FAKE_PASEO_BIN, running_fake_processes

if TYPE_CHECKING:
    import httpx

    from tests.fakes.harness import FakePaseoDaemon

REPO = Path(__file__).resolve().parent.parent
# One key per run, handed to the gateway as PASEO_GATEWAY_ADMIN_KEY: nothing to configure.
ADMIN_KEY = f"pgw_bench-{uuid.uuid4().hex}"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
# The events that end a turn's stream.
TERMINAL_EVENTS = frozenset(
    {
        "turn.completed",
        "turn.failed",
        "turn.cancelled",
        "turn.timed_out",
        "turn.permission",
        "turn.interrupted",
    }
)
# From SIGTERM to SIGKILL: time for a server to stop cleanly (a gateway first ends its open
# event streams with `gateway.shutdown`).
STOP_SECONDS = 30.0


# -- figures ---------------------------------------------------------------------------------

PercentileMethod = Literal["nearest-rank", "rounded-index", "floor-index"]


def percentile(
    values: Sequence[float], pct: float, *, method: PercentileMethod = "nearest-rank"
) -> float:
    """The `pct` (0..100) percentile of `values`, NaN when there are none.

    The scripts grew three rules for picking one of the sorted values, and each keeps its
    own so its figures stay comparable with earlier runs (n values, p = pct / 100):
    "nearest-rank", the textbook one, the ceil(p*n)-th smallest (turn_streams.py);
    "rounded-index", index round(p*(n-1)) (event_fanout.py); "floor-index", index floor(p*n)
    (list_sessions.py, transports.py). An index past the end is the largest value.
    """
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    fraction = pct / 100
    if method == "nearest-rank":
        index = max(1, math.ceil(fraction * len(ordered))) - 1
    elif method == "rounded-index":
        index = round(fraction * (len(ordered) - 1))
    else:
        index = int(fraction * len(ordered))
    return ordered[min(len(ordered) - 1, index)]


# -- one clock for every process -------------------------------------------------------------


def host_clock() -> float:
    """CLOCK_MONOTONIC, in seconds: on Linux one clock for every process of the host, so a time
    taken here compares directly with one a server or the fake daemon took (the fake's
    FAKE_PASEO_EMIT_LOG is on this clock). Not for comparing across machines."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def read_json_lines(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The complete JSON lines a process appended to `path` after byte `offset`, and the
    offset to read on from (a last line still being written is left for the next call)."""
    try:
        with path.open("rb") as file:
            file.seek(offset)
            data = file.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    lines = [json.loads(line) for line in data[:end].splitlines() if line.strip()]
    return lines, offset + end


# -- server processes ------------------------------------------------------------------------


def free_port() -> int:
    """A port of 127.0.0.1 free right now (the OS picks it), so runs never collide."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def gateway_command() -> list[str]:
    """The venv's `paseo-gateway` entry point, else `python -m app` (not installed)."""
    for candidate in (
        REPO / ".venv" / "bin" / "paseo-gateway",
        Path(sys.executable).parent / "paseo-gateway",
    ):
        if candidate.exists():
            return [str(candidate)]
    return [sys.executable, "-m", "app"]


def gateway_env(
    daemon: FakePaseoDaemon, database_url: str, cwd: Path, **settings: str
) -> dict[str, str]:
    """The environment of a gateway on the fake daemon, `settings` last (they win).

    The caller's PASEO* variables are left out, so a developer's own gateway settings (or a
    real daemon's PASEO_HOST) cannot leak into the run. The prompt rate limit is off: the
    scripts send prompts as fast as they measure.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("PASEO")}
    env.update(
        PASEO_GATEWAY_DATABASE_URL=database_url,
        PASEO_GATEWAY_PASEO_BIN=str(FAKE_PASEO_BIN),
        PASEO_GATEWAY_PASEO_HOST=daemon.host,
        PASEO_GATEWAY_PASEO_HOME=str(daemon.home),
        PASEO_GATEWAY_ADMIN_KEY=ADMIN_KEY,
        PASEO_GATEWAY_DEFAULT_PROVIDER="mock",
        PASEO_GATEWAY_DEFAULT_CWD=str(cwd),
        PASEO_GATEWAY_PROMPT_RATE_LIMIT_PER_MINUTE="0",
    )
    env.update(settings)
    return env


def start_server(
    argv: list[str],
    *,
    env: dict[str, str],
    log_path: Path,
    cwd: Path | None = None,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start a server with its output in `log_path` (what to read when it fails).

    With `new_session` it leads its own process group: a Ctrl-C at the terminal reaches only
    the script (which then stops it), and stop_server's SIGKILL takes its children too.
    """
    with log_path.open("wb") as log:
        return subprocess.Popen(
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=new_session,
        )


def spawn_gateway(
    env: dict[str, str], log_path: Path, *, cwd: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """`paseo-gateway serve` on a free port of 127.0.0.1, in its own process group; returns
    the process and its URL at once (wait_until_answering tells when it is up)."""
    port = free_port()
    argv = [*gateway_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = start_server(argv, env=env, log_path=log_path, cwd=cwd, new_session=True)
    return process, f"http://127.0.0.1:{port}"


def _poll(
    process: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float, interval: float
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if ready():
            return True
        time.sleep(interval)
    return False


def wait_until_answering(
    process: subprocess.Popen[bytes], url: str, *, timeout: float, request_timeout: float = 5.0
) -> bool:
    """Poll GET `url` every 0.2 s: True once it answers 200, False when the process exits or
    `timeout` s pass first (`process.poll()` tells which; each script words its own error).

    `request_timeout` bounds one request: a gateway's /readyz may wait on the daemon.
    """
    import httpx

    with httpx.Client(trust_env=False, timeout=request_timeout) as client:

        def answers() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return client.get(url).status_code == 200
            return False

        return _poll(process, answers, timeout, 0.2)


def wait_until_listening(process: subprocess.Popen[bytes], port: int, *, timeout: float) -> bool:
    """Like wait_until_answering, for a server with no health route: True once a TCP
    connection to 127.0.0.1:`port` opens (tried every 0.05 s)."""

    def listening() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        return False

    return _poll(process, listening, timeout, 0.05)


def stop_server(process: subprocess.Popen[bytes], *, timeout: float = STOP_SECONDS) -> None:
    """SIGTERM, then SIGKILL after `timeout` s. A server that leads its own process group
    (started with new_session) gets the SIGKILL with its whole group, so no child is left."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(process.pid) == process.pid:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def running_server(
    argv: list[str],
    *,
    env: dict[str, str],
    log_path: Path,
    cwd: Path | None = None,
    stop_timeout: float = STOP_SECONDS,
) -> Iterator[subprocess.Popen[bytes]]:
    """start_server for a `with` block, stopped (stop_server) however the block ends."""
    process = start_server(argv, env=env, log_path=log_path, cwd=cwd)
    try:
        yield process
    finally:
        stop_server(process, timeout=stop_timeout)


def kill_leftover_fakes(home: Path) -> int:
    """SIGKILL the fake paseo processes (CLI calls and daemon workers) of PASEO_HOME `home`
    still running once the daemon is stopped; returns how many there were."""
    leftovers = running_fake_processes(include_daemons=True, home=home)
    for pid, _argv in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(leftovers)


# -- event streams ---------------------------------------------------------------------------

SseEvent = tuple[str, str | None, dict[str, Any]]  # name, id, JSON data


async def sse_events(response: httpx.Response) -> AsyncGenerator[SseEvent, None]:
    """The events of a text/event-stream response, each as it is dispatched.

    Comments and events without data (keep-alives) are skipped; an event's id is its own (None
    without an `id:` line), not carried over. Read it in `contextlib.aclosing` when leaving
    early (at a terminal event), so the generator is closed there and then.
    """
    name, data, event_id = "message", [], None
    async for line in response.aiter_lines():
        if line.startswith(":"):
            continue
        if line:
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
            elif key == "id":
                event_id = value
            continue
        if data:
            yield name, event_id, json.loads("\n".join(data))
        name, data, event_id = "message", [], None


# -- profiling -------------------------------------------------------------------------------

# Samples a second: py-spy's default is 100; 200 gives a 10 s window 2,000 stacks.
PY_SPY_RATE = 200
# From SIGINT (py-spy then writes its file) to SIGKILL.
PY_SPY_STOP_SECONDS = 30.0
PY_SPY_MISSING = (
    "--profile needs py-spy, the project's `bench` extra, not installed here: "
    "`.venv/bin/pip install -c constraints.txt -e '.[test,bench]'` "
    "(it samples the gateway from outside, nothing in the app changes)"
)


def py_spy_path() -> str | None:
    """The venv's py-spy, else one on PATH; None when there is none."""
    for candidate in (Path(sys.executable).parent / "py-spy", REPO / ".venv" / "bin" / "py-spy"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("py-spy")


@contextlib.asynccontextmanager
async def py_spy_recording(pid: int, output: Path) -> AsyncIterator[None]:
    """`py-spy record --format raw` of process `pid` for the `async with` block: collapsed
    stacks (`frame;frame;... count` a line) in `output`. SIGINT ends the recording and makes
    py-spy write the file; `--nonblocking` never pauses the process it samples."""
    executable = py_spy_path()
    if executable is None:
        raise RuntimeError(PY_SPY_MISSING)
    argv = [executable, "record", "--format", "raw", "--rate", str(PY_SPY_RATE)]
    argv += ["--nonblocking", "--pid", str(pid), "--output", str(output)]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        yield
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), PY_SPY_STOP_SECONDS)
        except TimeoutError:
            process.kill()
            _, stderr = await process.communicate()
    if not await asyncio.to_thread(output.exists):
        said = stderr.decode(errors="replace").strip()[-500:]
        raise RuntimeError(f"py-spy wrote no profile of pid {pid}: {said or 'no message'}")


# -- PostgreSQL ------------------------------------------------------------------------------


def with_database(dsn: str, name: str) -> str:
    """`dsn` pointing at database `name` (user, host and query kept)."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


async def admin_execute(admin_dsn: str, sql: str, *, connect_timeout: float = 30.0) -> None:
    """Run one statement on its own connection: CREATE and DROP DATABASE cannot run in a
    transaction, nor on a connection to the database they drop."""
    import asyncpg

    connection = await asyncpg.connect(admin_dsn, timeout=connect_timeout)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()
