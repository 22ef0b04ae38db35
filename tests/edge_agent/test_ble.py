"""BLE beacon parsing: every vector of the shared BLE samples, both input forms, and reason codes."""

from __future__ import annotations

import json

import pytest

from edge_agent.parsing.ble import (
    BleDecoded,
    BleRejected,
    EddystoneEncryptedTlm,
    EddystoneTlm,
    EddystoneUrl,
    decode,
    decode_hex,
    decode_record,
)
from edge_agent.parsing.ble_ad import from_bleak, parse_ad, uuid16

VECTOR_IDS = [
    "bt-bad-1",
    "bt-bad-3",
    "bt-eddystone-uid",
    "bt-eddystone-tlm",
    "bt-eddystone-eid",
    "bt-ibeacon",
    "bt-exposure-notification",
    "ab-altbeacon-1",
    "ab-altbeacon-alt-typecode",
    "ib-bluecharm",
    "ha-feasy-1",
    "ib-not-apple",
]

# beacontools names the raw SEC_CNT "seconds_since_boot"; the Eddystone TLM spec counts it in tenths of a
# second, as the BlueCharm vector (1599.6) does. This vector's expected value is therefore the tick count.
RAW_TICK_VECTORS = {"bt-eddystone-tlm"}


@pytest.fixture(scope="module")
def vectors(samples_dir):
    path = samples_dir / "ble" / "ble_vectors.json"
    return {v["id"]: v for v in json.loads(path.read_text())}


def field_value(frame, name):
    """A frame's field as the vectors write it: bytes as hex; ``x_hex`` names the bytes field ``x``."""
    if name.endswith("_hex"):
        return getattr(frame, name[: -len("_hex")]).hex()
    value = getattr(frame, name)
    return value.hex() if isinstance(value, bytes) else value


def test_the_vector_file_holds_the_vectors_this_table_expects(vectors):
    assert sorted(vectors) == sorted(VECTOR_IDS)


@pytest.mark.parametrize("vector_id", VECTOR_IDS)
def test_sample_vector(vectors, vector_id):
    vector = vectors[vector_id]
    result = decode_record(vector)
    if vector["kind"] is None:
        assert isinstance(result, BleRejected), f"{vector_id} must be rejected: {vector.get('note')}"
        assert result.reason
        return
    assert isinstance(result, BleDecoded), result
    by_kind = {frame.kind: frame for frame in result.frames}
    frame = by_kind[vector["kind"]]
    for name, expected in vector["expected"].items():
        if name == "rssi":
            assert result.rssi == expected
        elif name == "eddystone_tlm_in_service_data":
            tlm = by_kind["eddystone_tlm"]
            assert isinstance(tlm, EddystoneTlm)
            assert {k: getattr(tlm, k) for k in expected} == pytest.approx(expected)
        elif name == "seconds_since_boot" and vector_id in RAW_TICK_VECTORS:
            assert isinstance(frame, EddystoneTlm)
            assert frame.uptime_ticks == expected
            assert frame.seconds_since_boot == pytest.approx(expected / 10)
        else:
            assert field_value(frame, name) == expected, name


def test_rejections_say_why(vectors):
    assert decode_record(vectors["bt-bad-1"]).reason == "truncated_ad_structure"
    assert decode_record(vectors["bt-bad-3"]).reason == "truncated_ad_structure"
    assert decode_record(vectors["ab-altbeacon-alt-typecode"]).reason == "no_beacon"
    assert decode_record(vectors["ib-not-apple"]).reason == "no_beacon"


def test_raw_and_bleak_forms_give_the_same_frames(vectors):
    raw = decode_hex(vectors["bt-ibeacon"]["hex"])
    assert isinstance(raw, BleDecoded)
    adv = raw.advertisement
    assert adv.manufacturer_data[0x004C].hex().startswith("0215")
    again = decode(from_bleak(adv.manufacturer_data, adv.service_data, list(adv.service_uuids)))
    assert isinstance(again, BleDecoded)
    assert again.frames == raw.frames


def test_a_trailing_rssi_byte_after_the_last_structure_is_tolerated(vectors):
    # HCI advertising reports end with the RSSI; this capture kept it (0xe4 = -28 dBm).
    adv = parse_ad(bytes.fromhex(vectors["bt-eddystone-tlm"]["hex"]))
    assert not isinstance(adv, BleRejected)
    assert adv.truncated
    assert adv.service_uuids == (uuid16(0xFEAA),)


