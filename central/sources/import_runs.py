"""The runs of legacy member imports: recorded by the import itself, listed by the console.

A run row is written only when a run has rows to import, so running a finished import again
changes nothing, as before. Its progress is written in each chunk's own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.orm import Session, aliased

from central.sources.models import ImportRow, ImportRun, MemberImport

RUNNING, COMPLETED, FAILED, INTERRUPTED = "running", "completed", "failed", "interrupted"
PAGE = 50


def start_run(db: Session, import_id: int, *, total: int, skipped: int, operator: str, now: datetime) -> int:
    """Record a new run (an earlier run still ``running`` was killed: it becomes ``interrupted``)."""
    db.execute(
        update(ImportRun)
        .where(ImportRun.import_id == import_id, ImportRun.status == RUNNING)
        .values(status=INTERRUPTED, updated_at=now)
    )
    values = {
        "import_id": import_id,
        "operator": operator[:64],
        "started_at": now,
        "updated_at": now,
        "rows_total": total,
        "rows_skipped": skipped,
        "rows_done": skipped,
        "status": RUNNING,
    }
    return int(db.execute(insert(ImportRun).values(**values).returning(ImportRun.id)).scalar_one())


def progress(db: Session, run_id: int, rows_done: int, now: datetime) -> None:
    """Note the last row committed (in the chunk's transaction)."""
    db.execute(update(ImportRun).where(ImportRun.id == run_id).values(rows_done=rows_done, updated_at=now))


def finish(db: Session, run_id: int, now: datetime, *, error: str | None = None) -> None:
    """Close a run as completed, or as failed with the error's text."""
    query = update(ImportRun).where(ImportRun.id == run_id)
    if error is None:
        query = query.values(rows_done=ImportRun.rows_total)
    db.execute(query.values(status=FAILED if error else COMPLETED, finished_at=now, updated_at=now, error=error))


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """An import as the console lists it: its file, rows imported so far and its newest run."""

    id: int
    source: str
    filename: str
    operator: str
    created_at: datetime
    completed_at: datetime | None
    rows: int | None
    rows_done: int
    run_status: str | None
    run_total: int | None
    run_updated_at: datetime | None

    @property
    def total(self) -> int | None:
        """The file's data rows, once known (from the newest run, or the finished import)."""
        return self.rows if self.rows is not None else self.run_total

    @property
    def percent(self) -> float | None:
        """Rows imported over the file's rows, in per cent."""
        total = self.total
        return None if not total else min(100.0, 100.0 * self.rows_done / total)


def _summaries() -> Select[Any]:
    """Every import newest first, with how many of its rows are done and its newest run."""
    done = select(func.count()).select_from(ImportRow).where(ImportRow.import_id == MemberImport.id).scalar_subquery()
    runs = aliased(ImportRun)
    newest = (
        select(func.max(runs.id)).where(runs.import_id == MemberImport.id).correlate(MemberImport).scalar_subquery()
    )
    return (
        select(
            MemberImport.id,
            MemberImport.source,
            MemberImport.filename,
            MemberImport.operator,
            MemberImport.created_at,
            MemberImport.completed_at,
            MemberImport.rows,
            done,
            ImportRun.status,
            ImportRun.rows_total,
            ImportRun.updated_at,
        )
        .outerjoin(ImportRun, ImportRun.id == newest)
        .order_by(MemberImport.id.desc())
    )


def list_imports(
    db: Session, *, before: int | None = None, limit: int = PAGE
) -> tuple[list[ImportSummary], int | None]:
    """Imports newest first, after the cursor ``before`` (an import id); the next page's cursor or None."""
    query = _summaries().limit(limit + 1)
    if before is not None:
        query = query.where(MemberImport.id < before)
    rows = [ImportSummary(*r) for r in db.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, rows[-1].id if more and rows else None


def get_import(db: Session, import_id: int) -> ImportSummary | None:
    """One import as listed, or None."""
    # Not a page before import_id + 1: past the last id an INTEGER holds, PostgreSQL refuses that number.
    row = db.execute(_summaries().where(MemberImport.id == import_id)).first()
    return None if row is None else ImportSummary(*row)


def runs_of(db: Session, import_id: int) -> list[ImportRun]:
    """Every run of one import, newest first."""
    return list(db.scalars(select(ImportRun).where(ImportRun.import_id == import_id).order_by(ImportRun.id.desc())))
