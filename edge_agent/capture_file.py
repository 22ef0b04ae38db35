"""Capture files of a POS port: raw bytes, or the hexdump log pyserial's ``spy://`` handler writes.

A raw capture is exactly the bytes the port delivered. A ``spy://`` log also says when each read
happened, which is what lets a replay end a receipt at an idle gap::

    000012.407 RX   0000  1B 40 1C 26 C1 AA BB AA  B3 AC CA D0 0A 1D 56 42  .@.&..........VB
    000012.407 RX   0010  00                                                .

Both are read by :func:`read_capture`; :func:`spy_rows` writes one read in the spy format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_SPY_LINE = re.compile(r"^(\d+\.\d+) (\S+)\s+(.*)\Z")
_SPY_DATA = re.compile(r"^([0-9A-F]{4})  (.{1,49})")
_HEX = re.compile(r"[0-9A-F]{2}")


class CaptureError(ValueError):
    """A capture file that cannot be read; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Read:
    """One read of the port: its bytes and, in a spy:// log, when it happened (seconds)."""

    data: bytes
    at: float | None = None


def is_spy_log(head: bytes) -> bool:
    """True if a file starting with ``head`` is a pyserial spy:// hexdump log."""
    return re.match(rb"\d{3,}\.\d{3} \S", head) is not None


def read_capture(path: Path) -> list[Read]:
    """The reads in a capture file (a raw capture is one read)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CaptureError(f"{path}: cannot read the capture: {exc.strerror or exc}") from None
    if not is_spy_log(data[:32]):
        return [Read(data)]
    return _spy_reads(path, data)


def _spy_reads(path: Path, data: bytes) -> list[Read]:
    reads: list[Read] = []
    current = bytearray()
    at = 0.0
    for number, raw in enumerate(data.decode("ascii", "replace").splitlines(), start=1):
        line = _SPY_LINE.match(raw)
        if line is None:
            if raw.strip():
                raise CaptureError(f"{path}:{number}: not a spy:// log line: {raw[:60]!r}")
            continue
        if line.group(2) != "RX" or line.group(3).startswith("<empty>"):
            continue  # what the agent sent, control lines, empty reads
        row = _SPY_DATA.match(line.group(3))
        if row is None:
            raise CaptureError(f"{path}:{number}: RX line without a hexdump row: {raw[:60]!r}")
        if row.group(1) == "0000" and current:  # each read's rows start again at offset 0
            reads.append(Read(bytes(current), at))
            current = bytearray()
        if row.group(1) == "0000":
            at = float(line.group(1))
        current += bytes(int(pair, 16) for pair in _HEX.findall(row.group(2)))
    if current:
        reads.append(Read(bytes(current), at))
    return reads


def spy_rows(at: float, data: bytes) -> str:
    """One read as the rows pyserial's spy:// hexdump writes (16 bytes a row)."""
    rows = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        cells = [f"{b:02X} " for b in chunk] + ["   "] * (16 - len(chunk))
        hexes = "".join(cells[:8]) + " " + "".join(cells[8:])
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk).ljust(16)
        rows.append(f"{at:010.3f} {'RX':4} {offset:04X}  {hexes} {text}\n")
    return "".join(rows)
