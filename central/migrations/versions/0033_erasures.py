"""Erasures of customers, the keyed hashes of the identifiers they removed, and the key of those hashes (decision 0098).

Revision ID: 0033_erasures
Revises: 0032_central_key
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from central.models import UTCDateTime

revision = "0033_erasures"
down_revision = "0032_central_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Three new tables; nothing existing changes."""
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("erased_at", UTCDateTime, nullable=False),
        sa.Column("operator", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
        sa.UniqueConstraint("customer_id", name=op.f("uq_erasures_customer_id")),
    )
    op.create_table(
        "erased_identifiers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("erasure_id", sa.Integer(), nullable=False),
        sa.Column("erased_at", UTCDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["erasure_id"], ["erasures.id"], name=op.f("fk_erased_identifiers_erasure_id_erasures")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erased_identifiers")),
        sa.UniqueConstraint("digest", "erasure_id", name=op.f("uq_erased_identifiers_digest_erasure_id")),
    )
    op.create_table(
        "erasure_key",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_erasure_key_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_key")),
    )


def downgrade() -> None:
    """Drop them (the erasures themselves stay done: only their records and hashes go)."""
    op.drop_table("erasure_key")
    op.drop_table("erased_identifiers")
    op.drop_table("erasures")
