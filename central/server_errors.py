"""The requests waitress refuses before central sees them, answered and logged like central's own.

waitress reads the body within ``max_request_body_size`` (``ingest.max_body_bytes`` plus a margin)
and parses the request line, headers and chunked framing itself. What it refuses (413 for a body
past the limit, 400 for a malformed request, 431 for headers too large) never reaches the app, so
it came as waitress's plain text, and no access line said it happened. Under ``/api/`` the answer
is now the API's JSON error (``too_large``, ``invalid_request``, ``headers_too_large``), and every
such refusal gets its access line (decision 0101).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask
from waitress.utilities import InternalServerError

from central import access_log
from central.errors import HTTP_CODES


class _RefusalTask(ErrorTask):
    logged = True

    def execute(self) -> None:
        started = time.perf_counter()
        error = self.request.error
        path = self.request.path or ""
        if not path.startswith("/api/"):
            super().execute()
        else:
            code, _ = HTTP_CODES.get(error.code, HTTP_CODES[400])
            body = orjson.dumps({"error": {"code": code, "message": f"{error.reason}: {error.body}"}})
            self.status = f"{error.code} {error.reason}"
            self.response_headers.append(("Content-Type", "application/json"))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)
        if self.logged and not isinstance(error, InternalServerError):  # the app ran: its line is written
            access_log.write(
                remote=str(self.channel.addr[0]) if self.channel.addr else "-",
                who="-",
                method=self.request.command or "-",
                path=path.encode("latin-1", "replace"),
                query=self.request.query or "",
                status=str(error.code),
                sent=self.content_length,
                started=started,
            )


class _UnloggedRefusalTask(_RefusalTask):
    logged = False


class _Channel(HTTPChannel):
    error_task_class = _RefusalTask


class _UnloggedChannel(HTTPChannel):
    error_task_class = _UnloggedRefusalTask


def install(server: Any, *, access_log_on: bool) -> None:
    """Make ``server`` (what ``waitress.create_server`` returned) answer its own refusals as central
    does, each logged when ``access_log_on``."""
    channel = _Channel if access_log_on else _UnloggedChannel
    # One listening socket: the server itself; several: a MultiSocketServer holding them in its map.
    listeners = [server] if isinstance(server, BaseWSGIServer) else list(server.map.values())
    for listener in listeners:
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = channel
