"""Values as legacy member systems export them: dates, phones, genders, names, text encodings.

Pure functions, no I/O beyond sniffing a file's first bytes. Real exports mix forms within one
file: ``2024/3/5``, ``2024-03-05 00:00:00``, ``20240305``, ``2024年3月5日``, ``5-Mar-2024``,
``Mar 5, 2024``, Excel day serials such as ``45356``; phones as ``+86 138 0013 8000``,
``86-13800138000``, ``(+86)13800138000``, full-width ``１３８００１３８０００`` or an Excel number
``13800138000.0``; genders as ``男``/``女``, ``M``/``F``, ``1``/``2`` (GB/T 2261.1).
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from datetime import date, timedelta
from pathlib import Path

from central.identity.normalizers import drop_format_characters

MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
DATE_ORDERS = ("dmy", "mdy")
_TIME_TAIL = re.compile(r"[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\Z")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})\Z")
_YMD = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?\Z")
_DAY_MONTH_NAME = re.compile(r"^(\d{1,2})[-/. ]+([A-Za-z]{3,9})\.?[-/., ]+(\d{4})\Z")
_MONTH_NAME_DAY = re.compile(r"^([A-Za-z]{3,9})\.?[-/. ]+(\d{1,2})(?:st|nd|rd|th)?,?[-/. ]+(\d{4})\Z")
_NUMERIC = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})\Z")
_EXCEL_SERIAL = re.compile(r"^(\d{5})(\.0+)?\Z")
_EXCEL_EPOCH = date(1899, 12, 30)
_OLDEST_YEAR = 1900


class FormatError(ValueError):
    """A value that cannot be read; ``code`` is the reason shown in the import report."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def clean_text(raw: str) -> str:
    """NFKC (full-width letters and digits become ASCII), trimmed, inner whitespace collapsed, no format characters.

    Format characters (zero-width space, bidi overrides, a BOM left in a cell) show nothing:
    :func:`central.identity.normalizers.drop_format_characters`.
    """
    if raw.isascii():
        return raw if raw.isalnum() else " ".join(raw.split())
    return " ".join(unicodedata.normalize("NFKC", drop_format_characters(raw)).split())


def parse_date(raw: str, *, order: str | None = None, today: date | None = None) -> date:
    """A calendar date in any of the forms above; ``order`` ("dmy"/"mdy") settles 05/03/2024.

    Raises FormatError: ``invalid_date``, ``ambiguous_date`` (give an order) or ``implausible_date``
    (before 1900 or after ``today``).
    """
    text = _TIME_TAIL.sub("", clean_text(raw))
    year, month, day = _date_parts(text, order)
    try:
        value = date(year, month, day)
    except ValueError:
        raise FormatError("invalid_date") from None
    if value.year < _OLDEST_YEAR or (today is not None and value > today):
        raise FormatError("implausible_date")
    return value


def _date_parts(text: str, order: str | None) -> tuple[int, int, int]:
    if match := _COMPACT.match(text) or _YMD.match(text):
        return int(match[1]), int(match[2]), int(match[3])
    if match := _DAY_MONTH_NAME.match(text):
        return int(match[3]), _month(match[2]), int(match[1])
    if match := _MONTH_NAME_DAY.match(text):
        return int(match[3]), _month(match[1]), int(match[2])
    if match := _NUMERIC.match(text):
        first, second, year = int(match[1]), int(match[2]), int(match[3])
        if first > 12 or (order == "dmy" and second <= 12):
            return year, second, first
        if second > 12 or order == "mdy":
            return year, first, second
        raise FormatError("ambiguous_date")
    if match := _EXCEL_SERIAL.match(text):
        serial = _EXCEL_EPOCH + timedelta(days=int(match[1]))
        return serial.year, serial.month, serial.day
    raise FormatError("invalid_date")


def _month(name: str) -> int:
    number = MONTHS.get(name.lower())
    if number is None:
        raise FormatError("invalid_date")
    return number


_PHONE_NOISE = re.compile(r"^(tel|phone|mobile|手机|电话)[:：]?", re.IGNORECASE)
_EXCEL_NUMBER = re.compile(r"^(\d{7,15})\.0+\Z")


def clean_phone(raw: str) -> str:
    """A phone as typed, without what spreadsheets and forms add around it; the registry normalizes it.

    ``(+86)138 0013 8000`` -> ``+86138 0013 8000``, ``13800138000.0`` -> ``13800138000``.
    """
    text = _PHONE_NOISE.sub("", clean_text(raw)).strip()
    if match := _EXCEL_NUMBER.match(text):
        return match[1]
    return text.replace("(", "").replace(")", "").replace("（", "").replace("）", "")


_GENDERS = {
    "male": ("m", "male", "man", "男", "1", "先生", "男性"),
    "female": ("f", "female", "woman", "女", "2", "女士", "女性"),
    "": ("", "0", "9", "u", "unknown", "未知", "保密", "未说明"),
}
GENDER_CODES = {word: code for code, words in _GENDERS.items() for word in words}


def parse_gender(raw: str) -> str:
    """``male``, ``female`` or ``""`` (unknown or unstated); FormatError ``invalid_gender`` otherwise."""
    code = GENDER_CODES.get(clean_text(raw).lower())
    if code is None:
        raise FormatError("invalid_gender")
    return code


_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_NAME_PUNCTUATION = re.compile(r"[\s·•・.\-_,'’]+")


def full_name(name: str, given: str, family: str) -> str:
    """The display name: ``name`` if given, else family + given (CJK) or "given family"."""
    name = clean_text(name)
    if name:
        return name
    given, family = clean_text(given), clean_text(family)
    if _CJK.search(given + family):
        return family + given
    return " ".join(part for part in (given, family) if part)


def name_key(name: str) -> str:
    """A name for comparison only: NFKC, case-folded, without spaces, name punctuation and format characters."""
    return _NAME_PUNCTUATION.sub("", drop_format_characters(unicodedata.normalize("NFKC", name)).casefold())


_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_CHUNK = 1 << 20


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else GB18030; FormatError ``undecodable`` if none fits."""
    with path.open("rb") as stream:
        head = stream.read(4)
        for bom, name in _BOMS:
            if head.startswith(bom):
                return name
        for candidate in ("utf-8", "gb18030"):
            stream.seek(0)
            decoder = codecs.getincrementaldecoder(candidate)()
            try:
                while block := stream.read(_CHUNK):
                    decoder.decode(block)
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                continue
            return candidate
    raise FormatError("undecodable")


def sniff_delimiter(header: str) -> str:
    """The delimiter of a header line: whichever of tab, comma, semicolon or bar it holds most of."""
    counts = {d: header.count(d) for d in ("\t", ",", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","
