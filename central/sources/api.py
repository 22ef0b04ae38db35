"""``POST /api/v1/sources/<name>/events``: an online source's events, answered per event.

The body is one JSON object (gzip allowed, ``Content-Encoding: gzip``), the agents' batch without
the device fields::

    {"schema": 1, "events": [{"event_id": "order-20261123-0042", "kind": "order.online",
      "observed_at": "2026-11-23T10:00:00+08:00", "identifiers": {"wechat_openid": "o6_bm..."},
      "app_id": "wx1234567890abcdef", "payload": {"total": "59.00", "items": [...]}}]}

authenticated by ``Authorization: Bearer <key>`` (``central-server source-key``). The reply is
the agents' ``{accepted, duplicate, rejected: [{event_id, reason}]}``. The size limits are the
batch endpoint's (``ingest.*``).
"""

from __future__ import annotations

import logging

import orjson
from flask import Blueprint, Flask, Response, current_app, jsonify, request

from central import clock
from central.auth import UNAUTHORIZED_MESSAGE
from central.config import CentralConfig
from central.db import get_session
from central.errors import ApiError
from central.identity.registry import Registry, load_registry
from central.ingest.api import decode_content, read_body
from central.sources.events import SOURCE_RE, store_source_events
from central.sources.keys import key_matches
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


def decode_source_batch(data: bytes, max_events: int) -> list[object]:
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
    if db.get_bind().dialect.name == "sqlite":
        db.rollback()  # that read holds SQLite's write lock, and decoding needs none
    data = decode_content(body, request.headers.get("Content-Encoding"), config.ingest_max_decompressed_bytes)
    events = decode_source_batch(data, config.ingest_max_events)
    staged = store_source_events(db, source, events, clock.now(), registry=app_registry(current_app))
    log.debug(
        "source %s: %d accepted, %d duplicate, %d rejected",
        source,
        len(staged.accepted),
        len(staged.duplicate),
        len(staged.rejected),
    )
    return jsonify(staged.reply().to_dict())
