"""Rotating this device's signing key: central registers a new key on a request signed by the current one.

``edge-agent rotate-device-key`` runs these steps, each safe to interrupt:

1. A new Ed25519 key is generated and written (mode 0600) beside the credentials as
   ``credentials.json.next``; a rerun after an interruption reuses it instead of making another.
2. ``POST /api/v1/devices/rotate-key`` with the new public key, signed by the current key and
   carrying the new key's proof (its signature of :func:`shared.crypto.key_rotation_message`).
3. Once central has answered, ``credentials.json`` is replaced atomically with the new key and
   the ``.next`` file removed.

If the agent is stopped between 2 and 3, central already holds the new key and refuses the old
one; the rerun finds the ``.next`` file, and when the current key is refused it asks again signed
by the new key itself (which central accepts as "already rotated") and finishes step 3.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from edge_agent.credentials import Credentials
from edge_agent.transport import Transport, TransportError
from shared.crypto import (
    HEADER_NEW_KEY_PROOF,
    HEADER_NONCE,
    HEADER_TIMESTAMP,
    KeyFileError,
    RequestSigner,
    b64,
    key_rotation_message,
    new_signing_key,
    public_key_of,
    read_secret_file,
    sign,
    unb64,
    write_secret_file,
)
from shared.wire import timestamp as wire_timestamp

ROTATE_PATH = "/api/v1/devices/rotate-key"


class RotationError(Exception):
    """The key could not be rotated; the message says why and what to do."""


def pending_path(credentials_path: Path) -> Path:
    """Where the new key waits until central has registered it."""
    return credentials_path.with_name(credentials_path.name + ".next")


def _pending_key(path: Path, generate: Callable[[], tuple[bytes, bytes]]) -> bytes:
    if path.exists():
        try:
            key = unb64(read_secret_file(path).decode("ascii").strip())
        except (KeyFileError, ValueError, UnicodeDecodeError) as exc:
            raise RotationError(f"{path}: unreadable pending key ({exc}); remove it and run again") from None
        if len(key) != 32:
            raise RotationError(f"{path}: not an Ed25519 key; remove it and run again")
        return key
    key, _ = generate()
    write_secret_file(path, b64(key).encode("ascii") + b"\n")
    return key


def _ask(transport: Transport, creds: Credentials, signer_key: bytes, new_key: bytes, now: str, timeout: float) -> int:
    new_public = b64(public_key_of(new_key))
    body = json.dumps({"public_key": new_public}).encode()
    headers = RequestSigner(creds.device_id, signer_key).headers("POST", ROTATE_PATH, now, body)
    proof = key_rotation_message(creds.device_id, new_public, headers[HEADER_TIMESTAMP], headers[HEADER_NONCE])
    headers[HEADER_NEW_KEY_PROOF] = b64(sign(new_key, proof))
    headers["Content-Type"] = "application/json"
    try:
        return transport.post(ROTATE_PATH, body, headers, timeout).status
    except TransportError as exc:
        raise RotationError(f"cannot reach central at {creds.central_url}: {exc}") from None


def _replace_credentials(path: Path, creds: Credentials) -> None:
    staging = path.with_name(path.name + ".rotating")
    staging.unlink(missing_ok=True)
    creds.save(staging)  # same format and mode as enrollment writes
    os.replace(staging, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def rotate_device_key(
    credentials_path: Path,
    transport: Transport,
    *,
    timestamp: Callable[[], str] = wire_timestamp,
    generate: Callable[[], tuple[bytes, bytes]] = new_signing_key,
    timeout: float = 30.0,
) -> Credentials:
    """Register a new signing key with central and switch the credentials to it; return the new ones."""
    creds = Credentials.load(credentials_path)
    pending = pending_path(credentials_path)
    new_key = _pending_key(pending, generate)
    if new_key != creds.private_key:
        status = _ask(transport, creds, creds.private_key, new_key, timestamp(), timeout)
        if status == 401:
            # Perhaps central registered the new key before an interruption: the new key proves it.
            status = _ask(transport, creds, new_key, new_key, timestamp(), timeout)
            if status == 401:
                raise RotationError(
                    "central refused both the current and the new key: this device may be revoked or retired "
                    f"(ask HQ: `central-server devices`); {pending} is kept"
                )
        if status != 200:
            raise RotationError(f"central answered {status} to the key rotation; try again later ({pending} is kept)")
        creds = replace(creds, private_key=new_key)
        _replace_credentials(credentials_path, creds)
    pending.unlink(missing_ok=True)
    return creds
