"""Wi-Fi probe requests: the real airodump capture, radiotap namespaces, 802.11 edge cases."""

from __future__ import annotations

import json
import struct

import pytest

from edge_agent.parsing.pcap import CaptureProblem
from edge_agent.parsing.radiotap import Radiotap, RadiotapError, parse_radiotap
from edge_agent.parsing.wifi import (
    LINKTYPE_IEEE802_11,
    LINKTYPE_IEEE802_11_RADIOTAP,
    CapturedFrame,
    ProbeRequest,
    WifiRejected,
    decode_packet,
    frames_of_capture,
    parse_probe_request,
)

SAMPLE = "airodump__80211-sample1.pcap"
PHONE = bytes.fromhex("645d8675c128")


def probe_request(source: bytes = PHONE, ssid: bytes | None = b"Shop Guest", extra: bytes = b"") -> bytes:
    """An 802.11 probe request frame (no FCS) with an SSID element then supported rates."""
    header = struct.pack("<HH", 0x0040, 0) + b"\xff" * 6 + source + b"\xff" * 6 + struct.pack("<H", 0x1230)
    elements = b"" if ssid is None else bytes([0, len(ssid)]) + ssid
    return header + elements + bytes.fromhex("010802040b160c121824") + extra


def radiotap(fields: list[tuple[int, bytes]], words: list[int]) -> bytes:
    """A radiotap header from present words and already-aligned field bytes (offsets from the header start)."""
    head_len = 4 + 4 * len(words)
    body = bytearray()
    for offset, raw in fields:
        body += b"\x00" * (offset - head_len - len(body))
        body += raw
    total = head_len + len(body)
    return struct.pack("<BBH", 0, 0, total) + b"".join(struct.pack("<I", w) for w in words) + bytes(body)


@pytest.fixture(scope="module")
def sample(samples_dir):
    wifi = samples_dir / "wifi"
    expected = json.loads((wifi / "airodump__expected_probe_requests.json").read_text())["files"][SAMPLE]
    return (wifi / SAMPLE).read_bytes(), expected


def test_the_sample_capture_yields_exactly_its_probe_requests(sample):
    data, expected = sample
    items = list(frames_of_capture(data))
    assert not [i for i in items if isinstance(i, CaptureProblem)]
    assert len(items) == expected["frames_total"]
    found = [(i.number, i.result) for i in items if isinstance(i, CapturedFrame) and isinstance(i.result, ProbeRequest)]
    assert [number for number, _ in found] == [p["frame"] for p in expected["probe_requests"]]
    for (_, probe), want in zip(found, expected["probe_requests"], strict=True):
        assert probe.source == want["sa"]
        assert probe.locally_administered is want["locally_administered"]
        assert probe.ssid.hex() == want["ssid_hex"]
        assert probe.wildcard is want["ssid_is_wildcard"]
        assert probe.frequency_mhz == want["channel_freq_mhz"]
        assert probe.signal_dbm == want["wlan_radio_signal_dbm_tshark"] == want["dbm_first_scapy"]
        assert [probe.signal_dbm] + [dbm for _, dbm in probe.antenna_signals] == want["dbm_antsignal_all_tshark"]


def test_every_other_frame_of_the_sample_is_skipped_with_a_reason(sample):
    data, _ = sample
    results = [i.result for i in frames_of_capture(data) if isinstance(i, CapturedFrame)]
    reasons = {r.reason for r in results if isinstance(r, WifiRejected)}
    assert reasons <= {"not_probe_request", "not_management", "bad_fcs"}
    assert "not_probe_request" in reasons


def test_a_capture_cut_anywhere_reports_the_cut_and_keeps_what_came_before(sample):
    data, _ = sample
    cut = data[: len(data) - 37]
    items = list(frames_of_capture(cut))
    assert isinstance(items[-1], CaptureProblem)
    assert items[-1].reason == "truncated_record"
    assert sum(isinstance(i, CapturedFrame) for i in items) == 383


def test_multi_antenna_signal_is_the_combined_value_and_zero_chains_are_ignored():
    # Word 0: flags, channel, signal, radiotap namespace follows; words 1 and 2: one chain each.
    words = [(1 << 1) | (1 << 3) | (1 << 5) | (1 << 29) | (1 << 31), (1 << 5) | (1 << 11) | (1 << 29) | (1 << 31)]
    words.append((1 << 5) | (1 << 11))
    fields = [(16, b"\x00"), (18, struct.pack("<HH", 5180, 0x140)), (22, bytes([256 - 62]))]
    fields += [(23, bytes([256 - 60, 0])), (25, bytes([0, 1]))]  # chain 0 at -60 dBm, chain 1 reports 0
    header = radiotap(fields, words)
    radio = parse_radiotap(header)
    assert isinstance(radio, Radiotap)
    assert (radio.frequency_mhz, radio.signal_dbm, radio.antenna_signals) == (5180, -62, ((0, -60),))


