"""Event ownership has one home: event_customers (events.customer_id dropped).

Revision ID: 0008_identity_perf
Revises: 0004_sources
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_identity_perf"
down_revision = "0010_console_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Drop events.customer_id: identity resolution, merges and splits keep event_customers current.

    Every event resolution linked has its event_customers row (written in the same transaction as
    events.customer_id was), and that row is the one merges and splits move; the column held the
    customer at ingest time only, so nothing is lost.
    """
    with op.batch_alter_table("events") as batch:
        batch.drop_column("customer_id")


def downgrade() -> None:
    """Put the column back, filled from event_customers."""
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("customer_id", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE events SET customer_id = (SELECT ec.customer_id FROM event_customers ec WHERE ec.event_pk = events.id)"
    )
