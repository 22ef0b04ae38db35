"""Request bodies, read within a limit before anything else looks at them.

:func:`read_body` gives the bytes exactly as sent (batches are signed over them); :func:`json_body`
gives the JSON document of a management API request. Both answer 413 ``too_large`` past their limit,
whatever ``Content-Length`` says. JSON is decoded by orjson, which refuses a document nested deeper
than 1,024 levels with a decode error where the standard library's decoder overflows Python's
stack: a body of ``[[[[...`` is a malformed body like any other, not a 500 and a traceback.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import request
from sqlalchemy.orm import QueryableAttribute

from central.errors import ApiError
from central.params import id_limit

# A segment, a trigger, a coupon campaign, consents, a review decision: a few KiB each.
MAX_JSON_BYTES = 64 * 1024


def read_body(limit: int, what: str = "the batch") -> bytes:
    """The request body exactly as sent, refusing more than ``limit`` bytes (declared or actual)."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(what)
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise too_large(what)
    return body


def json_body(limit: int = MAX_JSON_BYTES) -> Any:
    """The JSON body, or None unless it was sent as JSON and decodes (as Flask's ``get_json(silent=True)``)."""
    if not request.is_json:
        return None
    try:
        return orjson.loads(read_body(limit, "the request body"))
    except orjson.JSONDecodeError:
        return None


def json_document(limit: int = MAX_JSON_BYTES) -> Any:
    """The JSON body of a management request that must send one: 415 ``unsupported_media_type`` unless
    sent as ``application/json``, 400 ``invalid_request`` unless it decodes."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send the body as JSON (Content-Type: application/json)")
    try:
        return orjson.loads(read_body(limit, "the request body"))
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_request", "the body must be JSON") from None


def json_object(limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """As :func:`json_document`, and 400 ``invalid_request`` unless the document is an object."""
    doc = json_document(limit)
    if not isinstance(doc, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    return doc


def id_member(doc: dict[str, Any], name: str, column: QueryableAttribute[int], what: str) -> int:
    """``doc[name]``, the id of ``what`` (a ledger row) in ``column``; 400 ``invalid_request`` naming the
    range unless it is an integer the column holds (a larger one names no row, and cannot be bound)."""
    value, highest = doc.get(name), id_limit(column)
    if type(value) is not int or not 1 <= value <= highest:
        raise ApiError(400, "invalid_request", f"{name} must be the integer id of {what}, from 1 to {highest}")
    return value


def too_large(what: str) -> ApiError:
    """413 too_large: ``what`` (the batch, the request body) is larger than allowed."""
    return ApiError(413, "too_large", f"{what} is larger than this server accepts")
