"""The live customer behind a customer id: merged-away customers point at their survivor, maybe in hops."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from central import bulk
from central.identity.models import Customer
from central.models import table

_customers = table(Customer)
MAX_HOPS = 64


def survivors(conn: Connection, ids: Iterable[int]) -> dict[int, int]:
    """Map each id to the live customer it was merged into (itself when live); one query per hop."""
    result: dict[int, int] = {}
    pending = {i: i for i in set(ids)}  # original id -> where its chain has got to
    for _ in range(MAX_HOPS):
        if not pending:
            break
        rows = bulk.select_matching(
            conn, _customers, ("id",), [(i,) for i in sorted(set(pending.values()))], ("id", "merged_into")
        )
        step = {cid: merged_into for cid, merged_into in rows}
        moved: dict[int, int] = {}
        for original, current in pending.items():
            target = step.get(current)
            if target is None:
                result[original] = current  # live (or unknown: left as it is)
            else:
                moved[original] = target
        pending = moved
    result.update(pending)  # a chain longer than MAX_HOPS (a corrupt graph): stop where it got to
    return result
