"""The migrations build the schema app/models.py declares, undo it, and run from anywhere."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tomllib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Connection,
    Integer,
    String,
    Text,
    Uuid,
    column,
    inspect,
    select,
    table,
    text,
)

from app import migrations
from app.db import Database, create_engine
from app.migrations import (
    alembic_config,
    downgrade_to_base,
    downgrade_to_base_async,
    upgrade_to_head,
    upgrade_to_head_async,
)
from app.models import Base, UTCDateTime
from app.repositories.api_keys import add_key
from app.repositories.rate_limits import admit_prompt
from app.repositories.sessions import add_session, get_session
from app.repositories.turns import get_turn
from app.search_schema import (
    SEARCH_INDEX,
    SEARCH_TABLE,
    include_in_schema_comparison,
    is_search_table,
)

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_TABLES = {
    "sessions",
    "turns",
    "turn_events",
    "api_keys",
    "gateway_secrets",
    "prompt_admissions",
    "permission_answers",
    "webhooks",
    "webhook_subscriptions",
    "webhook_deliveries",
    "audit_records",
}
WEBHOOK_TABLES = {"webhooks", "webhook_subscriptions", "webhook_deliveries"}
AUDIT_TABLES = {"audit_records"}
HEAD = "0011"
SUBPROCESS_TIMEOUT_SECONDS = 60


async def _inspect(url: str, look: Any) -> Any:
    """Run `look(sync_connection)` on a fresh engine for `url`."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(look)
    finally:
        await engine.dispose()


def _tables(connection: Connection) -> set[str]:
    """The tables, without SQLite's FTS5 search tables (0010's test looks at those)."""
    return {name for name in inspect(connection).get_table_names() if not is_search_table(name)}


def _schema_diff(connection: Connection) -> list[Any]:
    # The same filter as alembic/env.py: search's index and FTS5 tables are not ORM models.
    opts = {"compare_type": True, "include_name": include_in_schema_comparison}
    context = MigrationContext.configure(connection, opts=opts)
    return list(compare_metadata(context, Base.metadata))


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _head() -> str | None:
    return ScriptDirectory.from_config(alembic_config("unused://")).get_current_head()


async def test_upgrade_creates_tables_and_records_head(empty_database_url: str) -> None:
    await upgrade_to_head_async(empty_database_url)

    assert await _inspect(empty_database_url, _tables) == GATEWAY_TABLES | {"alembic_version"}
    assert await _inspect(empty_database_url, _revision) == _head() == HEAD


async def test_upgrade_creates_named_indexes_and_constraints(empty_database_url: str) -> None:
    await upgrade_to_head_async(empty_database_url)

    def look(connection: Connection) -> dict[str, Any]:
        inspector = inspect(connection)
        return {
            "turn_indexes": {
                index["name"]: (index["column_names"], bool(index["unique"]))
                for index in inspector.get_indexes("turns")
                if index["name"] != SEARCH_INDEX  # an expression index (PG): 0010's test
            },
            "session_indexes": {
                # PostgreSQL also lists the index behind the unique constraint.
                index["name"]
                for index in inspector.get_indexes("sessions")
                if "duplicates_constraint" not in index
            },
            "session_uniques": inspector.get_unique_constraints("sessions"),
            "session_fks": inspector.get_foreign_keys("sessions"),
            "turn_fks": inspector.get_foreign_keys("turns"),
            "event_uniques": inspector.get_unique_constraints("turn_events"),
            "event_fks": inspector.get_foreign_keys("turn_events"),
            "key_uniques": inspector.get_unique_constraints("api_keys"),
            "pks": [inspector.get_pk_constraint(t)["name"] for t in PK_ORDER],
        }

    schema = await _inspect(empty_database_url, look)

    assert schema["turn_indexes"] == {
        "uq_turns_one_active_per_session": (["session_id"], True),
        "ix_turns_session_id_number": (["session_id", "number"], True),
        "uq_turns_session_id_idempotency_key": (["session_id", "idempotency_key"], True),
        "ix_turns_status_heartbeat_at": (["status", "heartbeat_at"], False),
        "ix_turns_key_id_started_at": (["key_id", "started_at"], False),
    }
    assert schema["session_indexes"] == {
        "ix_sessions_status",
        "ix_sessions_owner_key_id",
        "ix_sessions_daemon",
    }
    assert [u["name"] for u in schema["session_uniques"]] == ["uq_sessions_agent_id"]
    [fk] = schema["session_fks"]
    assert fk["name"] == "fk_sessions_owner_key_id_api_keys"
    assert (fk["constrained_columns"], fk["referred_table"]) == (["owner_key_id"], "api_keys")
    assert fk["options"]["ondelete"] == "SET NULL"
    assert [(u["name"], u["column_names"]) for u in schema["key_uniques"]] == [
        ("uq_api_keys_secret_hash", ["secret_hash"])
    ]
    [fk] = schema["turn_fks"]
    assert fk["name"] == "fk_turns_session_id_sessions"
    assert (fk["referred_table"], fk["referred_columns"]) == ("sessions", ["id"])
    assert fk["options"]["ondelete"] == "CASCADE"
    [unique] = schema["event_uniques"]
    assert (unique["name"], unique["column_names"]) == (
        "uq_turn_events_turn_id_seq",
        ["turn_id", "seq"],
    )
    [fk] = schema["event_fks"]
    assert fk["name"] == "fk_turn_events_turn_id_turns"
    assert (fk["referred_table"], fk["referred_columns"]) == ("turns", ["id"])
    assert fk["options"]["ondelete"] == "CASCADE"
    assert schema["pks"] == [f"pk_{t}" for t in PK_ORDER]


