"""Card-number redaction before anything touches disk.

Any run of 13-19 digits, written solid or in the groupings cards are printed in (4-4-4-4 up to
19 digits, 4-6-5 and 4-6-4, or one digit at a time, with one consistent separator:
``6222 0212 3456 7890``, ``4111.1111.1111.1111``, ``4 1 1 1 …``), that passes the Luhn check is
treated as a payment card number (PAN) and replaced by ``[PAN …7890 #kbpcnhfgmdfelkap]``: the last
four digits (always ASCII) and a keyed hash, so the same card still compares equal without the
number being recoverable. Digits are any Unicode decimal digits (full-width ``６２２２`` from a
Chinese input method included), folded to ASCII before the Luhn check. The hash is written in
letters only (``a``-``p``, one per hex digit): a token must never itself look like the digit run a
card scanner (or this module, on a second pass) would flag. Track data and CVV are dropped, not kept.
"""

from __future__ import annotations

import re
from collections.abc import Container
from typing import Any

from shared.crypto import keyed_hash

# The separators a card number is printed with, as tills, keyboards and input methods write them:
# spaces (ASCII, no-break, figure, thin, and the ideographic space U+3000 a Chinese input method
# types), the dash and its look-alikes (hyphens, en and em dash, minus sign), and '.', '*', '/' and
# '_', which some tills and terminal echoes group with; each also in its full-width form. Not ','
# or ':', which join amounts and times into digit runs.
SEPARATORS = " \u00a0\u2007\u2009\u202f\u3000-\u2010\u2011\u2012\u2013\u2014\u2212\uff0d.\uff0e*\uff0a/\uff0f_\uff3f"


def _shapes(digit: str, separator: str, not_after: str, not_before: str) -> str:
    """Only card-shaped groupings, each with one consistent separator: a looser pattern would join
    a date to a phone number. The first digit is matched once for all shapes, which makes the
    search about twice as fast as trying each shape from the start."""
    d = f"(?:{digit})"
    return (
        f"{not_after}{d}(?:{d}{{12,18}}"  # solid
        f"|{d}{{3}}({separator}){d}{{4}}\\1{d}{{4}}\\1(?:{d}{{4}}\\1{d}{{1,3}}|{d}{{1,7}})"  # 4-4-4-4(-3)
        f"|{d}{{3}}({separator}){d}{{6}}\\2{d}{{4,5}}"  # 4-6-5 and 4-6-4
        f"|({separator}){d}(?:\\3{d}){{11,17}}"  # one digit at a time
        f"){not_before}"
    )


_CANDIDATE = re.compile(_shapes(r"\d", f"[{re.escape(SEPARATORS)}]", r"(?<!\d)", r"(?!\d)"))
# Undecoded bytes (a quarantined line of unknown encoding): ASCII digits, and the full-width ones
# and the separators as UTF-8 and as GBK/GB18030 write them.
_RAW_DIGIT = rb"[0-9]|\xef\xbc[\x90-\x99]|\xa3[\xb0-\xb9]"
_RAW_SEPARATORS = sorted(
    {form for ch in SEPARATORS for form in (ch.encode(), ch.encode("gb18030"))}, key=lambda f: (-len(f), f)
)
_CANDIDATE_BYTES = re.compile(
    _shapes(
        _RAW_DIGIT.decode("latin-1"),
        "|".join(re.escape(form.decode("latin-1")) for form in _RAW_SEPARATORS),
        r"(?<![0-9])(?<!\xef\xbc[\x90-\x99])(?<!\xa3[\xb0-\xb9])",
        r"(?![0-9]|\xef\xbc[\x90-\x99]|\xa3[\xb0-\xb9])",
    ).encode("latin-1")
)
_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")
TOKEN = re.compile(r"\[PAN …[0-9]{4} #[a-p]{16}\]")
"""A redaction token as :class:`PanRedactor` writes it."""


# Leading digits of the numbers payment networks issue, taken broadly. ISO/IEC 7812 gives whole
# first digits to card issuers: 1 airlines (UATP), 3 travel and entertainment (Amex, JCB, Diners),
# 4-6 banking and merchandising (Visa, Mastercard, Discover, UnionPay 62, Maestro, RuPay, Troy),
# 7 petroleum (fleet cards), 9 national use (China's domestic 9-prefixed bank cards). Within 2 and
# 8 the networks hold 22-27 (Mir 2200-2204, Borica 2205, Mastercard 2221-2720) and 81-82 (UnionPay,
# RuPay). Whole digits and blocks rather than today's ranges, because ranges are added (Mastercard's
# 2-series in 2017, UnionPay's 81): a table that lagged would let a new card through.
_ISSUED = re.compile(r"[134567]|2[2-7]|8[12]|9")


def card_issuer_prefix(digits: str) -> bool:
    """True if some payment network issues card numbers starting like ``digits`` (ASCII)."""
    return _ISSUED.match(digits) is not None


