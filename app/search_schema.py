"""The database objects that exist only for full-text search (migration 0010).

They are not ORM tables, so app/models.py cannot declare them: a PostgreSQL expression GIN
index, and SQLite's FTS5 table with the shadow tables FTS5 makes for it (`turns_fts_data`,
`turns_fts_idx`, ...). The schema comparison (alembic/env.py, tests/db/test_migrations.py)
skips them by name, so it still holds every other table and index to the models.
"""

from __future__ import annotations

from collections.abc import Mapping

SEARCH_INDEX = "ix_turns_search"
SEARCH_TABLE = "turns_fts"


def is_search_table(name: str) -> bool:
    """The FTS5 table or one of its shadow tables (SQLite)."""
    return name == SEARCH_TABLE or name.startswith(f"{SEARCH_TABLE}_")


def include_in_schema_comparison(
    name: str | None, type_: str, parent_names: Mapping[str, str | None]
) -> bool:
    """Alembic's `include_name` hook: False for the search-only objects above."""
    if name is None:
        return True
    if type_ == "table":
        return not is_search_table(name)
    if type_ == "index":
        return name != SEARCH_INDEX
    return True
