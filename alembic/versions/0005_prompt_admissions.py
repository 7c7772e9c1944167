"""Prompt admissions: what the per-key rate limit counts, recorded with the count itself.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY_TIME_INDEX = "ix_prompt_admissions_key_id_admitted_at"


def upgrade() -> None:
    # A new table: plain CREATE TABLE on both backends (and so in --sql mode). It starts
    # empty: for the first minute after the upgrade, earlier prompts do not count.
    op.create_table(
        "prompt_admissions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=False),
        sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_prompt_admissions_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_admissions")),
    )
    op.create_index(KEY_TIME_INDEX, "prompt_admissions", ["key_id", "admitted_at"], unique=False)


def downgrade() -> None:
    op.drop_index(KEY_TIME_INDEX, table_name="prompt_admissions")
    op.drop_table("prompt_admissions")
