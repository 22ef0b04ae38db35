"""The campaign pages' reports kept as snapshots: a trigger's effect and a coupon campaign's figures by tier.

Revision ID: 0019_report_snapshots
Revises: 0018_console_pages
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_report_snapshots"
down_revision = "0018_console_pages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the table the ``reports`` job fills and the campaign pages read."""
    op.create_table(
        "report_snapshots",
        sa.Column("report", sa.String(32), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("report", "subject_id", name="pk_report_snapshots"),
    )


def downgrade() -> None:
    """Drop the snapshots: the pages then have no report until the code that reads them is gone too."""
    op.drop_table("report_snapshots")
