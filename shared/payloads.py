"""Declared payload schemas, one per event kind, enforced by the agent and again by central.

A payload is first measured (nesting depth and size, stopping at the limits, unknown fields
included) and then cleaned against its kind's schema: declared fields are checked and copied,
unknown fields are dropped, and a field of the wrong type or size rejects the event with a reason
naming the field::

    >>> check_event("scan.product", {"code": "6901234567892", "colour": "red"})
    ({'code': '6901234567892'}, None)
    >>> check_event("pos.receipt", {"receipt_no": "R1", "total": "1,00"})
    (None, 'invalid_payload:total')

Adding a kind is one entry in :data:`SCHEMAS`; adding a field is one keyword of its ``Obj``.
Reason codes: ``unknown_kind``, ``invalid_payload`` (not an object), ``payload_too_deep``,
``event_too_large``, ``invalid_payload:<field path>``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

MAX_DEPTH = 16
"""Deepest nesting a payload may have, counting the payload object itself as level 1."""
MAX_EVENT_BYTES = 4 * 1024 * 1024
"""Largest payload, in bytes of its compact UTF-8 JSON, unknown fields included: a printed receipt
as long as the agent reads (``pos.max_receipt_bytes``, 1 MiB of printer bytes) is about 2.7 MB."""
MAX_SAFE_INT = 2**53 - 1
"""Integers beyond this lose precision in JSON readers that use doubles."""

# Up to four decimals are read, but any past the second must be zeros ("12.500" is 12.50): every
# amount that changes hands is in whole fen (docs/decisions/0102-money-in-whole-fen.md).
_MONEY_RE = re.compile(r"^-?\d{1,12}(\.\d{1,2}0{0,2})?\Z")


class PayloadError(ValueError):
    """A payload that does not fit its schema; ``where`` is the dotted path of the bad field."""

    def __init__(self, where: str = "") -> None:
        super().__init__(where)
        self.where = where

    @property
    def reason(self) -> str:
        return f"invalid_payload:{self.where}" if self.where else "invalid_payload"


def is_money(value: Any) -> bool:
    """An amount in whole fen written as a string, such as "12.50", "-3" or "12.500"; never "10.005"."""
    if not isinstance(value, str) or not _MONEY_RE.match(value):
        return False
    try:
        Decimal(value)
    except InvalidOperation:
        return False
    return True


class Field:
    """One declared value; ``clean`` returns what is kept or raises PayloadError."""

    nullable = False

    def clean(self, value: Any) -> Any:
        raise NotImplementedError


class Text(Field):
    """A string of ``min_len`` to ``max_len`` characters, without NUL (no database text holds it)."""

    def __init__(self, max_len: int = 256, *, min_len: int = 0) -> None:
        self.max_len = max_len
        self.min_len = min_len

    def clean(self, value: Any) -> Any:
        if type(value) is not str or not self.min_len <= len(value) <= self.max_len or "\x00" in value:
            raise PayloadError()
        return value


class Money(Field):
    """An amount that changes hands, in whole fen, as a string ("12.50"), never a float.

    A unit price is not one (a scale prints ¥12.345/kg; the line's amount is what is paid): items
    keep ``unit_price`` as a Scalar.
    """

    def clean(self, value: Any) -> Any:
        if not is_money(value):
            raise PayloadError()
        return value


class Integer(Field):
    """An integer (not a boolean) between ``minimum`` and ``maximum``."""

    def __init__(self, minimum: int = 0, maximum: int = MAX_SAFE_INT) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def clean(self, value: Any) -> Any:
        if type(value) is not int or not self.minimum <= value <= self.maximum:
            raise PayloadError()
        return value


class Number(Field):
    """An integer or finite float between ``minimum`` and ``maximum``."""

    def __init__(self, minimum: float = 0.0, maximum: float = float(MAX_SAFE_INT)) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def clean(self, value: Any) -> Any:
        if type(value) not in (int, float) or not math.isfinite(value) or not self.minimum <= value <= self.maximum:
            raise PayloadError()
        return value


class Boolean(Field):
    """true or false."""

    def clean(self, value: Any) -> Any:
        if type(value) is not bool:
            raise PayloadError()
        return value


class Scalar(Field):
    """A string of at most ``max_len`` characters or a number (POS systems write quantities both ways)."""

    def __init__(self, max_len: int = 32) -> None:
        self.text = Text(max_len)
        self.number = Number(-float(MAX_SAFE_INT))

    def clean(self, value: Any) -> Any:
        return self.text.clean(value) if type(value) is str else self.number.clean(value)


class Choice(Field):
    """One of a fixed set of strings (a consent purpose, a channel)."""

    def __init__(self, *values: str) -> None:
        self.values = frozenset(values)

    def clean(self, value: Any) -> Any:
        if type(value) is not str or value not in self.values:
            raise PayloadError()
        return value


class Nullable(Field):
    """``field``, or null kept as null."""

    nullable = True

    def __init__(self, field: Field) -> None:
        self.field = field

    def clean(self, value: Any) -> Any:
        return None if value is None else self.field.clean(value)


class Obj(Field):
    """An object with declared fields: unknown ones are dropped, an optional field given as null is too."""

    def __init__(self, *, required: Iterable[str] = (), **fields: Field) -> None:
        self.fields = fields
        self.required = frozenset(required)
        unknown = self.required - fields.keys()
        if unknown:
            raise ValueError(f"required fields {sorted(unknown)} are not declared")

    def clean(self, value: Any) -> Any:
        if type(value) is not dict:
            raise PayloadError()
        out = {}
        fields = self.fields
        for name, item in value.items():
            field = fields.get(name)
            if field is None or (item is None and not field.nullable):
                continue
            try:
                out[name] = field.clean(item)
            except PayloadError as exc:
                raise PayloadError(f"{name}.{exc.where}" if exc.where else name) from None
        if not self.required <= out.keys():
            raise PayloadError(min(self.required - out.keys()))
        return out


class OrderObj(Obj):
    """An online order: ``total`` required, except in a status update (``order_no`` and ``status``).

    Platforms' cancellation and refund webhooks name the order and its new status, no amount;
    central keeps the sale's total (decision 0089).
    """

    def clean(self, value: Any) -> Any:
        out = super().clean(value)
        if "total" not in out and not ("order_no" in out and out.get("status", "").strip()):
            raise PayloadError("total")
        return out


class ListOf(Field):
    """A list of at most ``max_items`` values, each cleaned by ``item``."""

    def __init__(self, item: Field, max_items: int) -> None:
        self.item = item
        self.max_items = max_items

    def clean(self, value: Any) -> Any:
        if type(value) is not list or len(value) > self.max_items:
            raise PayloadError()
        clean = self.item.clean
        return [clean(v) for v in value]


class MapOf(Field):
    """An object with free keys (at most ``max_keys``, each at most 64 characters), values cleaned by ``value``."""

    def __init__(self, value: Field, max_keys: int = 64) -> None:
        self.value = value
        self.max_keys = max_keys
        self.key = Text(64, min_len=1)

    def clean(self, value: Any) -> Any:
        if type(value) is not dict or len(value) > self.max_keys:
            raise PayloadError()
        try:
            return {self.key.clean(k): self.value.clean(v) for k, v in value.items()}
        except PayloadError:
            raise PayloadError() from None


class Tree(Field):
    """A free-form object kept whole but bounded: depth, keys per object, list length; long text is cut.

    For reports whose shape the sender owns (an agent's health, per-source counters): a long error
    message is shortened to ``max_text`` characters rather than costing the whole report.
    """

    def __init__(self, max_depth: int = 2, max_keys: int = 64, max_text: int = 256) -> None:
        self.max_depth = max_depth
        self.max_keys = max_keys
        self.max_text = max_text

    def clean(self, value: Any) -> Any:
        if type(value) is not dict:
            raise PayloadError()
        return self._copy(value, 1)

    def _copy(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is dict or kind is list:
            if depth > self.max_depth or len(value) > self.max_keys:
                raise PayloadError()
            if kind is list:
                return [self._copy(item, depth + 1) for item in value]
            out = {}
            for key, item in value.items():
                if not key or len(key) > 64 or "\x00" in key:
                    raise PayloadError()
                out[key] = self._copy(item, depth + 1)
            return out
        if kind is str:
            return value[: self.max_text].replace("\x00", "")
        if kind is int:
            if abs(value) > MAX_SAFE_INT:
                raise PayloadError()
        elif kind is float:
            if not math.isfinite(value):
                raise PayloadError()
        elif value is not None and kind is not bool:
            raise PayloadError()
        return value


def measure(payload: Any, *, max_depth: int = MAX_DEPTH, max_chars: int = MAX_EVENT_BYTES) -> str | None:
    """``payload_too_deep`` or ``event_too_large`` if the payload exceeds a limit, else None.

    The size is the length of the payload's compact JSON (serialised in C, far cheaper than a walk
    in Python); the depth is walked, container by container, only when the JSON holds enough
    brackets to reach the limit at all, which a typical receipt does not.
    """
    try:
        text = orjson.dumps(payload)
    except orjson.JSONEncodeError as exc:
        # orjson stops at 255 levels; anything else it cannot write (an integer beyond 64 bits) is invalid.
        return "payload_too_deep" if "recursion" in str(exc).lower() else "invalid_payload"
    if len(text) > max_chars:
        return "event_too_large"
    if text.count(b"{") + text.count(b"[") >= max_depth and _deeper_than(payload, max_depth):
        return "payload_too_deep"
    return None


def _deeper_than(payload: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if type(node) is dict else node:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
    return False


_MEMBER = Obj(phone=Text(64, min_len=1), card=Text(64, min_len=1))
_ITEMS = ListOf(
    Obj(sku=Text(64), name=Text(256), qty=Scalar(), unit_price=Nullable(Scalar()), amount=Nullable(Money())), 20_000
)  # a wholesale or group purchase prints thousands of items on one receipt
_SALE: dict[str, Any] = {
    "total": Money(),
    "currency": Text(8),
    "items": _ITEMS,
    "member": _MEMBER,
    "paid_at": Text(40),
    "payment": Text(32),
    "cashier": Text(64),
    "format": Text(16),
    "warnings": ListOf(Text(64), 32),
    "ignored_fields": ListOf(Text(64), 64),
}
# A sale read from a printed receipt (pos.mode = "escpos"): the fields as printed, amounts as decimal
# strings, the receipt's text and the barcode and QR payloads it printed (card data already removed).
_PRINTED_SALE: dict[str, Any] = {
    "profile": Text(64),
    "datetime": Text(40),
    "store_name": Text(128),
    "register": Text(32),
    "discount_total": Money(),
    "tax_total": Money(),
    "paid": Money(),
    "change": Money(),
    "payment_method": Text(32),  # the first tender's
    "tenders": ListOf(Obj(method=Text(32, min_len=1), amount=Money(), required=("method", "amount")), 32),
    "card_last4": Text(4, min_len=4),
    "member_card": Text(64),
    "member_phone": Text(64),
    "text_lines": ListOf(Text(4096), 50_000),
    "codes": ListOf(Obj(symbology=Text(32), data=Text(4096)), 64),
}
_SCAN: dict[str, Any] = {"code": Text(512, min_len=1), "symbology": Text(32), "register": Text(32), "cashier": Text(64)}
_MEMBER_EVENT: dict[str, Any] = {"member_id": Text(64), "channel": Text(32)}
CONSENT_PURPOSES = ("service", "marketing", "profiling", "location")
"""What a customer consents to: service messages, marketing, profiling/personalisation, location."""
CONSENT_CHANNELS = ("sms", "wechat", "app_push", "email")
"""Where marketing may reach a customer; a consent event without a channel covers every channel."""
CONSENT_SOURCES = ("till", "app", "import", "console", "api")
"""Where a consent decision was taken."""
EVENT_CONSENT_SOURCES = ("till", "app", "import")
"""The sources a consent event may name: ``console`` and ``api`` are central's own records of
decisions taken there, which no store, app or file can claim to be."""
_CONSENT: dict[str, Any] = {
    "purpose": Choice(*CONSENT_PURPOSES),
    "channel": Choice(*CONSENT_CHANNELS),
    "scope": Text(64),  # "guardian": given by the guardian of a customer under 14
    "notice_version": Text(32),  # the privacy notice shown when the decision was taken
    "policy_version": Text(32),  # the first release's name for notice_version
    "source": Choice(*EVENT_CONSENT_SOURCES),
}
_REPORT = Tree(max_depth=2)
# A HyperLogLog sketch in shared.hyperloglog's wire form (2^16 registers at most, compressed, base64).
_SKETCH = Obj(p=Integer(4, 16), registers=Text(4 * 65536, min_len=1), estimate=Integer(), required=("p", "registers"))
_SEQ = Nullable(Integer())

SCHEMAS: Mapping[str, Obj] = {
    "pos.receipt": Obj(receipt_no=Text(64, min_len=1), **_SALE, **_PRINTED_SALE, required=("receipt_no", "total")),
    "pos.sale": Obj(sale_no=Text(64), receipt_no=Text(64), **_SALE, required=("total",)),
    # A member scan keeps the code's digest ("digest:<hex>"), never the code (shared.member_code), except
    # an "unverified" one, whose proof central checks and drops before it stores the event.
    "scan.member": Obj(
        **_SCAN,
        member_id=Text(64),
        step=Integer(),
        key=Text(32),
        result=Text(32),
        detail=Text(256),
        # Only with result "unverified" (the store had no keys yet): the code, for central to check.
        proof=Text(600),
        required=("code",),
    ),
    # A coupon scan: coupon_id is the code's serial; result is "accepted" or a refusal (shared.coupon_code).
    "scan.coupon": Obj(
        **_SCAN,
        coupon_id=Text(64),
        campaign=Integer(),
        value=Money(),
        result=Text(32),
        detail=Text(256),
        required=("code",),
    ),
    "scan.product": Obj(**_SCAN, sku=Text(64), qty=Scalar(), required=("code",)),
    "presence.visit": Obj(
        medium=Text(16),
        started_at=Text(40, min_len=1),
        ended_at=Text(40, min_len=1),
        dwell_s=Number(maximum=7 * 86400),
        zones=ListOf(Obj(zone=Text(64), dwell_s=Number(maximum=7 * 86400)), 64),
        repeat=Boolean(),
        peak_dbm=Integer(-200, 50),
        # Only for a member whose app beacon the store resolved (location consent on): shared.member_beacon.
        member_id=Text(64, min_len=1),
        required=("started_at", "ended_at", "dwell_s"),
    ),
    "presence.aggregate": Obj(
        medium=Text(16),
        hour_start=Text(40, min_len=1),
        hour_end=Text(40, min_len=1),
        sightings=Integer(),
        devices=_SKETCH,
        randomized_devices=_SKETCH,
        passers_by=Obj(passes=Integer(), devices=_SKETCH),
        visitors=Obj(visits=Integer(), repeat_visits=Integer(), randomized_visits=Integer(), devices=_SKETCH),
        dwell=Obj(
            bounds_s=ListOf(Integer(), 32),
            counts=ListOf(Integer(), 33),
            visits=Integer(),
            total_s=Number(),
        ),
        zones=MapOf(Obj(dwell_s=Number(), visits=Integer(), devices=_SKETCH), max_keys=64),
        required=("hour_start", "hour_end"),
    ),
    "agent.heartbeat": Obj(
        agent_version=Text(64),
        uptime_s=Integer(),
        health=_REPORT,  # flat by convention: {"state": "ok" | "degraded", "backlog": 12, ...}
        sources=MapOf(_REPORT, max_keys=32),
        downlink_version=Integer(),
        outbox=_REPORT,  # the first release's heartbeat
        sync=_REPORT,
        required=("agent_version",),
    ),
    "agent.gap": Obj(
        reason=Text(64, min_len=1),
        shed=MapOf(Integer(), max_keys=64),
        from_seq=_SEQ,
        to_seq=_SEQ,
        required=("reason",),
    ),
    "member.signup": Obj(**_MEMBER_EVENT, referrer=Text(64), program=Text(32)),
    "member.update": Obj(**_MEMBER_EVENT, changed=ListOf(Text(64), 64)),
    "member.login": Obj(**_MEMBER_EVENT, method=Text(32)),
    "order.online": OrderObj(order_no=Text(64, min_len=1), **_SALE, status=Text(32), channel=Text(32)),
    "consent.given": Obj(**_CONSENT, required=("purpose",)),
    "consent.withdrawn": Obj(**_CONSENT, required=("purpose",)),
    "service.complaint": Obj(
        ticket_no=Text(64),
        category=Text(64),
        severity=Text(16),
        channel=Text(32),
        status=Text(32),
        text=Text(4000),
        operator=Text(128),  # who took it: a console user, a call centre's agent
    ),
}

KINDS = frozenset(SCHEMAS)


def check_event(
    kind: str, payload: Any, *, max_chars: int = MAX_EVENT_BYTES
) -> tuple[dict[str, Any], None] | tuple[None, str]:
    """``(cleaned payload, None)`` if the payload fits ``kind``'s schema, else ``(None, reason code)``."""
    schema = SCHEMAS.get(kind)
    if schema is None:
        return None, "unknown_kind"
    if type(payload) is not dict:
        return None, "invalid_payload"
    problem = measure(payload, max_chars=max_chars)
    if problem is not None:
        return None, problem
    try:
        cleaned: dict[str, Any] = schema.clean(payload)
    except PayloadError as exc:
        return None, exc.reason
    return cleaned, None
