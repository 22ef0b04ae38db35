"""HTTP to central: one pooled ``requests`` session, behind a small Protocol tests can satisfy.

Connecting and waiting for an answer have separate timeouts: a store's uplink that drops packets
should fail fast (``sync.connect_timeout``), while central may legitimately take a while to store
a large batch (``sync.timeout``). Every failure becomes a :class:`TransportError` whose message
says what was tried and what to check, never a library's raw exception.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import orjson
import requests

from edge_agent import __version__
from edge_agent.central_url import check_central_url
from edge_agent.tls import PinnedAdapter, TlsTrust, plain_http_message
from shared.agent_settings import AgentConfig
from shared.crypto import HEADER_SIGNATURE

DEFAULT_CONNECT_TIMEOUT = 5.0
PROBE_TIMEOUT = 2.0


class TransportError(Exception):
    """Central could not be reached or did not answer (retriable); the message says what to check."""


@dataclass(frozen=True, slots=True)
class Response:
    """Central's answer: status, body and headers (looked up without regard to case).

    ``foreign`` marks an error answer that is not central's JSON (a web page: a wrong path such as
    /console/, or a proxy's error page); its ``body`` is then :func:`foreign_summary`'s one line,
    so that no caller puts a page of HTML into a message or the log.
    """

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    foreign: bool = False

    def header(self, name: str) -> str | None:
        """The value of header ``name``, whatever its case, or None."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


def foreign_summary(content_type: str, body: bytes, limit: int = 200) -> str | None:
    """One line about an answer that is not JSON (its type and first line, trimmed), or None if it is JSON.

    At most ``limit`` bytes of UTF-8, as callers keep the first 200 bytes of an error body.
    """
    try:
        orjson.loads(body)
    except ValueError:
        pass
    else:
        return None
    kind = content_type.split(";")[0].strip()[:40] or "untyped"
    text = body.decode("utf-8", "replace")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    advice = (
        "check central's URL: it must be central's base address, e.g. https://cdp.example.com, "
        "with no path such as /console/"
    )
    for keep in (60, 40, 20, 0):
        shown = first if len(first) <= keep else first[: max(keep - 3, 0)] + "..."
        line = f"not central's API but a {kind} answer" + (f" ({shown!r})" if shown else "") + f"; {advice}"
        if len(line.encode()) <= limit:
            return line
    return f"not central's API but a {kind} answer; {advice}"[:limit]


class Transport(Protocol):
    """Requests to central; ``timeout`` is how long to wait for the answer once connected."""

    def post(self, path: str, body: bytes, headers: dict[str, str], timeout: float) -> Response: ...

    def get(self, path: str, timeout: float, headers: dict[str, str] | None = None) -> Response: ...


