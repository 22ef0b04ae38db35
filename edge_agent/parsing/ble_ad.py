"""BLE advertising data: raw AD structures and bleak's dictionaries, brought to one form.

A raw advertisement is a run of AD structures, each ``length, type, data[length - 1]``; an iBeacon
as captured by an HCI dump (Bluetooth Core Supplement, part A)::

    02 01 06                                   flags: LE general discoverable, BR/EDR not supported
    1a ff 4c00 0215 <uuid 16> <major 2> <minor 2> c5
          |    manufacturer specific data, company 0x004C (Apple), then its payload

bleak hands the same content over as ``manufacturer_data`` (company id as the key, not in the bytes)
and ``service_data`` (keyed by the 128-bit UUID string). :func:`parse_ad` turns the raw form into an
:class:`Advertisement` shaped like bleak's, so the beacon decoders read one form only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

BASE_UUID_SUFFIX = "-0000-1000-8000-00805f9b34fb"

# AD types (Bluetooth Assigned Numbers, "Common Data Types").
AD_FLAGS = 0x01
AD_UUID16 = (0x02, 0x03)
AD_UUID32 = (0x04, 0x05)
AD_UUID128 = (0x06, 0x07)
AD_NAME = (0x08, 0x09)
AD_TX_POWER = 0x0A
AD_SERVICE_DATA16 = 0x16
AD_SERVICE_DATA32 = 0x20
AD_SERVICE_DATA128 = 0x21
AD_MANUFACTURER = 0xFF

# A legacy advertisement carries at most 31 bytes and an extended one at most 1650 (Core 5.x, Vol 6
# Part B 2.3.4.9); anything longer is not one advertisement.
MAX_PAYLOAD = 1650


@dataclass(frozen=True, slots=True)
class BleRejected:
    """Input that holds no beacon; ``reason`` is a stable code, ``detail`` says what was seen."""

    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One advertisement's content in bleak's shape, whichever form it arrived in."""

    manufacturer_data: Mapping[int, bytes] = field(default_factory=dict)
    service_data: Mapping[str, bytes] = field(default_factory=dict)
    service_uuids: tuple[str, ...] = ()
    local_name: str | None = None
    tx_power: int | None = None
    flags: int | None = None
    # The payload ended inside an AD structure. HCI advertising reports append the RSSI byte after
    # the data, and several capture tools keep it, so a dangling tail is common and not fatal.
    truncated: bool = False


def uuid16(value: int) -> str:
    """The 128-bit UUID string bleak uses for a 16-bit (or 32-bit) assigned number."""
    return f"{value:08x}{BASE_UUID_SUFFIX}"


def _uuid128_le(data: bytes) -> str:
    h = data[::-1].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _uuid_list(data: bytes, width: int) -> list[str]:
    out = []
    for start in range(0, len(data) - width + 1, width):
        chunk = data[start : start + width]
        out.append(uuid16(int.from_bytes(chunk, "little")) if width < 16 else _uuid128_le(chunk))
    return out


def parse_ad(payload: bytes) -> Advertisement | BleRejected:
    """Walk the AD structures of a raw advertisement (or scan response) into an Advertisement."""
    if not payload:
        return BleRejected("empty", "no advertising data")
    if len(payload) > MAX_PAYLOAD:
        return BleRejected("oversized", f"{len(payload)} bytes; an advertisement holds at most {MAX_PAYLOAD}")
    manufacturer: dict[int, bytes] = {}
    services: dict[str, bytes] = {}
    uuids: list[str] = []
    name: str | None = None
    tx_power: int | None = None
    flags: int | None = None
    structures = 0
    pos = 0
    truncated = False
    while pos < len(payload):
        length = payload[pos]
        if length == 0:  # early termination: the rest is padding (Core Vol 3 Part C 11)
            break
        if pos + 1 + length > len(payload):
            truncated = True
            break
        ad_type = payload[pos + 1]
        data = payload[pos + 2 : pos + 1 + length]
        pos += 1 + length
        structures += 1
        if ad_type == AD_MANUFACTURER and len(data) >= 2:
            manufacturer[int.from_bytes(data[:2], "little")] = data[2:]
        elif ad_type == AD_SERVICE_DATA16 and len(data) >= 2:
            services[uuid16(int.from_bytes(data[:2], "little"))] = data[2:]
        elif ad_type == AD_SERVICE_DATA32 and len(data) >= 4:
            services[uuid16(int.from_bytes(data[:4], "little"))] = data[4:]
        elif ad_type == AD_SERVICE_DATA128 and len(data) >= 16:
            services[_uuid128_le(data[:16])] = data[16:]
        elif ad_type in AD_UUID16:
            uuids.extend(_uuid_list(data, 2))
        elif ad_type in AD_UUID32:
            uuids.extend(_uuid_list(data, 4))
        elif ad_type in AD_UUID128:
            uuids.extend(_uuid_list(data, 16))
        elif ad_type in AD_NAME:
            name = data.decode("utf-8", errors="replace")
        elif ad_type == AD_TX_POWER and len(data) == 1:
            tx_power = int.from_bytes(data, "little", signed=True)
        elif ad_type == AD_FLAGS and len(data) >= 1:
            flags = data[0]
    if structures == 0:
        reason = "truncated_ad_structure" if truncated else "empty"
        return BleRejected(reason, f"no complete AD structure in {len(payload)} bytes")
    return Advertisement(
        manufacturer_data=manufacturer,
        service_data=services,
        service_uuids=tuple(uuids),
        local_name=name,
        tx_power=tx_power,
        flags=flags,
        truncated=truncated,
    )


def from_bleak(
    manufacturer_data: Mapping[int, bytes],
    service_data: Mapping[str, bytes],
    service_uuids: tuple[str, ...] | list[str] = (),
    local_name: str | None = None,
    tx_power: int | None = None,
) -> Advertisement:
    """An Advertisement from the fields of bleak's ``AdvertisementData``."""
    return Advertisement(
        manufacturer_data=dict(manufacturer_data),
        service_data={key.lower(): value for key, value in service_data.items()},
        service_uuids=tuple(u.lower() for u in service_uuids),
        local_name=local_name,
        tx_power=tx_power,
    )
