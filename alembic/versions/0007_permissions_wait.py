"""A turn waits for a permission answer without ending; answers are recorded.

`waiting_permission` becomes an active (non-final) status: the one-active-turn index covers
it. Turns stored before ended there for good (their stream's last event is the old
`turn.permission`): they become `interrupted`, `permission_unanswered`, so a session holds at
most one active turn.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_turns_one_active_per_session"
OLD_PREDICATE = "status IN ('queued', 'running')"
NEW_PREDICATE = "status IN ('queued', 'running', 'waiting_permission')"


def _one_active_turn_index(predicate: str) -> None:
    op.drop_index(INDEX, table_name="turns")
    op.create_index(
        INDEX,
        "turns",
        ["session_id"],
        unique=True,
        sqlite_where=sa.text(predicate),
        postgresql_where=sa.text(predicate),
    )


def upgrade() -> None:
    op.execute(
        "UPDATE turns SET status = 'interrupted', error_code = 'permission_unanswered' "
        "WHERE status = 'waiting_permission'"
    )
    _one_active_turn_index(NEW_PREDICATE)
    op.create_table(
        "permission_answers",
        sa.Column("turn_id", sa.Uuid(), nullable=False),
        sa.Column("permission_id", sa.String(length=200), nullable=False),
        sa.Column("behavior", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("answered_by", sa.String(length=200), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["turn_id"],
            ["turns.id"],
            name=op.f("fk_permission_answers_turn_id_turns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("turn_id", "permission_id", name=op.f("pk_permission_answers")),
    )


def downgrade() -> None:
    op.drop_table("permission_answers")
    op.execute(
        "UPDATE turns SET status = 'interrupted', error_code = 'permission_unanswered' "
        "WHERE status = 'waiting_permission'"
    )
    _one_active_turn_index(OLD_PREDICATE)
