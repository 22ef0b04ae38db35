"""``POST /api/v1/batches``: a device's signed, gzipped batch, answered per event.

The body is read with a hard limit before anything else and the signature is checked over the
bytes exactly as sent; only then is it inflated, in chunks taken from a process-wide budget
(``central.ingest.budget``) and up to ``ingest.max_decompressed_bytes``, and decoded, each payload
cleaned against its kind's schema; ``central.ingest.batches`` stores it. The reply also names the
store's current downlink version, so the agent knows when to fetch.
"""

from __future__ import annotations

import dataclasses
import logging
import zlib

from flask import Blueprint, Response, current_app, jsonify, request

from central import clock
from central.auth import authenticate_device
from central.bodies import read_body, too_large
from central.collector import collector_paused
from central.config import CentralConfig
from central.db import READ_ONLY, get_session
from central.errors import ApiError
from central.fleet.downlink import current_version
from central.ingest.batches import store_batch
from central.ingest.budget import Lease, budget_for
from shared import wire

log = logging.getLogger(__name__)
bp = Blueprint("ingest", __name__)

CHUNK = 1024 * 1024
RETRY_AFTER_SECONDS = 5


def _busy() -> ApiError:
    return ApiError(
        503,
        "busy",
        "the server is decoding as many batches as its memory budget allows; retry later",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def decode_content(body: bytes, encoding: str | None, limit: int, lease: Lease | None = None) -> bytes | bytearray:
    """Undo ``Content-Encoding``; a gzip body may expand to at most ``limit`` bytes.

    Inflates a chunk at a time, taking each chunk from ``lease`` first (503 if the budget is spent),
    so neither one request nor many together can inflate more than they are allowed.
    """
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding != "gzip":
        raise ApiError(415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported; use gzip")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    data = bytearray()
    pending = body
    try:
        while True:
            chunk = inflater.decompress(pending, CHUNK)
            pending = inflater.unconsumed_tail
            if len(data) + len(chunk) > limit:
                raise too_large("the batch")
            if chunk and lease is not None and not lease.take(len(chunk)):
                raise _busy()
            data += chunk
            if inflater.eof or (not pending and not chunk):
                break
    except zlib.error:
        raise ApiError(400, "invalid_encoding", "the body is not valid gzip") from None
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
    # The batch's objects live until it is stored: the cycle collector waits (central.collector).
    with budget_for(current_app).lease() as lease, collector_paused():
        data = decode_content(
            body, request.headers.get("Content-Encoding"), config.ingest_max_decompressed_bytes, lease
        )
        del body
        try:
            batch = wire.decode_batch(
                data, max_events=config.ingest_max_events, max_event_chars=config.ingest_max_event_bytes
            )
        except wire.WireError as exc:
            raise ApiError(400, exc.reason, exc.message) from None
        del data
        if batch.device_id != device.device_id:
            raise ApiError(400, "device_mismatch", "the batch names another device than the one that signed it")
        reply = store_batch(db, device, batch, clock.now())
    db.connection(execution_options=READ_ONLY)
    reply = dataclasses.replace(reply, downlink_version=current_version(db, device.store_id))
    db.rollback()
    log.debug(
        "batch %s from %s: %d accepted, %d duplicate, %d rejected",
        batch.batch_id,
        device.device_id,
        len(reply.accepted),
        len(reply.duplicate),
        len(reply.rejected),
    )
    return jsonify(reply.to_dict())
