"""Initial schema: devices, enrollment tokens, events, customers, identifiers, receipts, ledger, users, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create every table of the first release."""
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("store_id", sa.String(32), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("agent_version", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("enrolled_at"),
        _ts("last_seen_at", nullable=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=True),
        sa.Column("last_heartbeat", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        sa.UniqueConstraint("device_id", name="uq_devices_device_id"),
    )
    op.create_table(
        "enroll_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_digest", sa.String(64), nullable=False),
        sa.Column("store_id", sa.String(32), nullable=False),
        _ts("created_at"),
        _ts("expires_at"),
        _ts("used_at", nullable=True),
        sa.Column("device_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_enroll_tokens"),
        sa.UniqueConstraint("token_digest", name="uq_enroll_tokens_token_digest"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.device_id"], name="fk_enroll_tokens_device_id_devices"),
    )
    op.create_table(
        "events",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("store_id", sa.String(32), nullable=False),
        _ts("observed_at"),
        _ts("received_at"),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("batch_id", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("device_id", "event_id", name="uq_events_device_id_event_id"),
    )
    op.create_index("ix_events_device_id_seq", "events", ["device_id", "seq"])
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), primary_key=True),
        _ts("created_at"),
        _ts("first_seen_at"),
        _ts("last_seen_at"),
        sa.Column("receipts_count", sa.Integer(), nullable=False),
        sa.Column("total_spent", sa.Numeric(14, 2), nullable=False),
        sa.Column("merged_into", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
        sa.ForeignKeyConstraint(["merged_into"], ["customers.id"], name="fk_customers_merged_into_customers"),
    )
    op.create_index("ix_customers_last_seen_at", "customers", ["last_seen_at"])
    op.create_table(
        "identifiers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_identifiers"),
        sa.UniqueConstraint("kind", "value", name="uq_identifiers_kind_value"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name="fk_identifiers_customer_id_customers"),
    )
    op.create_index("ix_identifiers_customer_id", "identifiers", ["customer_id"])
    op.create_table(
        "receipts",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("event_pk", sa.BigInteger(), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("store_id", sa.String(32), nullable=False),
        sa.Column("receipt_no", sa.String(64), nullable=False),
        sa.Column("total", sa.Numeric(14, 2), nullable=False),
        _ts("observed_at"),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_receipts"),
        sa.UniqueConstraint("event_pk", name="uq_receipts_event_pk"),
    )
    op.create_index("ix_receipts_customer_id", "receipts", ["customer_id"])
    op.create_table(
        "merge_ledger",
        sa.Column("id", sa.Integer(), primary_key=True),
        _ts("at"),
        sa.Column("kept_customer_id", sa.Integer(), nullable=False),
        sa.Column("merged_customer_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_merge_ledger"),
        sa.ForeignKeyConstraint(
            ["kept_customer_id"], ["customers.id"], name="fk_merge_ledger_kept_customer_id_customers"
        ),
        sa.ForeignKeyConstraint(
            ["merged_customer_id"], ["customers.id"], name="fk_merge_ledger_merged_customer_id_customers"
        ),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        _ts("created_at"),
        _ts("last_login_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, primary_key=True),
        _ts("at"),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    """Drop every table (development only: this destroys all data)."""
    for index, table in (
        ("ix_audit_log_at", "audit_log"),
        ("ix_receipts_customer_id", "receipts"),
        ("ix_identifiers_customer_id", "identifiers"),
        ("ix_customers_last_seen_at", "customers"),
        ("ix_events_device_id_seq", "events"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "audit_log",
        "users",
        "merge_ledger",
        "receipts",
        "identifiers",
        "customers",
        "events",
        "enroll_tokens",
        "devices",
    ):
        op.drop_table(table)
