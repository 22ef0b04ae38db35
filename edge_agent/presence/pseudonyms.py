"""Pseudonyms for device addresses: raw MACs become a keyed hash the moment they are captured.

``pseudonym = HMAC-SHA256(salt(day), address)[:16]`` with ``salt(day) = HMAC-SHA256(secret,
"presence-salt|" + local date)``. The secret is per store, lives in a 0600 file on the store PC and is
never synced; the salt changes at local midnight, so the same phone gets an unrelated pseudonym each
day and nobody, central included, can recover or test an address without the secret.

An address whose locally-administered bit is set was randomized by the phone's OS: it is flagged so
that it only ever feeds aggregate counts, never a visit of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.presence.calendar import StoreCalendar
from shared.crypto import load_or_create_key

PSEUDONYM_BYTES = 16
_HEX = frozenset("0123456789abcdef")


class AddressError(ValueError):
    """Text that is not a 48-bit MAC address."""


@dataclass(frozen=True, slots=True)
class Device:
    """A device as presence sees it: the day's pseudonym and whether its address is randomized."""

    key: bytes
    randomized: bool


def mac_bytes(address: str | bytes) -> bytes:
    """A MAC address (``aa:bb:cc:dd:ee:ff``, dashes, dots or bare hex, any case, or 6 bytes) as 6 bytes."""
    if isinstance(address, bytes):
        if len(address) != 6:
            raise AddressError(f"a MAC address has 6 bytes, not {len(address)}")
        return address
    digits = address.lower().replace(":", "").replace("-", "").replace(".", "")
    if len(digits) != 12 or not set(digits) <= _HEX:
        raise AddressError("not a MAC address")
    return bytes.fromhex(digits)


def locally_administered(address: bytes) -> bool:
    """True when the address's locally-administered bit is set (randomized by the phone)."""
    return bool(address[0] & 0x02)


def load_secret(path: Path) -> bytes:
    """The store's presence secret, created (32 random bytes, mode 0600) on first use."""
    return load_or_create_key(path)


class Pseudonymizer:
    """Turns addresses and rotating ids into the day's pseudonyms."""

    def __init__(self, secret: bytes, calendar: StoreCalendar, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("the presence secret must be at least 16 bytes")
        self._secret = secret
        self._calendar = calendar
        self._clock = clock
        self._window = (0.0, 0.0)
        self._salt = b""

    def salt(self, at: float) -> bytes:
        """The salt of the local day holding ``at``."""
        start, end = self._window
        if not start <= at < end:
            self._window = self._calendar.day_window(at)
            day = self._calendar.day(at).isoformat()
            self._salt = hmac.digest(self._secret, b"presence-salt|" + day.encode(), hashlib.sha256)
        return self._salt

    def pseudonym(self, identifier: bytes, at: float | None = None) -> bytes:
        """The day's pseudonym of any identifier (an address's 6 bytes, a beacon's rotating id)."""
        moment = self._clock() if at is None else at
        return hmac.digest(self.salt(moment), identifier, hashlib.sha256)[:PSEUDONYM_BYTES]

    def device(self, address: str | bytes, at: float | None = None, *, randomized: bool | None = None) -> Device:
        """The device behind an address; raises AddressError for anything but a MAC address.

        ``randomized`` defaults to the locally-administered bit, which is right for Wi-Fi. BLE says
        it in the address type instead (BlueZ's ``AddressType: random``), so BLE sources pass it.
        """
        raw = mac_bytes(address)
        flag = locally_administered(raw) if randomized is None else randomized
        return Device(self.pseudonym(raw, at), flag)
