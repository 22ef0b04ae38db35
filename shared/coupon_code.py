"""Coupon codes: signed by central, checked offline by any till with central's public key alone.

A code is ``CDPC1:`` + RFC 4648 base32 (no padding; QR alphanumeric mode) of 81 bytes::

    version 1 | central key id (4) | campaign (u32) | serial (u64) | central's Ed25519 signature (64)

The signature covers ``cdp-coupon-v1`` and the first 17 bytes, so a till can tell a forged or
altered code from a real one without a network, and nothing a till holds can mint one. The serial
is unique across the chain (central's ``coupon_codes`` row); a code names its campaign so that a
till checks the campaign's validity window and offline budget from the downlink ``coupons``
document. See docs/decisions/0053-coupons.md.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.crypto import sign

COUPON_PREFIX = "CDPC1:"
CONTEXT = b"cdp-coupon-v1\n"
_VERSION = 1
_HEAD = struct.Struct(">B4sIQ")
_LENGTH = _HEAD.size + 64
MAX_CAMPAIGN = 2**32 - 1

# Refusal reasons, in the order a till checks them.
NOT_A_COUPON = "not-a-coupon"
UNKNOWN_KEY = "unknown-key"
FORGED = "forged"
UNKNOWN_CAMPAIGN = "unknown-campaign"
NOT_THIS_STORE = "not-this-store"
REVOKED = "revoked"
NOT_YET_VALID = "not-yet-valid"
EXPIRED = "expired"
USED_HERE = "used-here"
BUDGET_EXHAUSTED = "budget-exhausted"
REASONS = (
    NOT_A_COUPON,
    UNKNOWN_KEY,
    FORGED,
    UNKNOWN_CAMPAIGN,
    NOT_THIS_STORE,
    REVOKED,
    NOT_YET_VALID,
    EXPIRED,
    USED_HERE,
    BUDGET_EXHAUSTED,
)
ACCEPTED = "accepted"


class CouponFormatError(ValueError):
    """Text that is not a coupon code of this format."""


def key_id(central_public_key: bytes) -> bytes:
    """The 4 bytes that name the central key a code was signed with (keys rotate with secret.key)."""
    return hashlib.sha256(central_public_key).digest()[:4]


@dataclass(frozen=True, slots=True)
class CouponCode:
    """A decoded code; nothing is verified by decoding."""

    key_id: bytes
    campaign: int
    serial: int
    signature: bytes

    def signed_part(self) -> bytes:
        return CONTEXT + _HEAD.pack(_VERSION, self.key_id, self.campaign, self.serial)

    def text(self) -> str:
        raw = self.signed_part()[len(CONTEXT) :] + self.signature
        return COUPON_PREFIX + base64.b32encode(raw).decode("ascii").rstrip("=")

    def verifies(self, central_public_key: bytes) -> bool:
        """True if central's key signed this code (and it is the key the code names)."""
        if self.key_id != key_id(central_public_key):
            return False
        try:
            _public_key(central_public_key).verify(self.signature, self.signed_part())
        except (InvalidSignature, ValueError):
            return False
        return True


@functools.lru_cache(maxsize=16)
def _public_key(raw: bytes) -> Ed25519PublicKey:
    # A till checks every code against the same one or two keys: load each once.
    return Ed25519PublicKey.from_public_bytes(raw)


class CodeSigner:
    """Central's coupon key, loaded once: it makes codes, and tells its own codes from any other text.

    Ed25519 signatures are deterministic (RFC 8032, section 5.1.6): central's key gives exactly one
    signature for a code's signed part, so making it again and comparing it in constant time accepts
    precisely the codes central issued. Signing is about three times cheaper than verifying, and
    central checks every code a till redeems.
    """

    def __init__(self, private_key: bytes) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(private_key)
        self.public_key = self._key.public_key().public_bytes_raw()
        self.key_id = key_id(self.public_key)

    def make(self, campaign: int, serial: int) -> str:
        """The code for ``serial`` of ``campaign`` (the same text every time)."""
        if not 0 < campaign <= MAX_CAMPAIGN or not 0 < serial < 2**64:
            raise ValueError(f"campaign {campaign} or serial {serial} out of range")
        unsigned = CouponCode(self.key_id, campaign, serial, b"")
        return CouponCode(self.key_id, campaign, serial, self._key.sign(unsigned.signed_part())).text()

    def issued(self, code: CouponCode) -> bool:
        """True if this key signed ``code``: what ``code.verifies(public_key)`` answers, for less CPU."""
        if code.key_id != self.key_id:
            return False
        return hmac.compare_digest(self._key.sign(code.signed_part()), code.signature)


def make_code(central_private_key: bytes, central_public_key: bytes, campaign: int, serial: int) -> str:
    """Central signs the code for ``serial`` of ``campaign`` (Ed25519 is deterministic: same text every time)."""
    if not 0 < campaign <= MAX_CAMPAIGN or not 0 < serial < 2**64:
        raise ValueError(f"campaign {campaign} or serial {serial} out of range")
    unsigned = CouponCode(key_id(central_public_key), campaign, serial, b"")
    return CouponCode(unsigned.key_id, campaign, serial, sign(central_private_key, unsigned.signed_part())).text()


def decode(text: str) -> CouponCode:
    """Parse a scanned code; raise CouponFormatError if it is not one."""
    text = text.strip()
    if not text.startswith(COUPON_PREFIX):
        raise CouponFormatError("no coupon prefix")
    body = text[len(COUPON_PREFIX) :]
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except (binascii.Error, ValueError):
        raise CouponFormatError("not base32") from None
    if len(raw) != _LENGTH:
        raise CouponFormatError(f"{len(raw)} bytes instead of {_LENGTH}")
    version, kid, campaign, serial = _HEAD.unpack(raw[: _HEAD.size])
    if version != _VERSION:
        raise CouponFormatError(f"format version {version}")
    return CouponCode(kid, campaign, serial, raw[_HEAD.size :])
