"""`paseo-gateway migrate` and `keys` say which database they touched and what they did."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from app.migrations import alembic_config

HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _gateway(url: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PASEO_GATEWAY_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_migrate_says_what_it_did(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/m.db"
    first = _gateway(url, "migrate")
    assert first.returncode == 0, first.stderr
    assert (
        first.stdout == f"database {url} is at revision {HEAD} (upgraded from an empty database)\n"
    )
    again = _gateway(url, "migrate")
    assert again.stdout == f"database {url} is at revision {HEAD}, the newest: nothing to do\n"


def test_migrate_names_the_revision_it_upgraded_from(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/m.db"
    command.upgrade(alembic_config(url), "0002")
    upgraded = _gateway(url, "migrate")
    assert upgraded.stdout == f"database {url} is at revision {HEAD} (upgraded from 0002)\n"


def test_keys_on_a_new_database_say_so(tmp_path: Path) -> None:
    """`keys` run without the gateway's settings makes a database of its own: it says so."""
    url = "sqlite+aiosqlite:///./paseo-gateway.db"
    fresh = _gateway(url, "keys", "list", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert f"database: {url}\n" in fresh.stderr
    assert "./paseo-gateway.db is a new database that no gateway uses yet" in fresh.stderr
    assert "PASEO_GATEWAY_DATABASE_URL" in fresh.stderr
    known = _gateway(url, "keys", "list", cwd=tmp_path)
    assert known.returncode == 0 and "new database" not in known.stderr
