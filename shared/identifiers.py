"""Normalizing customer identifiers so that equal people compare equal: phones and member cards."""

from __future__ import annotations

import re

_PHONE_JUNK = re.compile(r"[\s\-().]")
_MAINLAND = re.compile(r"^1[3-9]\d{9}\Z")
_INTERNATIONAL = re.compile(r"^\+[1-9]\d{7,14}\Z")
_CARD_JUNK = re.compile(r"[\s\-]")
_CARD = re.compile(r"^[A-Z0-9]{4,32}\Z")


def normalize_phone(raw: str) -> str | None:
    """A mainland mobile as 11 digits (13812345678); another country's as E.164 (+85291234567).

    Accepts spaces, dashes and the +86 / 0086 / 86 country prefix; returns None for anything that is
    not a plausible mobile number.
    """
    text = _PHONE_JUNK.sub("", raw.strip())
    if text.startswith("00"):
        text = "+" + text[2:]
    if text.startswith("+86"):
        text = text[3:]
    elif text.startswith("86") and len(text) == 13:
        text = text[2:]
    if _MAINLAND.match(text):
        return text
    if _INTERNATIONAL.match(text):
        return text
    return None


def normalize_card(raw: str) -> str | None:
    """A member card number, upper-cased without spaces or dashes; None if it is not 4-32 A-Z/0-9."""
    text = _CARD_JUNK.sub("", raw.strip()).upper()
    return text if _CARD.match(text) else None
