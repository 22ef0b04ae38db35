"""Beacon frames in BLE advertisements: iBeacon, AltBeacon, Eddystone and Exposure Notification.

Input is an :class:`~edge_agent.parsing.ble_ad.Advertisement` (from raw AD structures or bleak's
dictionaries). A real BlueCharm beacon, as bleak reports it::

    manufacturer_data = {76: 02 15 426c7565436861726d426561636f6e73 0efe 1355 c5}
                              |  |  uuid                             major minor tx power
                              |  +-- 0x15 = 21 bytes follow
                              +-- iBeacon type
    service_data = {"0000feaa-...": 20 00 0bfe 1c00 00000708 00003e7c}   Eddystone TLM

One advertisement can hold several frames (that beacon sends both); :func:`decode` returns every
frame it finds, or :class:`BleRejected` with the reason when there is none.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from edge_agent.parsing.ble_ad import Advertisement, BleRejected, from_bleak, parse_ad, uuid16

__all__ = [
    "AltBeacon",
    "BleDecoded",
    "BleRejected",
    "EddystoneEid",
    "EddystoneEncryptedTlm",
    "EddystoneTlm",
    "EddystoneUid",
    "EddystoneUrl",
    "ExposureNotification",
    "IBeacon",
    "decode",
    "decode_hex",
    "decode_record",
]

APPLE = 0x004C
EDDYSTONE = uuid16(0xFEAA)
EXPOSURE_NOTIFICATION = uuid16(0xFD6F)


@dataclass(frozen=True, slots=True)
class IBeacon:
    """Apple iBeacon: proximity UUID, major, minor and the calibrated power at 1 m."""

    kind: ClassVar[str] = "ibeacon"
    uuid: str
    major: int
    minor: int
    tx_power: int


@dataclass(frozen=True, slots=True)
class AltBeacon:
    """AltBeacon (open specification): a 20-byte id split 16/2/2, reference RSSI at 1 m."""

    kind: ClassVar[str] = "altbeacon"
    id1: str
    id2: int
    id3: int
    ref_rssi: int
    mfg_reserved: int
    company_id: int


@dataclass(frozen=True, slots=True)
class EddystoneUid:
    """Eddystone-UID: 10-byte namespace and 6-byte instance."""

    kind: ClassVar[str] = "eddystone_uid"
    namespace: bytes
    instance: bytes
    tx_power: int


@dataclass(frozen=True, slots=True)
class EddystoneUrl:
    """Eddystone-URL: a compressed URL."""

    kind: ClassVar[str] = "eddystone_url"
    url: str
    tx_power: int


@dataclass(frozen=True, slots=True)
class EddystoneTlm:
    """Eddystone-TLM (unencrypted): battery, temperature, counters."""

    kind: ClassVar[str] = "eddystone_tlm"
    voltage_mv: int  # 0 when the beacon does not measure it (mains powered)
    temperature_c: float | None  # None when the beacon reports 0x8000, "not supported"
    advertising_count: int
    uptime_ticks: int  # SEC_CNT: time since power-on in 0.1 s units

    @property
    def seconds_since_boot(self) -> float:
        """SEC_CNT in seconds (the field counts tenths of a second)."""
        return self.uptime_ticks / 10


@dataclass(frozen=True, slots=True)
class EddystoneEncryptedTlm:
    """Eddystone eTLM: telemetry encrypted with the beacon's identity key; kept opaque."""

    kind: ClassVar[str] = "eddystone_etlm"
    etlm: bytes
    salt: bytes
    mic: bytes


@dataclass(frozen=True, slots=True)
class EddystoneEid:
    """Eddystone-EID: an 8-byte ephemeral id that rotates; only its registrar can resolve it."""

    kind: ClassVar[str] = "eddystone_eid"
    eid: bytes
    tx_power: int


@dataclass(frozen=True, slots=True)
class ExposureNotification:
    """Exposure Notification (service 0xFD6F): a rolling proximity id and encrypted metadata."""

    kind: ClassVar[str] = "exposure_notification"
    rolling_proximity_identifier: bytes
    encrypted_metadata: bytes


