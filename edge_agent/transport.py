"""HTTP to central: one pooled ``requests`` session, behind a small Protocol tests can satisfy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import requests


class TransportError(Exception):
    """Central could not be reached or did not answer (retriable)."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes


class Transport(Protocol):
    def post(self, path: str, body: bytes, headers: dict[str, str], timeout: float) -> Response: ...


class HttpTransport:
    """POSTs to central's base URL over a keep-alive session."""

    def __init__(self, base_url: str, *, ca_file: str = "", user_agent: str = "edge-agent") -> None:
        self.base_url = base_url.rstrip("/")
        self._session = requests.Session()
        self._session.headers["User-Agent"] = user_agent
        if ca_file:
            self._session.verify = ca_file

    def post(self, path: str, body: bytes, headers: dict[str, str], timeout: float) -> Response:
        try:
            reply = self._session.post(self.base_url + path, data=body, headers=headers, timeout=timeout)
        except requests.RequestException as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from None
        return Response(reply.status_code, reply.content)

    def close(self) -> None:
        self._session.close()
