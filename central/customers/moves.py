"""Purchase statistics moved along with customers when a merge folds one customer into another.

Every statistic is a sum, a minimum or a maximum over the customer's sales, and two customers'
sales are disjoint: the survivor's statistics after a merge are its own rows combined key by key
with the merged customer's rows, exactly what a recompute from the events would give. A merge
therefore reads and writes statistics rows (one per day, store and category the merged customer
bought in), never the events, and costs the same however long the two customers' histories are.

A merged customer whose statistics were waiting for a recompute (``recompute_marks``, left by a
split) has rows that cannot be trusted: its survivor is marked too and recomputed from events.

Ingest recomputes the customers marked by the changes it makes itself, in the same transaction.
A change made outside ingest (a split, a removed identifier, an accepted review item) calls
:func:`settle` instead, so its customers' statistics are complete when it commits: segments,
triggers and the API read them meanwhile, and a quiet chain may see no ingest for hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from central import bulk
from central.customers import rebuild
from central.customers.statistics import CUSTOMER_TABLES, StatTable, settings, upsert
from central.identity.models import RecomputeMark
from central.models import table

_marks = table(RecomputeMark)


def fold(conn: Connection, merged_away: Sequence[tuple[int, int]], now: datetime) -> None:
    """Add the statistics of each merged customer ``(merged, survivor)`` to its survivor's, then drop them."""
    if not merged_away:
        return
    into = dict(merged_away)
    listed = bulk.integer_list(sorted(into))
    sql = f"SELECT customer_id FROM {_marks.name} WHERE customer_id IN ({listed})"  # noqa: S608 - integers only
    marked = [row[0] for row in conn.exec_driver_sql(sql)]
    if marked:
        bulk.insert(
            conn,
            _marks,
            ("customer_id", "marked_at", "reason"),
            sorted({(into[m], now, "merge") for m in marked}),
            skip_conflicts_on=("customer_id",),
        )
    for target in CUSTOMER_TABLES:
        rows = conn.exec_driver_sql(
            f"SELECT {', '.join(target.columns)} FROM {target.table.name} WHERE customer_id IN ({listed})"  # noqa: S608
        ).fetchall()
        if not rows:
            continue
        upsert(conn, target, _combined(target, rows, into))
        conn.exec_driver_sql(f"DELETE FROM {target.table.name} WHERE customer_id IN ({listed})")  # noqa: S608


def settle(conn: Connection, customer_ids: Sequence[int], offset_minutes: int | None = None) -> None:
    """Recompute from their events the statistics of those of ``customer_ids`` that are marked; clear their marks.

    A split is rare and reads only its own customers' events, so it is done at once, in the
    caller's transaction. ``offset_minutes`` is ``customers.utc_offset_minutes`` (the app's
    setting when None).
    """
    if not customer_ids:
        return
    listed = bulk.integer_list(sorted(set(customer_ids)))
    sql = f"SELECT customer_id FROM {_marks.name} WHERE customer_id IN ({listed})"  # noqa: S608 - integers only
    marked = sorted(row[0] for row in conn.exec_driver_sql(sql))
    if not marked:
        return
    rebuild.rebuild_customers(conn, marked, settings()[0] if offset_minutes is None else offset_minutes)
    done = bulk.integer_list(marked)
    conn.exec_driver_sql(f"DELETE FROM {_marks.name} WHERE customer_id IN ({done})")  # noqa: S608 - integers only


def _combined(target: StatTable, rows: Sequence[Sequence[Any]], into: dict[int, int]) -> dict[Any, list[Any]]:
    """``rows`` (in the table's stored form) re-keyed to the survivors, rows meeting on one key combined."""
    width = len(target.keys)
    sums = range(width, width + len(target.sums))
    lows = range(sums.stop, sums.stop + len(target.lows))
    highs = range(lows.stop, lows.stop + len(target.highs))
    out: dict[Any, list[Any]] = {}
    for row in rows:
        moved = [into[row[0]], *row[1:]]
        key = tuple(moved[:width])
        entry = out.get(key)
        if entry is None:
            out[key] = moved
            continue
        for i in sums:
            entry[i] += moved[i]
        for i in lows:
            entry[i] = moved[i] if entry[i] is None else entry[i] if moved[i] is None else min(entry[i], moved[i])
        for i in highs:
            entry[i] = moved[i] if entry[i] is None else entry[i] if moved[i] is None else max(entry[i], moved[i])
    return out
