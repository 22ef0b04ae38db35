"""Identifier normalizers: raw values as sent in, the stored comparable form out (or None if unusable).

Pure functions, one per normalizer name the registry may name. Phones go through Google's
``phonenumbers`` metadata: a mainland number with or without +86 / 0086 / 86 becomes
``+8613812345678``; other countries' numbers must carry their prefix (``+85291234567``).

Every normalizer but ``token`` and ``device`` (machine-made ASCII ids, refused otherwise) first
reads its value through :func:`fold`: what a Chinese input method types in full-width mode
(``１３８``, ``ＶＩＰ００４２``) and digits of other scripts (``١٣٨``) count as the ASCII they stand
for, and invisible format characters (a zero-width space) count as nothing, so that one value
cannot become two identifiers, or slip past a blocked one, by its spelling.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable

import phonenumbers

Normalizer = Callable[[str], str | None]

_CARD_JUNK = re.compile(r"[\s\-]")
_CARD = re.compile(r"^[A-Z0-9]{4,32}\Z")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+\Z")
_TOKEN = re.compile(r"^[A-Za-z0-9_\-=.+/]{4,128}\Z")
_HEX_ISH = re.compile(r"^[a-z0-9_\-=.+/:]{8,128}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
# The mobile and fixed-line types; pagers, premium-rate and short codes do not identify a customer.
_PERSONAL_TYPES = frozenset(
    {
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.PERSONAL_NUMBER,
        phonenumbers.PhoneNumberType.VOIP,
    }
)
MAX_VALUE = 128
_ASCII_DIGITS = "0123456789"


def drop_format_characters(text: str) -> str:
    """``text`` without Unicode format characters (category Cf), which show nothing or only reorder the text.

    Zero-width space and joiners, bidi embeddings, overrides and isolates (``\\u202eevil`` shows
    as ``live``), the BOM, the soft hyphen: a value with them looks like the value without them,
    so it is the same value. Joiners also shape emoji sequences and some scripts' letters, which a
    retail name or address does without.
    """
    if text.isascii():
        return text
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


def fold(raw: str) -> str:
    """``raw`` with full-width forms as ASCII (NFKC), every decimal digit as its ASCII digit, no format characters.

    NFKC folds ``１３８`` and ``ＶＩＰ`` but leaves the digits of other scripts alone, which
    ``str.isdigit`` and ``\\d`` still accept: Arabic-Indic ``١٣٨`` and Devanagari ``१३८`` are read
    by their Unicode decimal value. Format characters: :func:`drop_format_characters`.
    """
    if raw.isascii():
        return raw
    text = unicodedata.normalize("NFKC", drop_format_characters(raw))
    if text.isascii():
        return text
    return "".join(_ASCII_DIGITS[d] if (d := unicodedata.decimal(c, None)) is not None else c for c in text)


@functools.cache
def _mainland_mobile() -> re.Pattern[str]:
    """libphonenumber's own pattern for mainland mobile numbers (national significant number), on ASCII digits."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region("CN")
    pattern = metadata.mobile.national_number_pattern if metadata and metadata.mobile else None
    return re.compile(pattern or r"1[3-9]\d{9}", re.ASCII)


def phone(raw: str) -> str | None:
    """E.164 (``+8613812345678``); a number without a country prefix is read as mainland China.

    A number with an extension (``021-63456789 ext 801``, ``#801``, ``x801``, ``;ext=801``) is
    refused: it reaches a desk behind a switchboard that a whole office shares, not a person, and
    E.164 has no place for the extension. Keeping only the switchboard's number joined everyone
    behind it into one customer.
    """
    text = fold(raw).strip()
    if not text or len(text) > 32:
        return None
    # Fast path for the common case, with the same metadata a full parse would consult.
    national = _PHONE_SEPARATORS.sub("", text)
    for prefix in ("+86", "0086", "86"):
        if national.startswith(prefix) and len(national) == len(prefix) + 11:
            national = national[len(prefix) :]
            break
    if len(national) == 11 and national.isascii() and national.isdigit() and national[0] == "1":
        return "+86" + national if _mainland_mobile().fullmatch(national) else None
    if text.startswith("00"):
        text = "+" + text[2:]
    elif text.startswith("86") and len(re.sub(r"[^0-9]", "", text)) == 13:
        text = "+" + text
    try:
        number = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        return None
    if number.extension or not phonenumbers.is_valid_number(number):
        return None
    if phonenumbers.number_type(number) not in _PERSONAL_TYPES:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def card(raw: str) -> str | None:
    """A member card: upper case without spaces or dashes, 4-32 of A-Z and 0-9."""
    text = _CARD_JUNK.sub("", fold(raw).strip())
    # Checked before upper(), which turns some other letters into ASCII ones (ß -> SS).
    if not text.isascii():
        return None
    text = text.upper()
    return text if _CARD.match(text) else None


