"""API keys, the key that owns each session, and the gateway's shared secrets.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNER_INDEX = "ix_sessions_owner_key_id"
OWNER_FK = "fk_sessions_owner_key_id_api_keys"


def _sessions_0002() -> sa.Table:
    """`sessions` as 0001 made it (0002 left it alone).

    SQLite's batch mode copies the table from this in --sql mode, where it cannot reflect it.
    """
    return sa.Table(
        "sessions",
        sa.MetaData(),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("provider", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("mode", sa.String(length=128), nullable=True),
        sa.Column("title", sa.String(length=512), nullable=True),
        sa.Column("cwd", sa.Text(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_active_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.UniqueConstraint("agent_id", name="uq_sessions_agent_id"),
        sa.Index("ix_sessions_status", "status"),
    )


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_keys_secret_hash")),
    )
    op.create_table(
        "gateway_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_gateway_secrets")),
    )
    # Plain ALTERs on PostgreSQL. SQLite cannot add a foreign key to a table: batch mode
    # copies it (reflected when connected; from `_sessions_0002` in --sql mode).
    copy_from = _sessions_0002() if op.get_context().as_sql else None
    with op.batch_alter_table("sessions", copy_from=copy_from) as batch_op:
        batch_op.add_column(sa.Column("owner_key_id", sa.Uuid(), nullable=True))
        batch_op.create_index(OWNER_INDEX, ["owner_key_id"], unique=False)
        batch_op.create_foreign_key(
            OWNER_FK, "api_keys", ["owner_key_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.drop_constraint(OWNER_FK, type_="foreignkey")
        batch_op.drop_index(OWNER_INDEX)
        batch_op.drop_column("owner_key_id")
    op.drop_table("gateway_secrets")
    op.drop_table("api_keys")
