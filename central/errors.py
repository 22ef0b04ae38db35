"""One JSON error shape for everything under ``/api/``: ``{"error": {"code": ..., "message": ...}}``.

API clients (agents, scripts) always get JSON with a stable ``code`` they can branch on and a
``message`` for people. Console pages get the console's own error page in the page's language
(:data:`PAGE_RENDERERS`, which the console fills in); any other path keeps Flask's HTML pages.
"""

from __future__ import annotations

import logging
import sqlite3
import traceback
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable
from werkzeug.wrappers import Response as BaseResponse

from central import clock

log = logging.getLogger(__name__)

# Stable codes for Flask's (and waitress's, central.server_errors) own errors on API paths.
HTTP_CODES = {
    400: ("invalid_request", "the request could not be read"),
    401: ("unauthorized", "authentication failed"),
    403: ("forbidden", "not allowed"),
    404: ("not_found", "no such resource"),
    405: ("method_not_allowed", "this method is not allowed here"),
    413: ("too_large", "the request body is too large"),
    431: ("headers_too_large", "the request headers are too large"),
    503: ("unavailable", "the service is unavailable; retry later"),
    415: ("unsupported_media_type", "unsupported media type"),
    500: ("internal_error", "internal server error"),
}


class ApiError(Exception):
    """An error answered with the JSON error shape; raise it from any API view.

    ``details`` go into the error object beside code and message (a refusal's ``reason`` and ``field``).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.details = dict(details or {})


def error_response(status: int, code: str, message: str, details: Mapping[str, Any] | None = None) -> Response:
    """The JSON error body with ``status``."""
    response = jsonify({"error": {"code": code, "message": message, **(details or {})}})
    response.status_code = status
    return response


def _is_api_path() -> bool:
    return request.path.startswith("/api/")


# Path prefix -> a function that answers an HTTP error with an HTML page there, or None to leave it to Flask.
PAGE_RENDERERS: dict[str, Callable[[HTTPException], BaseResponse | None]] = {}


def _page(exc: HTTPException) -> BaseResponse | HTTPException:
    for prefix, render in PAGE_RENDERERS.items():
        if request.path.startswith(prefix):
            try:
                page = render(exc)
            except Exception:  # an error page that fails must not hide the first error
                log.exception("the error page for %s failed", request.path)
                page = None
            return exc if page is None else page
    return exc


def _api_error(exc: ApiError) -> Response:
    response = error_response(exc.status, exc.code, exc.message, exc.details)
    response.headers.update(exc.headers)
    return response


def _http_error(exc: HTTPException) -> BaseResponse | HTTPException:
    if not _is_api_path():
        return _page(exc)
    status = exc.code or 500
    code, message = HTTP_CODES.get(status, ("http_error", exc.name.lower()))
    response = error_response(status, code, message)
    if status == 503:
        response.headers["Retry-After"] = str(getattr(exc, "retry_after", None) or RETRY_AFTER_SECONDS)
    if status == 405 and exc.response is None:
        allowed = getattr(exc, "valid_methods", None)
        if allowed:
            response.headers["Allow"] = ", ".join(allowed)
    return response


def summary(exc: BaseException) -> str:
    """One line naming an error, safe to log or store: for a database error its class, the driver's
    first line and the statement, never the rest of the driver's message (a PostgreSQL ``DETAIL``
    quotes the row's values: phones, member ids, names)."""
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        first = next((line.strip() for line in str(orig).splitlines() if line.strip()), "")
        statement = " ".join((exc.statement or "").split())
        return f"{type(exc).__name__} ({type(orig).__name__}): {first} [SQL: {statement}]"
    return "".join(traceback.format_exception_only(exc)).strip()


def _logged(exc: BaseException) -> str:
    """An unhandled error's traceback as logged: the frames, then :func:`summary` (no chained driver error)."""
    if isinstance(exc, DBAPIError):
        return "Traceback (most recent call last):\n" + "".join(traceback.format_tb(exc.__traceback__)) + summary(exc)
    return "".join(traceback.format_exception(exc)).rstrip()


def _internal_error(exc: InternalServerError) -> BaseResponse | HTTPException:
    original = exc.original_exception or exc
    log.error("unhandled error on %s %s\n%s", request.method, request.path, _logged(original))
    if not _is_api_path():
        return _page(exc)
    return error_response(500, "internal_error", "internal server error")


# Seconds a client is asked to wait (``Retry-After``) when the database cannot take its request.
RETRY_AFTER_SECONDS = 30

# A database condition -> the API's code and message, and the line logged (with the driver's first line).
DATABASE_CONDITIONS = {
    "unreachable": ("unavailable", "the database is unavailable; retry later", "database unavailable"),
    "read_only": (
        "database_read_only",
        "the database is read-only (a standby, or switched to read-only); retry later",
        "database read-only",
    ),
    "full": ("database_full", "the database's disk is full; retry later", "database disk full"),
    # SQLite: another write held the database past its busy timeout (a long recompute, a backup).
    "busy": ("database_busy", "the database is busy with another write; retry later", "database busy"),
}
_PG_READ_ONLY = "25006"  # read_only_sql_transaction: a standby, or default_transaction_read_only
_PG_DISK_FULL = "53100"  # disk_full
_FULL_REFUSED = "cdp.full_refused_at"  # app.extensions: when a write was last refused for a full disk


def full_refused_at(app: Flask) -> datetime | None:
    """When the database last refused one of ``app``'s writes because its disk is full (``/healthz`` reads it)."""
    at: datetime | None = app.extensions.get(_FULL_REFUSED)
    return at


def database_condition(exc: DBAPIError) -> str | None:
    """``unreachable``, ``read_only``, ``full`` or ``busy`` for an error a client should retry; None for a bug."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == _PG_READ_ONLY:
        return "read_only"
    if getattr(orig, "sqlstate", None) == _PG_DISK_FULL:
        return "full"
    primary = (getattr(orig, "sqlite_errorcode", None) or 0) & 0xFF  # the extended code's primary part
    if primary == sqlite3.SQLITE_FULL:
        return "full"
    if primary == sqlite3.SQLITE_READONLY:
        return "read_only"
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return "busy"
    if isinstance(exc, OperationalError | InterfaceError):
        return "unreachable"
    return None


def _database_error(exc: DBAPIError) -> BaseResponse | HTTPException:
    condition = database_condition(exc)
    if condition is None:
        return _internal_error(InternalServerError(original_exception=exc))
    # A database that cannot take the request is a retriable condition for agents, not a server bug:
    # one line, no traceback.
    code, message, what = DATABASE_CONDITIONS[condition]
    if condition == "full":
        current_app.extensions[_FULL_REFUSED] = clock.now()
    first = next((line.strip() for line in str(exc.orig).splitlines() if line.strip()), type(exc.orig).__name__)
    log.error("%s on %s %s: %s", what, request.method, request.path, first)
    if not _is_api_path():
        page = _page(ServiceUnavailable(retry_after=RETRY_AFTER_SECONDS))
        if isinstance(page, BaseResponse):
            return page
        page = Response("The database is unavailable; try again shortly.\n", 503, mimetype="text/plain")
    else:
        page = error_response(503, code, message)
    page.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return page


def init_app(app: Flask) -> None:
    """Register the error handlers on ``app``."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(InternalServerError, _internal_error)
    app.register_error_handler(HTTPException, _http_error)


class ConcurrentChange(Exception):
    """Another transaction changed rows this one decided on (a merge, a moved identifier); retry it."""
