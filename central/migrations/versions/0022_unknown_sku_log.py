"""Unknown SKUs are appended to a log at ingest and folded into ``unknown_skus`` in bulk.

Each new unknown SKU used to be upserted into ``unknown_skus`` inside the ingest transaction,
where it lands at a random place of the table's key: a batch of receipts with thousands of new
SKUs dirtied thousands of pages. Ingest now appends one row a SKU and batch to
``unknown_sku_sightings`` (at the end of its key), and the rows are added into ``unknown_skus``
once the log holds enough of them, sorted, and whenever the catalogue is loaded.

Revision ID: 0022_unknown_sku_log
Revises: 0021_coupon_index
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022_unknown_sku_log"
down_revision = "0021_coupon_index"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Add the log."""
    op.create_table(
        "unknown_sku_sightings",
        sa.Column("id", BigId, nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("lines", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_unknown_sku_sightings"),
    )


def downgrade() -> None:
    """Fold what the log holds into ``unknown_skus``, then drop it."""
    op.execute(
        "INSERT INTO unknown_skus (sku, lines) SELECT sku, SUM(lines) FROM unknown_sku_sightings WHERE true"
        " GROUP BY sku ON CONFLICT (sku) DO UPDATE SET lines = unknown_skus.lines + excluded.lines"
    )
    op.drop_table("unknown_sku_sightings")
