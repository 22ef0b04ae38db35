"""GS1 element strings: application identifiers (AIs) and their data, as GS1-128, DataBar or GS1 QR carry them.

An element string is a run of ``AI data`` pairs; a variable-length value ends with FNC1, which a
scanner sends as the group separator ``\\x1d``, or at the end of the payload. A GS1-128 label
(GS1 General Specifications, section 3)::

    0105901234123457 15210526 10ABC123\\x1d 21XYZ
    (01) GTIN        (15) best before 2021-05-26, (10) batch ABC123, (21) serial XYZ

The AIs whose value length is predefined by their first two digits need no FNC1 (the GS1 table
of "predefined length" element strings); every other AI does, unless it comes last.
"""

from __future__ import annotations

import re

# First two digits -> the AI's own length (GS1 General Specifications, figure 3.2-1).
_AI_LENGTH = {
    **{p: 2 for p in ("00", "01", "02", "03", "04", "10", "11", "12", "13", "15", "16", "17", "20", "21", "22")},
    **{p: 2 for p in ("30", "37", "90", "91", "92", "93", "94", "95", "96", "97", "98", "99")},
    **{p: 3 for p in ("23", "24", "25", "40", "41", "42", "71")},
    **{p: 4 for p in ("31", "32", "33", "34", "35", "36", "39", "43", "70", "72", "80", "81", "82")},
}
# First two digits -> the value's predefined length: these never need FNC1 after them.
_PREDEFINED = {"00": 18, "01": 14, "02": 14, "03": 14, "04": 16, "11": 6, "12": 6, "13": 6}
_PREDEFINED |= {"14": 6, "15": 6, "16": 6, "17": 6, "18": 6, "19": 6, "20": 2, "41": 13}
_PREDEFINED |= {p: 6 for p in ("31", "32", "33", "34", "35", "36")}
# Longest value of the variable-length AIs we know; others may hold up to 90 characters.
_MAX_LENGTH = {"10": 20, "21": 20, "22": 20, "30": 8, "37": 8, "240": 30, "241": 30, "250": 30, "251": 30}
_MAX_LENGTH |= {"400": 30, "401": 30, "403": 30, "420": 20, "421": 12, "8020": 25}
_TITLES = {
    "00": "SSCC",
    "01": "GTIN",
    "02": "CONTENT",
    "10": "BATCH/LOT",
    "11": "PROD DATE",
    "13": "PACK DATE",
    "15": "BEST BEFORE or BEST BY",
    "16": "SELL BY",
    "17": "USE BY or EXPIRY",
    "21": "SERIAL",
    "30": "VAR. COUNT",
    "37": "COUNT",
    "400": "ORDER NUMBER",
    "8020": "REF NO.",
}
_PREFIX_TITLES = {"310": "NET WEIGHT (kg)", "392": "PRICE", "393": "PRICE"}
_DATE_AIS = frozenset({"11", "12", "13", "15", "16", "17"})
_DATA_RE = re.compile(r"^[\x21-\x22\x25-\x3f\x41-\x5a\x5f\x61-\x7a]*\Z")  # GS1 AI encodable character set 82
# GS1 company prefix ranges that a till sees most (GS1 "GS1 Company Prefix" list, first three digits).
_PREFIXES = (
    (0, 19, "GS1 US"),
    (20, 29, "Used to issue restricted circulation numbers within a geographic region"),
    (30, 39, "GS1 US"),
    (40, 49, "Used to issue restricted circulation numbers within a company"),
    (60, 139, "GS1 US"),
    (200, 299, "Used to issue restricted circulation numbers within a geographic region"),
    (300, 379, "GS1 France"),
    (400, 440, "GS1 Germany"),
    (450, 459, "GS1 Japan"),
    (490, 499, "GS1 Japan"),
    (590, 590, "GS1 Poland"),
    (690, 699, "GS1 China"),
    (880, 880, "GS1 Korea"),
    (977, 977, "Serial publications (ISSN)"),
    (978, 979, "Bookland (ISBN)"),
    (980, 980, "Refund receipts"),
    (981, 984, "GS1 coupon identification for common currency areas"),
    (990, 999, "GS1 coupon identification"),
)


class Gs1Error(ValueError):
    """An element string that does not parse; the message says where."""


def ai_title(ai: str) -> str:
    """The GS1 short title of an AI, or an empty string for one not listed here."""
    return _TITLES.get(ai) or _PREFIX_TITLES.get(ai[:3], "")


def gs1_prefix(first_three: str) -> str | None:
    """Who issued a GTIN-13's first three digits (a coarse list; None when not listed)."""
    number = int(first_three)
    return next((name for low, high, name in _PREFIXES if low <= number <= high), None)


def parse_element_string(data: str) -> list[tuple[str, str]]:
    """The (AI, value) pairs of an element string; raise Gs1Error naming the position of a problem."""
    pairs: list[tuple[str, str]] = []
    pos = 0
    while pos < len(data):
        if data[pos] == "\x1d":
            pos += 1
            continue
        ai_len = _AI_LENGTH.get(data[pos : pos + 2])
        ai = data[pos : pos + ai_len] if ai_len else ""
        if not ai_len or len(ai) != ai_len or not ai.isdigit():
            raise Gs1Error(f"Failed to get GS1 Application Identifier from {data[pos:]!r} (position {pos})")
        pos += ai_len
        fixed = _PREDEFINED.get(ai[:2])
        if fixed is not None:
            value = data[pos : pos + fixed]
            if len(value) != fixed:
                raise Gs1Error(f"GS1 AI ({ai}) needs {fixed} characters, got {len(value)} (position {pos})")
        else:
            end = data.find("\x1d", pos)
            value = data[pos : end if end >= 0 else len(data)]
            limit = _MAX_LENGTH.get(ai, 90)
            if not value or len(value) > limit:
                raise Gs1Error(f"GS1 AI ({ai}) takes 1 to {limit} characters, got {len(value)} (position {pos})")
        if not _DATA_RE.match(value) or (fixed is not None and ai[:2] != "20" and not value.isdigit()):
            raise Gs1Error(f"GS1 AI ({ai}) holds characters it may not: {value!r} (position {pos})")
        if ai in _DATE_AIS and not _is_date(value):
            raise Gs1Error(f"GS1 AI ({ai}) is not a date YYMMDD: {value!r} (position {pos})")
        pairs.append((ai, value))
        pos += len(value)
    if not pairs:
        raise Gs1Error("empty GS1 element string")
    return pairs


def _is_date(value: str) -> bool:
    # Day 00 means "end of the month" in GS1 dates.
    return value.isdigit() and 1 <= int(value[2:4]) <= 12 and 0 <= int(value[4:6]) <= 31
