"""``POST /api/v1/batches``: a device's signed, gzipped batch, answered per event.

The body is read with a hard limit before anything else, the signature is checked over the bytes
exactly as sent, and only then is it inflated (bounded) and decoded; ``central.ingest.batches``
stores it.
"""

from __future__ import annotations

import logging
import zlib

from flask import Blueprint, Response, current_app, jsonify, request

from central import clock
from central.auth import authenticate_device
from central.config import CentralConfig
from central.db import get_session
from central.errors import ApiError
from central.ingest.batches import store_batch
from shared import wire

log = logging.getLogger(__name__)
bp = Blueprint("ingest", __name__)


def _too_large() -> ApiError:
    return ApiError(413, "too_large", "the batch is larger than this server accepts")


def read_body(limit: int) -> bytes:
    """The request body exactly as sent, refusing more than ``limit`` bytes (declared or actual)."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large()
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise _too_large()
    return body


def decode_content(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding``; a gzip body may expand to at most ``limit`` bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding != "gzip":
        raise ApiError(415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported; use gzip")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        # max_length stops a gzip bomb after limit + 1 bytes instead of filling memory.
        data = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise ApiError(400, "invalid_encoding", "the body is not valid gzip") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise _too_large()
    if not inflater.eof or inflater.unused_data:
        raise ApiError(400, "invalid_encoding", "the gzip body is truncated or has trailing data")
    return data


def _config() -> CentralConfig:
    config: CentralConfig = current_app.config["CENTRAL"]
    return config


@bp.post("/api/v1/batches")
def post_batch() -> Response:
    """Receive one batch; answer per event."""
    config = _config()
    body = read_body(config.ingest_max_body_bytes)
    db = get_session()
    device = authenticate_device(db, body)
    if db.get_bind().dialect.name == "sqlite":
        db.rollback()  # on SQLite that read holds the write lock, and decoding needs none
    data = decode_content(body, request.headers.get("Content-Encoding"), config.ingest_max_decompressed_bytes)
    try:
        batch = wire.decode_batch(data, max_events=config.ingest_max_events)
    except wire.WireError as exc:
        raise ApiError(400, exc.reason, exc.message) from None
    if batch.device_id != device.device_id:
        raise ApiError(400, "device_mismatch", "the batch names another device than the one that signed it")
    reply = store_batch(db, device, batch, clock.now())
    log.debug(
        "batch %s from %s: %d accepted, %d duplicate, %d rejected",
        batch.batch_id,
        device.device_id,
        len(reply.accepted),
        len(reply.duplicate),
        len(reply.rejected),
    )
    return jsonify(reply.to_dict())
