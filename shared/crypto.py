"""Sealing data at rest (AES-256-GCM), secret files with mode 0600, and signed requests (Ed25519).

A sealed blob is ``nonce (12 bytes) || ciphertext || tag (16 bytes)``; the associated data binds it
to its row (an event id, a journal offset) so a blob copied to another row fails to open.

A signed request carries four headers; the signature covers the method, the path (with its query
string), the device, the timestamp, a random nonce and the SHA-256 of the body exactly as sent
(that is, after gzip). Central accepts a timestamp within its clock-skew window and each nonce
once, so a captured request cannot be replayed.

Central also signs the documents it publishes to stores (the downlink) with its own Ed25519 key;
:func:`document_message` is what both ends sign and verify.
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
from typing import Any

import orjson
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
HEADER_NONCE = "X-CDP-Nonce"
NONCE_BYTES_REQUEST = 16
SIGNATURE_BYTES = 64


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


def replace_secret_file(path: Path, data: bytes) -> None:
    """Atomically replace (or create) ``path`` with ``data``, mode 0600: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
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


def public_key_of(private_key: bytes) -> bytes:
    """The raw public half of a raw Ed25519 private key."""
    return Ed25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes_raw()


def sign(private_key: bytes, message: bytes) -> bytes:
    """The 64-byte Ed25519 signature (RFC 8032, pure Ed25519) of ``message``."""
    return Ed25519PrivateKey.from_private_bytes(private_key).sign(message)


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` is the holder of ``public_key``'s Ed25519 signature of ``message``."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def new_nonce() -> str:
    """A fresh request nonce: 128 random bits, URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(os.urandom(NONCE_BYTES_REQUEST)).rstrip(b"=").decode("ascii")


def request_message(method: str, path: str, device_id: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What a device signs for one request; ``path`` includes the query string, if any."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join(["cdp-v2", method.upper(), path, device_id, timestamp, nonce, digest]).encode()


class RequestSigner:
    """Signs requests for one device with its Ed25519 private key, each with a fresh nonce."""

    def __init__(self, device_id: str, private_key: bytes, *, nonce: Callable[[], str] = new_nonce) -> None:
        self.device_id = device_id
        self._key = Ed25519PrivateKey.from_private_bytes(private_key)
        self._nonce = nonce

    @property
    def public_key(self) -> bytes:
        """The raw public half of the signing key."""
        return self._key.public_key().public_bytes_raw()

    def headers(self, method: str, path: str, timestamp: str, body: bytes) -> dict[str, str]:
        """The authentication headers for one request; call again for every attempt (new nonce)."""
        nonce = self._nonce()
        signature = self._key.sign(request_message(method, path, self.device_id, timestamp, nonce, body))
        return {
            HEADER_DEVICE: self.device_id,
            HEADER_TIMESTAMP: timestamp,
            HEADER_NONCE: nonce,
            HEADER_SIGNATURE: b64(signature),
        }

    def sign(self, message: bytes) -> bytes:
        """The raw signature of ``message`` (for proofs that go beside the request headers)."""
        return self._key.sign(message)


def verify_request(
    public_key: bytes,
    method: str,
    path: str,
    device_id: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    nonce: str,
) -> bool:
    """True if ``signature`` (base64) is the device's signature over this request."""
    try:
        raw = unb64(signature)
    except ValueError:
        raw = b"\0" * SIGNATURE_BYTES  # still verify, so a malformed signature costs what a wrong one does
    return verify(public_key, request_message(method, path, device_id, timestamp, nonce, body), raw)


HEADER_NEW_KEY_PROOF = "X-CDP-New-Key-Proof"


def key_rotation_message(device_id: str, new_public_key: str, timestamp: str, nonce: str) -> bytes:
    """What a device's new key signs (sent as ``X-CDP-New-Key-Proof``) to show its holder asks for the
    rotation; bound to the request's timestamp and nonce, so it proves nothing for any other request."""
    return "\n".join(["cdp-rotate-key-v1", device_id, new_public_key, timestamp, nonce]).encode()


def canonical_json(value: Any) -> bytes:
    """Compact JSON with sorted keys: the same bytes for the same value at both ends."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def document_message(store_id: str, name: str, version: int, body: Any) -> bytes:
    """What central signs for one downlink document, bound to its store, name and version."""
    digest = hashlib.sha256(canonical_json(body)).hexdigest()
    return "\n".join(["cdp-downlink-v1", store_id, name, str(version), digest]).encode()


def keyed_hash(key: bytes, value: str, *, length: int = 16) -> str:
    """A keyed, truncated HMAC-SHA256 in hex: stable for equal inputs, useless without the key."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:length]


def token_digest(token: str) -> str:
    """How a bearer secret (an enrollment token) is stored: SHA-256 hex, never the token itself."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
