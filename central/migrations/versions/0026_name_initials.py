"""Names found by the first letters of their pinyin: ``golden_attributes.initials_key`` and its index.

The letters are left empty here, as the spellings were: the ``name_pinyin`` job now fills the
spelling and the letters together and spells again every name that has no letters yet, the names
spelled before this revision included, once.

Revision ID: 0026_name_initials
Revises: 0025_name_pinyin
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026_name_initials"
down_revision = "0025_name_pinyin"
branch_labels = None
depends_on = None

_NAMES = sa.text("attribute = 'name'")


def upgrade() -> None:
    """Add the column and index the names by (attribute, initials_key, id)."""
    op.add_column("golden_attributes", sa.Column("initials_key", sa.String(255), nullable=True))
    op.create_index(
        "ix_golden_attributes_name_initials",
        "golden_attributes",
        ["attribute", "initials_key", "id"],
        postgresql_ops={"initials_key": 'COLLATE "C"'},
        postgresql_where=_NAMES,
        sqlite_where=_NAMES,
    )


def downgrade() -> None:
    """Drop the index and the column."""
    op.drop_index("ix_golden_attributes_name_initials", table_name="golden_attributes")
    with op.batch_alter_table("golden_attributes") as batch:
        batch.drop_column("initials_key")
