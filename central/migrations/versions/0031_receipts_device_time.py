"""Receipts are indexed by device and time, for the device page's count of its till's receipts.

Revision ID: 0031_receipts_device_time
Revises: 0030_online_orders
Create Date: 2026-12-10
"""

from __future__ import annotations

from alembic import op

revision = "0031_receipts_device_time"
down_revision = "0030_online_orders"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the index (central.fleet.till_quality reads one device's window through it)."""
    op.create_index("ix_receipts_device_time", "receipts", ["device_id", "observed_at"])


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_receipts_device_time", table_name="receipts")
