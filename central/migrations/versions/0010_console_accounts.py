"""Console accounts: disabled users, store managers' stores, server-side sessions, login throttling, audit chain.

Revision ID: 0010_console_accounts
Revises: 0004_sources
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_console_accounts"
down_revision = "0009_consent_campaigns"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Add the account tables and columns; audit rows written before the chain existed keep empty hashes."""
    with op.batch_alter_table("users") as batch:
        batch.add_column(_ts("disabled_at", nullable=True))
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("row_hash", sa.String(64), nullable=False, server_default=""))
    op.create_table(
        "user_stores",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "store_id", name="pk_user_stores"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_user_stores_user_id_users", ondelete="CASCADE"),
    )
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        _ts("created_at"),
        _ts("last_seen_at"),
        sa.Column("remote_addr", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_console_sessions"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_console_sessions_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_console_sessions_user_id", "console_sessions", ["user_id"])
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(160), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        _ts("window_start"),
        sa.PrimaryKeyConstraint("key", name="pk_login_failures"),
    )


def downgrade() -> None:
    """Drop the account tables and columns."""
    op.drop_table("login_failures")
    op.drop_index("ix_console_sessions_user_id", table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_table("user_stores")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("row_hash")
        batch.drop_column("prev_hash")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("disabled_at")
