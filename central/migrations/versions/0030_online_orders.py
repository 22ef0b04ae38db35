"""Online orders are kept once per source and order number; status updates and cancellations stop counting.

An e-commerce or mini-program backend posts an order again at each change of status under a new
event id; each counted as a purchase, and a cancelled order still did. ``online_orders`` now holds
each (source, ``order_no``) once: its sale (the earliest event, the only one counted), its newest
status and whether it counts (decision 0089). The orders already stored are filled in from their
events, and every customer owning an order event that stops counting is marked for a recount,
which ingest (or ``recompute-tags``) carries out. Totals that differ between an old order's events
are not flagged.

Revision ID: 0030_online_orders
Revises: 0029_receipt_reprints
Create Date: 2026-12-14
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from central.models import BigId, Money, UTCDateTime

revision = "0030_online_orders"
down_revision = "0029_receipt_reprints"
branch_labels = None
depends_on = None

_VOID = ("cancelled", "canceled", "closed", "refunded", "returned", "已取消", "交易关闭", "已关闭", "已退款", "已退货")


def upgrade() -> None:
    """Create the table, fill it from the stored order events, and mark their owners for a recount."""
    op.create_table(
        "online_orders",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("order_no", sa.String(64), nullable=False),
        sa.Column("event_pk", sa.BigInteger(), nullable=False, unique=True),
        sa.Column("observed_at", UTCDateTime, nullable=False),
        sa.Column("total", Money, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_at", UTCDateTime, nullable=False),
        sa.Column("status_pk", sa.BigInteger(), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("flag", sa.String(32), nullable=True),
        sa.UniqueConstraint("device_id", "order_no"),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        number, status, total = "e.payload->>'order_no'", "coalesce(e.payload->>'status', '')", "e.payload->>'total'"
        total = f"round(CAST({total} AS numeric), 2)"
    else:
        number = "json_extract(e.payload, '$.order_no')"
        status = "coalesce(json_extract(e.payload, '$.status'), '')"
        total = "round(CAST(json_extract(e.payload, '$.total') AS REAL), 2)"
    folded = "replace(replace(lower(trim(l.status)), '-', '_'), ' ', '_')"
    void = ", ".join(f"'{v}'" for v in _VOID)
    # The sale is each order's earliest event; the status its newest event's that names one.
    op.execute(
        "WITH o AS (SELECT e.id, e.device_id, e.observed_at, "  # noqa: S608 - no user text in the SQL
        f" {number} AS order_no, trim({status}) AS status, {total} AS total FROM events e"
        f" WHERE e.kind = 'order.online' AND {number} IS NOT NULL AND {number} <> ''),"
        " r AS (SELECT o.*,"
        " ROW_NUMBER() OVER (PARTITION BY device_id, order_no ORDER BY observed_at, id) AS oldest,"
        " ROW_NUMBER() OVER (PARTITION BY device_id, order_no"
        " ORDER BY CASE WHEN status = '' THEN 1 ELSE 0 END, observed_at DESC, id DESC) AS newest,"
        " COUNT(*) OVER (PARTITION BY device_id, order_no) AS n FROM o)"
        " INSERT INTO online_orders (device_id, order_no, event_pk, observed_at, total, status, status_at,"
        " status_pk, counted, events, flag)"
        " SELECT f.device_id, f.order_no, f.id, f.observed_at, f.total, l.status, l.observed_at, l.id,"
        f" CASE WHEN {folded} IN ({void}) THEN {'false' if postgres else '0'} ELSE {'true' if postgres else '1'} END,"
        " f.n, NULL FROM r f JOIN r l ON l.device_id = f.device_id AND l.order_no = f.order_no AND l.newest = 1"
        " WHERE f.oldest = 1"
    )
    marks = sa.text(
        "INSERT INTO recompute_marks (customer_id, marked_at, reason)"  # noqa: S608 - no user text in the SQL
        " SELECT DISTINCT ec.customer_id, :now, 'online_orders' FROM event_customers ec"
        f" JOIN events e ON e.id = ec.event_pk WHERE e.kind = 'order.online' AND {number} IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM online_orders oo WHERE oo.event_pk = e.id AND oo.counted)"
        " AND true ON CONFLICT (customer_id) DO NOTHING"
    ).bindparams(sa.bindparam("now", datetime.now(UTC), type_=UTCDateTime))
    op.get_bind().execute(marks)


def downgrade() -> None:
    """Drop the table (every order event counts again, once the statistics are recomputed)."""
    op.drop_table("online_orders")
