"""A turn's resume cursor: where its transport picks the turn up after the last stored event.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN works on SQLite too, and so in --sql mode on both. A turn still running
    # across the upgrade has no cursor: if it is recovered, its text since the prompt is
    # replayed again (upgrade between turns).
    op.add_column("turns", sa.Column("resume_cursor", sa.String(length=200), nullable=True))


def downgrade() -> None:
    # Batch mode: a plain ALTER on PostgreSQL; SQLite copies the table.
    with op.batch_alter_table("turns") as batch_op:
        batch_op.drop_column("resume_cursor")
