"""What a barcode scanner sent: a product, a member code, a coupon, a payment code, or unknown.

A scanner sends one payload per scan, optionally behind an AIM symbology identifier (ISO/IEC
15424: ``]`` + code letter + modifier) and, for GS1 carriers, with FNC1 sent as the group
separator ``\\x1d``. Real payloads::

    5901234123457                 EAN-13, a product (GTIN-13, check digit 7)
    ]E496385074                   EAN-8 behind its AIM prefix
    425261                        UPC-E, expanded to GTIN-12 042100005264
    ]C1010590123412345715210526   GS1-128: (01) GTIN, (15) best before 2021-05-26
    134567890123456789            a WeChat Pay payment code: recognised, never kept
    CDPM1:...                     a member code shown by the member app (see shared.member_code)

Payment codes (WeChat Pay: 18 digits from 10-15; Alipay: 16-24 digits from 25-30; UnionPay QR:
19 digits from 62) are classified first and their digits are dropped, so a payment code never
reaches a product field, a log or the outbox. A bare 18-digit number from 10-15 is therefore a
payment code even when its last digit happens to be a valid SSCC check digit: at a Chinese till the
former is what a customer's phone shows; a pallet label is read with its AIM prefix and AI (00). Such a
scan still reports its SSCC validation (for ``edge-agent parse --kind scan``), but no event is made of it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from edge_agent.parsing.gs1 import Gs1Error, ai_title, gs1_prefix, parse_element_string
from shared.coupon_code import COUPON_PREFIX
from shared.member_code import MEMBER_PREFIX

KINDS = ("product", "member", "coupon", "payment", "unknown")
GTIN_FORMATS = {8: "GTIN-8", 12: "GTIN-12", 13: "GTIN-13", 14: "GTIN-14"}

# AIM symbology identifiers (ISO/IEC 15424 and the GS1 General Specifications, 5.4.2).
SYMBOLOGIES = {
    "A": "Code 39",
    "C": "Code 128",
    "d": "Data Matrix",
    "E": "EAN/UPC",
    "e": "GS1 DataBar",
    "F": "Codabar",
    "I": "ITF",
    "J": "GS1 Composite",
    "L": "PDF417",
    "Q": "QR Code",
    "X": "other",
    "z": "Aztec",
}
# The carriers whose data is a GS1 element string (first character FNC1).
GS1_CARRIERS = frozenset({"]C1", "]e0", "]e1", "]e2", "]d2", "]Q3", "]J1", "]z4"})
_AIM_RE = re.compile(r"^\][A-Za-z][0-9A-Za-z]")
_DIGITS = re.compile(r"^[0-9]+\Z")
_PAYMENT = (
    # scheme, pattern. Published by the wallets for merchants' scanners.
    ("wechat", re.compile(r"^1[0-5][0-9]{16}\Z")),
    ("alipay", re.compile(r"^(2[5-9]|30)[0-9]{14,22}\Z")),
    ("unionpay", re.compile(r"^62[0-9]{17}\Z")),
)
_CODE_ALPHABET = re.compile(r"^[A-Z2-7]+\Z")


@dataclass(frozen=True, slots=True)
class Element:
    """One GS1 element: application identifier, its data, and its short title."""

    ai: str
    value: str
    title: str


@dataclass(frozen=True, slots=True)
class Scan:
    """One classified scan; only the fields that apply are set."""

    kind: str
    symbology_identifier: str | None = None
    symbology: str | None = None
    code: str | None = None  # what may be kept: the product data, the member or coupon code; never a payment code
    gtin: str | None = None
    gtin_format: str | None = None
    check_digit: int | None = None
    upc_a: bool = False
    upc_e: str | None = None
    gs1_prefix: str | None = None
    sscc: str | None = None
    gs1_hri: str | None = None
    elements: tuple[Element, ...] = field(default_factory=tuple)
    payment_scheme: str | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The scan as a JSON object without the fields that do not apply."""
        out = asdict(self)
        out["elements"] = [asdict(e) for e in self.elements]
        return {k: v for k, v in out.items() if v not in (None, False, [])}


