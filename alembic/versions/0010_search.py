"""Full-text search over turns: what was asked (`prompt`) and what was answered (`final_text`).

PostgreSQL: a GIN index on the tsvector expression the search query repeats word for word
(`app/repositories/search.py`), so no extra column is stored. SQLite: an FTS5 table kept in
step with `turns` by triggers. It names each turn by `turns.id` (the 32 hex characters
SQLAlchemy stores for a UUID), never by `turns.rowid`, which VACUUM may renumber because
`turns` has no INTEGER PRIMARY KEY. Deleting a session cascades to its turns, and SQLite fires
the delete trigger for rows removed by a foreign-key action too.

Neither object is in app/models.py: `app.search_schema.include_in_schema_comparison` keeps them
out of the schema comparison. A later migration that makes SQLite copy `turns` (a batch
"recreate") drops these triggers with the old table and must create them again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PG_INDEX = "ix_turns_search"
# Must match SEARCH_DOCUMENT in app/repositories/search.py, or PostgreSQL will not use the index.
PG_DOCUMENT = "to_tsvector('english', coalesce(prompt, '') || ' ' || coalesce(final_text, ''))"

SQLITE_TABLE = "turns_fts"
# Porter stemming, so "running" finds "run" as PostgreSQL's english configuration does.
SQLITE_CREATE_TABLE = (
    f"CREATE VIRTUAL TABLE {SQLITE_TABLE} USING fts5("
    "turn_id UNINDEXED, prompt, final_text, tokenize = 'porter unicode61')"
)
SQLITE_FILL = (
    f"INSERT INTO {SQLITE_TABLE} (turn_id, prompt, final_text) "
    "SELECT id, prompt, final_text FROM turns"
)
SQLITE_TRIGGERS = {
    "turns_fts_after_insert": f"""
        CREATE TRIGGER turns_fts_after_insert AFTER INSERT ON turns BEGIN
            INSERT INTO {SQLITE_TABLE} (turn_id, prompt, final_text)
            VALUES (new.id, new.prompt, new.final_text);
        END
    """,
    "turns_fts_after_update": f"""
        CREATE TRIGGER turns_fts_after_update AFTER UPDATE OF id, prompt, final_text ON turns
        BEGIN
            DELETE FROM {SQLITE_TABLE} WHERE turn_id = old.id;
            INSERT INTO {SQLITE_TABLE} (turn_id, prompt, final_text)
            VALUES (new.id, new.prompt, new.final_text);
        END
    """,
    "turns_fts_after_delete": f"""
        CREATE TRIGGER turns_fts_after_delete AFTER DELETE ON turns BEGIN
            DELETE FROM {SQLITE_TABLE} WHERE turn_id = old.id;
        END
    """,
}


def _dialect() -> str:
    """The backend's name; `get_context()` also answers in offline (`--sql`) mode."""
    return op.get_context().dialect.name


def upgrade() -> None:
    if _dialect() == "postgresql":
        op.create_index(PG_INDEX, "turns", [sa.text(PG_DOCUMENT)], postgresql_using="gin")
    elif _dialect() == "sqlite":
        op.execute(SQLITE_CREATE_TABLE)
        op.execute(SQLITE_FILL)
        for create_trigger in SQLITE_TRIGGERS.values():
            op.execute(create_trigger)


def downgrade() -> None:
    if _dialect() == "postgresql":
        op.drop_index(PG_INDEX, table_name="turns")
    elif _dialect() == "sqlite":
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute(f"DROP TABLE IF EXISTS {SQLITE_TABLE}")
