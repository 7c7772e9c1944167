"""Async engine, session factory and the `Database` the app holds for its lifetime.

The caller of `Database.session()` owns the transaction: it commits when the block ends and
rolls back when it raises. Repositories only flush.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, event, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolResetState

logger = logging.getLogger(__name__)

# How long a SQLite writer waits for another writer's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Connections a process keeps open. SQLAlchemy's default, 5, made a server under 32
# concurrent reads open and close a connection for most of them (a new PostgreSQL backend
# each time).
DEFAULT_POOL_SIZE = 10
# A readiness probe that hangs is worse than one that says "not ready".
PING_TIMEOUT_SECONDS = 5.0


def create_engine(
    url: str, *, sqlite_foreign_keys: bool = True, pool_size: int = DEFAULT_POOL_SIZE
) -> AsyncEngine:
    """An async engine for `url`, tuned per backend.

    SQLite: a relative file path is made absolute (and its folder created), and each connection
    gets foreign keys, a busy timeout and WAL. Migrations pass `sqlite_foreign_keys=False`,
    because Alembic's batch mode drops and recreates tables, which would cascade deletes.
    `pool_size` connections stay open; as many again are opened for a burst and closed after.
    Other backends: `pool_pre_ping`, so a connection the server closed is replaced, not used.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(parsed, pool_pre_ping=True, **_pool_arguments(parsed, pool_size))
    parsed = _absolute_sqlite_url(parsed)
    engine = create_async_engine(
        parsed, pool_reset_on_return=None, **_pool_arguments(parsed, pool_size)
    )
    _install_sqlite_pragmas(engine, foreign_keys=sqlite_foreign_keys, wal=_is_sqlite_file(parsed))
    _roll_back_only_open_transactions(engine)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded values after commit: async code cannot lazy-load them again."""
    return async_sessionmaker(engine, expire_on_commit=False)


class Database:
    """The engine and its session factory, made at startup and disposed at shutdown.

    `units` counts the units of work begun (`session()` and `read()` blocks) since it was
    made: a plain counter, read by benchmarks/prompt_path.py and tests, never reset.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessionmaker = create_sessionmaker(engine)
        self.read_sessionmaker = create_sessionmaker(_reading(engine))
        self.units = 0

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> Database:
        return cls(create_engine(url, pool_size=pool_size))

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commit when the block ends, roll back when it raises."""
        self.units += 1
        async with self.sessionmaker.begin() as session:
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """For reads that need no snapshot across statements: commits nothing.

        Cheaper than `session()`: on PostgreSQL no BEGIN and COMMIT round trips (each
        statement stands alone), so it is for SELECTs only.
        """
        self.units += 1
        async with self.read_sessionmaker() as session:
            yield session

    async def ping(self) -> bool:
        """Whether the database answers `SELECT 1` within `PING_TIMEOUT_SECONDS` (readiness)."""
        try:
            async with asyncio.timeout(PING_TIMEOUT_SECONDS), self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError, TimeoutError):
            logger.warning("database ping failed", exc_info=True)
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()


def _reading(engine: AsyncEngine) -> AsyncEngine:
    """The engine for `Database.read()`: the same pool, in autocommit on PostgreSQL.

    SQLite is left as it is: pysqlite starts no transaction for a SELECT anyway, and switching
    a connection's isolation level there costs two more trips to its thread.
    """
    if engine.dialect.name == "sqlite":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def _pool_arguments(url: URL, pool_size: int) -> dict[str, int]:
    """`pool_size` kept open and as many again for a burst; an in-memory SQLite database keeps
    the single shared connection SQLAlchemy gives it."""
    if url.get_backend_name() == "sqlite" and not _is_sqlite_file(url):
        return {}
    return {"pool_size": pool_size, "max_overflow": pool_size}


def _is_sqlite_file(url: URL) -> bool:
    """False for in-memory databases and `file:` URIs, whose path we leave alone."""
    database = url.database or ""
    return database not in ("", ":memory:") and not database.startswith("file:")


def _absolute_sqlite_url(url: URL) -> URL:
    """Pin a relative path to the current directory now, and create its parent folder."""
    if not _is_sqlite_file(url) or url.query.get("uri"):
        return url
    path = Path(url.database or "").expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return url.set(database=str(path))


def _roll_back_only_open_transactions(engine: AsyncEngine) -> None:
    """A SQLite connection going back to the pool is rolled back only if it holds a
    transaction.

    The pool's own reset rolls back every time, and on aiosqlite each call is a trip to the
    connection's thread: a read (no transaction: pysqlite begins one only for a write) paid one
    more trip than its query. SQLite says itself whether a transaction is open.
    """

    @event.listens_for(engine.sync_engine, "reset")
    def _reset(dbapi_connection: Any, record: ConnectionPoolEntry, state: PoolResetState) -> None:
        if state.terminate_only or not state.asyncio_safe:
            return  # discarded: closing it ends its transaction
        driver_connection = record.driver_connection
        if driver_connection is None or driver_connection.in_transaction:
            dbapi_connection.rollback()


def _install_sqlite_pragmas(engine: AsyncEngine, *, foreign_keys: bool, wal: bool) -> None:
    pragmas = [
        f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}",
        f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    ]
    if wal:
        # Readers no longer block the writer; the mode is stored in the file.
        pragmas.append("PRAGMA journal_mode=WAL")

    @event.listens_for(engine.sync_engine, "connect")
    def _set_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for pragma in pragmas:
                cursor.execute(pragma)
        finally:
            cursor.close()
