"""Customer notes from the console, and the indexes the customer 360 view reads by.

Revision ID: 0015_customer_notes
Revises: 0011_coupons
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_customer_notes"
down_revision = "0011_coupons"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create customer_notes; index golden names and customers' visits."""
    op.create_table(
        "customer_notes",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("text", sa.String(2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_customer_notes"),
    )
    op.create_index("ix_customer_notes_customer_id", "customer_notes", ["customer_id"])
    op.create_index("ix_golden_attributes_attribute_value", "golden_attributes", ["attribute", "value"])
    op.create_index("ix_presence_visits_customer_id_started_at", "presence_visits", ["customer_id", "started_at"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_presence_visits_customer_id_started_at", table_name="presence_visits")
    op.drop_index("ix_golden_attributes_attribute_value", table_name="golden_attributes")
    op.drop_index("ix_customer_notes_customer_id", table_name="customer_notes")
    op.drop_table("customer_notes")