Frame = (
    IBeacon
    | AltBeacon
    | EddystoneUid
    | EddystoneUrl
    | EddystoneTlm
    | EddystoneEncryptedTlm
    | EddystoneEid
    | ExposureNotification
)


@dataclass(frozen=True, slots=True)
class BleDecoded:
    """The frames found in one advertisement, and reasons for beacon-like parts that were not valid."""

    advertisement: Advertisement
    frames: tuple[Frame, ...]
    problems: tuple[str, ...] = ()
    address: str | None = None
    rssi: int | None = None


_URL_SCHEMES = ("http://www.", "https://www.", "http://", "https://")
# Eddystone-URL text expansion codes 0x00-0x0D.
_URL_EXPANSIONS: tuple[str, ...] = (".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/")
_URL_EXPANSIONS += tuple(suffix.rstrip("/") for suffix in _URL_EXPANSIONS)


def _signed(byte: int) -> int:
    return byte - 256 if byte > 127 else byte


def _uuid(data: bytes) -> str:
    return str(uuid.UUID(bytes=bytes(data)))


def _ibeacon(data: bytes) -> IBeacon | str:
    # 0x02 (type), 0x15 (21 bytes follow), uuid 16, major 2, minor 2, measured power 1.
    if len(data) != 23 or data[1] != 0x15:
        return "ibeacon_length"
    return IBeacon(
        _uuid(data[2:18]), int.from_bytes(data[18:20], "big"), int.from_bytes(data[20:22], "big"), _signed(data[22])
    )


def _altbeacon(company: int, data: bytes) -> AltBeacon | str:
    # beacon code 0xBEAC, id 20, reference RSSI 1, manufacturer reserved 1 (AltBeacon spec 1.0).
    if len(data) != 24:
        return "altbeacon_length"
    return AltBeacon(
        _uuid(data[2:18]),
        int.from_bytes(data[18:20], "big"),
        int.from_bytes(data[20:22], "big"),
        _signed(data[22]),
        data[23],
        company,
    )


def _eddystone_url(data: bytes) -> EddystoneUrl | str:
    if len(data) < 3 or len(data) > 20:
        return "eddystone_url_length"
    if data[2] >= len(_URL_SCHEMES):
        return "eddystone_url_scheme"
    parts = [_URL_SCHEMES[data[2]]]
    for byte in data[3:]:
        if byte < len(_URL_EXPANSIONS):
            parts.append(_URL_EXPANSIONS[byte])
        elif 0x21 <= byte <= 0x7E:
            parts.append(chr(byte))
        else:
            return "eddystone_url_character"
    return EddystoneUrl("".join(parts), _signed(data[1]))


def _eddystone_tlm(data: bytes) -> EddystoneTlm | EddystoneEncryptedTlm | str:
    if len(data) < 2:
        return "eddystone_tlm_length"
    if data[1] == 0x01:
        if len(data) != 18:
            return "eddystone_tlm_length"
        return EddystoneEncryptedTlm(data[2:14], data[14:16], data[16:18])
    if data[1] != 0x00:
        return "eddystone_tlm_version"
    if len(data) != 14:
        return "eddystone_tlm_length"
    raw_temp = int.from_bytes(data[4:6], "big", signed=True)
    return EddystoneTlm(
        int.from_bytes(data[2:4], "big"),
        None if raw_temp == -0x8000 else raw_temp / 256,
        int.from_bytes(data[6:10], "big"),
        int.from_bytes(data[10:14], "big"),
    )


def _eddystone(data: bytes) -> Frame | str:
    if not data:
        return "eddystone_length"
    frame_type = data[0]
    if frame_type == 0x00:
        # tx power 1, namespace 10, instance 6, then 2 reserved bytes that many beacons leave out.
        if len(data) not in (18, 20):
            return "eddystone_uid_length"
        return EddystoneUid(data[2:12], data[12:18], _signed(data[1]))
    if frame_type == 0x10:
        return _eddystone_url(data)
    if frame_type == 0x20:
        return _eddystone_tlm(data)
    if frame_type == 0x30:
        if len(data) != 10:
            return "eddystone_eid_length"
        return EddystoneEid(data[2:10], _signed(data[1]))
    return "eddystone_frame_type"


