"""Search by the start of a name: the names in code-point order, whatever PostgreSQL's collation.

Revision ID: 0017_name_search
Revises: 0014_dashboard
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_name_search"
down_revision = "0014_dashboard"
branch_labels = None
depends_on = None

_NAMES = sa.text("attribute = 'name'")


def upgrade() -> None:
    """Index the names by (value, id); on PostgreSQL by value COLLATE "C", so a prefix is a range."""
    op.create_index(
        "ix_golden_attributes_name_c",
        "golden_attributes",
        ["value", "id"],
        postgresql_ops={"value": 'COLLATE "C"'},
        postgresql_where=_NAMES,
        sqlite_where=_NAMES,
    )


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("ix_golden_attributes_name_c", table_name="golden_attributes")
