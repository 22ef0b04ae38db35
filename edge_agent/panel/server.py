"""The cashier panel's web server: one page, its static files, and a server-sent event stream of scans.

The till PC's browser opens ``http://127.0.0.1:PORT/`` (``panel.port``); the page's script listens
on ``/events`` (``EventSource``, so no polling: the browser reconnects by itself and sends
``Last-Event-ID``). Each scan is one event whose data is the card from
:func:`edge_agent.panel.view.scan_card` plus a sequence number and the time.

Served by the standard library's ``ThreadingHTTPServer``: the agent's dependencies include no HTTP
server, and a WSGI server would tie one worker to each open stream and buffer its writes (see
docs/decisions/0054-cashier-panel.md). It listens on loopback unless ``panel.screen_address`` names
another PC that shows it, answers only this PC and that one (by the peer's address), and only
requests addressed to a name it listens on (a page on another site cannot reach it through DNS
rebinding), and sends a Content-Security-Policy that allows only its own script.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

import orjson

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0  # a comment line this often keeps proxies and the browser from timing the stream out
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/panel.js": ("panel.js", "text/javascript; charset=utf-8"),
    "/panel.css": ("panel.css", "text/css; charset=utf-8"),
    "/icon.svg": ("icon.svg", "image/svg+xml"),
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


IDLE_CARD: dict[str, Any] = {"kind": "idle"}  # what the panel shows once a scan's card has expired


class PanelError(Exception):
    """The panel cannot listen where its settings say (port taken, address not on this PC)."""


class Hub:
    """The last scan's card, and a way for each open stream to wait for the next one.

    A card is the customer in front of the till *now*: ``card_seconds`` after it was published it
    gives way to the idle card (the panel goes back to waiting), so neither an open page nor one
    opened later keeps showing the previous customer's name, phone and coupons.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, card_seconds: float = 120.0) -> None:
        self.clock = clock
        self.card_seconds = card_seconds
        self._changed = threading.Condition()
        self._seq = 0
        self._last = b""
        self._expires_at: float | None = None
        self.closed = False
        # Event ids are "run.seq": a browser that reconnects after the agent restarted starts afresh.
        self.run = f"{int(clock() * 1000):x}"

    def publish(self, card: dict[str, Any]) -> int:
        """Make ``card`` the last scan; every open stream sends it at once. Returns its sequence number."""
        with self._changed:
            return self._publish(card, self.card_seconds)

    def _publish(self, card: dict[str, Any], lifetime: float | None) -> int:
        now = self.clock()
        self._seq += 1
        self._last = orjson.dumps({"seq": self._seq, "at": round(now, 3), **card})
        self._expires_at = None if lifetime is None else now + lifetime
        self._changed.notify_all()
        return self._seq

    def _expire(self) -> None:
        """Put the idle card in place of a card whose time is up (the caller holds the lock)."""
        if self._expires_at is not None and self.clock() >= self._expires_at:
            self._publish(IDLE_CARD, None)

    def next_after(self, seq: int, timeout: float) -> tuple[int, bytes] | None:
        """The last card if it is newer than ``seq`` (waiting up to ``timeout``), else None.

        A card whose time is up is replaced by the idle card first, so that is what a stream gets.
        """
        with self._changed:
            self._expire()
            wait = timeout
            if self._expires_at is not None:
                wait = min(wait, max(0.0, self._expires_at - self.clock()))
            self._changed.wait_for(lambda: self._seq > seq or self.closed, wait)
            self._expire()
            return (self._seq, self._last) if self._seq > seq and not self.closed else None

    def close(self) -> None:
        with self._changed:
            self.closed = True
            self._changed.notify_all()


def _listen_problem(host: str, port: int, exc: OSError) -> str:
    """Why the panel cannot listen, naming the setting to change."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return (
            f"the cashier panel cannot listen on {host}:{port} ({reason}): panel.host {host} is not an address of"
            " this PC; set panel.host to 127.0.0.1 (or to this PC's address on the screen's network)"
        )
    return (
        f"the cashier panel cannot listen on {host}:{port} ({reason}); set panel.port to a free port, or to 0 to"
        " turn the panel off"
    )


def _static(name: str) -> bytes:
    return resources.files("edge_agent.panel").joinpath("static", name).read_bytes()


class PanelServer:
    """Serves the panel for one hub on ``host:port`` from a thread of its own."""

    def __init__(self, hub: Hub, host: str = "127.0.0.1", port: int = 0, *, screen: str = "") -> None:
        """``screen``: the one other PC (an IP address) allowed to show the panel; "" for this PC only."""
        self.hub = hub
        files = {path: (_static(name), kind) for path, (name, kind) in STATIC.items()}
        server = self

        class Handler(_Handler):
            pass

        Handler.files = files
        Handler.panel = server
        try:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise PanelError(_listen_problem(host, port, exc)) from None
        self.httpd.daemon_threads = True
        self.host, self.port = host, int(self.httpd.server_address[1])
        self.names = {host, "127.0.0.1", "localhost", "[::1]"}
        self.screen = ipaddress.ip_address(screen) if screen else None
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="panel", daemon=True)

    def allows(self, peer: str) -> bool:
        """Whether a connection from ``peer`` may see the panel: this PC (loopback), or the named screen."""
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.is_loopback or address == self.screen

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> None:
        self._thread.start()
        log.info("cashier panel at %s", self.url)

    def stop(self) -> None:
        self.hub.close()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


class _Handler(BaseHTTPRequestHandler):
    files: dict[str, tuple[bytes, str]]
    panel: PanelServer
    protocol_version = "HTTP/1.1"
    server_version = "edge-agent-panel"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # Each event is one small write; send it now rather than wait to fill a segment.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no line per request; the agent logs state changes, not traffic

    def do_GET(self) -> None:
        # The peer's address, not the Host header (which any client writes as it likes), says who is asking.
        if not self.panel.allows(self.client_address[0]):
            refusal = b"this panel answers only the till PC and panel.screen_address\n"
            self._send(403, refusal, "text/plain; charset=utf-8")
            return
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        # The address this connection reached counts as a name of the panel (a screen PC names the till's address).
        if host not in self.panel.names and host != self.connection.getsockname()[0]:
            self._send(421, b"this panel answers only on the till PC's own address\n", "text/plain; charset=utf-8")
            return
        path = self.path.split("?", 1)[0]
        if path == "/events":
            self._stream()
        elif path in self.files:
            body, kind = self.files[path]
            self._send(200, body, kind)
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        for name, value in {**HEADERS, "Content-Type": kind, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _stream(self) -> None:
        self.send_response(200)
        for name, value in {**HEADERS, "Content-Type": "text/event-stream; charset=utf-8"}.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        hub = self.panel.hub
        run, _, number = (self.headers.get("Last-Event-ID") or "").partition(".")
        seen = int(number) if run == hub.run and number.isdigit() else 0
        try:
            self.wfile.write(b"retry: 1000\n\n")
            while not hub.closed:
                update = hub.next_after(seen, KEEPALIVE_SECONDS)
                if update is None:
                    self.wfile.write(b": keepalive\n\n")
                    continue
                seen, data = update
                self.wfile.write(b"id: %s.%d\nevent: scan\ndata: %s\n\n" % (hub.run.encode(), seen, data))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page was closed or reloaded
