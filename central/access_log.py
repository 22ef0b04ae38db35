"""One line per HTTP request: who asked for what, the answer, its size and how long it took.

Logged by ``central.access`` at INFO when the response is finished (a streamed export is timed to
its last byte), in logfmt so that log collectors split it into fields::

    remote=10.1.2.3 who=device:01J… method=POST path=/api/v1/batches status=200 bytes=164 ms=48

``who`` is the signed device, the online source or the console user the request authenticated as
(``-`` when none). Query strings carry what people type into search boxes (a phone number, a
name), so only their parameter names are logged; a path is logged percent-encoded, so nothing in
it can start a new line or fake a field. A ``/healthz`` answered 200 is not logged: load
balancers ask every few seconds (decision 0101).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from flask import request

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("central.access")

WHO = "cdp.who"
"""The environ key under which the request's authenticated party is noted for this log."""

_SAFE = "/:@!$&'()*+,;=-._~"  # what may stay unencoded in a path


def attribute(who: str) -> None:
    """Note that this request authenticated as ``who`` (``device:…``, ``source:…``, ``user:…``)."""
    request.environ[WHO] = who


def init_app(app: Any) -> None:
    """Log every request the app answers."""
    app.wsgi_app = AccessLog(app.wsgi_app)


class AccessLog:
    """WSGI middleware writing the access line once the response has been sent."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        status = ["-"]

        def noting_status(line: str, headers: Any, exc_info: Any = None) -> Any:
            status[0] = line.split(" ", 1)[0]
            return start_response(line, headers, exc_info)

        try:
            body = self.app(environ, noting_status)
        except BaseException:
            _write(environ, "500", 0, started)
            raise
        return _Counted(body, environ, status, started)


class _Counted:
    """The response body, passed through, counting its bytes; logs when the server closes it."""

    def __init__(self, body: Iterable[bytes], environ: WSGIEnvironment, status: list[str], started: float) -> None:
        self.body, self.environ, self.status, self.started = body, environ, status, started
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            _write(self.environ, self.status[0], self.sent, self.started)


def _write(environ: WSGIEnvironment, status: str, sent: int, started: float) -> None:
    # WSGI hands the path over as its bytes read as Latin-1: encoded again, exactly as sent.
    path = (environ.get("PATH_INFO", "") or "/").encode("latin-1", "replace")
    write(
        remote=environ.get("REMOTE_ADDR") or "-",
        who=environ.get(WHO, "-"),
        method=environ.get("REQUEST_METHOD", "-"),
        path=path,
        query=environ.get("QUERY_STRING", ""),
        status=status,
        sent=sent,
        started=started,
    )


def write(
    *, remote: str, who: str, method: str, path: bytes, query: str, status: str, sent: int, started: float
) -> None:
    """Log one request's line (also for the requests waitress refuses itself: central.server_errors)."""
    if (status == "200" and path == b"/healthz") or not log.isEnabledFor(logging.INFO):
        return
    fields = [
        f"remote={_token(remote)}",
        f"who={_token(who)}",
        f"method={_token(method or '-')}",
        f"path={quote(path or b'/', safe=_SAFE)}",
    ]
    if names := _parameter_names(query):
        fields.append(f"query={names}")
    fields += [f"status={status}", f"bytes={sent}", f"ms={(time.perf_counter() - started) * 1000:.0f}"]
    log.info("%s", " ".join(fields))


def _parameter_names(query: str) -> str:
    """The query's parameter names, each once, in order (their values are left out)."""
    names = dict.fromkeys(name for name, _ in parse_qsl(query, keep_blank_values=True))
    return ",".join(quote(name, safe="") for name in names)


def _token(value: str) -> str:
    """``value`` as one logfmt token: percent-encoded where it holds a space, a quote, ``=`` or a control."""
    return quote(value, safe="/:@!$&'()*+,;-._~")
