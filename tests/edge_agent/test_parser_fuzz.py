"""Fuzzing the presence parsers: truncated, oversized and random input returns a reason, never raises."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.parsing.ble import BleDecoded, BleRejected, decode_hex, decode_record
from edge_agent.parsing.ble_ad import parse_ad
from edge_agent.parsing.pcap import CaptureProblem, CaptureReader, CaptureRecord
from edge_agent.parsing.radiotap import Radiotap, RadiotapError, parse_radiotap
from edge_agent.parsing.wifi import ProbeRequest, WifiRejected, decode_packet, frames_of_capture

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Real shapes to mutate: the iBeacon and Eddystone-TLM vectors' bytes, and a radiotap probe request.
IBEACON = bytes.fromhex("0201061aff4c0002154142434445464748494041424344454600010002f8")
TLM = bytes.fromhex("0201060303aafe1116aafe20000b1813000000146700002ac4")
RADIOTAP_PROBE = bytes.fromhex(
    "000018002e4000a02008000000026c09a000cd000000cd00"
    "40000000ffffffffffff645d8675c128ffffffffffffc0190000010802040b160c12182432043048606c"
)


def test_the_seeds_are_valid_inputs():
    assert isinstance(decode_hex(IBEACON.hex()), BleDecoded)
    assert isinstance(decode_hex(TLM.hex()), BleDecoded)
    assert isinstance(decode_packet(127, RADIOTAP_PROBE), ProbeRequest)


def mutated(seed: bytes) -> st.SearchStrategy[bytes]:
    """The seed cut at any point, with any byte changed, or grown with random bytes."""
    cut = st.integers(0, len(seed)).map(lambda n: seed[:n])
    flip = st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255)).map(
        lambda p: seed[: p[0]] + bytes([p[1]]) + seed[p[0] + 1 :]
    )
    grown = st.binary(max_size=64).map(lambda tail: seed + tail)
    return st.one_of(cut, flip, grown)


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated(IBEACON), mutated(TLM)))
def test_raw_advertisements_never_raise(data):
    assert isinstance(decode_hex(data.hex()), BleDecoded | BleRejected)
    assert parse_ad(data) is not None


def test_an_oversized_advertisement_is_rejected():
    assert decode_hex("ff" * 100_000).reason == "oversized"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "manufacturer_data": st.dictionaries(st.text(max_size=6), json_values, max_size=3) | json_values,
            "service_data": st.dictionaries(st.text(max_size=40), st.binary(max_size=30).map(bytes.hex), max_size=3)
            | json_values,
            "service_uuids": json_values,
            "hex": st.binary(max_size=40).map(bytes.hex) | json_values,
            "rssi": json_values,
            "address": json_values,
            "tx_power": json_values,
        },
    )
)
def test_bleak_style_records_never_raise(record):
    assert isinstance(decode_record(record), BleDecoded | BleRejected)


@FUZZ
@given(st.one_of(st.binary(max_size=400), mutated(RADIOTAP_PROBE)))
def test_radiotap_frames_never_raise(data):
    assert isinstance(parse_radiotap(data), Radiotap | RadiotapError)
    for linktype in (127, 105, 1):
        assert isinstance(decode_packet(linktype, data), ProbeRequest | WifiRejected)


@FUZZ
@given(st.binary(max_size=600))
def test_random_radiotap_bodies_behind_a_valid_preamble_never_raise(body):
    # A plausible version/length/present preamble makes the fuzzer reach the field walker.
    header = struct.pack("<BBH", 0, 0, min(len(body) + 4, 0xFFFF)) + body
    assert isinstance(parse_radiotap(header), Radiotap | RadiotapError)


PCAP_HEAD = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 127)
PCAPNG_HEAD = struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)


@FUZZ
@given(st.sampled_from([b"", PCAP_HEAD, PCAPNG_HEAD]), st.binary(max_size=800), st.integers(1, 64))
def test_capture_streams_never_raise_however_they_are_chunked(head, body, chunk):
    data = head + body
    reader = CaptureReader()
    items = []
    for start in range(0, len(data), chunk):
        items += reader.feed(data[start : start + chunk])
    items += reader.close()
    assert all(isinstance(i, CaptureRecord | CaptureProblem) for i in items)
    assert sum(isinstance(i, CaptureProblem) and i.fatal for i in items) <= 1
    for item in frames_of_capture(data):
        assert item is not None
