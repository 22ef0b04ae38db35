"""The redemptions' campaign index dropped: the (campaign_id, status) index serves the same reads.

Every read of coupon_redemptions by campaign (the campaign pages' counts, the campaign limit's
check at the till's redemption) is served by ``ix_coupon_redemptions_campaign_id_status``, whose
first column is ``campaign_id``; the index on ``campaign_id`` alone only cost an entry per
redemption written.

Revision ID: 0021_coupon_index
Revises: 0020_golden_index
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0021_coupon_index"
down_revision = "0020_golden_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Drop the index the (campaign_id, status) index makes redundant."""
    op.drop_index("ix_coupon_redemptions_campaign_id", table_name="coupon_redemptions")


def downgrade() -> None:
    """Put it back."""
    op.create_index("ix_coupon_redemptions_campaign_id", "coupon_redemptions", ["campaign_id"])
