"""Real databases for the tests: data-layer and API tests run on SQLite and on PostgreSQL.

Each backend makes one migrated database per test session (a temp file; a uniquely named
PostgreSQL database, dropped at the end). Tests commit for real, from several connections at
once, and the `database` fixture deletes every row afterwards so the next test starts empty.
Migration tests get empty databases of their own. Pick a backend with `-k sqlite` or
`-k postgresql`; the PostgreSQL server is PASEO_GATEWAY_TEST_PG_URL (an admin URL).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import pytest
from sqlalchemy import URL, make_url, text

from app.db import Database
from app.migrations import upgrade_to_head_async
from app.models import Base
from tests.fakes.harness import FakePaseoDaemon, Hold, running_fake_processes

PG_ADMIN_URL_ENV = "PASEO_GATEWAY_TEST_PG_URL"
DEFAULT_PG_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")


class Backend(Protocol):
    """Hands out databases of one kind and removes them again."""

    name: str

    async def empty_database(self) -> str:
        """The URL of a new database with no tables; `drop` it when done."""
        ...

    async def migrated_database(self) -> str:
        """The URL of this test session's database at the migrations' head (shared)."""
        ...

    async def drop(self, url: str) -> None: ...


class SqliteBackend:
    name = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._migrated: str | None = None

    async def empty_database(self) -> str:
        return f"sqlite+aiosqlite:///{self.folder / uuid.uuid4().hex}.db"

    async def migrated_database(self) -> str:
        if self._migrated is None:
            url = await self.empty_database()
            await upgrade_to_head_async(url)
            self._migrated = url
        return self._migrated

    async def drop(self, url: str) -> None:
        _remove_sqlite_files(make_url(url).database or "")


def _remove_sqlite_files(database: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(database + suffix).unlink(missing_ok=True)


class PostgresBackend:
    name = "postgresql"

    def __init__(self, admin_url: URL, admin: asyncpg.Connection) -> None:
        self.admin_url = admin_url
        self.admin = admin
        self.prefix = f"paseo_gw_test_{uuid.uuid4().hex[:10]}"
        self._count = 0
        self._migrated: str | None = None

    async def empty_database(self) -> str:
        self._count += 1
        name = f"{self.prefix}_{self._count}"
        await self.admin.execute(f'CREATE DATABASE "{name}"')
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    async def migrated_database(self) -> str:
        if self._migrated is None:
            url = await self.empty_database()
            await upgrade_to_head_async(url)
            self._migrated = url
        return self._migrated

    async def drop(self, url: str) -> None:
        name = make_url(url).database
        await self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def close(self) -> None:
        if self._migrated is not None:
            await self.drop(self._migrated)
        await self.admin.close()


@pytest.fixture(scope="session")
def sqlite_backend(tmp_path_factory: pytest.TempPathFactory) -> SqliteBackend:
    return SqliteBackend(tmp_path_factory.mktemp("sqlite"))


@pytest.fixture(scope="session")
async def postgresql_backend() -> AsyncIterator[PostgresBackend]:
    admin_url = make_url(os.environ.get(PG_ADMIN_URL_ENV, DEFAULT_PG_ADMIN_URL))
    dsn = admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    backend = PostgresBackend(admin_url, await asyncpg.connect(dsn))
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """This run's backend. A sync fixture, so that only the chosen one is set up."""
    chosen: Backend = request.getfixturevalue(f"{request.param}_backend")
    return chosen


@pytest.fixture
async def empty_database_url(backend: Backend) -> AsyncIterator[str]:
    url = await backend.empty_database()
    try:
        yield url
    finally:
        await backend.drop(url)


@asynccontextmanager
async def emptied_after_use(url: str) -> AsyncIterator[Database]:
    """A `Database` on `url`; every row is deleted when the block ends."""
    db = Database.from_url(url)
    try:
        yield db
    finally:
        async with db.engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                await connection.execute(table.delete())
        await db.dispose()


@pytest.fixture
async def database(backend: Backend) -> AsyncIterator[Database]:
    """A `Database` on this backend's migrated database, with no rows in it."""
    async with emptied_after_use(await backend.migrated_database()) as db:
        yield db


