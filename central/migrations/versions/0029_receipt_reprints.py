"""Receipts remember their register, their printed time, and whether they are a reprint of another.

A till that prints a receipt again (``*** 重打印 ***``, or the same receipt with no marker) sent a
second ``pos.receipt`` that counted as a second sale. A receipt is now stored with the register it
printed (empty when it printed none) and its printed date and time, and a copy of a receipt already
stored is kept with ``reprint_of`` naming the first one and a ``flag``; it counts nowhere
(decision 0085). Receipts stored before this revision keep an empty register and no printed time.

Revision ID: 0029_receipt_reprints
Revises: 0028_respell_identifiers
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029_receipt_reprints"
down_revision = "0028_respell_identifiers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the columns and the index reprints are looked up by."""
    with op.batch_alter_table("receipts") as batch:
        batch.add_column(sa.Column("register", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("printed_at", sa.String(40), nullable=True))
        batch.add_column(sa.Column("reprint_of", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("flag", sa.String(32), nullable=True))
    op.create_index("ix_receipts_store_number", "receipts", ["store_id", "receipt_no"])


def downgrade() -> None:
    """Drop them (reprints stay as rows that count nowhere until recounted)."""
    op.drop_index("ix_receipts_store_number", table_name="receipts")
    with op.batch_alter_table("receipts") as batch:
        batch.drop_column("flag")
        batch.drop_column("reprint_of")
        batch.drop_column("printed_at")
        batch.drop_column("register")
