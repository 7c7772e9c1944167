"""A session is pinned to the daemon its agent lives on.

Every session made before a gateway could serve several daemons is on its one daemon,
`default` (the name a single-daemon gateway gives it).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(
            sa.Column("daemon", sa.String(length=32), nullable=False, server_default="default")
        )
        batch.create_index(batch.f("ix_sessions_daemon"), ["daemon"])


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_index(batch.f("ix_sessions_daemon"))
        batch.drop_column("daemon")