PK_ORDER = (
    "sessions",
    "turns",
    "turn_events",
    "api_keys",
    "gateway_secrets",
    "prompt_admissions",
    "permission_answers",
)


def _active_turn_index_where(connection: Connection) -> str:
    [index] = [
        index
        for index in inspect(connection).get_indexes("turns")
        if index["name"] == "uq_turns_one_active_per_session"
    ]
    options = index.get("dialect_options", {})
    clause = options.get(f"{connection.dialect.name}_where")
    return str(clause)


async def test_active_turn_index_is_partial(empty_database_url: str) -> None:
    await upgrade_to_head_async(empty_database_url)

    clause = await _inspect(empty_database_url, _active_turn_index_where)

    assert "queued" in clause
    assert "running" in clause


async def test_migrated_schema_matches_models(empty_database_url: str) -> None:
    await upgrade_to_head_async(empty_database_url)

    assert await _inspect(empty_database_url, _schema_diff) == []


async def test_compare_metadata_does_see_a_missing_table(empty_database_url: str) -> None:
    """Guards the test above: on an empty database the comparison must report both tables."""
    diff = await _inspect(empty_database_url, _schema_diff)

    added = {entry[1].name for entry in diff if entry[0] == "add_table"}
    assert added == GATEWAY_TABLES


