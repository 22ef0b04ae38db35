"""The imports and jobs page (admin): legacy member imports with progress and report, scheduled jobs.

An import's progress is its rows committed over the file's rows (from its newest run, see
:mod:`central.sources.import_runs`); its report is the totals by outcome and the rejected rows'
reasons, read back from ``import_rows`` as ``central-server import-members`` prints them. A job's
next run is an estimate: its last start plus its interval (every instance runs the schedule, and
the lease lets one of them run each turn).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import abort, current_app, render_template, request
from flask.typing import ResponseReturnValue

from central import clock
from central.accounts import web
from central.accounts.roles import ADMIN
from central.console import bp
from central.console.navigation import JOB_COUNT_LABELS, JOB_COUNT_LABELS_BY_JOB
from central.db import get_session
from central.jobs import RUNNING, last_runs
from central.params import id_limit, whole_number
from central.scheduler import JOBS, daily_trigger
from central.sources import import_runs
from central.sources.import_report import OUTCOMES, rejected_reasons, totals
from central.sources.models import MemberImport


@dataclass(frozen=True, slots=True)
class JobLine:
    """A scheduled job as the page shows it."""

    name: str
    help: str
    interval_s: float
    last: Any
    next_at: datetime | None
    hour: int | None = None  # a daily job's local hour (-1: switched off)
    counts: tuple[tuple[str, Any], ...] = ()  # what the last run counted: (message id, or the key as written; n)


def _counts(name: str, counts: dict[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """A run's counts by key, each named by its words for that job (a key without words as written)."""
    own = JOB_COUNT_LABELS_BY_JOB.get(name, {})
    return tuple((own.get(k) or JOB_COUNT_LABELS.get(k) or k, v) for k, v in sorted((counts or {}).items()))


def _jobs() -> list[JobLine]:
    config = current_app.config["CENTRAL"]
    names = sorted(JOBS)
    runs = last_runs(get_session(), names)
    out = []
    for name in names:
        job = JOBS[name]
        interval, hour = job.interval(config), job.hour(config)
        last = runs[name][0] if runs[name] else None
        next_at = None if last is None or last.status == RUNNING else last.started_at + timedelta(seconds=interval)
        if hour is not None:
            next_at = daily_trigger(hour, config).get_next_fire_time(None, clock.now()) if hour >= 0 else None
        out.append(JobLine(name, job.help, interval, last, next_at, hour, _counts(name, last.counts if last else None)))
    return out


@bp.get("/imports")
@web.roles(ADMIN)
def imports() -> ResponseReturnValue:
    """Legacy member imports (newest first, a page at a time) and every scheduled job's last run."""
    text = request.args.get("before", "")
    before = whole_number(text, id_limit(MemberImport.id))
    found, older = import_runs.list_imports(get_session(), before=before)
    return render_template(
        "imports.html", page="imports", imports=found, older=older, jobs=_jobs(), now=clock.now(), first_page=not before
    )


@bp.get("/imports/<int32:import_id>")
@web.roles(ADMIN)
def member_import(import_id: int) -> ResponseReturnValue:
    """One import: its report (rows by outcome, rejected rows by reason) and every run with its progress."""
    db = get_session()
    found = import_runs.get_import(db, import_id)
    if found is None:
        abort(404)
    summary = totals(db, import_id)
    return render_template(
        "import.html",
        page="imports",
        i=found,
        outcomes=[(o, summary.by_outcome.get(o, 0)) for o in OUTCOMES],
        rows=summary.rows,
        reasons=sorted(rejected_reasons(db, import_id).items(), key=lambda item: (-item[1], item[0])),
        runs=import_runs.runs_of(db, import_id),
        now=clock.now(),
    )
