"""Member codes: the member keys central certified, and member scans linked to receipts.

Revision ID: 0006_member_codes
Revises: 0004_sources
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_member_codes"
down_revision = "0005_presence"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create member_keys and member_scans."""
    op.create_table(
        "member_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(16), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        _ts("valid_from"),
        _ts("valid_until"),
        _ts("created_at"),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_member_keys"),
        sa.UniqueConstraint("fingerprint", name="uq_member_keys_fingerprint"),
    )
    op.create_index("ix_member_keys_member_id", "member_keys", ["member_id"])
    op.create_table(
        "member_scans",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("event_pk", sa.BigInteger(), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("store_id", sa.String(32), nullable=False),
        sa.Column("register", sa.String(32), nullable=False),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("code_digest", sa.String(64), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        _ts("observed_at"),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("receipt_id", sa.BigInteger(), nullable=True),
        sa.Column("flag", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_member_scans"),
        sa.UniqueConstraint("event_pk", name="uq_member_scans_event_pk"),
        sa.UniqueConstraint("receipt_id", name="uq_member_scans_receipt_id"),
    )
    op.create_index("ix_member_scans_device_time", "member_scans", ["device_id", "observed_at"])
    op.create_index("ix_member_scans_code_digest", "member_scans", ["code_digest"])


def downgrade() -> None:
    """Drop the member-code tables (development only: this destroys data)."""
    op.drop_index("ix_member_scans_code_digest", table_name="member_scans")
    op.drop_index("ix_member_scans_device_time", table_name="member_scans")
    op.drop_table("member_scans")
    op.drop_index("ix_member_keys_member_id", table_name="member_keys")
    op.drop_table("member_keys")
