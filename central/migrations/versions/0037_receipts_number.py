"""Receipts are indexed by number, for the console's search by receipt number without the store.

Revision ID: 0037_receipts_number
Revises: 0036_receipt_copies_index
Create Date: 2026-12-18
"""

from __future__ import annotations

from alembic import op

revision = "0037_receipts_number"
down_revision = "0036_receipt_copies_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the index (central.customers.receipt_search reads a number's receipts through it)."""
    op.create_index("ix_receipts_receipt_no", "receipts", ["receipt_no"])


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_receipts_receipt_no", table_name="receipts")
