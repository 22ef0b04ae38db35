"""Member codes: a member app's rotating QR code that a till verifies offline, and nothing a till holds can mint.

Central certifies each member's own Ed25519 key (the app keeps the private half); the app signs the
current time step with it. A code is ``CDPM1:`` + RFC 4648 base32 (no padding, QR alphanumeric
mode) of::

    certificate  version 1 | central key id (4) | len | member id | member public key (32)
                 | valid from (u32, Unix s) | valid until (u32) | central's signature (64)
    claim        len | member id | time step (u32, Unix s // step seconds)
    signature    the member key's signature (64) over "cdp-member-code-v1", certificate and claim

About 200 bytes for a 10-character member id: a version 10 QR code. Ed25519 is deterministic, so a
member key shows exactly one code per step and :func:`code_digest` names it for replay caches
without keeping anything that could be shown again. See docs/decisions/0038-member-codes.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace

from shared.crypto import sign, verify

MEMBER_PREFIX = "CDPM1:"
STEP_SECONDS = 30
SKEW_STEPS = 1
CERT_CONTEXT = b"cdp-member-cert-v1\n"
CODE_CONTEXT = b"cdp-member-code-v1\n"
MAX_MEMBER_ID = 64
_VERSION = 1

# Refusal reasons, in the order they are checked.
NOT_A_MEMBER_CODE = "not-a-member-code"
UNKNOWN = "unknown"
FORGED = "forged"
WRONG_MEMBER = "wrong-member"
REVOKED = "revoked"
EXPIRED = "expired"
REPLAYED = "replayed"
OTHER_STORE_REPLAYED = "other-store-replayed"
# Not a refusal: the store holds no keys from central yet, so it keeps the code for central to check.
UNVERIFIED = "unverified"
REASONS = (
    NOT_A_MEMBER_CODE,
    UNKNOWN,
    FORGED,
    WRONG_MEMBER,
    REVOKED,
    EXPIRED,
    REPLAYED,
    OTHER_STORE_REPLAYED,
    UNVERIFIED,
)


class CodeFormatError(ValueError):
    """Bytes that are not a member code or certificate of this format."""


def key_id(central_public_key: bytes) -> bytes:
    """The 4 bytes that name which central key signed a certificate (keys rotate)."""
    return hashlib.sha256(central_public_key).digest()[:4]


def fingerprint(member_public_key: bytes) -> str:
    """A member key's name in revocation lists: 16 hex digits of its SHA-256."""
    return hashlib.sha256(member_public_key).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Certificate:
    """Central's statement that ``public_key`` speaks for ``member_id`` between two times."""

    key_id: bytes
    member_id: str
    public_key: bytes
    valid_from: int
    valid_until: int
    signature: bytes

    def body(self) -> bytes:
        member = self.member_id.encode("utf-8")
        return (
            bytes([_VERSION])
            + self.key_id
            + bytes([len(member)])
            + member
            + self.public_key
            + struct.pack(">II", self.valid_from, self.valid_until)
        )

    def encode(self) -> bytes:
        return self.body() + self.signature


def issue_certificate(
    central_private_key: bytes,
    central_public_key: bytes,
    member_id: str,
    public_key: bytes,
    valid_from: int,
    until: int,
) -> Certificate:
    """Central certifies a member's key (the private key never leaves central's process)."""
    member = member_id.encode("utf-8")
    if not member or len(member) > MAX_MEMBER_ID:
        raise ValueError(f"a member id is 1 to {MAX_MEMBER_ID} bytes of UTF-8, not {member_id!r}")
    unsigned = Certificate(key_id(central_public_key), member_id, public_key, valid_from, until, b"")
    return replace(unsigned, signature=sign(central_private_key, CERT_CONTEXT + unsigned.body()))


@dataclass(frozen=True, slots=True)
class MemberCode:
    """A decoded code: the certificate, the member it claims, its step, and the member key's signature."""

    certificate: Certificate
    member_id: str
    step: int
    signature: bytes

    def signed_part(self) -> bytes:
        member = self.member_id.encode("utf-8")
        return CODE_CONTEXT + self.certificate.encode() + bytes([len(member)]) + member + struct.pack(">I", self.step)

    def text(self) -> str:
        raw = self.signed_part()[len(CODE_CONTEXT) :] + self.signature
        return MEMBER_PREFIX + base64.b32encode(raw).decode("ascii").rstrip("=")


