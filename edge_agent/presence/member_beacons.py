"""The downlink document ``member_beacons`` read into a resolver for the BLE station.

Central publishes, for every store, the day keys of the members whose location consent holds
(``{"window_seconds", "skew_windows", "days": {"<UTC day>": [[member id, base64 day key], ...]}}``).
A document that is missing, malformed or of other rotation rules resolves nobody: every beacon
then stays anonymous, which is the safe side. See docs/decisions/0049-member-beacon.md.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from shared import member_beacon
from shared.member_beacon import BeaconResolver

DOCUMENT = "member_beacons"
MAX_MEMBER_ID = 64


class BeaconDocumentError(ValueError):
    """A ``member_beacons`` document this agent cannot use; the message says what is wrong."""


def resolver_from(document: Any) -> BeaconResolver:
    """A resolver for the document's members; raise BeaconDocumentError if it is not a usable document."""
    if document is None:
        return BeaconResolver()
    if not isinstance(document, dict) or not isinstance(document.get("days"), dict):
        raise BeaconDocumentError("member_beacons: not an object with a `days` map")
    if (document.get("window_seconds"), document.get("skew_windows")) != (
        member_beacon.WINDOW_SECONDS,
        member_beacon.SKEW_WINDOWS,
    ):
        raise BeaconDocumentError("member_beacons: rotation rules this agent does not know (upgrade the agent)")
    days: dict[int, list[tuple[str, bytes]]] = {}
    for day, entries in document["days"].items():
        if not str(day).isdigit() or not isinstance(entries, list):
            raise BeaconDocumentError(f"member_beacons: day {day!r} is not a day number with a list")
        pairs = days[int(day)] = []
        for entry in entries:
            if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(v, str) for v in entry)):
                raise BeaconDocumentError(f"member_beacons: day {day}: an entry is not [member id, key]")
            member, key_text = entry
            try:
                key = base64.b64decode(key_text, validate=True)
            except (binascii.Error, ValueError):
                key = b""
            if not 0 < len(member) <= MAX_MEMBER_ID or len(key) != member_beacon.DAY_KEY_BYTES:
                raise BeaconDocumentError(f"member_beacons: day {day}: a bad member id or key")
            pairs.append((member, key))
    return BeaconResolver(days)
