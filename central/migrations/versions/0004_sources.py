"""Sources: longer event ids, the identity envelope on events, source API keys, member imports.

Revision ID: 0004_sources
Revises: 0003_identity
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_sources"
down_revision = "0003_identity"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Widen events.event_id to 64 characters, add the envelope columns and the sources tables."""
    # On SQLite this rebuilds the events table (batch mode); on PostgreSQL widening a varchar is a
    # catalogue change and adding nullable columns rewrites nothing.
    with op.batch_alter_table("events") as batch:
        batch.alter_column("event_id", type_=sa.String(64), existing_type=sa.String(36), existing_nullable=False)
        batch.add_column(sa.Column("identifiers", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("app_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("attributes", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("customer_id", sa.Integer(), nullable=True))
    op.create_table(
        "source_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(57), nullable=False),
        sa.Column("key_digest", sa.String(64), nullable=False),
        sa.Column("hint", sa.String(16), nullable=False),
        _ts("created_at"),
        sa.Column("created_by", sa.String(64), nullable=False),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_source_keys"),
        sa.UniqueConstraint("key_digest", name="uq_source_keys_key_digest"),
    )
    op.create_index("ix_source_keys_source", "source_keys", ["source"])
    op.create_table(
        "member_imports",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("source", sa.String(57), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("operator", sa.String(64), nullable=False),
        _ts("created_at"),
        _ts("completed_at", nullable=True),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_member_imports"),
        sa.UniqueConstraint("digest", name="uq_member_imports_digest"),
    )
    op.create_table(
        "import_rows",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("event_pk", sa.BigInteger(), nullable=True),
        sa.Column("external_id", sa.String(128), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_import_rows"),
        sa.UniqueConstraint("import_id", "row", name="uq_import_rows_import_id_row"),
        sa.ForeignKeyConstraint(["import_id"], ["member_imports.id"], name="fk_import_rows_import_id_member_imports"),
    )


def downgrade() -> None:
    """Drop the sources tables and the envelope columns (development only: this destroys data)."""
    op.drop_table("import_rows")
    op.drop_table("member_imports")
    op.drop_index("ix_source_keys_source", table_name="source_keys")
    op.drop_table("source_keys")
    with op.batch_alter_table("events") as batch:
        for column in ("customer_id", "attributes", "app_id", "identifiers"):
            batch.drop_column(column)
        batch.alter_column("event_id", type_=sa.String(36), existing_type=sa.String(64), existing_nullable=False)
