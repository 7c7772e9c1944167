"""Usage and budgets per key (the key that sent each prompt; a key's limits) and the audit trail.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TURN_KEY_INDEX = "ix_turns_key_id_started_at"
AUDIT_INDEXES = {
    "ix_audit_records_at": ["at"],
    "ix_audit_records_key_id_at": ["key_id", "at"],
    "ix_audit_records_session_id_at": ["session_id", "at"],
}


def upgrade() -> None:
    # Plain ADD COLUMNs on both backends (no table copy, so the turns' search triggers stay).
    # `turns.key_id` has no foreign key: keys are never deleted, and SQLite could add one only
    # by copying the table.
    op.add_column("api_keys", sa.Column("limits", sa.JSON(), nullable=True))
    op.add_column("turns", sa.Column("key_id", sa.Uuid(), nullable=True))
    op.create_index(TURN_KEY_INDEX, "turns", ["key_id", "started_at"], unique=False)
    # Earlier turns count for the key that owns their session: the only key that could send
    # them unless an admin did.
    op.execute(
        "UPDATE turns SET key_id = "
        "(SELECT sessions.owner_key_id FROM sessions WHERE sessions.id = turns.session_id)"
    )
    op.create_table(
        "audit_records",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=True),
        sa.Column("key_name", sa.String(length=100), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("turn_id", sa.Uuid(), nullable=True),
        sa.Column("target_id", sa.String(length=200), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("client", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_records")),
    )
    for name, columns in AUDIT_INDEXES.items():
        op.create_index(name, "audit_records", columns, unique=False)


def downgrade() -> None:
    for name in AUDIT_INDEXES:
        op.drop_index(name, table_name="audit_records")
    op.drop_table("audit_records")
    op.drop_index(TURN_KEY_INDEX, table_name="turns")
    op.drop_column("turns", "key_id")
    op.drop_column("api_keys", "limits")
