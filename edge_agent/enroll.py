"""Enrollment: trade a single-use token from HQ for this device's identity at central."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from edge_agent import __version__
from edge_agent.credentials import Credentials
from edge_agent.transport import HttpTransport, Transport, TransportError
from shared.crypto import b64, new_signing_key

ENROLL_PATH = "/api/v1/enroll"


class EnrollError(Exception):
    """Enrollment failed; the message says why in one line."""


def enroll(
    central_url: str,
    token: str,
    credentials_path: Path,
    *,
    hostname: str | None = None,
    transport: Transport | None = None,
    timeout: float = 30.0,
) -> Credentials:
    """Generate a signing key, register its public half with central, store the credentials."""
    if credentials_path.exists():
        raise EnrollError(f"{credentials_path} exists: this agent is enrolled already (remove it to re-enroll)")
    private_key, public_key = new_signing_key()
    body = json.dumps(
        {
            "token": token.strip(),
            "public_key": b64(public_key),
            "hostname": hostname or socket.gethostname(),
            "agent_version": __version__,
        }
    ).encode()
    transport = transport or HttpTransport(central_url)
    try:
        reply = transport.post(ENROLL_PATH, body, {"Content-Type": "application/json"}, timeout)
    except TransportError as exc:
        raise EnrollError(f"cannot reach central at {central_url}: {exc}") from None
    if reply.status == 401:
        raise EnrollError("central refused the token: it is invalid, expired or already used")
    if reply.status != 201:
        raise EnrollError(f"central answered {reply.status}: {reply.body[:200].decode('utf-8', 'replace')}")
    try:
        doc = json.loads(reply.body)
        creds = Credentials(
            device_id=str(doc["device_id"]),
            store_id=str(doc["store_id"]),
            central_url=central_url.rstrip("/"),
            private_key=private_key,
        )
    except (ValueError, KeyError, TypeError):
        raise EnrollError("central's answer to enrollment was not understood") from None
    creds.save(credentials_path)
    return creds
