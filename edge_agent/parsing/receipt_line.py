"""Parsing one POS line-mode record into a receipt: JSON objects or key=value pairs.

Two forms arrive from POS systems that print a machine-readable record per sale::

    {"receipt_no": "R20261123-0042", "total": "36.50", "member_phone": "13812345678",
     "items": [{"sku": "6901028075831", "name": "农夫山泉 550ml", "qty": 2, "unit_price": "2.00"}]}
    receipt_no=R20261123-0043 total=12.00 member_card=M00012345 item="6901028075831,1,12.00,可乐"

Keys may be English or the Chinese labels common on domestic POS exports (单号, 合计, 手机, 会员卡).
The parser is pure: text in, a frozen :class:`Receipt` out, or :class:`LineError` with a reason code.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.identifiers import normalize_card, normalize_phone

MAX_ITEMS = 1000

ALIASES = {
    "receipt_no": "receipt_no",
    "receipt": "receipt_no",
    "ticket": "receipt_no",
    "txn": "receipt_no",
    "单号": "receipt_no",
    "小票号": "receipt_no",
    "total": "total",
    "amount": "total",
    "合计": "total",
    "金额": "total",
    "member_phone": "member_phone",
    "phone": "member_phone",
    "mobile": "member_phone",
    "手机": "member_phone",
    "手机号": "member_phone",
    "member_card": "member_card",
    "card": "member_card",
    "会员卡": "member_card",
    "会员卡号": "member_card",
    "paid_at": "paid_at",
    "time": "paid_at",
    "datetime": "paid_at",
    "时间": "paid_at",
    "payment": "payment",
    "pay_method": "payment",
    "支付方式": "payment",
    "cashier": "cashier",
    "收银员": "cashier",
    "items": "items",
    "item": "items",
    "商品": "items",
    "currency": "currency",
}
_KEY = re.compile(r"^[^\s=]{1,40}\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")


class LineError(ValueError):
    """A line that is not a receipt; ``reason`` is a stable code kept with the quarantined bytes."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Item:
    sku: str
    name: str
    qty: str
    unit_price: str | None


