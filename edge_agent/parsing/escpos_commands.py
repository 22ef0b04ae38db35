"""The ESC/POS command table: how long the commands that carry no text are, and barcode names.

Lengths follow Epson's ESC/POS reference (TM-T88 family) plus the commands Chinese 58/80 mm
printers add (``ESC B n t`` beeper). A command listed in ``FIXED`` has no effect on the text: the
parser skips its whole length. Commands with a declared payload length, a NUL terminator, or an
effect on text and receipts are handled one by one in escpos.py.
"""

from __future__ import annotations

import re

from edge_agent.parsing.escpos_receipt import Code

ESC, FS, GS, DLE = 0x1B, 0x1C, 0x1D, 0x10

# Total length in bytes, prefix and command byte included, of commands that carry no text.
FIXED: dict[int, dict[int, int]] = {
    ESC: {
        0x0C: 2,  # ESC FF print page-mode data
        0x20: 3,  # ESC SP n right-side character spacing
        0x21: 3,  # ESC ! n print mode
        0x2D: 3,  # ESC - n underline
        0x32: 2,  # ESC 2 default line spacing
        0x33: 3,  # ESC 3 n line spacing
        0x3C: 2,  # ESC < return home
        0x3D: 3,  # ESC = n select peripheral device
        0x42: 4,  # ESC B n t beeper (Chinese printers)
        0x45: 3,  # ESC E n emphasis
        0x47: 3,  # ESC G n double strike
        0x4C: 2,  # ESC L page mode
        0x4D: 3,  # ESC M n font
        0x53: 2,  # ESC S standard mode
        0x54: 3,  # ESC T n page-mode print direction
        0x55: 3,  # ESC U n unidirectional printing
        0x56: 3,  # ESC V n 90-degree rotation
        0x57: 10,  # ESC W page-mode print area
        0x61: 3,  # ESC a n justification
        0x63: 4,  # ESC c x n paper sensors, panel buttons
        0x66: 4,  # ESC f m n slip wait time
        0x70: 5,  # ESC p m t1 t2 drawer kick-out pulse
        0x72: 3,  # ESC r n colour
        0x75: 3,  # ESC u n transmit peripheral status
        0x76: 2,  # ESC v transmit paper status
        0x7B: 3,  # ESC { n upside-down
    },
    FS: {
        0x21: 3,  # FS ! n Kanji print mode
        0x2D: 3,  # FS - n Kanji underline
        0x3F: 4,  # FS ? c1 c2 cancel user-defined Kanji character
        0x43: 3,  # FS C n Kanji code system (Japanese models)
        0x53: 4,  # FS S n1 n2 Kanji spacing
        0x57: 3,  # FS W n Kanji quadruple size
    },
    GS: {
        0x21: 3,  # GS ! n character size
        0x24: 4,  # GS $ page-mode vertical position
        0x3A: 2,  # GS : start or end macro definition
        0x42: 3,  # GS B n reverse printing
        0x45: 3,  # GS E n head control
        0x48: 3,  # GS H n HRI position
        0x49: 3,  # GS I n transmit printer ID
        0x4C: 4,  # GS L left margin
        0x50: 4,  # GS P x y motion units
        0x54: 3,  # GS T n print position to line start
        0x57: 4,  # GS W print area width
        0x5C: 4,  # GS \ page-mode relative vertical position
        0x5E: 5,  # GS ^ r t m execute macro
        0x61: 3,  # GS a n automatic status back
        0x62: 3,  # GS b n smoothing
        0x63: 2,  # GS c print counter
        0x66: 3,  # GS f n HRI font
        0x67: 6,  # GS g maintenance counters
        0x68: 3,  # GS h n barcode height
        0x6A: 3,  # GS j n ink status back
        0x72: 3,  # GS r n transmit status
        0x77: 3,  # GS w n barcode module width
    },
}

_DLE_LENGTHS = {0x04: 3, 0x05: 3}
_DC4_LENGTHS = {1: 5, 2: 5, 7: 4, 8: 10}
CUT_WITH_FEED = frozenset({65, 66, 97, 98, 103, 104})
PRINT_GRAPHICS = frozenset({2, 50, 69, 85})  # GS ( L / GS 8 L functions that print
PREFIXES = frozenset({ESC, GS, FS, DLE})
FIXED_BY_PAIR = {(prefix << 8) | cmd: size for prefix, table in FIXED.items() for cmd, size in table.items()}


