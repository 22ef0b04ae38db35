"""Identity graph: identifier states and counters, the append-only ledger, review, events' customers, golden record.

The old ``merge_ledger`` rows and every identifier's current owner are carried into
``identity_ledger`` (rule ``migrated``) so that a rebuild from the ledger equals the tables.

Revision ID: 0003_identity
Revises: 0002_fleet
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_identity"
down_revision = "0002_fleet"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Widen identifiers, add the ledger and the tables that follow customers."""
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="0"))
        batch.create_index("ix_customers_merged_into", ["merged_into"])
    with op.batch_alter_table("identifiers") as batch:
        batch.alter_column("kind", type_=sa.String(32), existing_nullable=False)
        batch.alter_column("value", type_=sa.String(255), existing_nullable=False)
        batch.alter_column("customer_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="linked"))
        batch.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("partners_total", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("partners_today", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("partners_day", sa.String(10), nullable=False, server_default=""))
    op.execute("UPDATE identifiers SET last_seen_at = created_at")
    with op.batch_alter_table("identifiers") as batch:
        batch.alter_column("last_seen_at", existing_type=sa.DateTime(timezone=True), nullable=False)

    op.create_table(
        "identity_ledger",
        sa.Column("id", BigId, primary_key=True),
        _ts("at"),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("identifier_id", sa.Integer(), nullable=True),
        sa.Column("anchor_identifier_id", sa.Integer(), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("other_customer_id", sa.Integer(), nullable=True),
        sa.Column("event_pk", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("store_id", sa.String(32), nullable=True),
        sa.Column("operator", sa.String(128), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_identity_ledger"),
    )
    op.create_index("ix_identity_ledger_customer_id", "identity_ledger", ["customer_id"])
    op.create_index("ix_identity_ledger_other_customer_id", "identity_ledger", ["other_customer_id"])
    op.create_index("ix_identity_ledger_identifier_id", "identity_ledger", ["identifier_id"])
    op.execute(
        "INSERT INTO identity_ledger (at, action, rule, customer_id, other_customer_id, detail)"
        " SELECT at, 'merge', 'migrated', kept_customer_id, merged_customer_id, NULL FROM merge_ledger ORDER BY id"
    )
    op.execute(
        "INSERT INTO identity_ledger (at, action, rule, identifier_id, customer_id)"
        " SELECT created_at, 'link', 'migrated', id, customer_id FROM identifiers ORDER BY id"
    )
    op.drop_table("merge_ledger")

    op.create_table(
        "review_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("created_at"),
        _ts("decided_at", nullable=True),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("other_customer_id", sa.Integer(), nullable=True),
        sa.Column("identifier_id", sa.Integer(), nullable=True),
        sa.Column("event_pk", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("store_id", sa.String(32), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_review_items"),
        sa.UniqueConstraint("key", name="uq_review_items_key"),
    )
    op.create_index("ix_review_items_status", "review_items", ["status"])
    op.create_index("ix_review_items_customer_id", "review_items", ["customer_id"])
    op.create_index("ix_review_items_other_customer_id", "review_items", ["other_customer_id"])
    op.create_table(
        "event_customers",
        sa.Column("event_pk", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("identifier_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("event_pk", name="pk_event_customers"),
    )
    op.create_index("ix_event_customers_customer_id", "event_customers", ["customer_id"])
    op.create_index("ix_event_customers_identifier_id", "event_customers", ["identifier_id"])
    op.execute(
        "INSERT INTO event_customers (event_pk, customer_id, identifier_id)"
        " SELECT r.event_pk, r.customer_id, (SELECT min(i.id) FROM identifiers i WHERE i.customer_id = r.customer_id)"
        " FROM receipts r WHERE r.customer_id IS NOT NULL"
        " AND EXISTS (SELECT 1 FROM identifiers i WHERE i.customer_id = r.customer_id)"
    )
    op.create_table(
        "recompute_marks",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        _ts("marked_at"),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name="pk_recompute_marks"),
    )
    op.create_table(
        "attribute_observations",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("event_pk", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("attribute", sa.String(32), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        _ts("observed_at"),
        sa.PrimaryKeyConstraint("id", name="pk_attribute_observations"),
    )
    op.create_index("ix_attribute_observations_event_pk", "attribute_observations", ["event_pk"])
    op.create_index("ix_attribute_observations_customer_id", "attribute_observations", ["customer_id"])
    op.create_table(
        "golden_attributes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("attribute", sa.String(32), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        _ts("observed_at"),
        sa.PrimaryKeyConstraint("id", name="pk_golden_attributes"),
        sa.UniqueConstraint("customer_id", "attribute", name="uq_golden_attributes_customer_id_attribute"),
    )
    op.create_index("ix_golden_attributes_customer_id", "golden_attributes", ["customer_id"])
    op.create_table(
        "match_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("block", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_match_keys"),
        sa.UniqueConstraint("block", "customer_id", name="uq_match_keys_block_customer_id"),
    )
    op.create_index("ix_match_keys_customer_id", "match_keys", ["customer_id"])


def downgrade() -> None:
    """Not supported: the ledger cannot be folded back into the old merge list without losing history."""
    raise NotImplementedError("downgrading below 0003_identity is not supported; restore a backup instead")
