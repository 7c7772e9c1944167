"""Durable turns: idempotency key, runner and heartbeat on turns; the turn_events table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_TURN_COLUMNS = (
    "idempotency_key",
    "request_hash",
    "runner_id",
    "heartbeat_at",
    "last_event_seq",
)


def upgrade() -> None:
    # Plain ADD COLUMN works on SQLite too (no batch copy), and so in --sql mode on both.
    op.add_column("turns", sa.Column("idempotency_key", sa.String(length=200), nullable=True))
    op.add_column("turns", sa.Column("request_hash", sa.String(length=64), nullable=True))
    op.add_column("turns", sa.Column("runner_id", sa.String(length=64), nullable=True))
    op.add_column("turns", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "turns",
        sa.Column("last_event_seq", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.create_index(
        "uq_turns_session_id_idempotency_key",
        "turns",
        ["session_id", "idempotency_key"],
        unique=True,
    )
    op.create_index(
        "ix_turns_status_heartbeat_at", "turns", ["status", "heartbeat_at"], unique=False
    )

    op.create_table(
        "turn_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("turn_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["turn_id"],
            ["turns.id"],
            name=op.f("fk_turn_events_turn_id_turns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turn_events")),
        sa.UniqueConstraint("turn_id", "seq", name="uq_turn_events_turn_id_seq"),
    )


def downgrade() -> None:
    op.drop_table("turn_events")
    op.drop_index("ix_turns_status_heartbeat_at", table_name="turns")
    op.drop_index("uq_turns_session_id_idempotency_key", table_name="turns")
    # Batch mode: plain ALTERs on PostgreSQL; SQLite copies the table (a live connection is
    # needed to reflect it) and recreates its other indexes, the partial one included.
    with op.batch_alter_table("turns") as batch_op:
        for column in reversed(NEW_TURN_COLUMNS):
            batch_op.drop_column(column)
