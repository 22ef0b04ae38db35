"""Small real servers for the agent's tests: waitress serving a stand-in WSGI app on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from waitress.server import create_server

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], list[bytes]]


def json_app(status: str = "200 OK", doc: Any = None) -> WsgiApp:
    """A WSGI app answering every request with ``doc`` as JSON."""
    body = json.dumps({"ok": True} if doc is None else doc).encode()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app


@contextmanager
def waitress_on_loopback(app: WsgiApp) -> Iterator[str]:
    """Serve ``app`` with waitress on a free loopback port; yield its http:// URL."""
    server = create_server(app, host="127.0.0.1", port=0, threads=2)
    closing = threading.Event()

    def serve() -> None:
        try:
            server.run()
        except (OSError, ValueError):  # waitress's select() on the socket close() just closed
            if not closing.is_set():
                raise

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        closing.set()
        # Request threads first: one finishing after the server (and its trigger) closed would fail
        # pulling the trigger with "Bad file descriptor"; waitress's close does not wait for them.
        server.task_dispatcher.shutdown()
        server.close()


def raw_app(status: str, body: bytes, headers: list[tuple[str, str]] | None = None) -> WsgiApp:
    """A WSGI app answering every request with ``status``, ``body`` and ``headers``, recording what it was sent.

    Each request's (method, path, body) is appended to the app's ``calls`` list.
    """
    calls: list[tuple[str, str, bytes]] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        sent = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        calls.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], sent))
        start_response(status, [("Content-Length", str(len(body))), *(headers or [])])
        return [body]

    app.calls = calls  # type: ignore[attr-defined]
    return app