def luhn_valid(digits: str) -> bool:
    """True if the digit string passes the Luhn (mod 10) check."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


class PanRedactor:
    """Replaces Luhn-valid card numbers in text, payloads and raw bytes; counts what it replaced."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self.redacted = 0

    def _replacement(self, digits: str) -> str:
        self.redacted += 1
        return self._token(digits)

    def _token(self, digits: str) -> str:
        return f"[PAN …{digits[-4:]} #{keyed_hash(self._key, digits).translate(_LETTERS)}]"

    def text(self, value: str, keep: Container[str] = ()) -> str:
        """``value`` with every card number replaced by its token, but those whose digits are in ``keep``."""

        def swap(match: re.Match[str]) -> str:
            digits = _digits(match)
            return self._replacement(digits) if luhn_valid(digits) and digits not in keep else match.group(0)

        return _CANDIDATE.sub(swap, value) if len(value) >= 13 else value

    def found(self, value: str) -> dict[str, str]:
        """The card numbers in ``value``: each one's token, and its digits in ASCII (nothing is counted)."""
        if len(value) < 13:
            return {}
        numbers = (_digits(match) for match in _CANDIDATE.finditer(value))
        return {self._token(digits): digits for digits in numbers if luhn_valid(digits)}

    def payload(self, value: Any, keep: Container[str] = ()) -> Any:
        """A copy of a JSON-like value with every string's track data and CVV dropped and its card
        numbers redacted (but card-shaped digits in ``keep``)."""
        if isinstance(value, str):
            return self.text(drop_card_secrets(value), keep)
        if isinstance(value, dict):
            return {k: self.payload(v, keep) for k, v in value.items()}
        if isinstance(value, list):
            return [self.payload(v, keep) for v in value]
        return value

    def receipt_number(self, receipt_no: str) -> frozenset[str]:
        """The card-shaped digits of a receipt number that no payment network issues cards like.

        Redaction would take them for a card number (Luhn-valid, 13-19 digits); a field the till
        names as the receipt number that starts like no issuer's cards (:func:`card_issuer_prefix`)
        cannot be one, so it is given back wherever it is written. Anything else stays a token.
        """
        return frozenset(d for d in self.found(drop_card_secrets(receipt_no)).values() if not card_issuer_prefix(d))

    def raw(self, data: bytes) -> bytes:
        """Drop track data and CVV codes and redact card numbers in undecoded bytes: ASCII digits, and
        full-width ones in UTF-8 or GBK."""

        def swap(match: re.Match[bytes]) -> bytes:
            found = match.group(0)
            separator = match.group(1) or match.group(2) or match.group(3)
            if separator:  # removed first: a four-byte GB18030 separator holds ASCII digit bytes
                found = found.replace(separator, b"")
            # What is left is digits only: 0x30-0x39, or a full-width digit whose last byte is
            # 0x90-0x99 (UTF-8) or 0xb0-0xb9 (GBK): the low four bits are its value.
            digits = "".join(str(b & 0x0F) for b in found.replace(b"\xef\xbc", b"").replace(b"\xa3", b""))
            return self._replacement(digits).encode("utf-8") if luhn_valid(digits) else match.group(0)

        data = drop_card_secrets_raw(data)
        return _CANDIDATE_BYTES.sub(swap, data) if len(data) >= 13 else data


def _digits(match: re.Match[str]) -> str:
    """The digits of a candidate, folded to ASCII."""
    return "".join(str(int(c)) for c in match.group(0) if c.isdecimal())


# Magnetic-stripe track data and card verification codes are never kept, not even hashed. A
# receipt printer stream can carry them (a misconfigured terminal echoing a swipe, a debug line).
_TRACK = re.compile(
    r"%?B[0-9]{13,19}\^[^^\n]{0,26}\^[0-9]{4}[^?\n]{0,80}\??"  # track 1: %B PAN ^ NAME ^ YYMM ... ?
    r"|;?[0-9]{13,19}=[0-9]{4}[0-9]{0,40}\??"  # track 2: ;PAN=YYMM...?
)
_CVV = re.compile(
    r"(?:(?<![A-Za-z])(?:CVV2?|CVC2?|CID|CAV2)|安全码|校验码)\s*[:：]?\s*[0-9]{3,4}(?![0-9])", re.IGNORECASE
)


# The same in undecoded bytes: track data is ASCII in every encoding a till writes; the CVV's labels
# and the full-width colon as UTF-8 and as GBK/GB18030 write them.
_TRACK_BYTES = re.compile(_TRACK.pattern.encode("ascii"))
_CVV_BYTES = re.compile(
    b"(?:(?<![A-Za-z])(?:CVV2?|CVC2?|CID|CAV2)|"
    + b"|".join(re.escape(word.encode(enc)) for word in ("安全码", "校验码") for enc in ("utf-8", "gb18030"))
    + rb")\s*(?::|"
    + b"|".join(re.escape("：".encode(enc)) for enc in ("utf-8", "gb18030"))
    + rb")?\s*[0-9]{3,4}(?![0-9])",
    re.IGNORECASE,
)


def drop_card_secrets(text: str) -> str:
    """Remove track data and CVV codes from ``text`` (run before PAN redaction: track 2 holds a PAN)."""
    if len(text) < 3:
        return text
    text = _TRACK.sub("[track data removed]", text)
    return _CVV.sub("[CVV removed]", text)


def drop_card_secrets_raw(data: bytes) -> bytes:
    """:func:`drop_card_secrets` for undecoded bytes (ASCII, UTF-8 or GBK/GB18030)."""
    if len(data) < 3:
        return data
    data = _TRACK_BYTES.sub(b"[track data removed]", data)
    return _CVV_BYTES.sub(b"[CVV removed]", data)
