"""``central-server export-tags --out DIR``: tags.csv and statistics.csv for warehouses and audits.

``tags.csv`` holds customer_id, tag, value, definition version and computed_at (RFC 3339) of live
customers: a customer merged away since the last recompute has no statistics and no longer exists,
so its tags (still stored until that recompute rewrites them) are left out. A survivor's tags are
those of the last recompute, as their computed_at says; its statistics already hold both sides.
``statistics.csv`` holds customer_id and each statistic (amounts in currency units), then the
purchases and amounts of the rolling windows ending on the chain's local today. Both are read from
one snapshot (REPEATABLE READ on PostgreSQL), a page at a time by key, and written to a
``.partial`` file moved into place when complete, so memory stays flat whatever the size and a
reader never sees half a file. Tags and statistics hold no personal data: nothing is masked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select

from central.csvfiles import write_csv
from central.customers.models import CustomerStats, CustomerTag
from central.customers.profile import STAT_COLUMNS, WINDOW_COLUMNS, local_today, stat_cells, windows
from central.db import READ_ONLY
from central.identity.models import Customer
from central.models import table
from shared.wire import format_time

PAGE = 10_000
FILES = ("tags.csv", "statistics.csv")
TAG_HEADER = ["customer_id", "tag", "value", "definition_version", "computed_at"]
_tags = table(CustomerTag)
_stats = table(CustomerStats)
_customers = table(Customer)


@dataclass(frozen=True)
class TagExport:
    """Rows written to each file."""

    tags: int
    statistics: int


def _tag_rows(conn: Connection, page: int) -> Iterator[list[Any]]:
    columns = (_tags.c.customer_id, _tags.c.tag, _tags.c.value, _tags.c.version, _tags.c.computed_at)
    last: tuple[int, str] | None = None
    while True:
        query = (
            select(*columns)
            .join(_customers, _customers.c.id == _tags.c.customer_id)
            .where(_customers.c.merged_into.is_(None))
            .order_by(_tags.c.customer_id, _tags.c.tag)
            .limit(page)
        )
        if last is not None:
            query = query.where(
                or_(_tags.c.customer_id > last[0], and_(_tags.c.customer_id == last[0], _tags.c.tag > last[1]))
            )
        rows = conn.execute(query).all()
        if not rows:
            return
        for customer, tag, value, version, at in rows:
            yield [customer, tag, value, version, format_time(at)]
        last = (rows[-1][0], rows[-1][1])


def _stat_rows(conn: Connection, page: int, today: date) -> Iterator[list[Any]]:
    last = 0
    while True:
        rows = conn.execute(
            select(_stats).where(_stats.c.customer_id > last).order_by(_stats.c.customer_id).limit(page)
        ).all()
        if not rows:
            return
        high = rows[-1][0]
        rolling = windows(conn, last, high, today)
        empty = [0] * len(WINDOW_COLUMNS)
        for row in rows:
            yield stat_cells(row, rolling.get(row[0], empty))
        last = high


def export_tags(engine: Engine, out_dir: Path, now: datetime, offset_minutes: int, *, page: int = PAGE) -> TagExport:
    """Write tags.csv and statistics.csv into ``out_dir`` (created, owner-only) from one snapshot."""
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    options: dict[str, Any] = dict(READ_ONLY)
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "REPEATABLE READ"
    today = local_today(now, offset_minutes)
    with engine.connect() as conn:
        conn = conn.execution_options(**options)
        with conn.begin():
            tags = write_csv(out_dir / FILES[0], TAG_HEADER, _tag_rows(conn, page))
            stats = write_csv(out_dir / FILES[1], [*STAT_COLUMNS, *WINDOW_COLUMNS], _stat_rows(conn, page, today))
    return TagExport(tags, stats)
