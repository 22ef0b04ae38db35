"""The database records the fingerprint of the secret.key it was set up with (decision 0092).

Revision ID: 0032_central_key
Revises: 0031_receipts_device_time
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from central.models import UTCDateTime

revision = "0032_central_key"
down_revision = "0031_receipts_device_time"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the one-row table; the first instance to start after this records its key there."""
    op.create_table(
        "central_key",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", UTCDateTime, nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_central_key_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_central_key")),
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_table("central_key")
