"""Member beacons: the rotating id a member app advertises, and how a store resolves it without tracking anyone else.

Each certified member key has a beacon root (32 bytes) that central derives and hands to the app with
the certificate. The app never advertises the root; it advertises, as an Eddystone-EID frame, an
8-byte id that changes every window::

    day key    HMAC-SHA256(root, "cdp-beacon-day|" + UTC day number)[:16]
    beacon id  HMAC-SHA256(day key, "cdp-beacon-id|" + window number as u32)[:8]
    frame      service 0xFEAA data: 30 | tx power | beacon id      (Eddystone-EID layout)

Two ids of different windows are unrelated to anyone without that day's key, so a passer-by cannot
follow a phone from one window to the next. Stores receive day keys, never roots, and only for
members whose location consent is on (decision 0049): a copied store PC resolves those members
for the few days published, and nobody else ever.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable, Mapping

WINDOW_SECONDS = 512  # Eddystone-EID's rotation exponent 9
SKEW_WINDOWS = 1  # a phone's clock may be a window early or late
DAY_SECONDS = 86400
ID_BYTES = 8
DAY_KEY_BYTES = 16
EDDYSTONE_EID = 0x30
_DAY = b"cdp-beacon-day|"
_ID = b"cdp-beacon-id|"


def day_of(at: float) -> int:
    """The UTC day number (days since 1970-01-01) of a moment."""
    return int(at // DAY_SECONDS)


def window_of(at: float) -> int:
    """The rotation window number of a moment."""
    return int(at // WINDOW_SECONDS)


def day_key(root: bytes, day: int) -> bytes:
    """One day's resolving key for a member key's beacon root."""
    return hmac.new(root, _DAY + str(day).encode("ascii"), hashlib.sha256).digest()[:DAY_KEY_BYTES]


def beacon_id(key_of_day: bytes, window: int) -> bytes:
    """The id advertised during ``window`` (the day key must be that window's day's)."""
    return hmac.new(key_of_day, _ID + struct.pack(">I", window & 0xFFFFFFFF), hashlib.sha256).digest()[:ID_BYTES]


def advertised_id(root: bytes, at: float) -> bytes:
    """What the member app advertises at ``at``."""
    window = window_of(at)
    return beacon_id(day_key(root, day_of(window * WINDOW_SECONDS)), window)


def eddystone_eid_service_data(identifier: bytes, tx_power: int = -59) -> bytes:
    """The Eddystone service data (UUID 0xFEAA) that carries an 8-byte id."""
    if len(identifier) != ID_BYTES:
        raise ValueError(f"an Eddystone-EID id is {ID_BYTES} bytes")
    return bytes([EDDYSTONE_EID, tx_power & 0xFF]) + identifier


class BeaconResolver:
    """Beacon ids of the members a store may resolve, by window; unknown ids stay anonymous.

    ``day_keys`` maps a UTC day number to ``(member id, day key)`` pairs. Ids are computed for the
    windows around the one asked about and kept until the window moves on: a few HMACs per member
    every ``WINDOW_SECONDS``, then a dictionary look-up per advertisement.
    """

    def __init__(self, day_keys: Mapping[int, Iterable[tuple[str, bytes]]] | None = None) -> None:
        self._days = {day: tuple(pairs) for day, pairs in (day_keys or {}).items()}
        self._window: int | None = None
        self._ids: dict[bytes, str] = {}

    @property
    def members(self) -> int:
        """Distinct members resolvable on any published day."""
        return len({member for pairs in self._days.values() for member, _ in pairs})

    def _table(self, window: int) -> dict[bytes, str]:
        if window != self._window:
            ids: dict[bytes, str] = {}
            for w in range(window - SKEW_WINDOWS, window + SKEW_WINDOWS + 1):
                for member, key in self._days.get(day_of(w * WINDOW_SECONDS), ()):
                    ids[beacon_id(key, w)] = member
            self._window, self._ids = window, ids
        return self._ids

    def resolve(self, identifier: bytes, at: float) -> str | None:
        """The member advertising ``identifier`` at ``at``, or None (not a member this store may resolve)."""
        if not self._days:
            return None
        return self._table(window_of(at)).get(bytes(identifier))