async def test_compare_metadata_does_see_a_missing_index(empty_database_url: str) -> None:
    await upgrade_to_head_async(empty_database_url)
    engine = create_engine(empty_database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DROP INDEX uq_turns_one_active_per_session"))
    finally:
        await engine.dispose()

    diff = await _inspect(empty_database_url, _schema_diff)

    assert [(entry[0], entry[1].name) for entry in diff] == [
        ("add_index", "uq_turns_one_active_per_session")
    ]


async def test_downgrade_leaves_no_tables_and_upgrade_again_works(
    empty_database_url: str,
) -> None:
    await upgrade_to_head_async(empty_database_url)

    await downgrade_to_base_async(empty_database_url)
    assert await _inspect(empty_database_url, _tables) <= {"alembic_version"}
    assert await _inspect(empty_database_url, _revision) is None

    await upgrade_to_head_async(empty_database_url)
    assert await _inspect(empty_database_url, _tables) >= GATEWAY_TABLES
    assert await _inspect(empty_database_url, _schema_diff) == []


# --- 0002: durable turns ----------------------------------------------------------------------

DURABLE_TURN_COLUMNS = {
    "idempotency_key",
    "request_hash",
    "runner_id",
    "heartbeat_at",
    "last_event_seq",
}
# The sessions table as 0001 made it (the ORM model has 0003's owner_key_id).
SESSIONS_0001 = table(
    "sessions",
    column("id", Uuid()),
    column("provider", String()),
    column("cwd", Text()),
    column("labels", JSON()),
    column("status", String()),
    column("created_at", UTCDateTime()),
    column("last_active_at", UTCDateTime()),
)
# The turns table as 0001 made it (the ORM model has 0002's columns).
TURNS_0001 = table(
    "turns",
    column("id", Uuid()),
    column("session_id", Uuid()),
    column("number", Integer()),
    column("prompt", Text()),
    column("status", String()),
    column("started_at", UTCDateTime()),
)


async def _migrate(url: str, revision: str, *, down: bool = False) -> None:
    move = command.downgrade if down else command.upgrade
    await asyncio.to_thread(move, alembic_config(url), revision)


def _turn_columns(connection: Connection) -> set[str]:
    return {c["name"] for c in inspect(connection).get_columns("turns")}


def _turn_index_names(connection: Connection) -> set[str]:
    return {index["name"] for index in inspect(connection).get_indexes("turns")}


async def _add_0001_turn(url: str) -> uuid.UUID:
    """A session and one running turn, written with 0001's columns only."""
    session_id, turn_id, now = uuid.uuid4(), uuid.uuid4(), datetime.now(UTC)
    db = Database.from_url(url)
    try:
        async with db.session() as session:
            await session.execute(
                SESSIONS_0001.insert().values(
                    id=session_id,
                    provider="claude",
                    cwd="/work",
                    labels={},
                    status="active",
                    created_at=now,
                    last_active_at=now,
                )
            )
            await session.execute(
                TURNS_0001.insert().values(
                    id=turn_id,
                    session_id=session_id,
                    number=1,
                    prompt="kept",
                    status="running",
                    started_at=now,
                )
            )
    finally:
        await db.dispose()
    return turn_id


async def _turn_rows(url: str) -> list[tuple[Any, ...]]:
    def look(connection: Connection) -> list[tuple[Any, ...]]:
        statement = select(TURNS_0001.c.id, TURNS_0001.c.prompt, TURNS_0001.c.status)
        return [tuple(row) for row in connection.execute(statement)]

    return list(await _inspect(url, look))


async def _turn_values(url: str, turn_id: uuid.UUID, *columns: str) -> tuple[Any, ...]:
    """Columns of one turn read with plain SQL (the ORM model has the head's columns)."""

    def look(connection: Connection) -> tuple[Any, ...]:
        statement = text(f"SELECT {', '.join(columns)} FROM turns WHERE id = :id")
        id_value = turn_id.hex if connection.dialect.name == "sqlite" else turn_id
        return tuple(connection.execute(statement, {"id": id_value}).one())

    return tuple(await _inspect(url, look))


async def test_0002_adds_columns_to_existing_turns(empty_database_url: str) -> None:
    await _migrate(empty_database_url, "0001")
    turn_id = await _add_0001_turn(empty_database_url)

    await _migrate(empty_database_url, "0002")

    values = await _turn_values(
        empty_database_url,
        turn_id,
        "prompt",
        "status",
        "last_event_seq",
        "idempotency_key",
        "request_hash",
        "runner_id",
        "heartbeat_at",
    )
    assert values == ("kept", "running", 0, None, None, None, None)


async def test_0004_records_earlier_turns_as_delivered(empty_database_url: str) -> None:
    """Turns that ran before 0004 reached Paseo as far as the gateway knew; none replaced
    another, and none announced a cancel."""
    await _migrate(empty_database_url, "0001")
    turn_id = await _add_0001_turn(empty_database_url)
    await _migrate(empty_database_url, "0003")

    await upgrade_to_head_async(empty_database_url)

    db = Database.from_url(empty_database_url)
    try:
        async with db.session() as session:
            turn = await get_turn(session, turn_id)
    finally:
        await db.dispose()
    assert turn is not None
    assert turn.prompt_sent_at == turn.prompt_delivered_at == turn.started_at
    assert (turn.replaces_turn_id, turn.cancelling_at) == (None, None)


async def test_0004_downgrade_to_0003_and_upgrade_again(empty_database_url: str) -> None:
    await _migrate(empty_database_url, "0001")
    turn_id = await _add_0001_turn(empty_database_url)
    await upgrade_to_head_async(empty_database_url)
    fact_columns = {"prompt_sent_at", "prompt_delivered_at", "replaces_turn_id", "cancelling_at"}
    assert await _inspect(empty_database_url, _turn_columns) >= fact_columns

    await _migrate(empty_database_url, "0003", down=True)

    assert not await _inspect(empty_database_url, _turn_columns) & fact_columns
    assert await _turn_rows(empty_database_url) == [(turn_id, "kept", "running")]
    assert "queued" in await _inspect(empty_database_url, _active_turn_index_where)
    await upgrade_to_head_async(empty_database_url)
    assert await _inspect(empty_database_url, _revision) == HEAD


async def test_0002_downgrade_to_0001_and_upgrade_again(empty_database_url: str) -> None:
    await _migrate(empty_database_url, "0001")
    turn_id = await _add_0001_turn(empty_database_url)
    await upgrade_to_head_async(empty_database_url)
    assert await _inspect(empty_database_url, _turn_columns) >= DURABLE_TURN_COLUMNS

    await _migrate(empty_database_url, "0001", down=True)

    assert await _inspect(empty_database_url, _revision) == "0001"
    assert await _inspect(empty_database_url, _tables) == {"sessions", "turns", "alembic_version"}
    assert not await _inspect(empty_database_url, _turn_columns) & DURABLE_TURN_COLUMNS
    assert await _inspect(empty_database_url, _turn_index_names) == {
        "uq_turns_one_active_per_session",
        "ix_turns_session_id_number",
    }
    # SQLite copied the table to drop the columns: its rows and its partial index survive.
    assert await _turn_rows(empty_database_url) == [(turn_id, "kept", "running")]
    assert "queued" in await _inspect(empty_database_url, _active_turn_index_where)

    await upgrade_to_head_async(empty_database_url)
    assert await _inspect(empty_database_url, _revision) == HEAD
    assert await _inspect(empty_database_url, _tables) == GATEWAY_TABLES | {"alembic_version"}
    assert await _inspect(empty_database_url, _schema_diff) == []
    assert await _turn_rows(empty_database_url) == [(turn_id, "kept", "running")]


# --- 0003: API keys, session owners, gateway secrets ------------------------------------------

KEY_TABLES = {"api_keys", "gateway_secrets"}


def _session_columns(connection: Connection) -> set[str]:
    return {c["name"] for c in inspect(connection).get_columns("sessions")}


def _session_shape(connection: Connection) -> dict[str, Any]:
    """What 0003 may change on sessions, and what its SQLite table copy must keep."""
    inspector = inspect(connection)
    return {
        "indexes": {
            index["name"]
            for index in inspector.get_indexes("sessions")
            if "duplicates_constraint" not in index
        },
        "uniques": [u["name"] for u in inspector.get_unique_constraints("sessions")],
        "fks": [fk["name"] for fk in inspector.get_foreign_keys("sessions")],
        "turn_fks": [
            (fk["name"], fk["referred_table"], fk["options"].get("ondelete"))
            for fk in inspector.get_foreign_keys("turns")
        ],
    }


def _session_ids(connection: Connection) -> set[uuid.UUID]:
    return set(connection.execute(select(SESSIONS_0001.c.id)).scalars())


async def _session_owners(url: str) -> dict[uuid.UUID, uuid.UUID | None]:
    def look(connection: Connection) -> dict[uuid.UUID, uuid.UUID | None]:
        sessions = table("sessions", column("id", Uuid()), column("owner_key_id", Uuid()))
        return {row.id: row.owner_key_id for row in connection.execute(select(sessions))}

    return dict(await _inspect(url, look))


async def _add_owned_session(url: str) -> uuid.UUID:
    """An API key, and a session it owns (0003's schema): the session's id."""
    db = Database.from_url(url)
    try:
        async with db.session() as session:
            key = await add_key(
                session, name="ci", prefix="pgw_abcd", secret_hash="ab" * 32, scopes=["a"]
            )
            record = await add_session(session, provider="claude", cwd="/w", owner_key_id=key.id)
    finally:
        await db.dispose()
    return record.id


async def test_0003_gives_existing_sessions_no_owner(empty_database_url: str) -> None:
    await _migrate(empty_database_url, "0002")
    turn_id = await _add_0001_turn(empty_database_url)

    await _migrate(empty_database_url, "0003")

    [(session_id, owner)] = (await _session_owners(empty_database_url)).items()
    assert owner is None
    assert await _turn_rows(empty_database_url) == [(turn_id, "kept", "running")]
    await upgrade_to_head_async(empty_database_url)  # the models are head's
    db = Database.from_url(empty_database_url)
    try:
        async with db.session() as session:
            record = await get_session(session, session_id)
    finally:
        await db.dispose()
    assert record is not None
    assert (record.provider, record.status, record.owner_key_id) == ("claude", "active", None)


async def test_0008_pins_existing_sessions_to_the_one_daemon(empty_database_url: str) -> None:
    """Sessions from before several daemons were on the one a single-daemon gateway calls
    `default`; a downgrade drops the column and keeps the sessions."""
    await _migrate(empty_database_url, "0007")
    await _add_0001_turn(empty_database_url)

    await _migrate(empty_database_url, "0008")

    def daemons(connection: Connection) -> list[str]:
        sessions = table("sessions", column("daemon", String()))
        return [row.daemon for row in connection.execute(select(sessions))]

    assert await _inspect(empty_database_url, daemons) == ["default"]
    await _migrate(empty_database_url, "0007", down=True)
    assert len(await _session_owners(empty_database_url)) == 1
    assert "daemon" not in await _inspect(
        empty_database_url,
        lambda connection: {c["name"] for c in inspect(connection).get_columns("sessions")},
    )


async def test_0003_downgrade_to_0002_and_upgrade_again(empty_database_url: str) -> None:
    await _migrate(empty_database_url, "0002")
    turn_id = await _add_0001_turn(empty_database_url)
    await upgrade_to_head_async(empty_database_url)
    owned_id = await _add_owned_session(empty_database_url)
    at_head = await _inspect(empty_database_url, _session_shape)

    await _migrate(empty_database_url, "0002", down=True)

    assert await _inspect(empty_database_url, _revision) == "0002"
    assert await _inspect(empty_database_url, _tables) == (
        GATEWAY_TABLES - KEY_TABLES - RATE_TABLES - WEBHOOK_TABLES - AUDIT_TABLES
    ) | {"alembic_version"}
    assert "owner_key_id" not in await _inspect(empty_database_url, _session_columns)
    # SQLite copied sessions to drop the column: its rows, index, unique constraint and the
    # turns' foreign key to it survive, and its turns were not cascaded away.
    assert await _inspect(empty_database_url, _session_shape) == {
        **at_head,
        "indexes": {"ix_sessions_status"},
        "fks": [],
    }
    assert await _turn_rows(empty_database_url) == [(turn_id, "kept", "running")]
    assert owned_id in await _inspect(empty_database_url, _session_ids)

    await upgrade_to_head_async(empty_database_url)
    assert await _inspect(empty_database_url, _revision) == HEAD
    assert await _inspect(empty_database_url, _tables) == GATEWAY_TABLES | {"alembic_version"}
    assert await _inspect(empty_database_url, _schema_diff) == []
    assert await _inspect(empty_database_url, _session_shape) == at_head
    owners = await _session_owners(empty_database_url)
    assert len(owners) == 2 and set(owners.values()) == {None}


# --- 0005: prompt admissions (the per-key rate limit) -------------------------------------------

# Tables later revisions add (0005: rate admissions; 0007: permission answers).
RATE_TABLES = {"prompt_admissions", "permission_answers"}


def _admission_shape(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    return {
        "indexes": {
            index["name"]: (index["column_names"], bool(index["unique"]))
            for index in inspector.get_indexes("prompt_admissions")
        },
        "fks": [
            (fk["name"], fk["constrained_columns"], fk["referred_table"], fk["options"])
            for fk in inspector.get_foreign_keys("prompt_admissions")
        ],
    }


async def _admit_one(url: str) -> uuid.UUID:
    """A key with one admitted prompt (0005's schema): the key's id."""
    db = Database.from_url(url)
    try:
        async with db.session() as session:
            key = await add_key(
                session, name="ci", prefix="pgw_abcd", secret_hash="cd" * 32, scopes=["a"]
            )
            now = datetime.now(UTC)
            admission = await admit_prompt(
                session, key.id, limit=1, since=now - timedelta(minutes=1), now=now
            )
            assert admission.admitted
    finally:
        await db.dispose()
    return key.id


async def test_0005_creates_prompt_admissions(empty_database_url: str) -> None:
    await _migrate(empty_database_url, "0004")
    assert "prompt_admissions" not in await _inspect(empty_database_url, _tables)

    await upgrade_to_head_async(empty_database_url)

    shape = await _inspect(empty_database_url, _admission_shape)
    assert shape["indexes"] == {
        "ix_prompt_admissions_key_id_admitted_at": (["key_id", "admitted_at"], False)
    }
    [(name, columns, referred, options)] = shape["fks"]
    assert (name, columns, referred) == (
        "fk_prompt_admissions_key_id_api_keys",
        ["key_id"],
        "api_keys",
    )
    assert options["ondelete"] == "CASCADE"
    await _admit_one(empty_database_url)


async def test_0005_downgrade_to_0004_and_upgrade_again(empty_database_url: str) -> None:
    await _migrate(empty_database_url, "0001")
    turn_id = await _add_0001_turn(empty_database_url)
    await upgrade_to_head_async(empty_database_url)
    key_id = await _admit_one(empty_database_url)

    await _migrate(empty_database_url, "0004", down=True)

    assert await _inspect(empty_database_url, _revision) == "0004"
    assert await _inspect(empty_database_url, _tables) == (
        GATEWAY_TABLES - RATE_TABLES - WEBHOOK_TABLES - AUDIT_TABLES
    ) | {"alembic_version"}
    assert await _turn_rows(empty_database_url) == [(turn_id, "kept", "running")]
    await upgrade_to_head_async(empty_database_url)
    assert await _inspect(empty_database_url, _revision) == HEAD
    assert await _inspect(empty_database_url, _schema_diff) == []
    # The key survived; its admissions did not (the table was dropped), so it has a place.
    assert await _admit_one_more(empty_database_url, key_id)


async def _admit_one_more(url: str, key_id: uuid.UUID) -> bool:
    db = Database.from_url(url)
    try:
        async with db.session() as session:
            now = datetime.now(UTC)
            admission = await admit_prompt(
                session, key_id, limit=1, since=now - timedelta(minutes=1), now=now
            )
    finally:
        await db.dispose()
    return admission.admitted


def test_sync_functions_run_from_sync_code(empty_database_url: str) -> None:
    """The server's startup may call them before any event loop exists."""
    upgrade_to_head(empty_database_url)
    upgrade_to_head(empty_database_url)  # at head already: nothing to do, no error
    downgrade_to_base(empty_database_url)


async def test_upgrade_at_head_keeps_data(empty_database_url: str) -> None:
    """A second upgrade at head must not touch rows (no drop and recreate)."""
    await upgrade_to_head_async(empty_database_url)
    db = Database.from_url(empty_database_url)
    try:
        async with db.session() as session:
            record = await add_session(session, provider="claude", cwd="/work")

        await upgrade_to_head_async(empty_database_url)

        async with db.session() as session:
            assert await get_session(session, record.id) is not None
    finally:
        await db.dispose()


def _alembic_cli(*args: str, env: dict[str, str] | None = None) -> str:
    """Run the alembic command from another folder, as an operator would with -c."""
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), *args],
        cwd=ROOT.parent,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_SECONDS,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


