"""The migrations build the schema app/models.py declares, undo it, and run from anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from app import migrations
from app.db import Database, create_engine
from app.migrations import (
    alembic_config,
    downgrade_to_base,
    downgrade_to_base_async,
    upgrade_to_head,
    upgrade_to_head_async,
)
from app.models import Base
from app.repositories.sessions import add_session, get_session

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_TABLES = {"sessions", "turns"}
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
    return set(inspect(connection).get_table_names())


def _schema_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _head() -> str | None:
    return ScriptDirectory.from_config(alembic_config("unused://")).get_current_head()


async def test_upgrade_creates_tables_and_records_head(empty_database_url: str) -> None:
    await upgrade_to_head_async(empty_database_url)

    assert await _inspect(empty_database_url, _tables) == GATEWAY_TABLES | {"alembic_version"}
    assert await _inspect(empty_database_url, _revision) == _head() == "0001"


async def test_upgrade_creates_named_indexes_and_constraints(empty_database_url: str) -> None:
    await upgrade_to_head_async(empty_database_url)

    def look(connection: Connection) -> dict[str, Any]:
        inspector = inspect(connection)
        return {
            "turn_indexes": {
                index["name"]: (index["column_names"], bool(index["unique"]))
                for index in inspector.get_indexes("turns")
            },
            "session_indexes": {
                # PostgreSQL also lists the index behind the unique constraint.
                index["name"]
                for index in inspector.get_indexes("sessions")
                if "duplicates_constraint" not in index
            },
            "session_uniques": inspector.get_unique_constraints("sessions"),
            "turn_fks": inspector.get_foreign_keys("turns"),
            "pks": [inspector.get_pk_constraint(t)["name"] for t in ("sessions", "turns")],
        }

    schema = await _inspect(empty_database_url, look)

    assert schema["turn_indexes"] == {
        "uq_turns_one_active_per_session": (["session_id"], True),
        "ix_turns_session_id_number": (["session_id", "number"], True),
    }
    assert schema["session_indexes"] == {"ix_sessions_status"}
    assert [u["name"] for u in schema["session_uniques"]] == ["uq_sessions_agent_id"]
    [fk] = schema["turn_fks"]
    assert fk["name"] == "fk_turns_session_id_sessions"
    assert (fk["referred_table"], fk["referred_columns"]) == ("sessions", ["id"])
    assert fk["options"]["ondelete"] == "CASCADE"
    assert schema["pks"] == ["pk_sessions", "pk_turns"]


async def test_active_turn_index_is_partial(empty_database_url: str) -> None:
    await upgrade_to_head_async(empty_database_url)

    def where_clause(connection: Connection) -> str:
        [index] = [
            index
            for index in inspect(connection).get_indexes("turns")
            if index["name"] == "uq_turns_one_active_per_session"
        ]
        options = index.get("dialect_options", {})
        clause = options.get(f"{connection.dialect.name}_where")
        return str(clause)

    clause = await _inspect(empty_database_url, where_clause)

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

    assert await _inspect(empty_database_url, _revision) == "0001"


def test_cli_takes_url_from_environment(empty_database_url: str) -> None:
    env = {"PASEO_GATEWAY_DATABASE_URL": empty_database_url}
    _alembic_cli("upgrade", "head", env=env)

    assert "0001 (head)" in _alembic_cli("current", env=env)


@pytest.mark.parametrize(
    "url",
    ["sqlite+aiosqlite:///unused.db", "postgresql+asyncpg://nobody@127.0.0.1:1/unused"],
    ids=["sqlite", "postgresql"],
)
def test_cli_offline_mode_prints_the_partial_index(url: str) -> None:
    sql = _alembic_cli("-x", f"url={url}", "upgrade", "head", "--sql")

    assert "CREATE TABLE sessions" in sql
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