def test_without_a_combined_value_the_strongest_chain_is_used():
    words = [(1 << 3) | (1 << 29) | (1 << 31), (1 << 5) | (1 << 11) | (1 << 29) | (1 << 31), (1 << 5) | (1 << 11)]
    fields = [(16, struct.pack("<HH", 2437, 0)), (20, bytes([256 - 71, 0, 256 - 66, 1]))]
    radio = parse_radiotap(radiotap(fields, words))
    assert isinstance(radio, Radiotap)
    assert radio.signal_dbm == -66
    assert radio.antenna_signals == ((0, -71), (1, -66))


def test_a_vendor_namespace_is_skipped_by_its_length():
    # Word 0: TSFT, then a vendor namespace; word 1 (vendor): opaque bits; word 2: back to radiotap, signal.
    words = [(1 << 0) | (1 << 30) | (1 << 31), 0x0000_0007 | (1 << 29) | (1 << 31), 1 << 5]
    vendor = b"\x00\x11\x22" + b"\x01" + struct.pack("<H", 5)
    fields = [(16, b"\x00" * 8), (24, vendor), (30, b"\xaa" * 5), (35, bytes([256 - 48]))]
    radio = parse_radiotap(radiotap(fields, words))
    assert isinstance(radio, Radiotap)
    assert radio.antenna_signals == ((None, -48),)
    assert radio.signal_dbm == -48


def test_xchannel_gives_the_frequency_when_channel_is_absent():
    words = [(1 << 5) | (1 << 18)]
    fields = [(8, bytes([256 - 55])), (12, struct.pack("<IHBB", 0x140, 5745, 149, 30))]
    radio = parse_radiotap(radiotap(fields, words))
    assert isinstance(radio, Radiotap)
    assert (radio.frequency_mhz, radio.signal_dbm) == (5745, -55)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (b"\x00\x00\x08", "radiotap_truncated"),
        (b"\x01\x00\x08\x00\x00\x00\x00\x00", "radiotap_version"),
        (b"\x00\x00\x40\x00\x00\x00\x00\x00", "radiotap_length"),
        (b"\x00\x00\x08\x00\x00\x00\x00\x80", "radiotap_length"),
        (b"\x00\x00\x09\x00\x01\x00\x00\x00\x00", "radiotap_truncated"),
    ],
)
def test_damaged_radiotap_headers_are_rejected_with_a_reason(header, reason):
    result = parse_radiotap(header)
    assert isinstance(result, RadiotapError)
    assert result.reason == reason


def test_fcs_at_end_is_stripped_and_a_bad_fcs_is_rejected():
    frame = probe_request(ssid=b"") + b"\xde\xad\xbe\xef"
    good = radiotap([(8, b"\x10")], [1 << 1]) + frame
    bad = radiotap([(8, b"\x50")], [1 << 1]) + frame
    result = decode_packet(LINKTYPE_IEEE802_11_RADIOTAP, good)
    assert isinstance(result, ProbeRequest) and result.wildcard
    assert decode_packet(LINKTYPE_IEEE802_11_RADIOTAP, bad) == WifiRejected(
        "bad_fcs", "the receiver marked the frame's checksum as wrong"
    )


def test_plain_80211_link_type_has_no_radio_data():
    result = decode_packet(LINKTYPE_IEEE802_11, probe_request(bytes.fromhex("da a1 19 00 00 01")))
    assert isinstance(result, ProbeRequest)
    assert result.locally_administered
    assert (result.frequency_mhz, result.signal_dbm, result.source) == (None, None, "da:a1:19:00:00:01")


def test_ssid_may_hold_any_bytes():
    ssid = "店铺-Wi-Fi".encode("gb18030") + b"\x00\xff"
    result = parse_probe_request(probe_request(ssid=ssid))
    assert isinstance(result, ProbeRequest)
    assert result.ssid == ssid


def test_an_ht_control_field_is_skipped_when_the_order_bit_is_set():
    frame = bytearray(probe_request(ssid=b"x"))
    frame[1] |= 0x80
    frame[24:24] = b"\x00\x00\x00\x00"
    result = parse_probe_request(bytes(frame))
    assert isinstance(result, ProbeRequest) and result.ssid == b"x"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\x40", "frame_truncated"),
        (probe_request()[:20], "frame_truncated"),
        (b"\x41\x00" + probe_request()[2:], "protocol_version"),
        (b"\x08\x00" + probe_request()[2:], "not_management"),
        (b"\x80\x00" + probe_request()[2:], "not_probe_request"),
        (probe_request(source=bytes.fromhex("0100 5e00 0001")), "multicast_source"),
        (probe_request(ssid=None), "no_ssid"),
        (probe_request(ssid=b"")[:24] + b"\x00\x05ab", "no_ssid"),
        (probe_request(ssid=b"a" * 33), "ssid_too_long"),
    ],
)
def test_malformed_frames_are_rejected_with_a_reason(frame, reason):
    result = parse_probe_request(frame)
    assert isinstance(result, WifiRejected)
    assert result.reason == reason


def test_a_truncated_element_after_the_ssid_is_tolerated():
    result = parse_probe_request(probe_request(ssid=b"Shop", extra=b"\x2d\x1a\x01"))
    assert isinstance(result, ProbeRequest) and result.ssid == b"Shop"


def test_other_link_types_are_refused():
    assert decode_packet(1, b"\x00" * 40).reason == "unsupported_linktype"