@dataclass(frozen=True, slots=True)
class Receipt:
    """One sale as the POS reported it, with member identifiers normalized."""

    receipt_no: str
    total: str
    format: str
    currency: str = "CNY"
    items: tuple[Item, ...] = ()
    member_phone: str | None = None
    member_card: str | None = None
    paid_at: str | None = None
    payment: str | None = None
    cashier: str | None = None
    warnings: tuple[str, ...] = ()
    ignored_fields: tuple[str, ...] = field(default=())

    def payload(self) -> dict[str, Any]:
        """The ``pos.receipt`` event payload (see shared/wire.py)."""
        out: dict[str, Any] = {
            "receipt_no": self.receipt_no,
            "total": self.total,
            "currency": self.currency,
            "items": [{"sku": i.sku, "name": i.name, "qty": i.qty, "unit_price": i.unit_price} for i in self.items],
            "member": {},
            "format": self.format,
        }
        if self.member_phone:
            out["member"]["phone"] = self.member_phone
        if self.member_card:
            out["member"]["card"] = self.member_card
        for key in ("paid_at", "payment", "cashier"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if self.ignored_fields:
            out["ignored_fields"] = list(self.ignored_fields)
        return out


def decode_line(raw: bytes, encoding: str) -> str:
    """Bytes to text; ``auto`` tries UTF-8 first because GB18030 would accept almost anything.

    Control bytes mark binary data whatever the encoding: UTF-8, GBK and GB18030 never use bytes
    below 0x20 inside a multi-byte character.
    """
    if _CONTROL_BYTES.search(raw):
        raise LineError("binary_data")
    codecs = ("utf-8", "gb18030") if encoding == "auto" else (encoding,)
    for codec in codecs:
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError:
            continue
        except LookupError:
            raise LineError("unknown_encoding") from None
        if _CONTROL.search(text):
            raise LineError("binary_data")
        return text.strip().lstrip("\ufeff")
    raise LineError("undecodable")


def parse_receipt_line(text: str) -> Receipt:
    """Parse one line of text; raise LineError with a reason code if it is not a receipt."""
    text = text.strip()
    if not text:
        raise LineError("empty_line")
    if text.startswith("{"):
        fields, fmt = _json_fields(text), "json"
    elif "=" in text:
        fields, fmt = _kv_fields(text), "kv"
    else:
        raise LineError("unrecognized_format")
    return _build(fields, fmt)


def _json_fields(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text, parse_float=Decimal)
    except ValueError:
        raise LineError("invalid_json") from None
    if not isinstance(doc, dict):
        raise LineError("not_an_object")
    return doc


def _kv_fields(text: str) -> dict[str, Any]:
    # Pairs are separated by whitespace, ';' or '|'; double quotes protect values that hold them.
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace = " \t;|"
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        tokens = list(lexer)
    except ValueError:
        raise LineError("malformed_pair") from None
    fields: dict[str, Any] = {}
    items: list[str] = []
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not _KEY.match(key):
            raise LineError("malformed_pair")
        if ALIASES.get(key.lower(), key.lower()) == "items":
            items.append(value)
        else:
            fields[key] = value
    if items:
        fields["items"] = [_kv_item(v) for v in items]
    return fields


def _kv_item(value: str) -> dict[str, str]:
    parts = value.split(",", 3)
    if len(parts) < 2:
        raise LineError("invalid_field:items")
    sku, qty, *rest = parts
    return {
        "sku": sku,
        "qty": qty,
        "unit_price": rest[0] if rest else "",
        "name": rest[1] if len(rest) > 1 else "",
    }


def _build(raw_fields: dict[str, Any], fmt: str) -> Receipt:
    fields: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in raw_fields.items():
        canonical = ALIASES.get(str(key).lower())
        if canonical is None:
            # Unknown fields are dropped (PIPL minimisation): only their names are kept.
            ignored.append(str(key)[:40])
        else:
            fields[canonical] = value

    receipt_no = fields.get("receipt_no")
    if isinstance(receipt_no, int) and not isinstance(receipt_no, bool):
        receipt_no = str(receipt_no)
    if receipt_no is None or receipt_no == "":
        raise LineError("missing_field:receipt_no")
    if not isinstance(receipt_no, str) or len(receipt_no) > 64 or _CONTROL.search(receipt_no):
        raise LineError("invalid_field:receipt_no")
    if "total" not in fields:
        raise LineError("missing_field:total")
    total = money(fields["total"])
    if total is None:
        raise LineError("invalid_field:total")

    warnings: list[str] = []
    phone = card = None
    if fields.get("member_phone") not in (None, ""):
        phone = normalize_phone(str(fields["member_phone"]))
        if phone is None:
            warnings.append("invalid_member_phone")
    if fields.get("member_card") not in (None, ""):
        card = normalize_card(str(fields["member_card"]))
        if card is None:
            warnings.append("invalid_member_card")

    return Receipt(
        receipt_no=receipt_no,
        total=total,
        format=fmt,
        currency=_short_text(fields.get("currency"), "currency", 8) or "CNY",
        items=_items(fields.get("items", [])),
        member_phone=phone,
        member_card=card,
        paid_at=_paid_at(fields.get("paid_at")),
        payment=_short_text(fields.get("payment"), "payment", 32),
        cashier=_short_text(fields.get("cashier"), "cashier", 32),
        warnings=tuple(warnings),
        ignored_fields=tuple(ignored),
    )


def money(value: Any) -> str | None:
    """A decimal amount as a plain string ("12.50"), accepting ¥/￥ and thousands separators."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip().lstrip("¥￥").replace(",", "")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    if not amount.is_finite() or abs(amount) >= Decimal(10) ** 12:
        return None
    exponent = amount.as_tuple().exponent
    if not isinstance(exponent, int) or exponent < -4:
        return None
    return format(amount.quantize(Decimal("0.01")) if exponent >= -2 else amount, "f")


def quantity(value: Any) -> str | None:
    """A quantity as a plain decimal string without trailing zeros ("2", "0.5")."""
    text = money(value)
    if text is None:
        return None
    return format(Decimal(text).normalize(), "f")


def _items(value: Any) -> tuple[Item, ...]:
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise LineError("invalid_field:items")
    out = []
    for raw in value:
        if not isinstance(raw, dict):
            raise LineError("invalid_field:items")
        sku = str(raw.get("sku", "")).strip()
        qty = quantity(raw.get("qty", "1"))
        price_raw = raw.get("unit_price", raw.get("price", ""))
        price = money(price_raw) if price_raw not in ("", None) else None
        name = str(raw.get("name", ""))[:200]
        if not sku or len(sku) > 64 or qty is None or (price_raw not in ("", None) and price is None):
            raise LineError("invalid_field:items")
        out.append(Item(sku=sku, name=name, qty=qty, unit_price=price))
    return tuple(out)


def _paid_at(value: Any) -> str | None:
    """ISO 8601 as given; a naive time stays naive (it is the store's local clock)."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise LineError("invalid_field:paid_at")
    try:
        moment = datetime.fromisoformat(value.strip().replace("/", "-"))
    except ValueError:
        raise LineError("invalid_field:paid_at") from None
    return moment.isoformat()


def _short_text(value: Any, name: str, limit: int) -> str | None:
    if value in (None, ""):
        return None
    text = str(value).strip()
    if len(text) > limit or _CONTROL.search(text):
        raise LineError(f"invalid_field:{name}")
    return text
