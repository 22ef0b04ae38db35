"""A central app served by real waitress on a loopback port, in this process, for over-the-wire tests."""

from __future__ import annotations

import contextlib
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
        # The request threads first: one still finishing a request pulls the trigger when it is
        # done, and closing the server closes the trigger (waitress's own close does not wait for
        # them), which failed that thread with "Bad file descriptor".
        server.task_dispatcher.shutdown()
        # Then closed in the loop's own thread (through its trigger): a socket closed from here while
        # the loop waits in select() on it made that thread fail with "Bad file descriptor".
        try:
            server.trigger.pull_trigger(lambda: _close_all(server))
        except OSError:
            # The trigger's pipe is gone already (seen once in a two-worker run, after the block's
            # requests had all been answered): nothing can wake the loop, so close from here.
            with contextlib.suppress(OSError):
                _close_all(server)
        thread.join(timeout=10)


def _close_all(server: waitress.server.BaseWSGIServer) -> None:
    """End keep-alive connections a client left open, then the listening socket and the trigger: the loop ends."""
    for channel in list(server._map.values()):
        if channel is not server and channel is not server.trigger:
            channel.close()
    server.close()
