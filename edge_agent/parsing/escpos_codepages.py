"""ESC/POS code pages: the decoding tables behind ``ESC t n``, ``ESC R n`` and ``ESC 9 n``.

Numbers follow Epson's ``ESC t`` table; ``ESC t 255`` is GBK on Chinese printers and is handled by
the parser as double-byte mode, not as a page. Every page is a 256-character table for
``codecs.charmap_decode``, so pages Python has no codec for (JIS X 0201 katakana, TCVN-3) decode
the same way as the rest.
"""

from __future__ import annotations

import codecs
from functools import cache

# ESC 9 n on Chinese printers: the encoding of double-byte text.
DOUBLE_BYTE = {0: "gb18030", 1: "utf-8", 3: "big5", 4: "shift_jis", 5: "euc_kr"}

# ESC t n (Epson numbering). Thai pages differ in detail; TIS-620 (cp874) is their common core.
CODE_PAGES = {
    0: "cp437",
    1: "katakana",
    2: "cp850",
    3: "cp860",
    4: "cp863",
    5: "cp865",
    13: "cp857",
    14: "cp737",
    15: "iso8859_7",
    16: "cp1252",
    17: "cp866",
    18: "cp852",
    19: "cp858",
    20: "cp874",
    21: "cp874",
    22: "cp874",
    23: "cp874",
    24: "cp874",
    25: "cp874",
    26: "cp874",
    30: "tcvn3",
    31: "tcvn3",
    32: "cp720",
    33: "cp775",
    34: "cp855",
    35: "cp861",
    36: "cp862",
    37: "cp864",
    38: "cp869",
    39: "iso8859_2",
    40: "iso8859_15",
    44: "cp1125",
    45: "cp1250",
    46: "cp1251",
    47: "cp1253",
    48: "cp1254",
    49: "cp1255",
    50: "cp1256",
    51: "cp1257",
    52: "cp1258",
    53: "kz1048",
}

# TCVN-3 (Vietnamese) has no Python codec: bytes 0xA1-0xFE hold the precomposed letters.
_TCVN3 = {
    0xA1: "ĂÂÊÔƠƯĐăâêôơưđ",
    0xB5: "àảãáạ",
    0xBB: "ằẳẵắ",
    0xC6: "ặầẩẫấậè",
    0xCE: "ẻẽéẹềểễếệìỉ",
    0xDC: "ĩíịò",
    0xE1: "ỏõóọồổỗốộờởỡớợù",
    0xF1: "ủũúụừửữứựỳỷỹýỵ",
}

_ASCII_POSITIONS = (0x23, 0x24, 0x40, 0x5B, 0x5C, 0x5D, 0x5E, 0x60, 0x7B, 0x7C, 0x7D, 0x7E)
# ESC R n: what each international character set prints at the twelve positions above.
_INTERNATIONAL_ROWS = {
    1: "#$à°ç§^`éùè¨",  # France
    2: "#$§ÄÖÜ^`äöüß",  # Germany
    3: "£$@[\\]^`{|}~",  # U.K.
    4: "#$@ÆØÅ^`æøå~",  # Denmark I
    5: "#¤ÉÄÖÅÜéäöåü",  # Sweden
    6: "#$@°\\é^ùàòèì",  # Italy
    7: "₧$@¡Ñ¿^`¨ñ}~",  # Spain I
    8: "#$@[¥]^`{|}~",  # Japan
    9: "#¤ÉÆØÅÜéæøåü",  # Norway
    10: "#$ÉÆØÅÜéæøåü",  # Denmark II
    11: "#$á¡Ñ¿é`íñóú",  # Spain II
    12: "#$á¡Ñ¿éüíñóú",  # Latin America
    13: "#$@[₩]^`{|}~",  # Korea
    15: "#¥@[\\]^`{|}~",  # China
}


@cache
def international(n: int) -> dict[int, str]:
    """The ``str.translate`` table of ``ESC R n`` (empty for U.S.A. and sets not listed); do not modify it."""
    row = _INTERNATIONAL_ROWS.get(n)
    if row is None:
        return {}
    return {pos: char for pos, char in zip(_ASCII_POSITIONS, row, strict=True) if chr(pos) != char}


@cache
def decoding_table(page: str) -> str:
    """A 256-character table for ``codecs.charmap_decode``; unmapped bytes are U+FFFE (replaced)."""
    if page == "katakana":
        # JIS X 0201: half-width katakana at 0xA1-0xDF.
        return "".join(
            chr(b) if b < 0x80 else chr(0xFF61 + b - 0xA1) if 0xA1 <= b <= 0xDF else "\ufffe" for b in range(256)
        )
    if page == "tcvn3":
        table = [chr(b) if b < 0x80 else "\ufffe" for b in range(256)]
        for start, letters in _TCVN3.items():
            for index, letter in enumerate(letters):
                table[start + index] = letter
        return "".join(table)
    decoder = codecs.getdecoder(page)
    return "".join(decoder(bytes([b]), "replace")[0].replace("\ufffd", "\ufffe") for b in range(256))


def page_name(n: int) -> str:
    """The decoding table name of ``ESC t n``; pages we do not know fall back to PC437."""
    return CODE_PAGES.get(n, "cp437")
