"""Online sales that name no store leave ``customer_stores``: they were counted as a store named ''.

Ingest and the full rebuild no longer write a ``customer_stores`` row for a sale whose store id is
empty (an order from a mini-program or an e-commerce platform that names no store); such a sale
counts in ``customer_stats`` only. The rows written before are deleted: as a store they broke the
``member_cards`` job (no store is called ''), doubled their buyers in the overview's chain figures
and could make '' a customer's preferred store. The tags and overview figures that read them are
right again at the next recompute.

Revision ID: 0023_no_store_rows
Revises: 0022_unknown_sku_log
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0023_no_store_rows"
down_revision = "0022_unknown_sku_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Delete the rows of the store ''."""
    op.execute("DELETE FROM customer_stores WHERE store_id = ''")


def downgrade() -> None:
    """Nothing to put back: `central-server recompute-tags --statistics` rebuilds the statistics from the events."""
