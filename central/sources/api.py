"""The sources' JSON API: an online source's events, and legacy member imports for admins.

``POST /api/v1/sources/<name>/events``: an online source's events, answered per event.

The body is one JSON object (gzip allowed, ``Content-Encoding: gzip``), the agents' batch without
the device fields::

    {"schema": 1, "events": [{"event_id": "order-20261123-0042", "kind": "order.online",
      "observed_at": "2026-11-23T10:00:00+08:00", "identifiers": {"wechat_openid": "o6_bm..."},
      "app_id": "wx1234567890abcdef", "payload": {"total": "59.00", "items": [...]}}]}

authenticated by ``Authorization: Bearer <key>`` (``central-server source-key``). The reply is
the agents' ``{accepted, duplicate, rejected: [{event_id, reason}]}``. The size limits are the
batch endpoint's (``ingest.*``), and a gzip body inflates from the same process-wide budget
(``ingest.decode_budget_bytes``, central.ingest.budget): when it is spent the answer is 503 ``busy``
with ``Retry-After``, as for agents' batches.

``POST /api/v1/imports/members?map=COLUMN=FIELD&...`` (console admins): the body is the CSV file
(gzip allowed, inflated from the same budget), the query takes the command's options (``map`` repeated, ``dry_run``,
``merge_suggestions``, ``date_order``, ``encoding``, ``delimiter``, ``source``, ``filename``). The
import runs in the request; the answer holds the totals, and ``GET /api/v1/imports/<id>/report.csv``
the per-row report.
"""

from __future__ import annotations

import io
import logging
import tempfile
import unicodedata
from datetime import timedelta
from pathlib import Path

import orjson
from flask import Blueprint, Flask, Response, current_app, jsonify, request

from central import access_log, audit, clock
from central.accounts import web
from central.auth import UNAUTHORIZED_MESSAGE, current_user, login_required
from central.bodies import read_body
from central.collector import collector_paused
from central.config import CentralConfig
from central.customers.consent import notice_problem
from central.db import get_session
from central.errors import ApiError
from central.identity.registry import Registry, load_registry
from central.ingest.api import decode_content
from central.ingest.budget import budget_for
from central.sources.events import SOURCE_RE, store_source_events
from central.sources.import_file import ImportOptions, OptionError, plan_import
from central.sources.import_mapping import MappingError
from central.sources.import_report import rejected_reasons, report_rows, totals, write_report
from central.sources.keys import key_matches
from central.sources.legacy_formats import DATE_ORDERS, FormatError
from central.sources.member_import import run_import
from central.sources.models import MemberImport
from shared import wire

log = logging.getLogger(__name__)
bp = Blueprint("sources", __name__)

_REGISTRY = "central.identity.registry"
_BEARER = "bearer "


def app_registry(app: Flask) -> Registry:
    """The identifier registry of ``app``'s configuration, loaded once."""
    registry: Registry | None = app.extensions.get(_REGISTRY)
    if registry is None:
        registry = app.extensions[_REGISTRY] = load_registry(app.config["CENTRAL"])
    return registry


def _config() -> CentralConfig:
    config: CentralConfig = current_app.config["CENTRAL"]
    return config


def _presented_key() -> str:
    header = request.headers.get("Authorization", "")
    return header[len(_BEARER) :].strip() if header[: len(_BEARER)].lower() == _BEARER else ""


def decode_source_batch(data: bytes | bytearray, max_events: int) -> list[object]:
    """The raw events of a source's body; raise ApiError for what is not a v1 source batch."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "invalid_batch", "the body must be a JSON object with schema and events")
    schema = doc.get("schema")
    if schema not in wire.SUPPORTED_SCHEMAS or isinstance(schema, bool):
        raise ApiError(400, "unsupported_schema", f"schema {schema!r} is not supported (supported: 1)")
    events = doc.get("events")
    if not isinstance(events, list):
        raise ApiError(400, "invalid_batch", "events must be a list")
    if len(events) > max_events:
        raise ApiError(400, "too_many_events", f"a batch holds at most {max_events} events")
    return events


@bp.post("/api/v1/sources/<source>/events")
def post_events(source: str) -> Response:
    """Receive a source's events; answer per event."""
    config = _config()
    body = read_body(config.ingest_max_body_bytes)
    db = get_session()
    if not SOURCE_RE.match(source) or not key_matches(db, source, _presented_key()):
        raise ApiError(401, "unauthorized", UNAUTHORIZED_MESSAGE)
    access_log.attribute(f"source:{source}")
    if db.get_bind().dialect.name == "sqlite":
        db.rollback()  # that read holds SQLite's write lock, and decoding needs none
    ahead = timedelta(minutes=config.sources_max_ahead_minutes)
    # The batches endpoint's path: inflated from the process-wide budget (503 busy when it is spent),
    # and the cycle collector waits until the events are stored (central.collector).
    with budget_for(current_app).lease() as lease, collector_paused():
        data = decode_content(
            body, request.headers.get("Content-Encoding"), config.ingest_max_decompressed_bytes, lease
        )
        del body
        events = decode_source_batch(data, config.ingest_max_events)
        del data
        staged = store_source_events(
            db,
            source,
            events,
            clock.now(),
            registry=app_registry(current_app),
            max_ahead=ahead,
            max_event_chars=config.ingest_max_event_bytes,
        )
    log.debug(
        "source %s: %d accepted, %d duplicate, %d rejected",
        source,
        len(staged.accepted),
        len(staged.duplicate),
        len(staged.rejected),
    )
    answer = staged.reply().to_dict()
    # Stored, but an identifier the source sent identifies no one, or an order's status is unknown.
    if staged.warnings:
        answer["warnings"] = [{"event_id": w.event_id, "reason": w.reason} for w in staged.warnings]
    return jsonify(answer)


