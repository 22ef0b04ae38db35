"""Capture files and streams: classic pcap (either byte order, µs or ns) and pcapng.

A classic pcap from a little-endian machine starts::

    d4c3b2a1 0200 0400 00000000 00000000 00000400 7f000000    magic, version 2.4, snap 262144,
    <ts_sec 4> <ts_usec 4> <incl_len 4> <orig_len 4> <packet>  link type 127 (radiotap); then records

pcapng (what dumpcap and recent Wireshark write) is a run of blocks ``type, length, body, length``:
a section header (which fixes the byte order), interface descriptions (link type, timestamp
resolution) and enhanced or simple packet blocks. :class:`CaptureReader` is fed bytes as they
arrive (a file, a FIFO) and returns complete records; damage is reported, never raised.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

ByteOrder = Literal["little", "big"]

MAX_RECORD = 262_144  # libpcap's largest snapshot length
MAX_BLOCK = 16 * 1024 * 1024
_PCAP_MAGICS: dict[bytes, tuple[ByteOrder, int]] = {
    b"\xd4\xc3\xb2\xa1": ("little", 1_000),
    b"\xa1\xb2\xc3\xd4": ("big", 1_000),
    b"\x4d\x3c\xb2\xa1": ("little", 1),
    b"\xa1\xb2\x3c\x4d": ("big", 1),
}
_SHB = 0x0A0D0D0A
_IDB, _SPB, _EPB = 1, 3, 6
_BYTE_ORDER_MAGIC = 0x1A2B3C4D


@dataclass(frozen=True, slots=True)
class CaptureRecord:
    """One captured packet."""

    timestamp_ns: int
    linktype: int
    data: bytes
    original_length: int
    fcs_bytes: int = 0  # trailing FCS bytes the capture declares (pcap link-type FCS bits, if_fcslen)
    interface: str = ""  # pcapng if_name of the capturing interface ("wlan1mon"); empty when not given


@dataclass(frozen=True, slots=True)
class CaptureProblem:
    """Damage in the capture at ``offset``; ``fatal`` means nothing after it can be read."""

    reason: str
    detail: str
    offset: int
    fatal: bool = False


@dataclass(slots=True)
class _Interface:
    linktype: int
    snaplen: int
    ns_per_unit: tuple[int, int]  # multiply, then divide
    fcs_bytes: int = 0
    name: str = ""


class CaptureReader:
    """Push parser: ``feed`` bytes, get records and problems back in stream order."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._offset = 0  # stream offset of the buffer's first byte
        self._format: str | None = None
        self._order: ByteOrder = "little"
        self._ns_factor = 1_000
        self._interfaces: list[_Interface] = []
        self.failed = False

    def feed(self, chunk: bytes) -> list[CaptureRecord | CaptureProblem]:
        """Consume ``chunk``; return the records (and problems) it completes."""
        if self.failed:
            return []
        self._buffer += chunk
        out: list[CaptureRecord | CaptureProblem] = []
        while not self.failed:
            step = self._step(out)
            if step == 0:
                break
            del self._buffer[:step]
            self._offset += step
        return out

    def close(self) -> list[CaptureProblem]:
        """End of stream: report an unfinished record, if any."""
        if self.failed or not self._buffer:
            return []
        return [CaptureProblem("truncated_record", f"{len(self._buffer)} bytes left at the end", self._offset)]

    def _fail(self, out: list[CaptureRecord | CaptureProblem], reason: str, detail: str) -> int:
        self.failed = True
        out.append(CaptureProblem(reason, detail, self._offset, fatal=True))
        return 0

    def _u32(self, at: int) -> int:
        return int.from_bytes(self._buffer[at : at + 4], self._order)

    def _u16(self, at: int) -> int:
        return int.from_bytes(self._buffer[at : at + 2], self._order)

    def _step(self, out: list[CaptureRecord | CaptureProblem]) -> int:
        """Bytes consumed by the next item, or 0 when more input is needed."""
        buf = self._buffer
        if self._format is None:
            if len(buf) < 4:
                return 0
            magic = bytes(buf[:4])
            if magic in _PCAP_MAGICS:
                if len(buf) < 24:
                    return 0
                self._order, self._ns_factor = _PCAP_MAGICS[magic]
                self._format = "pcap"
                raw_link = self._u32(20)
                fcs = 2 * ((raw_link >> 29) & 0x7) if raw_link & 0x10000000 else 0
                self._interfaces = [_Interface(raw_link & 0xFFFF, self._u32(16), (1, 1), fcs)]
                return 24
            if int.from_bytes(magic, "little") == _SHB:
                self._format = "pcapng"
                return self._pcapng_block(out)
            return self._fail(out, "not_a_capture", f"starts with {magic.hex()}, not a pcap or pcapng magic")
        if self._format == "pcap":
            return self._pcap_record(out)
        return self._pcapng_block(out)

    def _pcap_record(self, out: list[CaptureRecord | CaptureProblem]) -> int:
        if len(self._buffer) < 16:
            return 0
        seconds, fraction, included, original = (self._u32(i) for i in (0, 4, 8, 12))
        if included > MAX_RECORD:
            return self._fail(out, "record_too_large", f"a record claims {included} bytes; at most {MAX_RECORD}")
        if len(self._buffer) < 16 + included:
            return 0
        iface = self._interfaces[0]
        out.append(
            CaptureRecord(
                seconds * 1_000_000_000 + fraction * self._ns_factor,
                iface.linktype,
                bytes(self._buffer[16 : 16 + included]),
                original,
                iface.fcs_bytes,
            )
        )
        return 16 + included

    def _pcapng_block(self, out: list[CaptureRecord | CaptureProblem]) -> int:
        buf = self._buffer
        if len(buf) < 12:
            return 0
        if int.from_bytes(buf[:4], "little") == _SHB:
            order_magic = bytes(buf[8:12])
            if order_magic == _BYTE_ORDER_MAGIC.to_bytes(4, "little"):
                self._order = "little"
            elif order_magic == _BYTE_ORDER_MAGIC.to_bytes(4, "big"):
                self._order = "big"
            else:
                return self._fail(out, "bad_section_header", "the byte-order magic is neither 1a2b3c4d nor 4d3c2b1a")
            self._interfaces = []  # interface ids are numbered per section
        block_type, length = self._u32(0), self._u32(4)
        if length < 12 or length % 4 or length > MAX_BLOCK:
            return self._fail(out, "bad_block_length", f"block of type {block_type:#x} claims {length} bytes")
        if len(buf) < length:
            return 0
        if self._u32(length - 4) != length:
            return self._fail(out, "bad_block_length", "the trailing length does not repeat the leading one")
        body = bytes(buf[8 : length - 4])
        if block_type == _IDB:
            self._interface(body, out)
        elif block_type in (_EPB, _SPB):
            self._packet(block_type, body, out)
        return length

    def _interface(self, body: bytes, out: list[CaptureRecord | CaptureProblem]) -> None:
        if len(body) < 8:
            out.append(CaptureProblem("bad_interface", "interface block shorter than 8 bytes", self._offset))
            return
        order = self._order
        iface = _Interface(int.from_bytes(body[:2], order), int.from_bytes(body[4:8], order), (1_000, 1))
        pos = 8
        while pos + 4 <= len(body):
            code, size = int.from_bytes(body[pos : pos + 2], order), int.from_bytes(body[pos + 2 : pos + 4], order)
            value = body[pos + 4 : pos + 4 + size]
            if code == 0:
                break
            if code == 9 and size == 1:  # if_tsresol: 10^-n, or 2^-n when the top bit is set
                exponent = value[0] & 0x7F
                if value[0] & 0x80:
                    iface.ns_per_unit = (1_000_000_000, 1 << exponent)
                elif exponent <= 9:
                    iface.ns_per_unit = (10 ** (9 - exponent), 1)
                else:
                    iface.ns_per_unit = (1, 10 ** (exponent - 9))
            elif code == 13 and size == 1:  # if_fcslen
                iface.fcs_bytes = value[0]
            elif code == 2:  # if_name: a capture tool merging several radios names each one
                iface.name = value.decode("utf-8", "replace")[:64]
            pos += 4 + ((size + 3) & ~3)
        self._interfaces.append(iface)

    def _packet(self, block_type: int, body: bytes, out: list[CaptureRecord | CaptureProblem]) -> None:
        order = self._order
        if block_type == _EPB:
            if len(body) < 20:
                out.append(CaptureProblem("bad_packet_block", "enhanced packet block too short", self._offset))
                return
            iface_id, high, low, captured, original = (int.from_bytes(body[i : i + 4], order) for i in range(0, 20, 4))
            if 20 + captured > len(body):
                out.append(CaptureProblem("bad_packet_block", "captured length runs past the block", self._offset))
                return
            data = body[20 : 20 + captured]
        else:
            if len(body) < 4:
                out.append(CaptureProblem("bad_packet_block", "simple packet block too short", self._offset))
                return
            iface_id, high, low = 0, 0, 0
            original = int.from_bytes(body[:4], order)
            data = body[4 : 4 + original]  # the block holds min(original, snaplen) bytes
        if iface_id >= len(self._interfaces):
            out.append(CaptureProblem("unknown_interface", f"packet for interface {iface_id}", self._offset))
            return
        iface = self._interfaces[iface_id]
        if block_type == _SPB and iface.snaplen:
            data = data[: iface.snaplen]
        multiply, divide = iface.ns_per_unit
        out.append(
            CaptureRecord(
                ((high << 32) | low) * multiply // divide, iface.linktype, data, original, iface.fcs_bytes, iface.name
            )
        )


def read_capture(data: bytes) -> Iterator[CaptureRecord | CaptureProblem]:
    """Every record and problem of a whole capture held in memory."""
    reader = CaptureReader()
    yield from reader.feed(data)
    yield from reader.close()
