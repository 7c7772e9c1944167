"""Alembic environment: async, URL chosen at run time, batch mode on SQLite.

The URL comes from, in order: `alembic -x url=...`, the `database_url` attribute that
`app.migrations` sets, and `PASEO_GATEWAY_DATABASE_URL` (or its default) via `app.settings`.
`asyncio.run` is used here, so call `app.migrations.upgrade_to_head_async` from async code.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from app.db import create_engine
from app.models import Base
from app.search_schema import include_in_schema_comparison
from app.settings import get_settings

config = context.config
target_metadata = Base.metadata

# app.migrations sets this: an app that migrates on start keeps its own logging setup.
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url:
        return url
    from_caller = config.attributes.get("database_url")
    if isinstance(from_caller, str) and from_caller:
        return from_caller
    return get_settings().database_url


def configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # Search's index and FTS5 tables are not ORM models: autogenerate must not drop them.
        include_name=include_in_schema_comparison,
    )


# Several gateway replicas may start at once on one PostgreSQL: one migrates, the others wait
# for it (then find nothing left to do). Any fixed number works; this one spells "pgw".
MIGRATION_LOCK_ID = 0x706777


def do_run_migrations(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    configure(connection)
    with context.begin_transaction():
        context.run_migrations()
    # With the lock taken, Alembic joined that transaction instead of owning one: commit it
    # (which also releases the lock).
    if connection.in_transaction():
        connection.commit()


async def run_async_migrations() -> None:
    # Foreign keys off on SQLite: a batch "copy and move" drops the old table, which would
    # cascade deletes through ON DELETE CASCADE.
    engine = create_engine(database_url(), sqlite_foreign_keys=False)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    """`alembic upgrade head --sql`: print the SQL instead of running it."""
    url = database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_async_migrations())