def _require_admin() -> str:
    user = current_user(get_session())
    if user is None or user.role != "admin":
        raise web.refusal("admin_only", "only administrators may import members")
    return user.username


def _upload_name(given: str) -> str:
    """The uploaded file's name as the audit log and the answers show it (never a path on this server)."""
    name = Path(given.replace("\\", "/")).name
    if not name or name in (".", "..") or len(name) > 255 or any(unicodedata.category(c)[0] == "C" for c in name):
        raise ApiError(400, "invalid_request", "filename: the file's name, at most 255 printable characters")
    return name


def _import_options(operator: str) -> ImportOptions:
    args = request.args
    source = args.get("source", "import")
    if not SOURCE_RE.match(source):
        raise ApiError(400, "invalid_request", "source must be 1-57 characters of a-z, 0-9, _ . -, and not 'console'")
    date_order = args.get("date_order") or None
    if date_order is not None and date_order not in DATE_ORDERS:
        raise ApiError(400, "invalid_request", f"date_order must be one of {', '.join(DATE_ORDERS)}")
    merge = args.get("merge_suggestions")
    try:
        threshold = float(merge) if merge else None
    except ValueError:
        raise ApiError(400, "invalid_request", "merge_suggestions must be a score such as 0.9") from None
    notice = args.get("consent_notice", "")
    if problem := notice_problem(notice):
        raise ApiError(400, "invalid_request", problem)
    return ImportOptions(
        maps=tuple(args.getlist("map")),
        source=source,
        encoding=args.get("encoding") or None,
        delimiter=args.get("delimiter") or None,
        date_order=date_order,
        merge_suggestions=threshold,
        dry_run=args.get("dry_run", "").lower() in ("1", "true", "yes"),
        operator=operator,
        consent_notice=notice,
    )


@bp.post("/api/v1/imports/members")
@login_required
def import_members() -> Response:
    """Import an uploaded legacy member CSV (see ``central-server import-members``)."""
    operator = _require_admin()
    options = _import_options(operator)
    config = _config()
    body = read_body(config.ingest_max_body_bytes)
    name = _upload_name(request.args.get("filename") or "upload.csv")
    registry = app_registry(current_app)
    today = clock.now().date()
    db = get_session()
    db.rollback()
    with tempfile.TemporaryDirectory(dir=config.server_data_dir) as tmp:
        path = Path(tmp) / "upload.csv"
        # Inflated from the budget every ingest endpoint shares, held only until it is on disk.
        with budget_for(current_app).lease() as lease:
            encoding = request.headers.get("Content-Encoding")
            path.write_bytes(decode_content(body, encoding, config.ingest_max_decompressed_bytes, lease))
        del body

        def said(exc: Exception) -> str:  # the file as the uploader named it, not where central keeps it
            return str(exc).replace(str(path), name)

        try:
            plan = plan_import(path, options, registry)
        except OptionError as exc:
            raise ApiError(400, "invalid_request", said(exc)) from None
        except MappingError as exc:
            raise ApiError(400, "invalid_mapping", said(exc)) from None
        except FormatError:
            raise ApiError(400, "undecodable", "the file is neither UTF-8 nor GB18030; give encoding=") from None
        except (UnicodeDecodeError, LookupError) as exc:
            raise ApiError(400, "undecodable", f"cannot read the file as {options.encoding}: {said(exc)}") from None
        except ValueError as exc:
            raise ApiError(400, "invalid_file", said(exc)) from None
        import_id, stats = run_import(db, plan, options, registry=registry, clock=clock.now, today=today)
    answer: dict[str, object] = {
        "import_id": None if options.dry_run else import_id,
        "digest": plan.digest[:16],
        "dry_run": options.dry_run,
        "totals": totals(db, import_id).to_json(),
        "rejected_reasons": rejected_reasons(db, import_id),
        "run": {
            "processed": stats.processed,
            "skipped": stats.skipped,
            "customers_created": stats.created,
            "customers_merged": stats.merged,
            "reviewed": stats.reviewed,
        },
    }
    if options.dry_run:
        answer["rows"] = [
            {"row": r, "external_id": e or None, "customer_id": c, "outcome": o, "reason": why}
            for r, e, c, o, why in report_rows(db, import_id)
        ]
        db.rollback()
    else:
        answer["report"] = f"/api/v1/imports/{import_id}/report.csv"
        audit.record(
            db,
            at=clock.now(),
            actor=operator,
            action="members.import",
            subject=f"import:{plan.digest[:16]}",
            detail={"via": "api", "file": name, "rows": plan.rows, "processed": stats.processed},
        )
        db.commit()
    return jsonify(answer)


@bp.get("/api/v1/imports/<int32:import_id>/report.csv")
@login_required
def import_report(import_id: int) -> Response:
    """The per-row CSV report of an import."""
    operator = _require_admin()
    db = get_session()
    imported = db.get(MemberImport, import_id)
    if imported is None:
        raise ApiError(404, "not_found", f"no import {import_id}")
    out = io.StringIO()
    # The id column's header is not stored; the report names it external_id.
    write_report(db, import_id, out, "external_id")
    audit.record(db, at=clock.now(), actor=operator, action="members.import_report", subject=f"import:{import_id}")
    db.commit()
    return Response(out.getvalue(), mimetype="text/csv")