async def test_cli_takes_url_from_x_argument(empty_database_url: str) -> None:
    _alembic_cli("-x", f"url={empty_database_url}", "upgrade", "head")

    assert await _inspect(empty_database_url, _revision) == HEAD


def test_cli_takes_url_from_environment(empty_database_url: str) -> None:
    env = {"PASEO_GATEWAY_DATABASE_URL": empty_database_url}
    _alembic_cli("upgrade", "head", env=env)

    assert f"{HEAD} (head)" in _alembic_cli("current", env=env)


@pytest.mark.parametrize(
    "url",
    ["sqlite+aiosqlite:///unused.db", "postgresql+asyncpg://nobody@127.0.0.1:1/unused"],
    ids=["sqlite", "postgresql"],
)
def test_cli_offline_mode_prints_the_partial_index(url: str) -> None:
    sql = _alembic_cli("-x", f"url={url}", "upgrade", "head", "--sql")

    assert "CREATE TABLE sessions" in sql
    assert "CREATE TABLE turn_events" in sql
    assert "CREATE TABLE api_keys" in sql
    assert "CREATE TABLE prompt_admissions" in sql
    assert "owner_key_id" in sql
    assert "CREATE UNIQUE INDEX uq_turns_one_active_per_session ON turns (session_id) WHERE" in sql


