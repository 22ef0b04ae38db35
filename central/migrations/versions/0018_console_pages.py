"""The console's pages at chain scale: figures counted from indexes alone instead of the rows.

Revision ID: 0018_console_pages
Revises: 0017_name_search
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0018_console_pages"
down_revision = "0017_name_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Import rows by outcome, triggers' firings by group, and coupons' redemptions by status, from indexes."""
    op.create_index("ix_import_rows_import_id_outcome", "import_rows", ["import_id", "outcome"])
    op.create_index(
        "ix_trigger_occasions_trigger_id_grp_fired_at", "trigger_occasions", ["trigger_id", "grp", "fired_at"]
    )
    op.create_index("ix_coupon_redemptions_campaign_id_status", "coupon_redemptions", ["campaign_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_coupon_redemptions_campaign_id_status", table_name="coupon_redemptions")
    op.drop_index("ix_trigger_occasions_trigger_id_grp_fired_at", table_name="trigger_occasions")
    op.drop_index("ix_import_rows_import_id_outcome", table_name="import_rows")
