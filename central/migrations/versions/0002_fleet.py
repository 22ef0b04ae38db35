"""Fleet hardening: device states and heartbeat currency, token revocation, request nonces, downlink.

Revision ID: 0002_fleet
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_fleet"
down_revision = "0001"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Add the columns and tables of device hardening and the downlink."""
    with op.batch_alter_table("devices") as batch:
        batch.add_column(_ts("heartbeat_at"))
        batch.add_column(sa.Column("heartbeat_seq", sa.BigInteger(), nullable=True))
        batch.add_column(_ts("status_changed_at"))
        batch.add_column(sa.Column("status_reason", sa.String(255), nullable=False, server_default=""))
        batch.add_column(_ts("key_rotated_at"))
    with op.batch_alter_table("devices") as batch:
        batch.alter_column("status_reason", server_default=None)
    with op.batch_alter_table("enroll_tokens") as batch:
        batch.add_column(_ts("revoked_at"))
    op.create_table(
        "request_nonces",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        _ts("seen_at", nullable=False),
        sa.PrimaryKeyConstraint("device_id", "nonce", name="pk_request_nonces"),
    )
    op.create_index("ix_request_nonces_seen_at", "request_nonces", ["seen_at"])
    op.create_table(
        "downlink_documents",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("store_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=True),
        _ts("updated_at", nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_downlink_documents"),
        sa.UniqueConstraint("store_id", "name", name="uq_downlink_documents_store_id_name"),
        sa.UniqueConstraint("version", name="uq_downlink_documents_version"),
    )


def downgrade() -> None:
    """Remove what :func:`upgrade` added."""
    op.drop_table("downlink_documents")
    op.drop_index("ix_request_nonces_seen_at", table_name="request_nonces")
    op.drop_table("request_nonces")
    with op.batch_alter_table("enroll_tokens") as batch:
        batch.drop_column("revoked_at")
    with op.batch_alter_table("devices") as batch:
        for column in ("key_rotated_at", "status_reason", "status_changed_at", "heartbeat_seq", "heartbeat_at"):
            batch.drop_column(column)
