"""Enrollment: trade a single-use token from HQ for this device's identity at central."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import orjson

from edge_agent import __version__
from edge_agent.central_url import CentralUrlError, check_central_url
from edge_agent.config import AgentConfig, load_config
from edge_agent.credentials import Credentials
from edge_agent.device_key import RotationError, discard_stale_rotation
from edge_agent.downlink import remember_central_key
from edge_agent.tls import TlsSettingError
from edge_agent.transport import Transport, TransportError, central_transport
from shared.crypto import b64, new_signing_key

log = logging.getLogger(__name__)

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
    timeout: float | None = None,
    config: AgentConfig | None = None,
) -> Credentials:
    """Generate a signing key, register its public half with central, store the credentials.

    Central is reached as the agent's sync reaches it, with ``config``'s TLS trust and timeouts
    (``sync.timeout`` unless ``timeout`` is given); without ``config``, with the settings' defaults.
    """
    if credentials_path.exists():
        raise EnrollError(f"{credentials_path} exists: this agent is enrolled already (remove it to re-enroll)")
    config = config or load_config(None, {}, check_required=False)
    timeout = config.sync_timeout if timeout is None else timeout
    try:
        central_url = check_central_url(central_url)
        transport = transport or central_transport(config, central_url)
    except (CentralUrlError, TlsSettingError) as exc:
        raise EnrollError(str(exc)) from None
    # A rotation left by the identity this PC had before must never be finished for the new one.
    try:
        stale = discard_stale_rotation(credentials_path)
    except RotationError as exc:
        raise EnrollError(str(exc)) from None
    if stale is not None:
        log.warning("removed %s: a device-key rotation of the previous enrollment, not for the new device", stale)
    private_key, public_key = new_signing_key()
    body = json.dumps(
        {
            "token": token.strip(),
            "public_key": b64(public_key),
            "hostname": hostname or socket.gethostname(),
            "agent_version": __version__,
        }
    ).encode()
    try:
        reply = transport.post(ENROLL_PATH, body, {"Content-Type": "application/json"}, timeout)
    except TransportError as exc:
        raise EnrollError(f"cannot reach central at {central_url}: {exc}") from None
    if reply.status == 401:
        raise EnrollError(
            f"central at {central_url} refused the token: it is invalid, expired or already used "
            "(ask HQ for a new one: `central-server enroll-token --store ID`)"
        )
    if reply.status in (404, 405):
        raise EnrollError(
            f"{central_url}{ENROLL_PATH} answered {reply.status}: this is not central's address "
            "(check the URL, and the path if central sits behind a proxy)"
        )
    if reply.status != 201 and reply.foreign:
        # A web page, not central's API: the URL names a page under central (/console/) or something else.
        raise EnrollError(
            f"central at {central_url} answered {reply.status} to enrollment: {reply.body.decode('utf-8', 'replace')}"
        )
    if reply.status != 201:
        raise EnrollError(
            f"central at {central_url} answered {reply.status} to enrollment: {_error_text(reply.body)} "
            "(try again later; if it persists, HQ should check central's log)"
        )
    try:
        doc = orjson.loads(reply.body)
        creds = Credentials(
            device_id=str(doc["device_id"]),
            store_id=str(doc["store_id"]),
            central_url=central_url.rstrip("/"),
            private_key=private_key,
        )
    except (ValueError, KeyError, TypeError):
        raise EnrollError(f"central at {central_url} answered enrollment with something unexpected") from None
    creds.save(credentials_path)
    # Central's downlink key, so that documents it publishes later can be verified.
    remember_central_key(credentials_path.parent, doc)
    return creds


def _error_text(body: bytes) -> str:
    """Central's error message from its JSON error shape, or the start of the body."""
    try:
        message = orjson.loads(body)["error"]["message"]
        return str(message)[:200]
    except (ValueError, KeyError, TypeError):
        return body[:120].decode("utf-8", "replace").strip() or "(empty answer)"
