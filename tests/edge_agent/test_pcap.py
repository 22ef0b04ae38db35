"""Capture containers: classic pcap in both byte orders and resolutions, pcapng, streams and damage."""

from __future__ import annotations

import struct

import pytest

from edge_agent.parsing.pcap import CaptureProblem, CaptureReader, CaptureRecord, read_capture

PACKETS = [b"\x00\x00\x08\x00\x00\x00\x00\x00" + bytes(range(30)), b"\x00\x00\x08\x00\x00\x00\x00\x00abc"]


def classic(order: str, nanoseconds: bool = False, linktype: int = 127) -> bytes:
    e = "<" if order == "little" else ">"
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    out = struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)
    for n, packet in enumerate(PACKETS):
        out += struct.pack(e + "IIII", 1_700_000_000 + n, 250, len(packet), len(packet)) + packet
    return out


def block(e: str, block_type: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack(e + "II", block_type, length) + body + struct.pack(e + "I", length)


def pcapng(order: str = "little", tsresol: bytes | None = None) -> bytes:
    e = "<" if order == "little" else ">"
    shb = block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    options = b""
    if tsresol is not None:
        options = struct.pack(e + "HH", 9, 1) + tsresol + b"\x00\x00\x00" + struct.pack(e + "HH", 0, 0)
    idb = block(e, 1, struct.pack(e + "HHI", 127, 0, 0) + options)
    ts = 1_700_000_000_000_000 if tsresol is None else 1_700_000_000_000_000_000
    size = len(PACKETS[0])
    epb = block(e, 6, struct.pack(e + "IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, size, size) + PACKETS[0])
    other = block(e, 5, b"statistics")  # an interface statistics block: skipped
    spb = block(e, 3, struct.pack(e + "I", len(PACKETS[1])) + PACKETS[1])
    return shb + idb + epb + other + spb


@pytest.mark.parametrize("order", ["little", "big"])
@pytest.mark.parametrize("nanoseconds", [False, True])
def test_classic_pcap_in_both_byte_orders_and_resolutions(order, nanoseconds):
    records = list(read_capture(classic(order, nanoseconds)))
    assert [r.data for r in records] == PACKETS
    assert all(isinstance(r, CaptureRecord) and r.linktype == 127 for r in records)
    assert records[0].timestamp_ns == 1_700_000_000_000_000_000 + (250 if nanoseconds else 250_000)


@pytest.mark.parametrize("order", ["little", "big"])
def test_pcapng_enhanced_and_simple_packets(order):
    records = list(read_capture(pcapng(order)))
    assert [r.data for r in records] == PACKETS
    assert records[0].timestamp_ns == 1_700_000_000_000_000_000
    assert records[0].linktype == 127


def test_pcapng_timestamp_resolution_option():
    records = list(read_capture(pcapng(tsresol=b"\x09")))
    assert records[0].timestamp_ns == 1_700_000_000_000_000_000


def test_pcap_declaring_an_fcs_in_its_link_type():
    data = bytearray(classic("little", linktype=105))
    data[20:24] = struct.pack("<I", 105 | 0x10000000 | (2 << 29))  # F bit, FCS length 2 x 16 bits
    records = list(read_capture(bytes(data)))
    assert {(r.linktype, r.fcs_bytes) for r in records} == {(105, 4)}


@pytest.mark.parametrize("make", [lambda: classic("big"), lambda: pcapng("little")])
def test_a_stream_fed_one_byte_at_a_time_gives_the_same_records(make):
    data = make()
    reader = CaptureReader()
    records = [item for i in range(len(data)) for item in reader.feed(data[i : i + 1])]
    assert [r.data for r in records] == PACKETS
    assert reader.close() == []


def test_not_a_capture_is_fatal_and_says_what_it_saw():
    items = list(read_capture(b"GET / HTTP/1.1\r\n"))
    assert len(items) == 1
    problem = items[0]
    assert isinstance(problem, CaptureProblem) and problem.fatal
    assert problem.reason == "not_a_capture" and "47455420" in problem.detail


def test_an_impossible_record_length_stops_the_reader():
    data = classic("little") + struct.pack("<IIII", 0, 0, 10_000_000, 10_000_000)
    items = list(read_capture(data))
    assert [type(i).__name__ for i in items] == ["CaptureRecord", "CaptureRecord", "CaptureProblem"]
    assert items[-1].reason == "record_too_large"


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda d: d[:8] + b"\x00\x00\x00\x00" + d[12:], "bad_section_header"),
        (lambda d: d[:4] + struct.pack("<I", 13) + d[8:], "bad_block_length"),
        (lambda d: d[:24] + b"\x01\x00\x00\x00" + d[28:], "bad_block_length"),
    ],
)
def test_damaged_pcapng_blocks(damage, reason):
    data = damage(pcapng())
    problems = [i for i in read_capture(data) if isinstance(i, CaptureProblem)]
    assert problems[0].reason == reason


def test_a_packet_for_an_unknown_interface_is_reported_and_skipped():
    e = "<"
    data = pcapng()
    stray = block(e, 6, struct.pack(e + "IIIII", 7, 0, 0, 3, 3) + b"abc")
    items = list(read_capture(data + stray))
    assert items[-1] == CaptureProblem("unknown_interface", "packet for interface 7", len(data))