def check_digit(body: str) -> int:
    """The GS1 mod-10 check digit of ``body`` (the digits before the check digit)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def _check_gtin(digits: str) -> str | None:
    """None if ``digits`` is a GTIN with a good check digit, else why not (biip's wording)."""
    if not _DIGITS.match(digits) or len(digits) not in GTIN_FORMATS:
        return f"Failed to parse {digits!r} as GTIN: Expected 8, 12, 13, or 14 digits, got {len(digits)}."
    expected = check_digit(digits[:-1])
    if int(digits[-1]) != expected:
        return f"Invalid GTIN check digit for {digits!r}: Expected {expected}, got {digits[-1]}."
    return None


def expand_upc_e(upc_e: str) -> str | None:
    """The GTIN-12 (UPC-A) of a UPC-E code: 6 digits (number system 0), 7 (with it) or 8 (and check)."""
    if not _DIGITS.match(upc_e) or len(upc_e) not in (6, 7, 8):
        return None
    system = "0" if len(upc_e) == 6 else upc_e[0]
    if system not in "01":
        return None
    d = upc_e[-6:] if len(upc_e) < 8 else upc_e[1:7]
    last = d[5]
    if last in "012":
        body = d[0:2] + last + "0000" + d[2:5]
    elif last == "3":
        body = d[0:3] + "00000" + d[3:5]
    elif last == "4":
        body = d[0:4] + "00000" + d[4]
    else:
        body = d[0:5] + "0000" + last
    upc_a = system + body + str(check_digit(system + body))
    if len(upc_e) == 8 and upc_e[7] != upc_a[-1]:
        return None
    return upc_a


def _product(digits: str, aim: str | None, **extra: Any) -> Scan:
    problem = _check_gtin(digits)
    if problem is not None:
        return Scan("unknown", aim, _symbology(aim), error=problem, **extra)
    return Scan(
        "product",
        aim,
        _symbology(aim),
        code=digits,
        gtin=digits,
        gtin_format=GTIN_FORMATS[len(digits)],
        check_digit=int(digits[-1]),
        upc_a=len(digits) == 12,
        gs1_prefix=None if len(digits) == 8 else gs1_prefix(digits.zfill(14)[1:4]),
        **extra,
    )


def _symbology(aim: str | None) -> str | None:
    return None if aim is None else SYMBOLOGIES.get(aim[1], "other")


def _element_string(data: str, aim: str | None) -> Scan:
    try:
        parsed = parse_element_string(data)
    except Gs1Error as exc:
        return Scan("unknown", aim, _symbology(aim), error=str(exc))
    elements = tuple(Element(ai, value, ai_title(ai)) for ai, value in parsed)
    hri = "".join(f"({ai}){value}" for ai, value in parsed)
    found = dict(parsed)
    if "01" in found:
        return _product(found["01"], aim, elements=elements, gs1_hri=hri)
    if "00" in found:
        sscc = found["00"]
        if check_digit(sscc[:-1]) != int(sscc[-1]):
            error = f"Invalid SSCC check digit for {sscc!r}: Expected {check_digit(sscc[:-1])}, got {sscc[-1]}."
            return Scan("unknown", aim, _symbology(aim), elements=elements, gs1_hri=hri, error=error)
        return Scan(
            "unknown", aim, _symbology(aim), sscc=sscc, check_digit=int(sscc[-1]), elements=elements, gs1_hri=hri
        )
    return Scan("unknown", aim, _symbology(aim), elements=elements, gs1_hri=hri, error="no GTIN in the element string")


def classify(payload: str) -> Scan:
    """Classify one scanner payload (trailing CR/LF and spaces are ignored)."""
    text = payload.strip("\r\n \t")
    aim: str | None = None
    if _AIM_RE.match(text):
        aim, text = text[:3], text[3:]
    for scheme, pattern in _PAYMENT:
        if pattern.match(text):
            if len(text) == 18 and aim not in GS1_CARRIERS and check_digit(text[:-1]) == int(text[-1]):
                # Also a valid SSCC without its AI (00): report what GS1 validation makes of it, but the
                # till treats it as the payment code it most likely is and keeps nothing of it.
                return Scan(
                    "payment", aim, _symbology(aim), sscc=text, check_digit=int(text[-1]), payment_scheme=scheme
                )
            return Scan("payment", aim, _symbology(aim), payment_scheme=scheme)
    if text.startswith(MEMBER_PREFIX) and _CODE_ALPHABET.match(text[len(MEMBER_PREFIX) :]):
        return Scan("member", aim, _symbology(aim), code=text)
    if text.startswith(COUPON_PREFIX):
        return Scan("coupon", aim, _symbology(aim), code=text)
    digits = bool(_DIGITS.match(text))
    if digits and len(text) == 18 and aim not in GS1_CARRIERS and check_digit(text[:-1]) == int(text[-1]):
        # An SSCC read without its AI (00): a logistics label, not a product.
        return Scan("unknown", aim, _symbology(aim), sscc=text, check_digit=int(text[-1]))
    if aim in GS1_CARRIERS or text.startswith("\x1d") or (len(text) >= 16 and text[:2] in ("00", "01", "02")):
        # Also an element string a scanner sent with its symbology identifier and FNC1 stripped.
        return _element_string(text.lstrip("\x1d"), aim)
    if digits and len(text) in (6, 7, 8) and (len(text) < 8 or _check_gtin(text) is not None):
        # 6 or 7 digits can only be UPC-E; 8 digits are EAN-8 unless their check digit says otherwise.
        upc_a = expand_upc_e(text)
        if upc_a is not None:
            return _product(upc_a, aim, upc_e=text)
    return _product(text, aim)


def unescape(line: str) -> str:
    """A payload line as written in a file: ``\\x1d`` (and ``\\\\``) escapes become characters."""
    return re.sub(r"\\x([0-9a-fA-F]{2})|\\\\", lambda m: chr(int(m.group(1), 16)) if m.group(1) else "\\", line)
