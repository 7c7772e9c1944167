"""app/db.py: the engine per backend, the unit-of-work session, readiness and the column types."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import SQLITE_BUSY_TIMEOUT_MS, Database, create_engine
from app.models import GatewaySession, Turn
from app.repositories.sessions import add_session, get_session
from app.repositories.turns import ActiveTurnExists, add_turn, get_turn
from tests.conftest import RACER_SECONDS, until_blocked

if TYPE_CHECKING:
    from tests.db.conftest import PostgresBackend


async def _scalar(engine: AsyncEngine, sql: str) -> object:
    async with engine.connect() as connection:
        return (await connection.execute(text(sql))).scalar_one()


async def _count_sessions(db: Database) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count(GatewaySession.id))) or 0


# --- SQLite -----------------------------------------------------------------------------------


async def test_sqlite_connections_get_foreign_keys_busy_timeout_and_wal(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
    try:
        assert await _scalar(engine, "PRAGMA foreign_keys") == 1
        assert await _scalar(engine, "PRAGMA busy_timeout") == SQLITE_BUSY_TIMEOUT_MS
        assert await _scalar(engine, "PRAGMA journal_mode") == "wal"
    finally:
        await engine.dispose()


async def test_sqlite_engine_for_migrations_leaves_foreign_keys_off(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", sqlite_foreign_keys=False)
    try:
        assert await _scalar(engine, "PRAGMA foreign_keys") == 0
    finally:
        await engine.dispose()


async def test_sqlite_relative_path_is_pinned_and_its_folder_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    engine = create_engine("sqlite+aiosqlite:///./data/gateway.db")
    monkeypatch.chdir(tmp_path.parent)  # a later chdir must not move the database
    try:
        await _scalar(engine, "SELECT 1")
        assert engine.url.database == str(tmp_path / "data" / "gateway.db")
        assert (tmp_path / "data" / "gateway.db").is_file()
    finally:
        await engine.dispose()


async def test_sqlite_in_memory_url_works() -> None:
    db = Database.from_url("sqlite+aiosqlite://")
    try:
        assert await db.ping() is True
    finally:
        await db.dispose()


async def test_sqlite_second_writer_waits_for_the_first(sqlite_database: Database) -> None:
    """The busy timeout makes a second writer wait for the lock, not fail 'database is locked'."""
    db = sqlite_database
    async with db.session() as first:
        await add_session(first, provider="claude", cwd="/a")
        second = asyncio.create_task(_delete_sessions_in_cwd(db, "/a"))
        await until_blocked(db, second)  # on the first writer's lock
    await asyncio.wait_for(second, RACER_SECONDS)
    # It ran after the first committed, so it saw and deleted that row.
    assert await _count_sessions(db) == 0


async def _delete_sessions_in_cwd(db: Database, cwd: str) -> None:
    async with db.session() as session:
        await session.execute(delete(GatewaySession).where(GatewaySession.cwd == cwd))


# --- PostgreSQL -------------------------------------------------------------------------------


async def test_postgresql_ping_is_false_when_the_server_is_unreachable() -> None:
    db = Database.from_url("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    try:
        assert await db.ping() is False
    finally:
        await db.dispose()


async def test_postgresql_pool_replaces_a_connection_the_server_closed(
    postgresql_backend: PostgresBackend, postgresql_database: Database
) -> None:
    """After the server drops a pooled connection (its backend has gone), the next use of the
    pool still works, on a new connection."""
    engine = postgresql_database.engine
    old_pid = await _scalar(engine, "SELECT pg_backend_pid()")
    await postgresql_backend.admin.execute("SELECT pg_terminate_backend($1)", old_pid)
    async with asyncio.timeout(30):
        while await postgresql_backend.admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", old_pid
        ):
            await asyncio.sleep(0.01)

    new_pid = await _scalar(engine, "SELECT pg_backend_pid()")

    assert new_pid != old_pid


# --- both backends ----------------------------------------------------------------------------


async def test_ping_is_true_when_the_database_answers(database: Database) -> None:
    assert await database.ping() is True


async def test_session_commits_when_the_block_ends(database: Database) -> None:
    async with database.session() as session:
        record = await add_session(session, provider="claude", cwd="/w")

    assert record.status == "pending"  # still loaded after commit (expire_on_commit=False)
    async with database.session() as session:
        assert await get_session(session, record.id) is not None


async def test_session_rolls_back_when_the_block_raises(database: Database) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with database.session() as session:
            await add_session(session, provider="claude", cwd="/w")
            raise RuntimeError("boom")

    assert await _count_sessions(database) == 0


async def test_units_counts_each_session_and_read_block(database: Database) -> None:
    before = database.units
    async with database.session():
        pass
    async with database.read() as reads:
        await reads.execute(text("SELECT 1"))
    with pytest.raises(RuntimeError, match="boom"):
        async with database.session():
            raise RuntimeError("boom")

    assert database.units - before == 3  # one per block, whether it committed or not


async def test_foreign_keys_are_enforced(database: Database) -> None:
    with pytest.raises(IntegrityError) as caught:
        async with database.session() as session:
            await add_turn(session, session_id=uuid.uuid4(), prompt="hi")

    assert not isinstance(caught.value, ActiveTurnExists)


async def test_deleting_a_session_deletes_its_turns(database: Database) -> None:
    async with database.session() as session:
        record = await add_session(session, provider="claude", cwd="/w")
        turn = await add_turn(session, session_id=record.id, prompt="hi")

    async with database.session() as session:
        await session.execute(delete(GatewaySession).where(GatewaySession.id == record.id))

    async with database.session() as session:
        assert await session.scalar(select(func.count(Turn.id))) == 0
        assert await get_turn(session, turn.id) is None


async def test_datetimes_come_back_aware_in_utc(database: Database) -> None:
    plus_two = timezone(timedelta(hours=2))
    finished = datetime(2026, 3, 1, 14, 30, 15, 123456, tzinfo=plus_two)
    async with database.session() as session:
        record = await add_session(session, provider="claude", cwd="/w")
        turn = await add_turn(session, session_id=record.id, prompt="hi")
        turn.finished_at = finished

    async with database.session() as session:  # a new session reads from the database
        stored = await get_turn(session, turn.id)
        assert stored is not None
        assert stored.finished_at == finished
        assert stored.finished_at is not None and stored.finished_at.tzinfo is UTC
        assert stored.finished_at.hour == 12
        assert stored.started_at.tzinfo is UTC
        assert abs(datetime.now(UTC) - stored.started_at) < timedelta(minutes=1)


async def test_naive_datetimes_are_refused(database: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        async with database.session() as session:
            record = await add_session(session, provider="claude", cwd="/w")
            record.last_active_at = datetime(2026, 1, 1)
            await session.flush()


async def test_a_process_keeps_the_configured_number_of_connections(tmp_path: Path) -> None:
    """The pool keeps `pool_size` open (and opens as many again for a burst), for a SQLite
    file as for PostgreSQL; an in-memory SQLite database keeps its one shared connection."""
    db = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}", pool_size=7)
    memory = Database.from_url("sqlite+aiosqlite://")
    try:
        pool = db.engine.pool
        assert (pool.size(), pool._max_overflow) == (7, 7)  # type: ignore[attr-defined]
        assert not hasattr(memory.engine.pool, "_max_overflow")
    finally:
        await db.dispose()
        await memory.dispose()
