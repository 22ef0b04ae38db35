"""Store receipts that came from online sources and backfills count as their customers' till receipts.

Revision ID: 0035_source_till_receipts
Revises: 0034_two_step
Create Date: 2026-12-03

A source's ``pos.receipt`` was stored in ``receipts`` with no customer (decision 0089), so a history
loaded with ``load-events`` showed 0 till receipts. Such a receipt naming a store, and not a copy of
another, takes the customer its event is linked to, and those customers' till figures are counted
again from their receipts (as ``central.customers.purchases.recount`` does after a split).
"""

from __future__ import annotations

from alembic import op

revision = "0035_source_till_receipts"
down_revision = "0034_two_step"
branch_labels = None
depends_on = None

_SOURCE_RECEIPTS = "device_id LIKE 'source:%' AND reprint_of IS NULL AND store_id <> ''"


def upgrade() -> None:
    """Link the receipts, then recount the customers now holding one."""
    op.execute(
        "UPDATE receipts SET customer_id = (SELECT ec.customer_id FROM event_customers ec"  # noqa: S608 - constants
        " WHERE ec.event_pk = receipts.event_pk)"
        f" WHERE {_SOURCE_RECEIPTS} AND customer_id IS NULL"
    )
    op.execute(
        "UPDATE customers SET"  # noqa: S608 - constants only
        " receipts_count = (SELECT count(*) FROM receipts r WHERE r.customer_id = customers.id),"
        " total_spent = (SELECT coalesce(sum(r.total), 0) FROM receipts r WHERE r.customer_id = customers.id)"
        f" WHERE id IN (SELECT customer_id FROM receipts WHERE {_SOURCE_RECEIPTS} AND customer_id IS NOT NULL)"
    )


def downgrade() -> None:
    """Take the source receipts out of the till figures again."""
    op.execute(
        "UPDATE customers SET"
        " receipts_count = (SELECT count(*) FROM receipts r WHERE r.customer_id = customers.id"
        " AND r.device_id NOT LIKE 'source:%'),"
        " total_spent = (SELECT coalesce(sum(r.total), 0) FROM receipts r WHERE r.customer_id = customers.id"
        " AND r.device_id NOT LIKE 'source:%')"
        " WHERE id IN (SELECT customer_id FROM receipts WHERE device_id LIKE 'source:%' AND customer_id IS NOT NULL)"
    )
    op.execute("UPDATE receipts SET customer_id = NULL WHERE device_id LIKE 'source:%'")