def _styling_pattern() -> bytes:
    """Alternatives matching every fixed-length command that carries no text (ESC ! n, GS ! n...)."""
    alternatives = []
    for prefix, table in FIXED.items():
        for size in sorted(set(table.values())):
            cmds = b"".join(re.escape(bytes([cmd])) for cmd, n in table.items() if n == size)
            alternatives.append(re.escape(bytes([prefix])) + b"[" + cmds + b"]" + rb"[\x00-\xff]" * (size - 2))
    return b"|".join(alternatives)


# The fast path: a run of text, line feeds and styling commands, taken in one regex match.
# Text bytes never include ESC, GS or FS, so stripping the commands again cannot misread text.
STYLING = re.compile(_styling_pattern())
RUN = re.compile(rb"(?:[\x20-\xff\n]+|\r\n|" + _styling_pattern() + rb")+")

# -- what a printer accepts ---------------------------------------------------------------------
# A declared size beyond what any printer accepts is garbage (line noise, a stream joined in the
# middle of a command): skipping by it would swallow the receipts after it. Each bound is the
# largest the command references give: Epson's ESC/POS reference and TM-T88VI application
# development guide, and the command manuals of Citizen, Cino, HPRT, TransAct and Zijiang printers.
RASTER_MODES = frozenset({0, 1, 2, 3, 48, 49, 50, 51})  # GS v 0 m
RASTER_MAX_WIDTH = 300  # GS v 0 bytes across: 2,400 dots (Epson); 80 mm paper is 576, 112 mm 832
RASTER_MAX_HEIGHT = 4095  # GS v 0 dots down (Epson; Cino and HPRT stop at 2,303)
RASTER_MAX_BYTES = RASTER_MAX_WIDTH * RASTER_MAX_HEIGHT  # GS Q 0, whose size is given another way
BIT_IMAGE_MODES = frozenset({0, 1, 32, 33})  # ESC * m
BIT_IMAGE_MAX_DOTS = 1023  # ESC * nL nH: nH <= 3 (Epson, TransAct, Zijiang)
DOWNLOAD_IMAGE_MAX = 1536  # GS * x y: x * y <= 1536, at most 12,288 bytes (Epson)
GLYPH_MAX_HEIGHT = 3  # ESC & y: bytes down a user-defined character (24 dots, Epson)
GLYPH_MAX_WIDTH = 12  # ESC & x: dots across one (font A is 12 x 24, Epson)
NV_IMAGE_MAX_WIDTH = 1023  # FS q: bytes across one NV bit image (Epson, Citizen, Microcom)
NV_IMAGE_AREA = 256 * 1024  # FS q: all its images with their 4-byte headers (Citizen; Cino 64 KB)
SYMBOL_MAX = 7092  # GS ( k: a QR code's 7,089 digits and cn fn m; every other symbol holds less
QR_MAX = 7089  # ESC Z dL dH: the data of a QR code
# GS ( L and GS 8 L functions that carry an image, and the largest image (Epson: 8,192 x 2,304
# dots); the other functions take at most six parameter bytes.
GRAPHICS_STORE = frozenset({112, 113})  # a bx by c xL xH yL yH, then the data: print buffer
GRAPHICS_DEFINE = frozenset({67, 68, 83, 84})  # a kc1 kc2 b xL xH yL yH, then b x (c, data): NV, download
GRAPHICS_COLUMNS = frozenset({68, 84, 113})  # column format: 8 dots down a byte
GRAPHICS_MAX_WIDTH, GRAPHICS_MAX_HEIGHT = 8192, 2304
GRAPHICS_HEADER = 10  # m fn and the eight bytes before an image's data
GRAPHICS_SETTING_MAX = 16


