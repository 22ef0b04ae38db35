"""Receipt text to a sale, by the first profile that recognises it (see receipt_profile.py).

Pure: text lines in, a frozen :class:`Sale` out, or :class:`SaleError` with a reason code
(``no_profile_matched``, ``missing_field:total``...). Amounts are decimal strings. A sale whose
arithmetic does not add up is returned as printed, with warnings (``items_total_mismatch``,
``change_mismatch``, ``item_amount_mismatch``): a receipt is evidence, never corrected.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime as DateTime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from edge_agent.parsing.receipt_line import money, quantity
from edge_agent.parsing.receipt_profile import AMOUNT_FIELDS, FieldRule, Profile

# How printed payment names normalise when the profile's own [payment_methods] say nothing:
# the first entry whose text appears in the printed name (case-insensitive) wins.
DEFAULT_PAYMENT_METHODS = (
    ("微信", "wechat"),
    ("wechat", "wechat"),
    ("支付宝", "alipay"),
    ("alipay", "alipay"),
    ("云闪付", "unionpay_qr"),
    ("银联二维码", "unionpay_qr"),
    ("unionpay qr", "unionpay_qr"),
    ("储值", "stored_value"),
    ("余额", "stored_value"),
    ("会员卡支付", "stored_value"),
    ("现金", "cash"),
    ("cash", "cash"),
    ("银行卡", "bank_card"),
    ("刷卡", "bank_card"),
    ("信用卡", "bank_card"),
    ("借记卡", "bank_card"),
    ("银联", "bank_card"),
    ("card", "bank_card"),
)
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, start=1)}
_CENT = Decimal("0.01")


class SaleError(ValueError):
    """A receipt that gives no sale; ``reason`` is a stable code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SaleItem:
    """One line of the sale as printed."""

    name: str
    sku: str | None
    qty: str
    unit_price: str | None
    amount: str | None


@dataclass(frozen=True, slots=True)
class Tender:
    """One payment towards the sale, as printed: its method (normalised) and amount."""

    method: str
    amount: str