def make_code(certificate: Certificate, member_private_key: bytes, now: float, step_seconds: int = STEP_SECONDS) -> str:
    """What the member app shows at ``now``: the certified key's signature of the current step."""
    unsigned = MemberCode(certificate, certificate.member_id, int(now // step_seconds), b"")
    return replace(unsigned, signature=sign(member_private_key, unsigned.signed_part())).text()


def _take(raw: bytes, pos: int, n: int) -> tuple[bytes, int]:
    if pos + n > len(raw):
        raise CodeFormatError("too short")
    return raw[pos : pos + n], pos + n


def _read_certificate(raw: bytes, pos: int) -> tuple[Certificate, int]:
    version, pos = _take(raw, pos, 1)
    if version[0] != _VERSION:
        raise CodeFormatError(f"format version {version[0]}")
    kid, pos = _take(raw, pos, 4)
    member, pos = _member(raw, pos)
    public_key, pos = _take(raw, pos, 32)
    times, pos = _take(raw, pos, 8)
    signature, pos = _take(raw, pos, 64)
    valid_from, valid_until = struct.unpack(">II", times)
    return Certificate(kid, member, public_key, valid_from, valid_until, signature), pos


def decode_certificate(raw: bytes) -> Certificate:
    """A certificate from its bytes (as the member app keeps it)."""
    cert, pos = _read_certificate(raw, 0)
    if pos != len(raw):
        raise CodeFormatError("trailing bytes")
    return cert


def decode(text: str) -> MemberCode:
    """Parse a scanned code; raise CodeFormatError if it is not one (nothing is verified here)."""
    text = text.strip()
    if not text.startswith(MEMBER_PREFIX):
        raise CodeFormatError("no member-code prefix")
    body = text[len(MEMBER_PREFIX) :]
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except (binascii.Error, ValueError):
        raise CodeFormatError("not base32") from None
    cert, pos = _read_certificate(raw, 0)
    claimed, pos = _member(raw, pos)
    step, pos = _take(raw, pos, 4)
    signature, pos = _take(raw, pos, 64)
    if pos != len(raw):
        raise CodeFormatError("trailing bytes")
    return MemberCode(cert, claimed, struct.unpack(">I", step)[0], signature)


def _member(raw: bytes, pos: int) -> tuple[str, int]:
    length, pos = _take(raw, pos, 1)
    member, pos = _take(raw, pos, length[0])
    try:
        return member.decode("utf-8"), pos
    except UnicodeDecodeError:
        raise CodeFormatError("member id is not UTF-8") from None


def code_digest(text: str) -> str:
    """A code's name in replay caches and scan events: 32 hex digits of its SHA-256 (not reversible)."""
    return hashlib.sha256(text.strip().encode("ascii", "replace")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a till makes of a code: accepted (reason None) or refused with one of :data:`REASONS`."""

    reason: str | None
    detail: str
    member_id: str | None = None
    step: int | None = None
    fingerprint: str | None = None
    digest: str | None = None

    @property
    def accepted(self) -> bool:
        return self.reason is None


def unchecked(text: str) -> Verdict:
    """What a till without central's keys reads from a code: ``unverified`` with its claims, or not a member code.

    Nothing here is proven; the till keeps the code sealed for central, which checks it with its own key.
    """
    try:
        code = decode(text)
    except CodeFormatError as exc:
        return Verdict(NOT_A_MEMBER_CODE, f"not a member code of this chain ({exc})")
    detail = "this store has no member-code keys from central yet; central checks the code"
    return Verdict(
        UNVERIFIED, detail, code.member_id, code.step, fingerprint(code.certificate.public_key), code_digest(text)
    )


def check(
    text: str,
    central_keys: Mapping[bytes, bytes],
    *,
    now: float,
    revoked: frozenset[str] = frozenset(),
    step_seconds: int = STEP_SECONDS,
    skew_steps: int = SKEW_STEPS,
) -> Verdict:
    """Verify a code with central's public keys (by key id) alone; replays are the caller's to check."""
    try:
        code = decode(text)
    except CodeFormatError as exc:
        return Verdict(NOT_A_MEMBER_CODE, f"not a member code of this chain ({exc})")
    cert = code.certificate
    fp = fingerprint(cert.public_key)

    def verdict(reason: str | None, detail: str) -> Verdict:
        return Verdict(reason, detail, code.member_id, code.step, fp, code_digest(text))

    central = central_keys.get(cert.key_id)
    if central is None:
        return verdict(UNKNOWN, "signed by a central key this store does not know (another chain, or not synced)")
    if not verify(central, CERT_CONTEXT + cert.body(), cert.signature):
        return verdict(FORGED, "the certificate is not signed by central")
    if not verify(cert.public_key, code.signed_part(), code.signature):
        return verdict(FORGED, "the code is not signed by the certified member key")
    if code.member_id != cert.member_id:
        return verdict(WRONG_MEMBER, f"the code claims member {code.member_id}, its certificate is {cert.member_id}'s")
    if fp in revoked or f"member:{cert.member_id}" in revoked:
        return verdict(REVOKED, "the member's key or membership was revoked")
    if not cert.valid_from <= now <= cert.valid_until:
        return verdict(EXPIRED, "the member's certificate is outside its validity")
    current = int(now // step_seconds)
    if abs(code.step - current) > skew_steps:
        return verdict(EXPIRED, f"shown for step {code.step}, the till is at step {current} (±{skew_steps} allowed)")
    return verdict(None, "valid")
