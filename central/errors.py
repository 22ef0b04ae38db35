"""One JSON error shape for everything under ``/api/``: ``{"error": {"code": ..., "message": ...}}``.

API clients (agents, scripts) always get JSON with a stable ``code`` they can branch on and a
``message`` for people. Console pages get the console's own error page in the page's language
(:data:`PAGE_RENDERERS`, which the console fills in); any other path keeps Flask's HTML pages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, jsonify, request
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable
from werkzeug.wrappers import Response as BaseResponse

log = logging.getLogger(__name__)

# Stable codes for Flask's own errors on API paths.
_HTTP_CODES = {
    400: ("invalid_request", "the request could not be read"),
    401: ("unauthorized", "authentication failed"),
    403: ("forbidden", "not allowed"),
    404: ("not_found", "no such resource"),
    405: ("method_not_allowed", "this method is not allowed here"),
    413: ("too_large", "the request body is too large"),
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
    code, message = _HTTP_CODES.get(status, ("http_error", exc.name.lower()))
    response = error_response(status, code, message)
    if status == 405 and exc.response is None:
        allowed = getattr(exc, "valid_methods", None)
        if allowed:
            response.headers["Allow"] = ", ".join(allowed)
    return response


def _internal_error(exc: InternalServerError) -> BaseResponse | HTTPException:
    original = exc.original_exception or exc
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=original)
    if not _is_api_path():
        return _page(exc)
    return error_response(500, "internal_error", "internal server error")


def _database_down(exc: OperationalError | InterfaceError) -> BaseResponse:
    # A database that cannot be reached is a retriable condition for agents, not a server bug.
    log.error("database unavailable on %s %s: %s", request.method, request.path, str(exc.orig).strip())
    if not _is_api_path():
        page = _page(ServiceUnavailable())
        if isinstance(page, BaseResponse):
            return page
        return Response("The database is unavailable; try again shortly.\n", 503, mimetype="text/plain")
    return error_response(503, "unavailable", "the database is unavailable; retry later")


def init_app(app: Flask) -> None:
    """Register the error handlers on ``app``."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(OperationalError, _database_down)
    app.register_error_handler(InterfaceError, _database_down)
    app.register_error_handler(InternalServerError, _internal_error)
    app.register_error_handler(HTTPException, _http_error)


class ConcurrentChange(Exception):
    """Another transaction changed rows this one decided on (a merge, a moved identifier); retry it."""
