"""Receipt copies are indexed: by the receipt they copy, and by store and time (decision 0103).

Revision ID: 0036_receipt_copies_index
Revises: 0035_source_till_receipts
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0036_receipt_copies_index"
down_revision = "0035_source_till_receipts"
branch_labels = None
depends_on = None

_COPIES = sa.text("reprint_of IS NOT NULL")


def upgrade() -> None:
    """Two partial indexes over the copies only (reprints, duplicates, receipts set aside)."""
    op.create_index(
        "ix_receipts_reprint_of", "receipts", ["reprint_of"], postgresql_where=_COPIES, sqlite_where=_COPIES
    )
    op.create_index(
        "ix_receipts_copies_store_time",
        "receipts",
        ["store_id", "observed_at"],
        postgresql_where=_COPIES,
        sqlite_where=_COPIES,
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_receipts_copies_store_time", table_name="receipts")
    op.drop_index("ix_receipts_reprint_of", table_name="receipts")