def email(raw: str) -> str | None:
    """An e-mail address in lower case; None unless it looks like one."""
    text = fold(raw).strip().lower()
    return text if len(text) <= 254 and _EMAIL.match(text) else None


def token(raw: str) -> str | None:
    """An opaque id issued by another system (WeChat unionid/openid, app user id): kept as sent, trimmed."""
    text = raw.strip()
    return text if _TOKEN.match(text) else None


def device(raw: str) -> str | None:
    """A device fingerprint or hash, lower case."""
    text = raw.strip().lower()
    return text if _HEX_ISH.match(text) else None


def text_value(raw: str) -> str | None:
    """Any printable text up to 128 characters, trimmed."""
    text = fold(raw).strip()
    return text if 0 < len(text) <= MAX_VALUE and not _CONTROL.search(text) else None


def upper(raw: str) -> str | None:
    """Trimmed, upper case, inner spaces removed."""
    value = text_value(re.sub(r"\s+", "", raw))
    return value.upper() if value else None


def lower(raw: str) -> str | None:
    """Trimmed, lower case, inner spaces removed."""
    value = text_value(re.sub(r"\s+", "", raw))
    return value.lower() if value else None


def digits(raw: str) -> str | None:
    """Only the digits (read as ASCII), 4 to 32 of them."""
    value = re.sub(r"[^0-9]", "", fold(raw))
    return value if 4 <= len(value) <= 32 else None


NORMALIZERS: dict[str, Normalizer] = {
    "phone": phone,
    "card": card,
    "email": email,
    "token": token,
    "device": device,
    "text": text_value,
    "upper": upper,
    "lower": lower,
    "digits": digits,
}

# Placeholders typed when a customer gives nothing, compared case-insensitively on the raw value.
PLACEHOLDERS = frozenset(
    {
        "",
        "0",
        "00",
        "null",
        "none",
        "nil",
        "n/a",
        "na",
        "-",
        "--",
        "anonymous",
        "unknown",
        "test",
        "guest",
        "无",
        "匿名",
    }
)


_SAME_DIGITS = re.compile(r"([0-9])\1{7}")
_RUN = "01234567890123456789"
# Every run of nine consecutive digits, ascending or descending, wrapping 9 -> 0.
_SEQUENTIAL_9 = frozenset(w for text in (_RUN, _RUN[::-1]) for w in (text[i : i + 9] for i in range(11)))
# The same runs as one pattern: a value holds one of them somewhere exactly when a search finds it.
_SEQUENTIAL = re.compile("|".join(sorted(_SEQUENTIAL_9)))


def _is_run(value: str) -> bool:
    """A value made only of consecutive digits, ascending or descending (123456, 9876)."""
    return value.isascii() and value.isdigit() and (value in _RUN * 4 or value in _RUN[::-1] * 4)


def junk_reason(kind_normalizer: str, value: str) -> str | None:
    """Why a normalized value is a typing placeholder rather than a person's, or None.

    Phones: eight or more equal digits in a row (13800000000, 13888888888) or nine or more
    consecutive ascending or descending digits (12345678901). Other values: one character repeated,
    or nothing but an ascending or descending run of digits (123456).
    """
    if kind_normalizer == "phone":
        national = value[3:] if value.startswith("+86") else value.lstrip("+")
        if _SAME_DIGITS.search(national):
            return "same_digits"
        if _SEQUENTIAL.search(national):
            return "sequential"
        return None
    if len(value) >= 3 and len(set(value)) == 1:
        return "same_digits"
    if len(value) >= 4 and _is_run(value):
        return "sequential"
    return None