def test_raw_ad_fields_flags_name_and_tx_power():
    payload = bytes.fromhex("020106" + "0a09" + b"Shelf-A01".hex() + "020af4" + "0303aafe" + "0d16aafe30f4" + "11" * 8)
    adv = parse_ad(payload)
    assert not isinstance(adv, BleRejected)
    assert (adv.flags, adv.local_name, adv.tx_power) == (6, "Shelf-A01", -12)
    result = decode(adv)
    assert isinstance(result, BleDecoded)
    assert result.frames[0].kind == "eddystone_eid"


@pytest.mark.parametrize(
    ("frame_hex", "url"),
    [
        ("10eb03" + b"example".hex() + "07", "https://example.com"),
        ("10eb00" + b"shop".hex() + "01" + b"cn".hex(), "http://www.shop.org/cn"),
        ("10f402" + b"a.b".hex() + "00" + b"x".hex(), "http://a.b.com/x"),
    ],
)
def test_eddystone_url_expands_scheme_and_suffixes(frame_hex, url):
    result = decode(from_bleak({}, {uuid16(0xFEAA): bytes.fromhex(frame_hex)}))
    assert isinstance(result, BleDecoded)
    frame = result.frames[0]
    assert isinstance(frame, EddystoneUrl)
    assert frame.url == url


@pytest.mark.parametrize(
    ("service_data", "reason"),
    [
        ("10eb09" + b"x".hex(), "eddystone_url_scheme"),
        ("10eb03" + "ff", "eddystone_url_character"),
        ("10eb03" + "61" * 18, "eddystone_url_length"),
        ("2002" + "00" * 12, "eddystone_tlm_version"),
        ("2000" + "00" * 11, "eddystone_tlm_length"),
        ("00eb" + "00" * 10, "eddystone_uid_length"),
        ("30eb" + "00" * 7, "eddystone_eid_length"),
        ("40", "eddystone_frame_type"),
        ("", "eddystone_length"),
    ],
)
def test_malformed_eddystone_frames_are_rejected_with_a_reason(service_data, reason):
    result = decode(from_bleak({}, {uuid16(0xFEAA): bytes.fromhex(service_data)}))
    assert isinstance(result, BleRejected)
    assert result.reason == reason


def test_encrypted_tlm_is_kept_opaque():
    data = bytes.fromhex("2001" + "ab" * 12 + "0102" + "0304")
    result = decode(from_bleak({}, {uuid16(0xFEAA): data}))
    assert isinstance(result, BleDecoded)
    assert result.frames == (EddystoneEncryptedTlm(b"\xab" * 12, b"\x01\x02", b"\x03\x04"),)


def test_tlm_without_a_thermometer_reports_no_temperature():
    data = bytes.fromhex("2000" + "0000" + "8000" + "00000001" + "0000000a")
    result = decode(from_bleak({}, {uuid16(0xFEAA): data}))
    assert isinstance(result, BleDecoded)
    frame = result.frames[0]
    assert isinstance(frame, EddystoneTlm)
    assert (frame.voltage_mv, frame.temperature_c, frame.seconds_since_boot) == (0, None, 1.0)


def test_a_wrong_length_ibeacon_is_a_problem_not_a_frame():
    result = decode(from_bleak({0x004C: bytes.fromhex("0215" + "00" * 20)}, {}))
    assert isinstance(result, BleRejected)
    assert result.reason == "ibeacon_length"


def test_other_apple_advertisements_are_not_beacons():
    # Apple "Nearby" (type 0x10) advertisements are everywhere in a shop; they are not iBeacons.
    result = decode(from_bleak({0x004C: bytes.fromhex("1005031c1a2b3c")}, {}))
    assert isinstance(result, BleRejected)
    assert result.reason == "no_beacon"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"hex": "zz"}, "bad_record"),
        ({"manufacturer_data": {"apple": "00"}}, "bad_record"),
        ({"manufacturer_data": []}, "bad_record"),
        ({"service_uuids": "feaa"}, "bad_record"),
        ({"hex": ""}, "empty"),
        ({"hex": "00" * 2000}, "oversized"),
        ({}, "no_beacon"),
    ],
)
def test_bad_records_are_rejected_with_a_reason(record, reason):
    result = decode_record(record)
    assert isinstance(result, BleRejected)
    assert result.reason == reason


def test_decode_hex_rejects_text_that_is_not_hex():
    assert decode_hex("not hex").reason == "not_hex"
