"""Trigger kinds: longer occasions (category and due date), the coupons triggers issue, complaints found fast.

Revision ID: 0013_trigger_kinds
Revises: 0016_import_runs
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_trigger_kinds"
down_revision = "0016_import_runs"
branch_labels = None
depends_on = None

COMPLAINTS = "kind = 'service.complaint'"


def _occasion_length(length: int) -> None:
    for name in ("trigger_occasions", "trigger_exports"):
        with op.batch_alter_table(name) as batch:
            batch.alter_column("occasion", type_=sa.String(length), existing_nullable=False)


def upgrade() -> None:
    """Widen occasions, add ``trigger_coupons`` and a partial index of complaint events.

    The ledger's (trigger, occasion) index goes: no query looks occasions up without the customer,
    and the planner took it for firing's anti-join, where thousands of customers share an occasion.
    """
    op.drop_index("ix_trigger_occasions_trigger_id_occasion", table_name="trigger_occasions")
    _occasion_length(300)
    op.create_table(
        "trigger_coupons",
        sa.Column("occasion_id", sa.BigInteger(), nullable=False),
        sa.Column("trigger_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("occasion_id", name="pk_trigger_coupons"),
        sa.UniqueConstraint("serial", name="uq_trigger_coupons_serial"),
    )
    op.create_index("ix_trigger_coupons_trigger_id", "trigger_coupons", ["trigger_id"])
    op.create_index(
        "ix_events_complaints",
        "events",
        ["received_at"],
        postgresql_where=sa.text(COMPLAINTS),
        sqlite_where=sa.text(COMPLAINTS),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_events_complaints", table_name="events")
    op.drop_table("trigger_coupons")
    _occasion_length(32)
    op.create_index("ix_trigger_occasions_trigger_id_occasion", "trigger_occasions", ["trigger_id", "occasion"])
