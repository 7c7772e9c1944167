"""Recorded facts of a turn: prompt sent and delivered, the turn it replaced, cancel announced.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_TURN_COLUMNS = ("prompt_sent_at", "prompt_delivered_at", "replaces_turn_id", "cancelling_at")


def upgrade() -> None:
    # Plain ADD COLUMN works on SQLite too (no batch copy), and so in --sql mode on both.
    op.add_column("turns", sa.Column("prompt_sent_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "turns", sa.Column("prompt_delivered_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("turns", sa.Column("replaces_turn_id", sa.Uuid(), nullable=True))
    op.add_column("turns", sa.Column("cancelling_at", sa.DateTime(timezone=True), nullable=True))
    # Turns that left the queue before these facts were recorded reached Paseo as far as the
    # gateway knew then.
    op.execute(
        "UPDATE turns SET prompt_sent_at = started_at, prompt_delivered_at = started_at "
        "WHERE status <> 'queued'"
    )


def downgrade() -> None:
    # Batch mode: plain ALTERs on PostgreSQL; SQLite copies the table (a live connection is
    # needed to reflect it) and recreates its other indexes, the partial one included.
    with op.batch_alter_table("turns") as batch_op:
        for column in reversed(NEW_TURN_COLUMNS):
            batch_op.drop_column(column)
