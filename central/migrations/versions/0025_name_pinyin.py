"""Names found by their pinyin: ``golden_attributes.pinyin_key`` and its index.

The key is left empty here: the ``name_pinyin`` job spells every name that has none, off the
paths that write names (spelling takes about 80 µs a name).

Revision ID: 0025_name_pinyin
Revises: 0024_name_search_key
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025_name_pinyin"
down_revision = "0024_name_search_key"
branch_labels = None
depends_on = None

_NAMES = sa.text("attribute = 'name'")


def upgrade() -> None:
    """Add the column and index the names by (attribute, pinyin_key, id)."""
    op.add_column("golden_attributes", sa.Column("pinyin_key", sa.String(255), nullable=True))
    op.create_index(
        "ix_golden_attributes_name_pinyin",
        "golden_attributes",
        ["attribute", "pinyin_key", "id"],
        postgresql_ops={"pinyin_key": 'COLLATE "C"'},
        postgresql_where=_NAMES,
        sqlite_where=_NAMES,
    )


def downgrade() -> None:
    """Drop the index and the column."""
    op.drop_index("ix_golden_attributes_name_pinyin", table_name="golden_attributes")
    with op.batch_alter_table("golden_attributes") as batch:
        batch.drop_column("pinyin_key")