def test_packaged_migrations_are_found_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installed wheel has them in app/_migrations, where pyproject puts them."""
    packaged = tmp_path / "app" / "_migrations"
    shutil.copytree(ROOT / "alembic", packaged / "alembic")
    shutil.copy(ROOT / "alembic.ini", packaged / "alembic.ini")
    monkeypatch.setattr(
        migrations,
        "ALEMBIC_INI_CANDIDATES",
        (packaged / "alembic.ini", ROOT / "alembic.ini"),
    )

    config = alembic_config("sqlite+aiosqlite:///unused.db")

    assert config.config_file_name == str(packaged / "alembic.ini")
    assert config.get_main_option("script_location") == str(packaged / "alembic")
    upgrade_to_head(f"sqlite+aiosqlite:///{tmp_path / 'from-wheel.db'}")
    assert (tmp_path / "from-wheel.db").is_file()


def test_missing_migrations_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migrations, "ALEMBIC_INI_CANDIDATES", (tmp_path / "alembic.ini",))

    with pytest.raises(FileNotFoundError, match=r"alembic\.ini"):
        upgrade_to_head("sqlite+aiosqlite:///unused.db")


def test_wheel_layout_matches_the_lookup() -> None:
    """pyproject's force-include targets are the first place app/migrations.py looks."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    force_include = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    packaged_ini = migrations.ALEMBIC_INI_CANDIDATES[0]

    assert force_include["alembic.ini"] == str(packaged_ini.relative_to(ROOT))
    assert force_include["alembic"] == str((packaged_ini.parent / "alembic").relative_to(ROOT))


