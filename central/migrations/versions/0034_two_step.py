"""Two-step sign-in: users' sealed authenticator secrets, recovery codes, logins waiting for a code.

Console sessions note whether they passed the second step; every session open at the upgrade did not.

Revision ID: 0034_two_step
Revises: 0033_erasures
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from central.models import UTCDateTime

revision = "0034_two_step"
down_revision = "0033_erasures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the three tables and the sessions' column."""
    op.create_table(
        "user_two_step",
        sa.Column("user_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("enabled_at", UTCDateTime, nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_two_step_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_two_step")),
    )
    op.create_table(
        "user_recovery_codes",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("used_at", UTCDateTime, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_recovery_codes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "code_hash", name=op.f("pk_user_recovery_codes")),
    )
    op.create_table(
        "console_pending_logins",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("remote_addr", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_console_pending_logins_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_console_pending_logins")),
    )
    op.create_index(op.f("ix_console_pending_logins_user_id"), "console_pending_logins", ["user_id"])
    with op.batch_alter_table("console_sessions") as batch:
        batch.add_column(sa.Column("two_step", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("console_sessions") as batch:
        batch.drop_column("two_step")
    op.drop_index(op.f("ix_console_pending_logins_user_id"), table_name="console_pending_logins")
    op.drop_table("console_pending_logins")
    op.drop_table("user_recovery_codes")
    op.drop_table("user_two_step")
