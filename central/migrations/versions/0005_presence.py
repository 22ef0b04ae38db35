"""Presence: visits and hourly aggregates from the agents.

Revision ID: 0005_presence
Revises: 0004_sources
Create Date: 2026-11-30
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005_presence"
down_revision = "0004_sources"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _common(table: str) -> list[Any]:
    return [
        sa.Column("id", BigId, primary_key=True),
        sa.Column("event_pk", BigId, sa.ForeignKey("events.id", name=f"fk_{table}_event_pk_events"), nullable=False),
        sa.Column("store_id", sa.String(32), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("medium", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
        sa.UniqueConstraint("event_pk", name=f"uq_{table}_event_pk"),
    ]


def upgrade() -> None:
    """Create presence_visits and presence_hours."""
    op.create_table(
        "presence_visits",
        *_common("presence_visits"),
        _ts("started_at"),
        _ts("ended_at"),
        sa.Column("dwell_s", sa.Float(), nullable=False),
        sa.Column("repeat", sa.Boolean(), nullable=False),
        sa.Column("zones", sa.JSON(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
    )
    op.create_index("ix_presence_visits_store_id_started_at", "presence_visits", ["store_id", "started_at"])
    op.create_table(
        "presence_hours",
        *_common("presence_hours"),
        _ts("hour_start"),
        sa.Column("hour_local", sa.String(40), nullable=False),
        sa.Column("sightings", sa.Integer(), nullable=False),
        sa.Column("passes", sa.Integer(), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column("repeat_visits", sa.Integer(), nullable=False),
        sa.Column("randomized_visits", sa.Integer(), nullable=False),
        sa.Column("dwell_total_s", sa.Float(), nullable=False),
        sa.Column("dwell_visits", sa.Integer(), nullable=False),
        sa.Column("dwell_bounds", sa.JSON(), nullable=False),
        sa.Column("dwell_counts", sa.JSON(), nullable=False),
        sa.Column("sketches", sa.JSON(), nullable=False),
        sa.Column("zones", sa.JSON(), nullable=False),
    )
    op.create_index("ix_presence_hours_store_id_hour_start", "presence_hours", ["store_id", "hour_start"])


def downgrade() -> None:
    """Drop the presence tables."""
    op.drop_index("ix_presence_hours_store_id_hour_start", "presence_hours")
    op.drop_table("presence_hours")
    op.drop_index("ix_presence_visits_store_id_started_at", "presence_visits")
    op.drop_table("presence_visits")
