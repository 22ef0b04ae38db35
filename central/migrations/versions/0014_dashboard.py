"""The console overview: indexes its figures read, its tier and RFM figures, and the store alerts sent once.

Revision ID: 0014_dashboard
Revises: 0012_segments
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_dashboard"
down_revision = "0012_segments"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Index sign-ups by kind and day, tags by value, stores' customers by store; add the overview's tables."""
    # Covering: new members per store and day are counted from this index alone.
    op.create_index("ix_events_kind_observed_at_store_id", "events", ["kind", "observed_at", "store_id"])
    op.create_index("ix_customer_tags_tag_value_customer_id", "customer_tags", ["tag", "value", "customer_id"])
    op.create_index("ix_customer_stores_store_id", "customer_stores", ["store_id"])
    op.create_table(
        "store_alerts",
        sa.Column("id", BigId, nullable=False),
        sa.Column("store_id", sa.String(32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_store_alerts"),
        sa.UniqueConstraint("store_id", "day", "kind", name="uq_store_alerts_store_id_day_kind"),
    )
    op.create_index("ix_store_alerts_status", "store_alerts", ["status"])
    op.create_table(
        "overview_figures",
        sa.Column("id", BigId, nullable=False),
        sa.Column("figure", sa.String(16), nullable=False),
        sa.Column("store_id", sa.String(32), nullable=False),
        sa.Column("a", sa.String(32), nullable=False),
        sa.Column("b", sa.String(32), nullable=False),
        sa.Column("customers", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_overview_figures"),
    )
    op.create_index("ix_overview_figures_figure_store_id", "overview_figures", ["figure", "store_id"])
    op.create_table(
        "new_member_days",
        sa.Column("store_id", sa.String(32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "day", name="pk_new_member_days"),
    )


def downgrade() -> None:
    """Drop the store alerts and the overview's indexes."""
    op.drop_table("new_member_days")
    op.drop_table("overview_figures")
    op.drop_table("store_alerts")
    op.drop_index("ix_customer_stores_store_id", "customer_stores")
    op.drop_index("ix_customer_tags_tag_value_customer_id", "customer_tags")
    op.drop_index("ix_events_kind_observed_at_store_id", "events")
