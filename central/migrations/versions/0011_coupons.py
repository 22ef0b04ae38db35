"""Coupons: campaigns, issued codes, redemptions applied at sync, and conflicts flagged for review.

Revision ID: 0011_coupons
Revises: 0004_sources
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_coupons"
down_revision = "0007_customers"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create the four coupon tables."""
    op.create_table(
        "coupon_campaigns",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("value", sa.Numeric(14, 2), nullable=False),
        _ts("valid_from"),
        _ts("valid_to"),
        sa.Column("max_redemptions", sa.BigInteger(), nullable=False),
        sa.Column("redeemed", sa.BigInteger(), nullable=False),
        sa.Column("offline_budget", sa.Integer(), nullable=False),
        sa.Column("stores", sa.JSON(), nullable=True),
        _ts("created_at"),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_coupon_campaigns"),
        sa.UniqueConstraint("name", name="uq_coupon_campaigns_name"),
    )
    op.create_table(
        "coupon_codes",
        sa.Column("serial", BigId, primary_key=True),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.String(64), nullable=True),
        _ts("issued_at"),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("serial", name="pk_coupon_codes"),
        sa.UniqueConstraint("campaign_id", "member_id", name="uq_coupon_codes_campaign_id_member_id"),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["coupon_campaigns.id"], name="fk_coupon_codes_campaign_id_coupon_campaigns"
        ),
    )
    op.create_table(
        "coupon_redemptions",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("event_pk", sa.BigInteger(), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("store_id", sa.String(32), nullable=False),
        _ts("observed_at"),
        _ts("applied_at"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_coupon_redemptions"),
        sa.UniqueConstraint("serial", name="uq_coupon_redemptions_serial"),
    )
    op.create_index("ix_coupon_redemptions_campaign_id", "coupon_redemptions", ["campaign_id"])
    op.create_table(
        "coupon_conflicts",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("serial", sa.BigInteger(), nullable=True),
        sa.Column("event_pk", sa.BigInteger(), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("store_id", sa.String(32), nullable=False),
        _ts("observed_at"),
        _ts("flagged_at"),
        sa.Column("detail", sa.String(255), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        _ts("resolved_at", nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
        sa.Column("resolution", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_coupon_conflicts"),
    )
    op.create_index("ix_coupon_conflicts_kind", "coupon_conflicts", ["kind"])
    op.create_index("ix_coupon_conflicts_campaign_id", "coupon_conflicts", ["campaign_id"])
    op.create_index("ix_coupon_conflicts_serial", "coupon_conflicts", ["serial"])


def downgrade() -> None:
    """Drop the coupon tables (development only: this destroys data)."""
    op.drop_table("coupon_conflicts")
    op.drop_table("coupon_redemptions")
    op.drop_table("coupon_codes")
    op.drop_table("coupon_campaigns")