async def _set_turn_status(url: str, turn_id: uuid.UUID, status: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            id_value = turn_id.hex if connection.dialect.name == "sqlite" else turn_id
            await connection.execute(
                text("UPDATE turns SET status = :status WHERE id = :id"),
                {"status": status, "id": id_value},
            )
    finally:
        await engine.dispose()


async def test_0007_ends_turns_that_waited_for_a_permission_before_it(
    empty_database_url: str,
) -> None:
    """Before 0007 `waiting_permission` was an ending (a session could hold several such
    turns); after it, it is active: those turns become interrupted, and the index holds."""
    await _migrate(empty_database_url, "0006")
    turn_id = await _add_0001_turn(empty_database_url)
    await _set_turn_status(empty_database_url, turn_id, "waiting_permission")

    await upgrade_to_head_async(empty_database_url)

    values = await _turn_values(empty_database_url, turn_id, "status", "error_code")
    assert values == ("interrupted", "permission_unanswered")
    assert "waiting_permission" in await _inspect(empty_database_url, _active_turn_index_where)
    await _migrate(empty_database_url, "0006", down=True)
    assert "waiting_permission" not in await _inspect(empty_database_url, _active_turn_index_where)
    await upgrade_to_head_async(empty_database_url)
    assert await _inspect(empty_database_url, _schema_diff) == []


async def test_0009_downgrade_to_0008_and_upgrade_again(empty_database_url: str) -> None:
    await upgrade_to_head_async(empty_database_url)
    await _migrate(empty_database_url, "0008", down=True)
    assert await _inspect(empty_database_url, _tables) == (
        GATEWAY_TABLES - WEBHOOK_TABLES - AUDIT_TABLES
    ) | {"alembic_version"}
    await upgrade_to_head_async(empty_database_url)
    assert await _inspect(empty_database_url, _tables) == GATEWAY_TABLES | {"alembic_version"}


# --- 0010: full-text search over turns ----------------------------------------------------------


def _search_objects(connection: Connection) -> set[str]:
    """What 0010 made: the PostgreSQL index, or SQLite's FTS5 table and its triggers."""
    if connection.dialect.name == "postgresql":
        return _turn_index_names(connection) & {SEARCH_INDEX}
    rows = connection.execute(
        text("SELECT name FROM sqlite_master WHERE name LIKE 'turns_fts%' AND type != 'index'")
    )
    return {name for (name,) in rows if name == SEARCH_TABLE or name.startswith("turns_fts_after")}


def _sqlite_search_hits(connection: Connection, word: str) -> list[str]:
    statement = text(f"SELECT turn_id FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH :word")
    return [turn_id for (turn_id,) in connection.execute(statement, {"word": word})]


async def test_0010_downgrade_to_0009_and_upgrade_again(empty_database_url: str) -> None:
    await upgrade_to_head_async(empty_database_url)
    await _migrate(empty_database_url, "0009", down=True)
    assert await _inspect(empty_database_url, _search_objects) == set()
    turn_id = await _add_0001_turn(empty_database_url)

    await upgrade_to_head_async(empty_database_url)

    made = await _inspect(empty_database_url, _search_objects)
    if empty_database_url.startswith("postgresql"):
        assert made == {SEARCH_INDEX}
    else:
        assert made == {
            SEARCH_TABLE,
            "turns_fts_after_insert",
            "turns_fts_after_update",
            "turns_fts_after_delete",
        }
        # The upgrade filled the table with the turns that were already there.
        hits = await _inspect(empty_database_url, lambda c: _sqlite_search_hits(c, "kept"))
        assert hits == [turn_id.hex]
    assert await _inspect(empty_database_url, _schema_diff) == []


# --- 0011: usage per key and the audit trail -----------------------------------------------------


async def test_0011_counts_earlier_turns_for_their_sessions_owner(empty_database_url: str) -> None:
    await _migrate(empty_database_url, "0010")
    db = Database.from_url(empty_database_url)
    try:
        async with db.session() as session:
            key_id = uuid.uuid4()
            await session.execute(
                text(
                    "INSERT INTO api_keys (id, name, prefix, secret_hash, scopes, created_at)"
                    " VALUES (:id, 'ci', 'pgw_x', :hash, '[\"prompt\"]', :at)"
                ),
                {"id": _uuid_param(db, key_id), "hash": "h" * 64, "at": datetime.now(UTC)},
            )
            owned = await add_session(session, provider="mock", cwd="/tmp", owner_key_id=key_id)
            unowned = await add_session(session, provider="mock", cwd="/tmp")
            for record in (owned, unowned):
                await session.execute(
                    text(
                        "INSERT INTO turns (id, session_id, number, prompt, status, started_at,"
                        " last_event_seq) VALUES (:id, :session_id, 1, 'hi', 'completed', :at, 0)"
                    ),
                    {
                        "id": _uuid_param(db, uuid.uuid4()),
                        "session_id": _uuid_param(db, record.id),
                        "at": datetime.now(UTC),
                    },
                )
    finally:
        await db.dispose()
    await upgrade_to_head_async(empty_database_url)

    def key_ids(connection: Connection) -> dict[str, str | None]:
        rows = connection.execute(text("SELECT session_id, key_id FROM turns"))
        return {
            str(row[0]).replace("-", ""): row[1] and str(row[1]).replace("-", "") for row in rows
        }

    assert await _inspect(empty_database_url, key_ids) == {
        owned.id.hex: key_id.hex,
        unowned.id.hex: None,
    }


async def test_0011_downgrade_to_0010_and_upgrade_again(empty_database_url: str) -> None:
    await upgrade_to_head_async(empty_database_url)
    await _migrate(empty_database_url, "0010", down=True)
    assert await _inspect(empty_database_url, _tables) == (GATEWAY_TABLES - AUDIT_TABLES) | {
        "alembic_version"
    }
    await upgrade_to_head_async(empty_database_url)
    assert await _inspect(empty_database_url, _schema_diff) == []


def _uuid_param(db: Database, value: uuid.UUID) -> str | uuid.UUID:
    """A UUID as each backend's column holds it (SQLite: 32 hex characters)."""
    return value.hex if db.engine.dialect.name == "sqlite" else value
