"""A loopback HTTP proxy in front of central that misbehaves on command, for tests and benchmarks.

::

    proxy = FaultProxy(central.url).start()       # point the agent at proxy.url
    proxy.script(Fault.ERROR, Fault.THROTTLE)      # the next two requests, in this order
    proxy.rates(error=0.2, throttle=0.05, stall=0.05, drop=0.05, seed=7)   # then at random
    proxy.close()

Given a server-side ``ssl.SSLContext`` it also terminates TLS, the way nginx does at HQ. Every
request is recorded (:attr:`FaultProxy.log`) with the fault it met and the headers it carried.
"""

from __future__ import annotations

import contextlib
import email.utils
import enum
import http.client
import random
import socket
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers", "transfer-encoding"}
    | {"upgrade", "content-length", "host"}
)


class Fault(enum.Enum):
    """What the proxy does with one request."""

    PASS = "pass"  # noqa: S105 (not a password)  forward it and relay the answer
    ERROR = "error"  # answer 5xx (503 unless told otherwise) without forwarding
    THROTTLE = "throttle"  # answer 429 with Retry-After without forwarding
    STALL = "stall"  # hold it past the client's timeout, then forward it (central commits late), never answer
    DROP = "drop"  # forward it (central commits), then close the connection without answering
    CUT = "cut"  # forward it, send the headers and half the body, then close
    DELAY = "delay"  # wait, then forward and relay (slow, but inside the client's timeout)
    TLS_REFUSED = "tls_refused"  # recorded when a client abandons the TLS handshake (it did not trust us)


@dataclass
class Exchange:
    """One request as the proxy saw it."""

    method: str
    path: str
    fault: Fault
    headers: dict[str, str] = field(default_factory=dict)
    upstream_status: int | None = None
    detail: str = ""
    at: float = 0.0


class FaultProxy:
    """Forwards to ``upstream`` (central's base URL), applying scripted or random faults."""

    def __init__(
        self,
        upstream: str,
        *,
        tls: ssl.SSLContext | None = None,
        error_status: int = 503,
        retry_after: str = "1",
        stall_seconds: float = 2.0,
        delay_seconds: float = 0.2,
        only_path: str | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.tls = tls
        self.error_status = error_status
        self.retry_after = retry_after
        self.stall_seconds = stall_seconds
        self.delay_seconds = delay_seconds
        self.only_path = only_path
        self.log: list[Exchange] = []
        self._script: list[Fault] = []
        self._rates: list[tuple[float, Fault]] = []
        self._rng = random.Random(0)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _handler_for(self), self)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def script(self, *faults: Fault) -> None:
        """Apply these faults to the next requests, in order, before any random ones."""
        with self._lock:
            self._script.extend(faults)

    def rates(
        self,
        *,
        error: float = 0.0,
        throttle: float = 0.0,
        stall: float = 0.0,
        drop: float = 0.0,
        cut: float = 0.0,
        delay: float = 0.0,
        seed: int = 0,
    ) -> None:
        """Fault each request at random with these probabilities (the rest pass)."""
        table = [
            (error, Fault.ERROR),
            (throttle, Fault.THROTTLE),
            (stall, Fault.STALL),
            (drop, Fault.DROP),
            (cut, Fault.CUT),
            (delay, Fault.DELAY),
        ]
        if sum(p for p, _ in table) > 1:
            raise ValueError("fault probabilities add up to more than 1")
        with self._lock:
            self._rates = [(p, f) for p, f in table if p > 0]
            self._rng = random.Random(seed)

    def counts(self) -> Counter[Fault]:
        """How many requests met each fault so far."""
        with self._lock:
            return Counter(e.fault for e in self.log)

    def choose(self, path: str) -> Fault:
        """The fault for the next request to ``path``."""
        with self._lock:
            if self.only_path is not None and path != self.only_path:
                return Fault.PASS
            if self._script:
                return self._script.pop(0)
            draw = self._rng.random()
            for probability, fault in self._rates:
                if draw < probability:
                    return fault
                draw -= probability
            return Fault.PASS

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            self.log.append(exchange)

    def forward(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str, list[Any], bytes]:
        """Send the request to central; return (status, reason, headers, body)."""
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(method, path, body=body or None, headers=sent)
            reply = conn.getresponse()
            return reply.status, reply.reason, reply.getheaders(), reply.read()
        finally:
            conn.close()

    def wait(self, seconds: float) -> None:
        """Sleep, cut short when the proxy closes."""
        self._closing.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The handshake runs on the connection's own thread, so a client that never finishes it
        # holds up nobody else.
        if self.proxy.tls is not None:
            request.settimeout(10)
            try:
                request = self.proxy.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                self.proxy.record(Exchange("", "", Fault.TLS_REFUSED, detail=str(exc), at=time.time()))
                return
            request.settimeout(None)
        super().finish_request(request, client_address)


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as between the agent and nginx

        def setup(self) -> None:
            super().setup()
            # Headers and body leave in separate writes; without this, Nagle's algorithm holds the
            # body back until the client's delayed ACK, 40 ms per request.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = dict(self.headers.items())
            fault = proxy.choose(self.path)
            exchange = Exchange(self.command, self.path, fault, headers, at=time.time())
            proxy.record(exchange)
            if fault is Fault.ERROR:
                self._answer(proxy.error_status, b'{"error": {"code": "unavailable", "message": "injected"}}')
                return
            if fault is Fault.THROTTLE:
                self._answer(429, b'{"error": {"code": "throttled", "message": "injected"}}', proxy.retry_after)
                return
            if fault is Fault.STALL:
                proxy.wait(proxy.stall_seconds)
            if fault is Fault.DELAY:
                proxy.wait(proxy.delay_seconds)
            try:
                status, reason, upstream_headers, content = proxy.forward(self.command, self.path, body, headers)
            except OSError as exc:
                exchange.detail = f"upstream: {exc}"
                self._answer(502, b'{"error": {"code": "bad_gateway", "message": "central unreachable"}}')
                return
            exchange.upstream_status = status
            if fault in (Fault.STALL, Fault.DROP):
                self._hang_up()
                return
            self.send_response_only(status, reason)
            for name, value in upstream_headers:
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if fault is Fault.CUT:
                self.wfile.write(content[: len(content) // 2])
                self.wfile.flush()
                self._hang_up()
                return
            self.wfile.write(content)

        def _hang_up(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):  # the client may have given up and gone already
                self.connection.shutdown(socket.SHUT_RDWR)

        def _answer(self, status: int, body: bytes, retry_after: str | None = None) -> None:
            self.send_response_only(status)
            self.send_header("Date", email.utils.formatdate(usegmt=True))
            self.send_header("Content-Type", "application/json")
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
