"""Revoked coupon codes are indexed by campaign, for the coupon liability's count (decision 0104).

Revision ID: 0039_revoked_codes_index
Revises: 0038_redemptions_by_time
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0039_revoked_codes_index"
down_revision = "0038_redemptions_by_time"
branch_labels = None
depends_on = None

_REVOKED = sa.text("revoked_at IS NOT NULL")


def upgrade() -> None:
    """A partial index over the revoked codes only (a few in a hundred of the codes issued)."""
    op.create_index(
        "ix_coupon_codes_revoked", "coupon_codes", ["campaign_id"], postgresql_where=_REVOKED, sqlite_where=_REVOKED
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_coupon_codes_revoked", table_name="coupon_codes")
