"""The golden record's customer index dropped: its unique (customer_id, attribute) index serves the same reads.

Every look-up of golden_attributes by customer (the refresh's delete, the customer pages, the
segments' joins) is served by ``uq_golden_attributes_customer_id_attribute``, whose first column
is ``customer_id``. The separate index on ``customer_id`` alone only cost an entry per row written,
on the table the legacy import and ingest write an attribute row at a time.

Revision ID: 0020_golden_index
Revises: 0019_report_snapshots
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0020_golden_index"
down_revision = "0019_report_snapshots"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Drop the index the unique constraint makes redundant."""
    op.drop_index("ix_golden_attributes_customer_id", table_name="golden_attributes")


def downgrade() -> None:
    """Put it back."""
    op.create_index("ix_golden_attributes_customer_id", "golden_attributes", ["customer_id"])
