"""ESC/POS byte sequences a POS sends its printer, and pyserial ``spy://`` logs of a stream.

Building blocks for the receipt generator (tools/receipts.py): styles, logos in the three image
commands tills use, QR codes and barcodes, the ways receipts end, and a writer for the hexdump
log pyserial's ``spy://`` handler records, with the timestamps that show idle gaps.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

from edge_agent.capture_file import spy_rows

ESC, GS, FS = b"\x1b", b"\x1d", b"\x1c"
RESET = ESC + b"@"
CUTS = (GS + b"V\x00", GS + b"V\x01", GS + b"V\x42\x00", GS + b"VA\x03", ESC + b"i", ESC + b"m")
# How a Chinese printer is told (or not) that text is GBK/GB18030.
CHINESE_MODES = {
    "printer-default": b"",
    "fs-ampersand": FS + b"&",
    "esc-t-255": ESC + b"t\xff",
    "esc-9-gbk": FS + b"&" + ESC + b"9\x00",
}


def styled(text: bytes, rng: random.Random, *, big: bool = False, bold: bool = False, centre: bool = False) -> bytes:
    """One line's bytes wrapped in the styling commands tills use around it."""
    before, after = b"", b""
    if centre:
        before += ESC + b"a\x01"
        after += ESC + b"a\x00"
    if big:
        size = rng.choice([GS + b"!\x11", ESC + b"!\x30", GS + b"!\x01"])
        before += size
        after += GS + b"!\x00" if size.startswith(GS) else ESC + b"!\x00"
    if bold:
        before += rng.choice([ESC + b"E\x01", ESC + b"G\x01"])
        after += ESC + b"E\x00" + ESC + b"G\x00"
    return before + text + after


def logo(rng: random.Random) -> bytes:
    """A small random logo: raster (GS v 0), graphics (GS ( L) or bit image (ESC *) bytes.

    The image data is random, so it holds LF, ESC, GS and NUL bytes the parser must skip.
    """
    kind = rng.choice(["raster", "graphics", "bit-image"])
    if kind == "raster":
        width, height = rng.randint(8, 24), rng.randint(16, 48)
        data = rng.randbytes(width * height)
        return GS + b"v0\x00" + bytes([width, 0, height, 0]) + data
    if kind == "graphics":
        width_dots, height_dots = rng.randint(64, 192), rng.randint(16, 48)
        data = rng.randbytes((width_dots + 7) // 8 * height_dots)
        body = b"0p0\x01\x011" + width_dots.to_bytes(2, "little") + height_dots.to_bytes(2, "little") + data
        store = GS + b"(L" + (len(body)).to_bytes(2, "little") + body
        return ESC + b"a\x01" + store + GS + b"(L\x02\x0002" + ESC + b"a\x00"
    columns = rng.randint(32, 120)
    out = b""
    for _ in range(rng.randint(1, 3)):  # one 24-dot band per ESC *, each ended by a line feed
        out += ESC + b"*\x21" + columns.to_bytes(2, "little") + rng.randbytes(columns * 3) + b"\n"
    return ESC + b"3\x00" + out + ESC + b"2"


def qr_code(data: bytes, rng: random.Random) -> bytes:
    """A QR code: native GS ( k (model, size, error correction, store, print) or ESC Z."""
    if rng.random() < 0.2:
        return ESC + b"Z\x00\x02\x06" + len(data).to_bytes(2, "little") + data
    store = b"1P0" + data
    return (
        GS + b"(k\x04\x0012" + bytes([rng.choice([49, 50])]) + b"\x00"
        + GS + b"(k\x03\x001C" + bytes([rng.randint(3, 8)])
        + GS + b"(k\x03\x001E" + bytes([rng.randint(48, 51)])
        + GS + b"(k" + len(store).to_bytes(2, "little") + store
        + GS + b"(k\x03\x001Q0"
    )  # fmt: skip


def code128(data: bytes) -> bytes:
    """A CODE128 barcode in code set B with its human-readable text printed below it."""
    payload = b"{B" + data
    return GS + b"h\x50" + GS + b"w\x02" + GS + b"H\x02" + GS + b"kI" + bytes([len(payload)]) + payload


def write_spy_log(path: Path, reads: Iterable[tuple[float, bytes]]) -> None:
    """Write ``(seconds, bytes)`` reads as the hexdump log pyserial's ``spy://`` handler records."""
    with path.open("w", encoding="ascii") as out:
        for when, data in reads:
            out.write(spy_rows(when, data))
