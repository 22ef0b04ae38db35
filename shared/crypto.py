"""Sealing data at rest (AES-256-GCM), secret files with mode 0600, and signed requests (Ed25519).

A sealed blob is ``nonce (12 bytes) || ciphertext || tag (16 bytes)``; the associated data binds it
to its row (an event id, a journal offset) so a blob copied to another row fails to open.

A signed request carries three headers; the signature covers the method, the path, the device, the
timestamp and the SHA-256 of the body exactly as sent (that is, after gzip).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import stat
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
NONCE_BYTES = 12

HEADER_DEVICE = "X-CDP-Device"
HEADER_TIMESTAMP = "X-CDP-Timestamp"
HEADER_SIGNATURE = "X-CDP-Signature"


class KeyFileError(Exception):
    """A secret file that is missing, malformed or readable by others."""


class Sealer:
    """Seals and opens blobs under one 256-bit key."""

    def __init__(self, key: bytes, *, urandom: Callable[[int], bytes] = os.urandom) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("sealing key must be 32 bytes")
        self._aead = AESGCM(key)
        self._urandom = urandom

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = self._urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def seal_many(self, items: list[tuple[bytes, bytes]]) -> list[bytes]:
        """Seal (plaintext, aad) pairs, drawing the nonces' randomness in one call."""
        nonces = self._urandom(NONCE_BYTES * len(items))
        encrypt = self._aead.encrypt
        out = []
        for i, (plaintext, aad) in enumerate(items):
            nonce = nonces[NONCE_BYTES * i : NONCE_BYTES * (i + 1)]
            out.append(nonce + encrypt(nonce, plaintext, aad))
        return out

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """Return the plaintext; raise cryptography's ``InvalidTag`` if the blob or its binding changed."""
        return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)


def derive_key(key: bytes, purpose: str) -> bytes:
    """A sub-key for one purpose (HKDF-SHA256), so one secret file can serve several uses."""
    return HKDF(algorithm=SHA256(), length=KEY_BYTES, salt=None, info=purpose.encode()).derive(key)


def write_secret_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 and ``data``; fail if it exists (never overwrite a key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    # link() fails if the target exists, so two processes racing to create a key cannot both win.
    try:
        os.link(tmp, path)
    finally:
        os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_secret_file(path: Path) -> bytes:
    """Read a secret file, refusing one that group or others can read."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: not found") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path}: mode {stat.S_IMODE(st.st_mode):04o} lets others read it; chmod 600 it")
    return path.read_bytes()


def load_or_create_key(path: Path) -> bytes:
    """The 256-bit key in ``path``, created with mode 0600 on first use."""
    if not path.exists():
        # If another process created it first, use theirs.
        with contextlib.suppress(FileExistsError):
            write_secret_file(path, os.urandom(KEY_BYTES))
    key = read_secret_file(path)
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{path}: expected {KEY_BYTES} bytes, found {len(key)}")
    return key


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def new_signing_key() -> tuple[bytes, bytes]:
    """A fresh Ed25519 key pair as (private raw 32 bytes, public raw 32 bytes)."""
    private = Ed25519PrivateKey.generate()
    return private.private_bytes_raw(), private.public_key().public_bytes_raw()


def _message(method: str, path: str, device_id: str, timestamp: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join(["cdp-v1", method.upper(), path, device_id, timestamp, digest]).encode()


class RequestSigner:
    """Signs requests for one device with its Ed25519 private key."""

    def __init__(self, device_id: str, private_key: bytes) -> None:
        self.device_id = device_id
        self._key = Ed25519PrivateKey.from_private_bytes(private_key)

    def headers(self, method: str, path: str, timestamp: str, body: bytes) -> dict[str, str]:
        signature = self._key.sign(_message(method, path, self.device_id, timestamp, body))
        return {
            HEADER_DEVICE: self.device_id,
            HEADER_TIMESTAMP: timestamp,
            HEADER_SIGNATURE: b64(signature),
        }


def verify_request(
    public_key: bytes, method: str, path: str, device_id: str, timestamp: str, body: bytes, signature: str
) -> bool:
    """True if ``signature`` is the device's signature over this request."""
    try:
        raw = unb64(signature)
        Ed25519PublicKey.from_public_bytes(public_key).verify(raw, _message(method, path, device_id, timestamp, body))
    except (InvalidSignature, ValueError):
        return False
    return True


def keyed_hash(key: bytes, value: str, *, length: int = 16) -> str:
    """A keyed, truncated HMAC-SHA256 in hex: stable for equal inputs, useless without the key."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:length]


def token_digest(token: str) -> str:
    """How a bearer secret (an enrollment token) is stored: SHA-256 hex, never the token itself."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