@dataclass(frozen=True, slots=True)
class Sale:
    """What the receipt says was sold, to whom and how it was paid."""

    profile: str
    receipt_no: str | None = None
    datetime: str | None = None  # ISO 8601, the store's local time as printed
    store_name: str | None = None
    register: str | None = None
    cashier: str | None = None
    items: tuple[SaleItem, ...] = ()
    discount_total: str | None = None
    tax_total: str | None = None
    total: str | None = None
    paid: str | None = None
    change: str | None = None
    payment_method: str | None = None  # the first tender's, when several paid
    tenders: tuple[Tender, ...] = ()  # every payment printed with its amount, in order
    card_last4: str | None = None
    member_card: str | None = None
    member_phone: str | None = None
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: amounts stay decimal strings."""
        out = asdict(self)
        out["items"] = [asdict(item) for item in self.items]
        out["tenders"] = [asdict(tender) for tender in self.tenders]
        out["warnings"] = list(self.warnings)
        return out


def choose_profile(lines: Sequence[str], profiles: Sequence[Profile]) -> Profile:
    """The highest-priority profile whose ``require`` patterns all find a line."""
    for profile in sorted(profiles, key=lambda p: (-p.priority, p.name)):
        if _recognises(profile, lines):
            return profile
    raise SaleError("no_profile_matched")


def read_sale(lines: Sequence[str], profiles: Sequence[Profile], only: str | None = None) -> Sale:
    """The sale printed on ``lines``; ``only`` names the one profile to use."""
    return _Extraction(read_profile(lines, profiles, only), list(lines)).sale()


def receipt_starts(lines: Sequence[str], profiles: Sequence[Profile], only: str | None = None) -> list[int]:
    """Where each receipt printed on ``lines`` starts: ``[0]``, unless the till printed another with no cut
    or reset between.

    A second receipt shows as another receipt number (a different one) after a total, with a total
    of its own after it; it starts as many lines before its number as the first receipt's header is
    long (the same till prints the same header), and never before the line after the last total.
    """
    try:
        profile = read_profile(lines, profiles, only)
    except SaleError:
        return [0]
    number, total = profile.fields.get("receipt_no"), profile.fields.get("total")
    if number is None or total is None or not number.patterns or not total.patterns:
        return [0]
    numbers: list[tuple[int, str]] = []
    totals: list[int] = []
    for index, line in enumerate(lines):
        found = next((m for m in map(lambda p: p.search(line), number.patterns) if m is not None), None)
        if found is not None:
            numbers.append((index, found.group("value").strip()))
        if any(p.search(line) for p in total.patterns):
            totals.append(index)
    if len(numbers) < 2:
        return [0]
    header = numbers[0][0]
    starts = [0]
    previous, value = numbers[0]
    for index, other in numbers[1:]:
        before = [t for t in totals if previous < t < index]
        if other == value or not before or not any(t > index for t in totals):
            continue
        start = max(index - header, before[-1] + 1)
        while start < index and not lines[start].strip():
            start += 1
        starts.append(start)
        previous, value = index, other
    return starts


def read_profile(lines: Sequence[str], profiles: Sequence[Profile], only: str | None = None) -> Profile:
    """The profile that reads ``lines``: ``only`` if it recognises them, else :func:`choose_profile`."""
    if only is None:
        return choose_profile(lines, profiles)
    chosen = [p for p in profiles if p.name == only]
    if not chosen:
        raise SaleError(f"unknown_profile:{only}")
    if not _recognises(chosen[0], lines):
        raise SaleError(f"profile_not_matched:{only}")
    return chosen[0]


def _recognises(profile: Profile, lines: Sequence[str]) -> bool:
    return all(any(p.search(line) for line in lines) for p in profile.require)


class _Extraction:
    def __init__(self, profile: Profile, lines: list[str]) -> None:
        self.profile = profile
        self.lines = lines
        self.warnings: list[str] = []
        start, end = 0, len(lines)
        has_items = profile.items_start is not None or profile.layouts
        if profile.items_start is not None:
            start = next((i + 1 for i, line in enumerate(lines) if profile.items_start.search(line)), end)
            if start == end:
                self.warn("items_not_found")
        if profile.items_end is not None:
            end = next((i for i in range(start, end) if profile.items_end.search(lines[i])), end)
        self.items_region = lines[start:end] if has_items else []
        self.sections = {"all": lines, "header": lines[:start] if has_items else lines, "footer": lines[end:]}

    def warn(self, reason: str) -> None:
        if reason not in self.warnings:
            self.warnings.append(reason)

    def sale(self) -> Sale:
        values: dict[str, Any] = {}
        for name, rule in self.profile.fields.items():
            raw = self.field(rule)
            value = self.convert(name, raw) if raw is not None else None
            if value is not None:
                values[name] = value
        for name in self.profile.required:
            if name not in values:
                raise SaleError(f"missing_field:{name}")
        items = self.items()
        sale = Sale(profile=self.profile.name, items=tuple(items), tenders=self.tenders(), **values)
        self.check(sale)
        return replace(sale, warnings=tuple(self.warnings))

    def field(self, rule: FieldRule) -> str | list[str] | None:
        lines = [line for line in self.sections[rule.section] if line.strip()]
        if rule.line is not None:
            index = rule.line - 1 if rule.line > 0 else rule.line
            if not -len(lines) <= index < len(lines):
                return None
            lines = [lines[index]]
            if not rule.patterns:
                return lines[0].strip()
        # Patterns are fallbacks: the first one that finds anything decides.
        found: list[re.Match[str]] = []
        for pattern in rule.patterns:
            found = [m for m in map(pattern.search, lines) if m is not None]
            if found:
                break
        if not found:
            return None
        if rule.name == "datetime":
            return self.timestamp(found[0] if rule.collect == "first" else found[-1])
        values = [m.group("value").strip() for m in found]
        if rule.collect == "sum":
            return values
        return values[0] if rule.collect == "first" else values[-1]

    def timestamp(self, match: re.Match[str]) -> str | None:
        parts = match.groupdict()
        try:
            month_text = parts["month"]
            month = int(month_text) if month_text.isdigit() else _MONTHS[month_text[:3].lower()]
            year = int(parts["year"])
            hour = int(parts["hour"])
            ampm = (parts.get("ampm") or "").upper()
            if ampm in ("PM", "下午") and hour < 12:
                hour += 12
            elif ampm in ("AM", "上午") and hour == 12:
                hour = 0
            moment = DateTime(
                year + 2000 if year < 100 else year,
                month,
                int(parts["day"]),
                hour,
                int(parts["minute"]),
                int(parts.get("second") or 0),
            )
        except (KeyError, ValueError):
            self.warn("invalid_field:datetime")
            return None
        return moment.isoformat()

    def convert(self, name: str, raw: str | list[str]) -> str | None:
        if name in AMOUNT_FIELDS:
            amounts = [money(v) for v in (raw if isinstance(raw, list) else [raw])]
            if any(a is None for a in amounts):
                self.warn(f"invalid_field:{name}")
                return None
            # Discounts are printed as "-3.00" or "3.00"; the field is the amount taken off.
            sign = (lambda d: abs(d)) if name == "discount_total" else (lambda d: d)
            return format(sum((sign(Decimal(a)) for a in amounts if a is not None), Decimal(0)), "f")
        assert isinstance(raw, str)
        if name == "payment_method":
            return self.payment(raw)
        if name == "card_last4" and not re.fullmatch(r"\d{4}", raw):
            self.warn("invalid_field:card_last4")
            return None
        return raw or None

    def tenders(self) -> tuple[Tender, ...]:
        """Every tender line the profile's ``[tenders]`` patterns find (the first pattern that finds one)."""
        lines = [line for line in self.lines if line.strip()]
        for pattern in self.profile.tenders:
            found = [m for m in map(pattern.search, lines) if m is not None]
            if not found:
                continue
            tenders = []
            for match in found:
                amount = money(match.group("amount"))
                if amount is None:
                    self.warn("invalid_field:tenders")
                    continue
                tenders.append(Tender(self.payment(match.group("method").strip()), amount))
            return tuple(tenders)
        return ()

    def payment(self, printed: str) -> str:
        folded = printed.casefold()
        for text, method in (*self.profile.payment_methods, *DEFAULT_PAYMENT_METHODS):
            if text.casefold() in folded:
                return method
        return "other"

    def items(self) -> list[SaleItem]:
        items = []
        region, i = self.items_region, 0
        while i < len(region):
            line = region[i]
            if not line.strip() or any(p.search(line) for p in self.profile.items_skip):
                i += 1
                continue
            for layout in self.profile.layouts:
                size = len(layout.lines)
                matches = [p.fullmatch(region[i + k]) for k, p in enumerate(layout.lines) if i + k < len(region)]
                if len(matches) == size and all(matches):
                    groups: dict[str, str] = {}
                    for match in matches:
                        assert match is not None
                        groups.update({k: v for k, v in match.groupdict().items() if v is not None})
                    items.append(self.item(groups))
                    i += size
                    break
            else:
                self.warn("unparsed_item_line")
                i += 1
        return items

    def item(self, groups: dict[str, str]) -> SaleItem:
        qty = quantity(groups.get("qty") or "1")
        unit_price = money(groups["unit_price"]) if groups.get("unit_price") else None
        amount = money(groups["amount"]) if groups.get("amount") else None
        unreadable = (groups.get("unit_price") and unit_price is None) or (groups.get("amount") and amount is None)
        if qty is None or unreadable:
            self.warn("invalid_item_number")
            qty = qty or "1"
        if amount is None and unit_price is not None:
            amount = format((Decimal(qty) * Decimal(unit_price)).quantize(_CENT, ROUND_HALF_UP), "f")
        if unit_price is None and amount is not None and Decimal(qty) == 1:
            unit_price = amount
        return SaleItem(groups["name"].strip(), (groups.get("sku") or "").strip() or None, qty, unit_price, amount)

    def check(self, sale: Sale) -> None:
        for item in sale.items:
            if item.unit_price is None or item.amount is None:
                continue
            if abs(Decimal(item.qty) * Decimal(item.unit_price) - Decimal(item.amount)) >= _CENT:
                self.warn("item_amount_mismatch")
        if sale.items and sale.total is not None and all(item.amount is not None for item in sale.items):
            expected = sum((Decimal(item.amount or 0) for item in sale.items), Decimal(0))
            expected += Decimal(sale.tax_total or 0) - Decimal(sale.discount_total or 0)
            if expected != Decimal(sale.total):
                self.warn("items_total_mismatch")
        paid, total = sale.paid, sale.total
        if paid is not None and total is not None and Decimal(paid) - Decimal(total) != Decimal(sale.change or 0):
            self.warn("change_mismatch")
