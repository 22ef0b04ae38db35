"""The search by name compares each name's comparison key, not the name as stored.

A customer typed in as 丁 佳 at one till and 丁佳 in the member app, or as 張學友 in a legacy file,
was found only by exactly the characters stored. ``golden_attributes.search_key`` holds a name's
comparison key (``central.identity.golden.name_key``: width, spaces and dots, case and traditional
characters folded), the search folds what is typed the same way, and the prefix index moves from
the stored value to the key. Existing names get their key here, a thousand rows a statement.

Revision ID: 0024_name_search_key
Revises: 0023_no_store_rows
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024_name_search_key"
down_revision = "0023_no_store_rows"
branch_labels = None
depends_on = None

_NAMES = sa.text("attribute = 'name'")
_BATCH = 1000


def upgrade() -> None:
    """Add the key, fill it for every stored name, and index the names by key instead of by value."""
    from central.identity.golden import MAX_VALUE, name_key

    op.add_column("golden_attributes", sa.Column("search_key", sa.String(255), nullable=True))
    conn = op.get_bind()
    golden = sa.table("golden_attributes", sa.column("id", sa.Integer), sa.column("search_key", sa.String))
    last = 0
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT id, value FROM golden_attributes WHERE attribute = 'name' AND id > :last ORDER BY id LIMIT :n"
            ),
            {"last": last, "n": _BATCH},
        ).all()
        if not rows:
            break
        conn.execute(
            golden.update().where(golden.c.id == sa.bindparam("row_id")).values(search_key=sa.bindparam("key")),
            [{"row_id": row_id, "key": name_key(value)[:MAX_VALUE]} for row_id, value in rows],
        )
        last = rows[-1][0]
    op.drop_index("ix_golden_attributes_name_c", table_name="golden_attributes")
    op.create_index(
        "ix_golden_attributes_name_key",
        "golden_attributes",
        ["attribute", "search_key", "id"],
        postgresql_ops={"search_key": 'COLLATE "C"'},
        postgresql_where=_NAMES,
        sqlite_where=_NAMES,
    )


def downgrade() -> None:
    """Index the names by value again and drop the key."""
    op.drop_index("ix_golden_attributes_name_key", table_name="golden_attributes")
    op.create_index(
        "ix_golden_attributes_name_c",
        "golden_attributes",
        ["value", "id"],
        postgresql_ops={"value": 'COLLATE "C"'},
        postgresql_where=_NAMES,
        sqlite_where=_NAMES,
    )
    with op.batch_alter_table("golden_attributes") as batch:
        batch.drop_column("search_key")
