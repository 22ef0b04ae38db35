"""The console's segments page: saved segments, a live count on request, a rule builder with a preview, exports.

The builder previews on the server (a GET form: no script); saving and evaluating are POST forms
carrying the CSRF token. The CSV export is masked for every role but admin and audited.
"""

from __future__ import annotations

import itertools
from typing import Any

from flask import Response, abort, current_app, redirect, render_template, request, stream_with_context, url_for
from flask.typing import ResponseReturnValue

from central import clock
from central.accounts import web
from central.accounts.roles import ADMIN, MARKETING
from central.console import bp, offset_minutes
from central.console.auditing import record_audit
from central.customers.consent import CHANNELS
from central.db import get_session, session_factory
from central.segments import definitions, evaluation, exports
from central.segments.definitions import Draft, SegmentError

ROLES = (ADMIN, MARKETING)
CHANNEL_LABELS = {"sms": "短信", "wechat": "微信", "app_push": "App 推送", "email": "电子邮件"}
MAX_RULE = 4000
EXCEL_BOM = "\ufeff"


def _problem(exc: SegmentError) -> dict[str, Any]:
    return exc.to_json()


def _page(status: int = 200, **form: Any) -> ResponseReturnValue:
    db = get_session()
    offset = offset_minutes()
    today = evaluation.local_today(clock.now(), offset)
    # A live count reads every customer: the list shows the stored members of each segment's last
    # evaluation and counts live only the segment asked for (``?count=NAME``), so the page stays
    # quick however many segments a chain keeps.
    counting = request.args.get("count", "")
    rows = []
    for row in definitions.listed(db):
        live: Any = None
        if row.name == counting:
            try:
                live = evaluation.count(db, row.rule, row.channel, today, offset)
            except SegmentError:
                live = None  # a rule saved before a field was retired: shown, not counted
        rows.append((row, live))
    rule = form.get("rule", request.args.get("rule", ""))[:MAX_RULE]
    channel = form.get("channel", request.args.get("channel", CHANNELS[0]))
    preview = problem = None
    if rule.strip() and "problem" not in form:
        try:
            definitions.check_channel(channel)
            preview = evaluation.count(db, rule, channel, today, offset)
        except SegmentError as exc:
            problem = _problem(exc)
    html = render_template(
        "segments.html",
        page="segments",
        segments=rows,
        rule=rule,
        channel=channel if channel in CHANNELS else CHANNELS[0],
        channels=CHANNELS,
        channel_labels=CHANNEL_LABELS,
        preview=preview,
        problem=form.get("problem", problem),
        name=form.get("name", ""),
        description=form.get("description", ""),
        saved=request.args.get("saved", ""),
    )
    return html, status


@bp.get("/segments")
@web.roles(*ROLES)
def segments() -> ResponseReturnValue:
    """Saved segments with live counts and last evaluation; the builder previews ``?rule=...&channel=...``."""
    return _page()


@bp.post("/segments")
@web.roles(*ROLES)
def save_segment() -> ResponseReturnValue:
    """Save the builder's rule as a new segment, or refuse it with the reason and position."""
    form = {k: request.form.get(k, "")[:MAX_RULE] for k in ("name", "rule", "channel", "description")}
    db = get_session()
    active = web.current()
    draft = Draft(form["name"].strip(), form["rule"], form["channel"], form["description"].strip()[:500])
    try:
        definitions.create(db, draft, actor=active.username if active else "anonymous", now=clock.now())
    except SegmentError as exc:
        db.rollback()
        return _page(400, problem=_problem(exc), **form)
    record_audit("segment.create", f"segment:{draft.name}", rule=draft.rule, channel=draft.channel)
    db.commit()
    return redirect(url_for("console.segments", saved=draft.name))


@bp.post("/segments/<name>/evaluate")
@web.roles(*ROLES)
def evaluate_segment(name: str) -> ResponseReturnValue:
    """Evaluate a segment now (the scheduler also does, every ``scheduler.segments_interval``)."""
    db = get_session()
    if definitions.find(db, name) is None:
        abort(404)
    done = evaluation.evaluate(db, name, clock.now(), offset_minutes())
    record_audit("segment.evaluate", f"segment:{name}", **done.to_json())
    db.commit()
    return redirect(url_for("console.segments"))


@bp.get("/segments/<name>/export.csv")
@web.roles(*ROLES)
def export_segment(name: str) -> ResponseReturnValue:
    """The members of the last evaluation as CSV: masked unless admin, withdrawn consents left out, audited."""
    db = get_session()
    row = definitions.find(db, name)
    if row is None:
        abort(404)
    unmasked = web.current_policy().unmasked
    record_audit("segment.export", f"segment:{name}", to="csv", masked=not unmasked, version=row.evaluated_version)
    db.commit()
    today = evaluation.local_today(clock.now(), offset_minutes())
    chunks = exports.csv_chunks(session_factory(current_app), row, today, unmasked=unmasked)
    # A byte order mark first: Excel on a Chinese Windows reads a CSV without one as GBK, and the
    # names come out garbled. The API's export, read by programs, goes without.
    response = Response(stream_with_context(itertools.chain((EXCEL_BOM,), chunks)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="segment-{name}.csv"'
    return response
