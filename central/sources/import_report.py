"""An import's report: totals by outcome and one CSV line per row, read back from the database.

Both come from ``import_rows``, so a rerun, or a run finished after a kill, prints exactly the
report of one clean run. Customer ids are shown as they are now (a customer merged since is
shown as its survivor).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from central.csvfiles import SpreadsheetWriter
from central.sources.models import ImportRow
from central.sources.survivors import survivors

OUTCOMES = ("new", "merged", "suggestion", "conflict", "rejected", "duplicate")
_PAGE = 5000


@dataclass(frozen=True)
class Totals:
    """How many rows ended each way."""

    rows: int
    by_outcome: dict[str, int]

    def to_json(self) -> dict[str, int]:
        return {"rows": self.rows, **{o: self.by_outcome.get(o, 0) for o in OUTCOMES}}

    def lines(self) -> list[str]:
        labels = {
            "new": "new customers",
            "merged": "merges",
            "suggestion": "suggestions",
            "conflict": "conflicts",
            "rejected": "rejected",
            "duplicate": "duplicates",
        }
        out = [f"  {'rows':<16} {self.rows}"]
        out += [f"  {labels[o]:<16} {self.by_outcome.get(o, 0)}" for o in OUTCOMES]
        return out


def totals_statement(import_id: int) -> Select[str, int]:
    """Rows by outcome for one import, read from the index on (import_id, outcome) alone."""
    return select(ImportRow.outcome, func.count()).where(ImportRow.import_id == import_id).group_by(ImportRow.outcome)


def totals(db: Session, import_id: int) -> Totals:
    """Rows by outcome for one import."""
    counts: dict[str, int] = dict(db.execute(totals_statement(import_id)).all())
    return Totals(sum(counts.values()), counts)


def rejected_reasons(db: Session, import_id: int) -> dict[str, int]:
    """Rejected rows by reason code (without the notes a reason may carry in parentheses)."""
    rows = db.execute(
        select(ImportRow.reason, func.count())
        .where(ImportRow.import_id == import_id, ImportRow.outcome == "rejected")
        .group_by(ImportRow.reason)
    ).all()
    counts: dict[str, int] = {}
    for reason, count in rows:
        code = reason.split(" (", 1)[0]
        counts[code] = counts.get(code, 0) + count
    return counts


def report_rows(db: Session, import_id: int) -> Iterator[tuple[int, str, int | None, str, str]]:
    """(row, external id, live customer id, outcome, reason) in row order, a page at a time."""
    last = 0
    while True:
        page = db.execute(
            select(ImportRow.row, ImportRow.external_id, ImportRow.customer_id, ImportRow.outcome, ImportRow.reason)
            .where(ImportRow.import_id == import_id, ImportRow.row > last)
            .order_by(ImportRow.row)
            .limit(_PAGE)
        ).all()
        if not page:
            return
        live = survivors(db.connection(), [r.customer_id for r in page if r.customer_id is not None])
        for r in page:
            customer = None if r.customer_id is None else live.get(r.customer_id, r.customer_id)
            yield r.row, r.external_id or "", customer, r.outcome, r.reason
        last = page[-1].row


def write_report(db: Session, import_id: int, out: TextIO, id_column: str | None) -> int:
    """Write the per-row CSV (row, the file's id column if mapped, customer_id, outcome, reason)."""
    writer = SpreadsheetWriter(out)
    writer.writerow(["row", *([id_column] if id_column else []), "customer_id", "outcome", "reason"])
    count = 0
    for row, external_id, customer, outcome, reason in report_rows(db, import_id):
        writer.writerow(
            [row, *([external_id] if id_column else []), "" if customer is None else customer, outcome, reason]
        )
        count += 1
    return count