def graphics_plausible(length: int, head: bytes) -> bool:
    """True if a ``GS ( L`` / ``GS 8 L`` declaring ``length`` bytes fits the function it names.

    ``head`` is the first ``min(length, GRAPHICS_HEADER)`` bytes of the data (m fn ...). An image
    function must declare exactly its header and image: random bytes almost never do.
    """
    if length < 2 or head[0] != 48:  # m is 48 for every function
        return False
    fn = head[1]
    if fn not in GRAPHICS_STORE and fn not in GRAPHICS_DEFINE:
        return length <= GRAPHICS_SETTING_MAX
    if length < GRAPHICS_HEADER:
        return False
    a, p1, p2, p3 = head[2], head[3], head[4], head[5]
    width, height = head[6] + head[7] * 256, head[8] + head[9] * 256
    if a != 48 or not (1 <= width <= GRAPHICS_MAX_WIDTH and 1 <= height <= GRAPHICS_MAX_HEIGHT):
        return False
    image = width * ((height + 7) // 8) if fn in GRAPHICS_COLUMNS else (width + 7) // 8 * height
    if fn in GRAPHICS_STORE:  # bx, by: 1 or 2; c: colour 1-4
        return p1 in (1, 2) and p2 in (1, 2) and 49 <= p3 <= 52 and length == GRAPHICS_HEADER + image
    # kc1 kc2: a printable key code; b: 1-4 colours, each a colour byte and the image
    return 32 <= p1 <= 126 and 32 <= p2 <= 126 and 1 <= p3 <= 4 and length == GRAPHICS_HEADER + p3 * (1 + image)


# GS k m: function A (m 0-6, NUL-terminated) and function B (m 65-79, length-prefixed).
BARCODES = {
    0: "upc_a",
    1: "upc_e",
    2: "ean13",
    3: "ean8",
    4: "code39",
    5: "itf",
    6: "codabar",
    65: "upc_a",
    66: "upc_e",
    67: "ean13",
    68: "ean8",
    69: "code39",
    70: "itf",
    71: "codabar",
    72: "code93",
    73: "code128",
    74: "gs1_128",
    75: "gs1_databar_omni",
    76: "gs1_databar_truncated",
    77: "gs1_databar_limited",
    78: "gs1_databar_expanded",
    79: "code128_auto",
}

# GS ( k cn: the two-dimensional symbols. Each stores its data with fn 80 and prints it with fn 81.
SYMBOLS_2D = {48: "pdf417", 49: "qr", 50: "maxicode", 51: "gs1_databar_2d", 53: "aztec", 54: "datamatrix"}


def payload_text(data: bytes) -> str:
    """A barcode or QR payload as text: UTF-8, else GB18030, else one character per byte."""
    for codec in ("utf-8", "gb18030"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def code128_text(data: bytes) -> str:
    """The characters a CODE128 barcode encodes, from Epson's ``{A``/``{B``/``{C`` notation.

    In code set C each byte is a pair of digits (0-99); ``{1`` is FNC1, written as GS (0x1D)
    inside the data as GS1 does; ``{2``..``{4`` and ``{S`` carry no characters; ``{{`` is ``{``.
    """
    if data[:2] in (b"{A", b"{B") and b"{" not in data[2:]:  # the usual case: one text code set
        return data[2:].decode("latin-1")
    out: list[str] = []
    code_set = "B"
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == 0x7B and i + 1 < len(data):  # "{"
            selector = chr(data[i + 1])
            i += 2
            if selector in "ABC":
                code_set = selector
            elif selector == "{":
                out.append("{")
            elif selector == "1" and out:
                out.append("\x1d")
            continue
        out.append(f"{byte:02d}" if code_set == "C" else chr(byte))
        i += 1
    return "".join(out)


def barcode(m: int, data: bytes) -> Code:
    """What ``GS k m`` printed: its symbology and its data as text."""
    symbology = BARCODES.get(m, f"barcode_{m}")
    return Code(symbology, code128_text(data) if symbology == "code128" else payload_text(data))


def dle_length(buf: bytes, i: int) -> int | None:
    """Position after the DLE real-time command at ``buf[i]``; None if it is not complete yet."""
    if i + 2 > len(buf):
        return None
    if buf[i + 1] == 0x14:
        if i + 3 > len(buf):
            return None
        size = _DC4_LENGTHS.get(buf[i + 2], 3)
    else:
        size = _DLE_LENGTHS.get(buf[i + 1], 1)
    return i + size if i + size <= len(buf) else None
