"""A real gateway for the API tests: `paseo-gateway serve` (uvicorn) in a child process on
127.0.0.1, on SQLite and on PostgreSQL, driving the fake paseo CLI against the fake daemon.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import URL, make_url

from tests.conftest import BACKENDS, DEFAULT_PG_ADMIN_URL, PG_ADMIN_URL_ENV
from tests.fakes.harness import FAKE_PASEO_BIN, FakePaseoDaemon

# Generous: on a loaded 2-core machine a server (imports, migrations) can take tens of seconds.
STARTUP_TIMEOUT_SECONDS = 120.0
# Names the one transport for this run (README's test command runs tests/api again with
# `daemon`); unset, the shared API gateways run on every transport the gateway has (the CLI's
# and the daemon's WebSocket, against the same fake daemon).
TEST_TRANSPORT_ENV = "PASEO_GATEWAY_TEST_TRANSPORT"
TRANSPORTS: tuple[str, ...] = (
    (os.environ[TEST_TRANSPORT_ENV],) if os.environ.get(TEST_TRANSPORT_ENV) else ("cli", "daemon")
)
# The gateways under test start with this admin key (PASEO_GATEWAY_ADMIN_KEY).
TEST_ADMIN_KEY = "pgw_test-admin-key-for-the-suite-0000000000"
AUTH = {"Authorization": f"Bearer {TEST_ADMIN_KEY}"}


@dataclass
class Gateway:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_gateway(log_dir: Path, env: dict[str, str]) -> Gateway:
    """Run `python -m app serve` and return once /healthz answers."""
    port = _free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"gateway-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=log_dir,
        )
    gateway = Gateway(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited at start:\n{gateway.log()}")
        try:
            if httpx.get(f"{gateway.url}/healthz", timeout=1).status_code == 200:
                return gateway
        except httpx.TransportError:
            time.sleep(0.1)
    stop_gateway(gateway)
    raise RuntimeError(f"gateway did not start:\n{gateway.log()}")


def stop_gateway(gateway: Gateway) -> None:
    if gateway.process.poll() is None:
        gateway.process.send_signal(signal.SIGTERM)
        try:
            gateway.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            gateway.process.kill()
            gateway.process.wait()


def gateway_transport() -> str:
    """The transport of gateways a test starts itself: `cli`, or what
    PASEO_GATEWAY_TEST_TRANSPORT names (the shared `gateway` fixture runs on both)."""
    return os.environ.get(TEST_TRANSPORT_ENV) or "cli"


def gateway_env(
    database_url: str, daemon: FakePaseoDaemon, cwd: Path, **overrides: str
) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PASEO")}
    env.update(
        PASEO_GATEWAY_DATABASE_URL=database_url,
        PASEO_GATEWAY_PASEO_BIN=str(FAKE_PASEO_BIN),
        PASEO_GATEWAY_PASEO_HOST=daemon.host,
        PASEO_GATEWAY_PASEO_HOME=str(daemon.home),
        PASEO_GATEWAY_DEFAULT_PROVIDER="mock",
        PASEO_GATEWAY_DEFAULT_MODEL="ten-second-stream",
        PASEO_GATEWAY_DEFAULT_CWD=str(cwd),
        PASEO_GATEWAY_SSE_PING_SECONDS="1",
        PASEO_GATEWAY_ADMIN_KEY=TEST_ADMIN_KEY,
        PASEO_GATEWAY_LOG_FORMAT="text",  # the tests read the access log
        PASEO_GATEWAY_TRANSPORT=gateway_transport(),
        # The suite's gateways are shared by many tests on one key, which can send more than
        # a minute's worth of prompts on a fast machine; the limit is tested on gateways of
        # its own (test_security.py sets it).
        PASEO_GATEWAY_PROMPT_RATE_LIMIT_PER_MINUTE="0",
    )
    env.update(overrides)
    return env


@pytest.fixture(
    scope="session",
    params=[(backend, transport) for transport in TRANSPORTS for backend in BACKENDS],
    ids=lambda param: "-".join(param),
)
def gateway(
    request: pytest.FixtureRequest,
    fake_daemon: FakePaseoDaemon,
    agent_cwd: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    """One gateway per backend and transport for the run, all on the one fake daemon; each
    migrates its empty database at start."""
    backend, transport = request.param
    log_dir = tmp_path_factory.mktemp(f"gateway-{backend}-{transport}")
    with empty_database(backend, log_dir) as database_url:
        env = gateway_env(database_url, fake_daemon, agent_cwd, PASEO_GATEWAY_TRANSPORT=transport)
        gateway = start_gateway(log_dir, env)
        try:
            yield gateway
        finally:
            stop_gateway(gateway)


@contextmanager
def empty_database(backend: str, folder: Path) -> Iterator[str]:
    """A new empty database of `backend` (sync: session fixtures here run outside a loop)."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / uuid.uuid4().hex}.db"
        return
    admin_url = make_url(os.environ.get(PG_ADMIN_URL_ENV, DEFAULT_PG_ADMIN_URL))
    name = f"paseo_gw_api_{uuid.uuid4().hex[:10]}"
    _admin_execute(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def replica_pair(
    backend: str, folder: Path, daemon: FakePaseoDaemon, cwd: Path, **overrides: str
) -> Iterator[tuple[Gateway, Gateway]]:
    """Two gateways on one new database of `backend`: replicas behind one load balancer."""
    with empty_database(backend, folder) as url:
        first = start_gateway(folder, gateway_env(url, daemon, cwd, **overrides))
        try:
            second = start_gateway(folder, gateway_env(url, daemon, cwd, **overrides))
            try:
                yield first, second
            finally:
                stop_gateway(second)
        finally:
            stop_gateway(first)


def _admin_execute(admin_url: URL, statement: str) -> None:
    async def execute() -> None:
        dsn = admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, execute()).result()


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60, headers=AUTH) as http:
        yield http
