"""Customers: the product catalogue, purchase statistics kept by ingest, and built-in tags.

Revision ID: 0007_customers
Revises: 0004_sources
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_customers"
down_revision = "0008_identity_perf"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _count(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Integer(), nullable=False)


def _cents(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.BigInteger(), nullable=False)


_CHANNELS = ("store", "online", "app", "mini_program")
_DAYPARTS = ("night", "morning", "afternoon", "evening")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def upgrade() -> None:
    """Create the catalogue, statistics and tag tables."""
    op.create_table(
        "products",
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("gtin", sa.String(14), nullable=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("category", sa.String(255), nullable=False),
        sa.Column("brand", sa.String(128), nullable=True),
        _ts("loaded_at"),
        sa.PrimaryKeyConstraint("sku", name="pk_products"),
    )
    op.create_index("ix_products_gtin", "products", ["gtin"])
    op.create_table(
        "unknown_skus",
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("lines", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("sku", name="pk_unknown_skus"),
    )
    op.create_table(
        "customer_stats",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        _count("purchases"),
        _cents("spent"),
        _ts("first_purchase_at", nullable=True),
        _ts("last_purchase_at", nullable=True),
        *[c for channel in _CHANNELS for c in (_count(f"{channel}_purchases"), _cents(f"{channel}_spent"))],
        *[_count(f"{part}_purchases") for part in _DAYPARTS],
        *[_count(f"{day}_purchases") for day in _WEEKDAYS],
        sa.PrimaryKeyConstraint("customer_id", name="pk_customer_stats"),
    )
    op.create_table(
        "customer_days",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        _count("purchases"),
        _cents("spent"),
        sa.PrimaryKeyConstraint("customer_id", "day", name="pk_customer_days"),
    )
    op.create_table(
        "customer_stores",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.String(32), nullable=False),
        _count("purchases"),
        _cents("spent"),
        _ts("last_purchase_at", nullable=True),
        sa.PrimaryKeyConstraint("customer_id", "store_id", name="pk_customer_stores"),
    )
    op.create_table(
        "customer_categories",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(255), nullable=False),
        _count("purchases"),
        _ts("first_purchase_at"),
        _ts("last_purchase_at"),
        sa.PrimaryKeyConstraint("customer_id", "category", name="pk_customer_categories"),
    )
    op.create_table(
        "customer_tags",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(300), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        _ts("computed_at"),
        sa.PrimaryKeyConstraint("customer_id", "tag", name="pk_customer_tags"),
    )


def downgrade() -> None:
    """Drop them again."""
    for name in ("customer_tags", "customer_categories", "customer_stores", "customer_days", "customer_stats"):
        op.drop_table(name)
    op.drop_table("unknown_skus")
    op.drop_index("ix_products_gtin", table_name="products")
    op.drop_table("products")
