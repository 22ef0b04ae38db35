"""Rotating this device's signing key: central registers a new key on a request signed by the current one.

``edge-agent rotate-device-key`` runs these steps, each safe to interrupt:

1. A new Ed25519 key is generated and written (mode 0600) beside the credentials as
   ``credentials.json.next``; a rerun after an interruption reuses it instead of making another.
2. ``POST /api/v1/devices/rotate-key`` with the new public key, signed by the current key and
   carrying the new key's proof (its signature of :func:`shared.crypto.key_rotation_message`).
3. Once central has answered, ``credentials.json`` is replaced atomically with the new key and
   the ``.next`` file removed.

If the agent is stopped between 2 and 3 (or central's reply is lost), central already holds the new
key and refuses the old one; the rerun finds the ``.next`` file, and when the current key is refused
it asks again signed by the new key itself (which central accepts as "already rotated") and finishes
step 3. The running agent does the same by itself after a refusal (:class:`InterruptedRotation`,
docs/decisions/0078-interrupted-device-key-rotation.md); the command refuses while the agent runs.
"""

from __future__ import annotations

import json
import logging
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

log = logging.getLogger(__name__)

ROTATE_PATH = "/api/v1/devices/rotate-key"


class RotationError(Exception):
    """The key could not be rotated; the message says why and what to do."""


class BothKeysRefused(RotationError):
    """Central refused the current key and the new one: the device is revoked, retired or re-enrolled."""


def pending_path(credentials_path: Path) -> Path:
    """Where the new key waits until central has registered it."""
    return credentials_path.with_name(credentials_path.name + ".next")


def discard_stale_rotation(credentials_path: Path) -> Path | None:
    """Before an enrollment: remove a pending key left by an earlier identity; its path if there was one.

    With no credentials beside it, a ``.next`` file belongs to a device this PC no longer is (its
    credentials were removed to enroll again). Kept, the agent or a rerun of rotate-device-key would
    register that key for the new device (docs/decisions/0080-enrollment-clears-a-stale-rotation.md).
    """
    if credentials_path.exists():
        raise RotationError(f"{credentials_path} exists: the pending key beside it belongs to it")
    pending = pending_path(credentials_path)
    try:
        pending.unlink()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RotationError(
            f"cannot remove {pending}, a device-key rotation left by an earlier enrollment: {exc.strerror}"
            " (remove it, as root or the edge-agent user, and enroll again)"
        ) from None
    dir_fd = os.open(pending.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # gone for good before the new credentials are written
    finally:
        os.close(dir_fd)
    return pending


def read_pending_key(path: Path) -> bytes | None:
    """The new key waiting in ``path`` for central to register it; None if no rotation is waiting."""
    if not path.exists():
        return None
    try:
        key = unb64(read_secret_file(path).decode("ascii").strip())
    except (KeyFileError, ValueError, UnicodeDecodeError) as exc:
        raise RotationError(f"{path}: unreadable pending key ({exc}); remove it and run again") from None
    if len(key) != 32:
        raise RotationError(f"{path}: not an Ed25519 key; remove it and run again")
    return key


def _pending_key(path: Path, generate: Callable[[], tuple[bytes, bytes]]) -> bytes:
    key = read_pending_key(path)
    if key is not None:
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
                raise BothKeysRefused(
                    "central refused both the current and the new key: this device may be revoked or retired "
                    f"(ask HQ: `central-server devices`); {pending} is kept"
                )
        if status != 200:
            raise RotationError(f"central answered {status} to the key rotation; try again later ({pending} is kept)")
        creds = replace(creds, private_key=new_key)
        _replace_credentials(credentials_path, creds)
    pending.unlink(missing_ok=True)
    return creds


class InterruptedRotation:
    """Finishes, in the running agent, a rotation whose reply was lost (decision 0078).

    Once central has registered the new key it refuses the old one with 401. After such a refusal,
    with a new key waiting in ``credentials.json.next``, the agent does what a rerun of
    ``edge-agent rotate-device-key`` does (:func:`rotate_device_key`) and signs with the new key
    from then on. A device whose new key is refused too is left as it is, and said so.
    """

    def __init__(
        self,
        credentials_path: Path,
        transport: Transport,
        *,
        timestamp: Callable[[], str] = wire_timestamp,
        timeout: float = 30.0,
    ) -> None:
        self.credentials_path = credentials_path
        self.pending = pending_path(credentials_path)
        self._transport = transport
        self._timestamp = timestamp
        self._timeout = timeout
        self.refused_too = False  # central refused the new key as well: nothing to finish
        self.last_error: str | None = None

    def after_refusal(self) -> Credentials | None:
        """Central refused the device's signature: finish a waiting rotation; the new credentials if it did."""
        if self.refused_too or not self.pending.exists():
            return None
        try:
            creds = rotate_device_key(
                self.credentials_path, self._transport, timestamp=self._timestamp, timeout=self._timeout
            )
        except BothKeysRefused:
            self.refused_too = True
            log.warning("central refuses the device's key and the new key in %s too; the rotation stays", self.pending)
            return None
        except RotationError as exc:
            if str(exc) != self.last_error:
                log.warning("device-key rotation not finished yet: %s", exc)
            self.last_error = str(exc)
            return None
        log.info("device-key rotation finished: central had the new key; %s holds it now", self.credentials_path)
        return creds

    def refusal_detail(self) -> str | None:
        """What follows "central has refused this device's signature (401) for N s" while a new key waits."""
        if not self.pending.exists():
            return None
        if self.refused_too:
            return (
                f", and the new key in {self.pending} too: revoked, retired or re-enrolled at HQ? check the device"
                " with `central-server devices`; nothing is delivered until central accepts it again"
            )
        return (
            f": a device-key rotation was interrupted ({self.pending} holds the new key); the agent is finishing it"
            + (f" (last attempt: {self.last_error})" if self.last_error else "")
        )
