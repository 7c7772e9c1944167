"""Run the Alembic migrations from Python (server start, tests) in a checkout or a wheel.

The wheel carries `alembic/` and `alembic.ini` as `app/_migrations/` (pyproject force-include);
a source checkout has them at the repository root. Alembic's env.py calls `asyncio.run`, so
the sync functions must not run inside an event loop: use the `*_async` ones there.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

_PACKAGE_DIR = Path(__file__).resolve().parent
# Where alembic.ini may be: installed wheel first, then the source checkout.
ALEMBIC_INI_CANDIDATES = (
    _PACKAGE_DIR / "_migrations" / "alembic.ini",
    _PACKAGE_DIR.parent / "alembic.ini",
)


def find_alembic_ini() -> Path:
    """The first alembic.ini that has its `alembic/` script folder beside it."""
    for ini in ALEMBIC_INI_CANDIDATES:
        if ini.is_file() and (ini.parent / "alembic" / "env.py").is_file():
            return ini
    searched = ", ".join(str(path) for path in ALEMBIC_INI_CANDIDATES)
    raise FileNotFoundError(f"alembic.ini with an alembic/ folder not found in: {searched}")


def alembic_config(url: str) -> Config:
    """A Config for `url` that leaves the caller's logging and sys.path as they are."""
    ini = find_alembic_ini()
    config = Config(str(ini))
    config.set_main_option("script_location", str(ini.parent / "alembic"))
    config.set_main_option("prepend_sys_path", "")
    # Passed as attributes, not options: ini interpolation would mangle a '%' in a password.
    config.attributes["database_url"] = url
    config.attributes["configure_logging"] = False
    return config


def upgrade_to_head(url: str) -> None:
    """Apply every migration to the database at `url`. Not from inside an event loop."""
    command.upgrade(alembic_config(url), "head")


def downgrade_to_base(url: str) -> None:
    """Undo every migration (drops the gateway's tables). Not from inside an event loop."""
    command.downgrade(alembic_config(url), "base")


async def upgrade_to_head_async(url: str) -> None:
    """`upgrade_to_head` in a worker thread, where env.py may start its own event loop."""
    await asyncio.to_thread(upgrade_to_head, url)


async def downgrade_to_base_async(url: str) -> None:
    await asyncio.to_thread(downgrade_to_base, url)


async def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at (None: no migration applied yet)."""
    from alembic.runtime.migration import MigrationContext

    from app.db import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()


async def pending_migrations(url: str) -> int:
    """How many migrations the database at `url` still lacks (0: at head)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config(url))
    current = await current_revision(url)
    return len(list(scripts.iterate_revisions(scripts.get_current_head(), current)))
