"""Applied redemptions are indexed by time, for the campaigns page's redemptions in a period (decision 0104).

``central.campaigns.liability`` counts each campaign's applied redemptions whose till time falls in
the period; without this index both databases read every redemption of every campaign for it.

Revision ID: 0038_redemptions_by_time
Revises: 0037_receipts_number
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0038_redemptions_by_time"
down_revision = "0037_receipts_number"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the index: status and time to seek the period, the campaign to count without the table."""
    op.create_index(
        "ix_coupon_redemptions_status_observed_at", "coupon_redemptions", ["status", "observed_at", "campaign_id"]
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_coupon_redemptions_status_observed_at", table_name="coupon_redemptions")