@pytest.fixture
async def sqlite_database(sqlite_backend: SqliteBackend) -> AsyncIterator[Database]:
    async with emptied_after_use(await sqlite_backend.migrated_database()) as db:
        yield db


@pytest.fixture
async def postgresql_database(postgresql_backend: PostgresBackend) -> AsyncIterator[Database]:
    async with emptied_after_use(await postgresql_backend.migrated_database()) as db:
        yield db


# --- Racing transactions ---------------------------------------------------------------------

# How long a racer gets to reach the lock where the backend cannot show that it waits (SQLite).
RACE_PAUSE_SECONDS = 0.3
# Generous deadlines for a loaded machine: a racer to show its lock wait, a racer to finish.
LOCK_WAIT_SECONDS = 60.0
RACER_SECONDS = 60.0


async def until_blocked(db: Database, racer: asyncio.Task[Any]) -> None:
    """Until `racer` waits for a lock that an open transaction of the test holds; fails if it
    ends instead.

    PostgreSQL shows the wait (pg_stat_activity, wait_event_type 'Lock'), so on PostgreSQL this
    waits for exactly that, however slow the machine: a pause could end before the racer got
    there and let the test pass without any race. SQLite's busy handler shows nothing; there the
    racer gets RACE_PAUSE_SECONDS (if it got less far, it still ends only after the transaction
    it races, which the tests check next).
    """
    loop = asyncio.get_running_loop()
    if db.engine.dialect.name == "postgresql":
        deadline = loop.time() + LOCK_WAIT_SECONDS
        while not await _lock_waiters(db):
            assert not racer.done(), "the racer ended without waiting for the open transaction"
            assert loop.time() < deadline, "the racer never waited for a lock"
            await asyncio.sleep(0.02)
    else:
        await asyncio.sleep(RACE_PAUSE_SECONDS)
    assert not racer.done(), "the racer ended without waiting for the open transaction"


async def _lock_waiters(db: Database) -> int:
    async with db.engine.connect() as connection:
        count = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return int(count or 0)


# --- The fake paseo daemon ------------------------------------------------------------------

# Mock turns run at this fraction of their real duration (ten-second-stream takes about 1 s).
FAKE_TIME_SCALE = 0.1


@pytest.fixture(scope="session")
def fake_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakePaseoDaemon]:
    """One fake daemon for the whole run, like the one daemon a gateway talks to."""
    with FakePaseoDaemon(
        tmp_path_factory.mktemp("paseo-home"), time_scale=FAKE_TIME_SCALE
    ) as daemon:
        yield daemon


# How long `release_when` waits for its condition before it lets the turn end anyway.
RELEASE_SECONDS = 60.0


async def release_when(
    hold: Hold, ready: Callable[[], bool], timeout: float = RELEASE_SECONDS
) -> bool:
    """Release `hold` once `ready()` holds (polled), else after `timeout` seconds, so that a
    test whose condition never comes fails on its assertions instead of hanging. Run it as a
    task beside the code that follows the held turn; says whether the condition came."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (came := ready()) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    hold.release()
    return came


@pytest.fixture
def hold(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hold]:
    """Mock turns that run until the test releases them (`hold.prompt(...)`, `hold.release()`);
    released at the end whatever happened, so no held turn streams on into later tests."""
    held = Hold(tmp_path_factory.mktemp("hold") / "release")
    yield held
    held.release()


@pytest.fixture(scope="session")
def agent_cwd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working directory new agents get (a real directory, as a workspace would be)."""
    return tmp_path_factory.mktemp("project")


@pytest.fixture(scope="session", autouse=True)
def no_leaked_paseo_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the whole suite, no fake paseo CLI child of this run may still be running.

    This run's children are those whose PASEO_HOME is in its temporary directory; a child
    orphaned by a gateway that exited is found too (it is no longer our descendant).
    """
    run_folder = tmp_path_factory.getbasetemp()
    yield
    deadline = time.monotonic() + 10
    while (leaked := running_fake_processes(home_under=run_folder)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not leaked, f"paseo processes left running: {leaked}"
