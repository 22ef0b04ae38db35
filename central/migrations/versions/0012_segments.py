"""Segments: saved rules, their members, membership history; webhook calls may carry a segment's export.

Revision ID: 0012_segments
Revises: 0013_trigger_kinds
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_segments"
down_revision = "0013_trigger_kinds"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create the three segment tables; let a webhook call name a segment instead of a trigger."""
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(80), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("webhook_url", sa.String(2048), nullable=True),
        sa.Column("webhook_secret", sa.String(256), nullable=True),
        _ts("created_at"),
        sa.Column("created_by", sa.String(128), nullable=False),
        _ts("updated_at"),
        sa.Column("updated_by", sa.String(128), nullable=False),
        _ts("evaluated_at", nullable=True),
        sa.Column("evaluated_version", sa.Integer(), nullable=True),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_segments"),
        sa.UniqueConstraint("name", name="uq_segments_name"),
    )
    op.create_table(
        "segment_members",
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        _ts("entered_at"),
        sa.PrimaryKeyConstraint("segment_id", "customer_id", name="pk_segment_members"),
    )
    op.create_table(
        "segment_membership_events",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("change", sa.String(8), nullable=False),
        _ts("at"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_segment_membership_events"),
    )
    op.create_index("ix_segment_membership_events_segment_id_id", "segment_membership_events", ["segment_id", "id"])
    op.create_index("ix_segment_membership_events_customer_id", "segment_membership_events", ["customer_id"])
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("segment_id", sa.Integer(), nullable=True))
        batch.alter_column("trigger_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    """Drop the segment tables and their webhook calls' column."""
    op.execute("DELETE FROM webhook_deliveries WHERE trigger_id IS NULL")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.alter_column("trigger_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("segment_id")
    op.drop_table("segment_membership_events")
    op.drop_table("segment_members")
    op.drop_table("segments")