def decode(adv: Advertisement | BleRejected) -> BleDecoded | BleRejected:
    """Every beacon frame in an advertisement, or the reason it holds none."""
    if isinstance(adv, BleRejected):
        return adv
    frames: list[Frame] = []
    problems: list[str] = []

    def keep(result: Frame | str) -> None:
        if isinstance(result, str):
            problems.append(result)
        else:
            frames.append(result)

    for company, data in adv.manufacturer_data.items():
        if company == APPLE and data[:1] == b"\x02":
            keep(_ibeacon(data))
        elif data[:2] == b"\xbe\xac":
            keep(_altbeacon(company, data))
    for service, data in adv.service_data.items():
        if service == EDDYSTONE:
            keep(_eddystone(data))
        elif service == EXPOSURE_NOTIFICATION:
            # rolling proximity identifier 16, associated encrypted metadata 4 (EN Bluetooth spec 1.2).
            keep(ExposureNotification(data[:16], data[16:20]) if len(data) == 20 else "exposure_notification_length")
    if frames:
        return BleDecoded(adv, tuple(frames), tuple(problems))
    if problems:
        return BleRejected(problems[0], ", ".join(problems))
    if adv.truncated:
        return BleRejected("truncated_ad_structure", "the data ends inside an AD structure and holds no beacon")
    return BleRejected("no_beacon", "no iBeacon, AltBeacon, Eddystone or Exposure Notification data")


def decode_hex(text: str) -> BleDecoded | BleRejected:
    """Decode one raw advertisement written as hex (spaces and colons allowed)."""
    cleaned = text.strip().replace(" ", "").replace(":", "")
    try:
        payload = bytes.fromhex(cleaned)
    except ValueError:
        return BleRejected("not_hex", "the advertisement is not a hex string")
    return decode(parse_ad(payload))


def _hex_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value.replace(" ", "").replace(":", ""))
    if isinstance(value, list) and all(isinstance(v, int) and 0 <= v <= 255 for v in value):
        return bytes(value)
    raise ValueError("not bytes")


def _advertisement_of(record: Mapping[str, Any]) -> Advertisement | BleRejected:
    for key in ("hex", "raw_adv_payload", "payload"):
        if key in record:
            return parse_ad(_hex_bytes(record[key]))
    manufacturer = record.get("manufacturer_data", {})
    services = record.get("service_data", {})
    if not isinstance(manufacturer, Mapping) or not isinstance(services, Mapping):
        return BleRejected("bad_record", "manufacturer_data and service_data must be objects")
    uuids = record.get("service_uuids", [])
    if not isinstance(uuids, list) or not all(isinstance(u, str) for u in uuids):
        return BleRejected("bad_record", "service_uuids must be a list of strings")
    name = record.get("local_name", record.get("name"))
    tx_power = record.get("tx_power")
    return from_bleak(
        {int(k): _hex_bytes(v) for k, v in manufacturer.items()},
        {str(k): _hex_bytes(v) for k, v in services.items()},
        uuids,
        name if isinstance(name, str) else None,
        tx_power if isinstance(tx_power, int) and not isinstance(tx_power, bool) else None,
    )


def decode_record(record: Mapping[str, Any]) -> BleDecoded | BleRejected:
    """Decode one JSON record: ``{"hex": ...}`` or bleak-style dictionaries, with address and RSSI."""
    try:
        adv = _advertisement_of(record)
    except (ValueError, TypeError, OverflowError):
        return BleRejected("bad_record", "a company id is not an integer or a payload is not hex")
    result = decode(adv)
    if isinstance(result, BleRejected):
        return result
    address = record.get("address")
    rssi = record.get("rssi")
    return BleDecoded(
        result.advertisement,
        result.frames,
        result.problems,
        address if isinstance(address, str) else None,
        rssi if isinstance(rssi, int) and not isinstance(rssi, bool) else None,
    )
