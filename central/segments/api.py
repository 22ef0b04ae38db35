"""Segments over the JSON API (admin and marketing): save, delete, count, preview, evaluate, members, history, export.

A segment's webhook (``webhook_url``, ``webhook_secret``) is set by administrators only.

A refused rule answers 400 with the rule's reason code and position::

    {"error": {"code": "invalid_segment", "reason": "rule_unknown_field", "message": "line 1, column 1: ...",
               "position": {"line": 1, "column": 1, "offset": 0}}}
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context

from central import audit, clock
from central import db as central_db
from central.accounts import web
from central.accounts.roles import ADMIN, MARKETING
from central.auth import actor_name
from central.bodies import json_body
from central.config import CentralConfig
from central.customers.rules import Schema
from central.db import get_session
from central.errors import ApiError
from central.params import id_limit, int_param
from central.segments import definitions, deletion, evaluation, exports
from central.segments.definitions import Draft, SegmentError
from central.segments.fields import schema_for
from central.segments.models import SegmentMember
from shared.wire import format_time

bp = Blueprint("segments", __name__)
ROLES = (ADMIN, MARKETING)
MAX_PAGE = 1000


def _config() -> CentralConfig:
    config: CentralConfig = current_app.config["CENTRAL"]
    return config


def _offset() -> int:
    return _config().customers_utc_offset_minutes


def _refused(exc: SegmentError) -> Response:
    status = 404 if exc.reason == "not_found" else 409 if exc.reason in ("exists", deletion.IN_USE_EXPORT) else 400
    response = jsonify({"error": {"code": "invalid_segment", **exc.to_json()}})
    response.status_code = status
    return response


def _body() -> dict[str, Any]:
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_segment", "expected a JSON object")
    return body


def _draft(body: dict[str, Any], name: str | None = None) -> Draft:
    def text(key: str, default: str = "") -> str:
        value = body.get(key, default)
        if not isinstance(value, str):
            raise ApiError(400, "invalid_segment", f"{key}: expected a string")
        return value

    url = body.get("webhook_url")
    secret = body.get("webhook_secret")
    return Draft(
        name=name if name is not None else text("name"),
        rule=text("rule"),
        channel=text("channel"),
        description=text("description"),
        webhook_url=url if isinstance(url, str) else None,
        webhook_secret=secret if isinstance(secret, str) else None,
    )


def _schema() -> Schema:
    """What this user's rules may read: birthdays and postcodes only as coarsely as their role sees them."""
    return schema_for(web.current_policy().unmasked)


def _webhook_host(url: str | None) -> str | None:
    return (urlsplit(url).hostname or url) if url else None


def _webhook_by_admin(body: dict[str, Any]) -> None:
    """A segment's webhook is set by administrators only: an export to it carries the members'
    identifiers, in full when an administrator runs it, so whoever may choose where it goes could
    otherwise have an administrator's routine export delivered to a server of their own."""
    active = web.current()
    if ("webhook_url" in body or "webhook_secret" in body) and (active is None or active.role != ADMIN):
        raise web.refusal("admin_only_setting", "only an administrator sets a segment's webhook")


def _segment(name: str) -> Any:
    row = definitions.find(get_session(), name)
    if row is None:
        raise ApiError(404, "not_found", f"no segment named {name!r}")
    return row


def _limit() -> int:
    try:
        return max(1, min(MAX_PAGE, int(request.args.get("limit", "100"))))
    except ValueError:
        raise ApiError(400, "invalid_request", "limit: a whole number") from None


def _audit(action: str, subject: str, **detail: Any) -> None:
    audit.record(get_session(), at=clock.now(), actor=actor_name(), action=action, subject=subject, detail=detail)


@bp.get("/api/v1/segments")
@web.roles(*ROLES)
def list_segments() -> Response:
    """Every segment with its last evaluation (live counts: ``/count`` per segment)."""
    return jsonify({"segments": [definitions.to_json(r) for r in definitions.listed(get_session())]})


@bp.post("/api/v1/segments")
@web.roles(*ROLES)
def create_segment() -> Response | tuple[Response, int]:
    """Save a new segment: ``{name, rule, channel, description?, webhook_url?, webhook_secret?}``."""
    db = get_session()
    body = _body()
    _webhook_by_admin(body)
    draft = _draft(body)
    try:
        definitions.create(db, draft, actor=actor_name(), now=clock.now(), schema=_schema())
    except SegmentError as exc:
        db.rollback()
        return _refused(exc)
    webhook = {"webhook": _webhook_host(draft.webhook_url)} if draft.webhook_url else {}
    _audit("segment.create", f"segment:{draft.name}", rule=draft.rule, channel=draft.channel, **webhook)
    db.commit()
    return jsonify(definitions.to_json(_segment(draft.name))), 201


@bp.get("/api/v1/segments/<name>")
@web.roles(*ROLES)
def get_segment(name: str) -> Response:
    """One segment."""
    return jsonify(definitions.to_json(_segment(name)))


@bp.put("/api/v1/segments/<name>")
@web.roles(*ROLES)
def update_segment(name: str) -> Response:
    """Edit a segment (the whole draft; a webhook not given is kept); the version moves on if its meaning does."""
    db = get_session()
    body = _body()
    _webhook_by_admin(body)
    draft = _draft(body, name)
    before = _segment(name).webhook_url
    try:
        version = definitions.revise(db, name, draft, actor=actor_name(), now=clock.now(), schema=_schema())
    except SegmentError as exc:
        db.rollback()
        return _refused(exc)
    after = _segment(name).webhook_url
    webhook = {"webhook": {"from": _webhook_host(before), "to": _webhook_host(after)}} if after != before else {}
    _audit("segment.update", f"segment:{name}", rule=draft.rule, channel=draft.channel, version=version, **webhook)
    db.commit()
    return jsonify(definitions.to_json(_segment(name)))


