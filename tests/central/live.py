"""A central app served by real waitress on a loopback port, in this process, for over-the-wire tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import waitress
from flask import Flask


@contextmanager
def serving(app: Flask, threads: int = 4) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) until the block ends; yield its base URL."""
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=threads, ident="central-test")
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        # Keep-alive connections a client left open would keep waitress's loop running: end them.
        for channel in list(getattr(server, "_map", {}).values()):
            channel.close()
        thread.join(timeout=10)
