"""Card-number redaction before anything touches disk.

Any run of 13-19 digits, written solid or in the groupings cards are printed in (4-4-4-4 up to
19 digits, 4-6-5 and 4-6-4, with one space or dash: ``6222 0212 3456 7890``), that passes the
Luhn check is treated as a payment card number (PAN) and
replaced by ``[PAN …7890 #kbpcnhfgmdfelkap]``: the last four digits and a keyed hash, so the same
card still compares equal without the number being recoverable. The hash is written in letters
only (``a``-``p``, one per hex digit): a token must never itself look like the digit run a card
scanner (or this module, on a second pass) would flag. Track data and CVV are dropped, not kept.
"""

from __future__ import annotations

import re
from typing import Any

from shared.crypto import keyed_hash

# Only card-shaped groupings: a looser pattern would join a date to a phone number.
_PATTERN = (
    r"(?<![0-9])(?:[0-9]{13,19}"
    r"|[0-9]{4}([ -])[0-9]{4}\1[0-9]{4}\1(?:[0-9]{4}\1[0-9]{1,3}|[0-9]{1,7})"
    r"|[0-9]{4}([ -])[0-9]{6}\2[0-9]{4,5})(?![0-9])"
)
_CANDIDATE = re.compile(_PATTERN)
_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")
TOKEN = re.compile(r"\[PAN …[0-9]{4} #[a-p]{16}\]")
"""A redaction token as :class:`PanRedactor` writes it."""
_CANDIDATE_BYTES = re.compile(_PATTERN.encode())


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
        return f"[PAN …{digits[-4:]} #{keyed_hash(self._key, digits).translate(_LETTERS)}]"

    def text(self, value: str) -> str:
        def swap(match: re.Match[str]) -> str:
            digits = re.sub(r"[ -]", "", match.group(0))
            return self._replacement(digits) if luhn_valid(digits) else match.group(0)

        return _CANDIDATE.sub(swap, value) if len(value) >= 13 else value

    def payload(self, value: Any) -> Any:
        """A copy of a JSON-like value with every string redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.payload(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.payload(v) for v in value]
        return value

    def raw(self, data: bytes) -> bytes:
        """Redact ASCII digit runs in undecoded bytes (digits are ASCII in UTF-8, GBK and GB18030)."""

        def swap(match: re.Match[bytes]) -> bytes:
            digits = re.sub(rb"[ -]", b"", match.group(0)).decode("ascii")
            return self._replacement(digits).encode("utf-8") if luhn_valid(digits) else match.group(0)

        return _CANDIDATE_BYTES.sub(swap, data) if len(data) >= 13 else data


# Magnetic-stripe track data and card verification codes are never kept, not even hashed. A
# receipt printer stream can carry them (a misconfigured terminal echoing a swipe, a debug line).
_TRACK = re.compile(
    r"%?B[0-9]{13,19}\^[^^\n]{0,26}\^[0-9]{4}[^?\n]{0,80}\??"  # track 1: %B PAN ^ NAME ^ YYMM ... ?
    r"|;?[0-9]{13,19}=[0-9]{4}[0-9]{0,40}\??"  # track 2: ;PAN=YYMM...?
)
_CVV = re.compile(
    r"(?:(?<![A-Za-z])(?:CVV2?|CVC2?|CID|CAV2)|安全码|校验码)\s*[:：]?\s*[0-9]{3,4}(?![0-9])", re.IGNORECASE
)


def drop_card_secrets(text: str) -> str:
    """Remove track data and CVV codes from ``text`` (run before PAN redaction: track 2 holds a PAN)."""
    if len(text) < 3:
        return text
    text = _TRACK.sub("[track data removed]", text)
    return _CVV.sub("[CVV removed]", text)