@bp.delete("/api/v1/segments/<name>")
@web.roles(*ROLES)
def delete_segment(name: str) -> Response:
    """Delete a segment (409 ``in_use_export`` while its webhook export is being sent); its history stays.

    Answers the segment as it was and how many members left it; the audit row keeps its definition.
    """
    db = get_session()
    try:
        done = deletion.delete(db, name, now=clock.now())
    except SegmentError as exc:
        db.rollback()
        return _refused(exc)
    _audit("segment.delete", f"segment:{name}", **done.to_audit())
    db.commit()
    return jsonify({"deleted": done.segment, "members_left": done.left})


@bp.get("/api/v1/segments/<name>/count")
@web.roles(*ROLES)
def count(name: str) -> Response:
    """The live count of a saved segment's current rule: customers matching, and reachable on its channel."""
    row = _segment(name)
    today = evaluation.local_today(clock.now(), _offset())
    counted = evaluation.count(get_session(), row.rule, row.channel, today, _offset())
    return jsonify({"segment": name, "version": row.version, **counted.to_json()})


@bp.post("/api/v1/segments/preview")
@web.roles(*ROLES)
def preview() -> Response:
    """The live count of an unsaved rule: ``{rule, channel}``."""
    body = _body()
    rule, channel = body.get("rule"), body.get("channel")
    if not isinstance(rule, str) or not isinstance(channel, str):
        raise ApiError(400, "invalid_segment", "rule and channel: strings")
    today = evaluation.local_today(clock.now(), _offset())
    try:
        definitions.check_channel(channel)
        definitions.check_rule(rule, _schema())
        counted = evaluation.count(get_session(), rule, channel, today, _offset())
    except SegmentError as exc:
        return _refused(exc)
    return jsonify(counted.to_json())


@bp.post("/api/v1/segments/<name>/evaluate")
@web.roles(*ROLES)
def evaluate(name: str) -> Response:
    """Evaluate now: materialise members, record who entered and left."""
    db = get_session()
    _segment(name)
    done = evaluation.evaluate(db, name, clock.now(), _offset())
    _audit("segment.evaluate", f"segment:{name}", **done.to_json())
    db.commit()
    return jsonify({"segment": name, **done.to_json()})


@bp.get("/api/v1/segments/<name>/members")
@web.roles(*ROLES)
def members(name: str) -> Response:
    """Members at the last evaluation whom marketing may still reach, by customer id (``after``,
    ``limit``): ids and entry times only."""
    row = _segment(name)
    after = int_param("after", 0, 0, id_limit(SegmentMember.customer_id))
    today = evaluation.local_today(clock.now(), _offset())
    rows = exports.members_page(get_session(), row, today, after, _limit())
    _audit("segment.members", f"segment:{name}", returned=len(rows))
    get_session().commit()
    out = [{"customer_id": r.customer_id, "entered_at": format_time(r.entered_at)} for r in rows]
    return jsonify({"members": out, "next_after": rows[-1].customer_id if rows else None})


@bp.get("/api/v1/segments/<name>/history")
@web.roles(*ROLES)
def history(name: str) -> Response:
    """Entries and exits, newest first (``before`` an id, ``limit``)."""
    row = _segment(name)
    before = int_param("before", 0, 1) if request.args.get("before") else None
    rows = evaluation.history_page(get_session(), row.id, before, _limit())
    _audit("segment.history", f"segment:{name}", returned=len(rows))
    get_session().commit()
    out = [
        {"id": r.id, "customer_id": r.customer_id, "change": r.change, "at": format_time(r.at), "version": r.version}
        for r in rows
    ]
    return jsonify({"history": out, "next_before": rows[-1].id if rows else None})


def csv_response(segment: Any, unmasked: bool) -> Response:
    """The segment's members as a streamed CSV download (the caller has audited it)."""
    sessions = central_db.session_factory(current_app)
    today = evaluation.local_today(clock.now(), _offset())
    # Its own session: the rows are read while the response streams, after the view has returned.
    chunks = exports.csv_chunks(sessions, segment, today, unmasked=unmasked)
    response = Response(stream_with_context(chunks), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="segment-{segment.name}.csv"'
    return response


@bp.get("/api/v1/segments/<name>/export")
@web.roles(*ROLES)
def export_csv(name: str) -> Response:
    """The members as CSV, streamed; identifiers masked unless the caller is an administrator; audited."""
    row = _segment(name)
    unmasked = web.current_policy().unmasked
    _audit("segment.export", f"segment:{name}", to="csv", masked=not unmasked, version=row.evaluated_version)
    get_session().commit()
    return csv_response(row, unmasked)


@bp.post("/api/v1/segments/<name>/export")
@web.roles(*ROLES)
def export_webhook(name: str) -> tuple[Response, int]:
    """Queue the members as signed webhook calls to the segment's webhook (masked unless admin); audited."""
    row = _segment(name)
    db = get_session()
    unmasked = web.current_policy().unmasked
    now = clock.now()
    try:
        export_id, calls, count = exports.queue_webhook(
            db,
            row,
            evaluation.local_today(now, _offset()),
            now,
            unmasked=unmasked,
            chunk=_config().segments_webhook_chunk,
        )
    except ValueError as exc:
        db.rollback()
        raise ApiError(400, "invalid_segment", str(exc)) from None
    detail = {"to": "webhook", "masked": not unmasked, "export_id": export_id, "calls": calls, "members": count}
    _audit("segment.export", f"segment:{name}", **detail)
    db.commit()
    return jsonify({"segment": name, **detail}), 202