class HttpTransport:
    """Talks to central's base URL over a keep-alive session, verifying its certificate as configured."""

    def __init__(
        self,
        base_url: str,
        *,
        ca_file: str = "",
        fingerprint: str = "",
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        user_agent: str = "edge-agent",
    ) -> None:
        self.base_url = check_central_url(base_url)
        parts = urlsplit(self.base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._netloc = parts.netloc
        self.trust = TlsTrust.from_settings(ca_file, fingerprint)
        self.connect_timeout = connect_timeout
        self._session = requests.Session()
        self._session.headers["User-Agent"] = user_agent
        if self.trust.fingerprint:
            self._session.mount("https://", PinnedAdapter(self.trust.fingerprint))

    def post(self, path: str, body: bytes, headers: dict[str, str], timeout: float) -> Response:
        """POST ``body`` to ``path``; raise TransportError if central cannot be reached or does not answer."""
        return self._request("POST", path, body, headers, timeout)

    def get(self, path: str, timeout: float, headers: dict[str, str] | None = None) -> Response:
        """GET ``path`` (health checks, the signed downlink fetch); raise TransportError like :meth:`post`."""
        return self._request("GET", path, None, headers or {}, timeout)

    def _request(self, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout: float) -> Response:
        try:
            reply = self._session.request(
                method,
                self.base_url + path,
                data=body,
                headers=headers,
                timeout=(self.connect_timeout, timeout),
                verify=self.trust.verify,
                # A 307 or 308 would send the same signed body (customers' phones) to another address,
                # https or not; central's address is what the configuration says, nothing else.
                allow_redirects=False,
            )
            content = reply.content  # read here, so a body cut short fails inside this try
        except requests.RequestException as exc:
            raise TransportError(self.explain(exc, timeout)) from None
        if reply.is_redirect:
            raise TransportError(self._redirected(reply.status_code, path, reply.headers.get("Location", "")))
        if reply.status_code >= 400 and content:
            summary = foreign_summary(reply.headers.get("Content-Type", ""), content)
            if summary is not None:
                return Response(reply.status_code, summary.encode(), dict(reply.headers), foreign=True)
        return Response(reply.status_code, content, dict(reply.headers))

    def _redirected(self, status: int, path: str, location: str) -> str:
        """A redirect in words, naming the address to configure when it moves the whole site (http to https)."""
        target = urljoin(self.base_url + path, location)
        moved = target[: -len(path)] if target.endswith(path) and len(target) > len(path) else None
        fix = f"use {moved} as central's URL" if moved else "if central moved, use its new address as central's URL"
        return (
            f"central at {self.base_url} answered {status} redirecting to {target}; the agent does not follow"
            f" redirects: {fix}"
        )

    def explain(self, exc: requests.RequestException, timeout: float) -> str:
        """What went wrong, in words a technician can act on."""
        text = str(exc)
        where = f"central at {self.base_url}"
        if isinstance(exc, requests.exceptions.SSLError):
            return self.trust.explain(text, self._netloc) or f"TLS with {where} failed"
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return (
                f"no answer from {self._netloc} within {self.connect_timeout:g} s "
                "(wrong address, central down, or a firewall dropping the connection)"
            )
        if isinstance(exc, requests.exceptions.ReadTimeout):
            # urllib3 runs the TLS handshake under the connect timeout and reports it as a read
            # timeout; a plain-HTTP server never answers a TLS hello, so ask it in plain HTTP.
            if self._https and self._speaks_plain_http():
                return plain_http_message(self._netloc)
            return f"{where} accepted the connection but did not answer within {timeout:g} s"
        if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
            return f"{where} cut its answer short (connection lost mid-reply)"
        if isinstance(exc, requests.exceptions.ConnectionError):
            if "Connection refused" in text:
                return f"{self._netloc} refused the connection (is central running, and on this port?)"
            if "NameResolution" in text or "Name or service not known" in text or "Failed to resolve" in text:
                return f"cannot resolve {self._host} (check the name in the URL and this PC's DNS)"
            if "Network is unreachable" in text or "No route to host" in text:
                return f"no route to {self._netloc} (is this PC's network up?)"
            if "RemoteDisconnected" in text or "Connection aborted" in text or "reset by peer" in text:
                return f"{where} closed the connection without answering"
            if "IncompleteRead" in text or "Connection broken" in text:
                return f"{where} cut its answer short (connection lost mid-reply)"
            return f"cannot reach {where} ({type(exc).__name__})"
        return f"request to {where} failed ({type(exc).__name__})"

    def _speaks_plain_http(self) -> bool:
        """True if the server at host:port answers a plain-HTTP request."""
        try:
            with socket.create_connection((self._host, self._port), timeout=PROBE_TIMEOUT) as sock:
                sock.sendall(f"HEAD / HTTP/1.0\r\nHost: {self._netloc}\r\n\r\n".encode())
                return sock.recv(5) == b"HTTP/"
        except OSError:
            return False

    def close(self) -> None:
        self._session.close()


def central_transport(config: AgentConfig, central_url: str) -> HttpTransport:
    """The client for central with the agent's settings: sync's TLS trust, connect timeout and user agent.

    The running agent's sync and every command that talks to central (enroll, rotate-device-key,
    doctor) build their client here, so that none of them trusts or waits otherwise than sync does.
    Raises CentralUrlError or TlsSettingError when the URL or the TLS settings cannot be used.
    """
    return HttpTransport(
        central_url,
        ca_file=config.sync_ca_file,
        fingerprint=config.sync_tls_fingerprint,
        connect_timeout=config.sync_connect_timeout,
        user_agent=f"edge-agent/{__version__}",
    )


class RefusalWatch:
    """A Transport that notes when central refuses this device's signature (401), until it accepts one again.

    Central answers 401 to every signed request of a revoked, retired or re-enrolled device; the
    health monitor reads :attr:`refused_since` to report that at once, instead of waiting for the
    backlog to count as stalled. Unsigned requests (``/healthz``) say nothing about the device.
    """

    def __init__(self, inner: Transport, *, clock: Callable[[], float] = time.time) -> None:
        self.inner = inner
        self._clock = clock
        self._lock = threading.Lock()
        self.refused_since: float | None = None
        self.refusals = 0  # signed requests refused since start

    def post(self, path: str, body: bytes, headers: dict[str, str], timeout: float) -> Response:
        return self._note(headers, self.inner.post(path, body, headers, timeout))

    def get(self, path: str, timeout: float, headers: dict[str, str] | None = None) -> Response:
        return self._note(headers or {}, self.inner.get(path, timeout, headers=headers))

    def _note(self, headers: Mapping[str, str], response: Response) -> Response:
        if HEADER_SIGNATURE in headers:
            with self._lock:
                if response.status == 401:
                    self.refusals += 1
                    if self.refused_since is None:
                        self.refused_since = self._clock()
                elif 200 <= response.status < 300:
                    self.refused_since = None
        return response

    def __getattr__(self, name: str) -> Any:
        # base_url, trust, close() of the transport it watches
        return getattr(self.inner, name)
