"""What a sale event says for statistics: pure, the same rules as the set-based SQL in ``rebuild``.

A sale is a ``pos.receipt``, ``pos.sale`` or ``order.online`` event, for example::

    {"kind": "order.online", "store_id": "WEB", "observed_at": "2026-11-20T08:00:00+08:00",
     "payload": {"order_no": "A-17", "total": "59.90", "channel": "mini_program",
                 "items": [{"sku": "6901234567892", "name": "Formula 900g", "qty": 1}]}}

Amounts are integer cents, rounded half away from zero (the SQL does the same on the text, so the
two never differ by a float). A purchase is a sale with a positive amount. Local day, time of day
and weekday use a fixed offset from UTC (the chain's time zone, ``customers.utc_offset_minutes``).
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

SALE_KINDS = ("pos.receipt", "pos.sale", "order.online")
ONLINE_KIND = "order.online"
CHANNELS = ("store", "online", "app", "mini_program")
# Hours 0-5, 6-11, 12-17 and 18-23 local time.
DAYPARTS = ("night", "morning", "afternoon", "evening")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# An online order's ``channel`` as sources spell it, compared in lower case with "-" and " " read as "_".
APP_NAMES = frozenset({"app", "member_app", "mobile_app", "ios", "android", "会员app", "app端"})
MINI_PROGRAM_NAMES = frozenset(
    {"mini_program", "miniprogram", "wechat_mini_program", "weapp", "wxapp", "alipay_mini_program"}
    | {"小程序", "微信小程序", "支付宝小程序"}
)
_CENT = Decimal("0.01")
# Every amount central keeps is in the chain's currency (docs/decisions/0087-one-currency.md); the
# spellings a till or a source may give it. A sale that names no currency is in it.
CURRENCY_NAMES = ("", "CNY", "RMB")
# Hours in a daypart; 1 January 1970 (local day 0) was a Thursday.
DAYPART_SECONDS = 6 * 3600
_DAY_ZERO = date(1970, 1, 1)
_DAY_ZERO_WEEKDAY = 3
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def currency_problem(kind: str, payload: Any) -> str | None:
    """``unsupported_currency`` for a sale in another currency than the chain's (CNY), else None.

    Its total cannot be added to yuan and no rate is known for it: refused with a reason the
    source sees, never mixed into the amounts.
    """
    if kind not in SALE_KINDS or not isinstance(payload, dict):
        return None
    currency = payload.get("currency")
    if currency is None or str(currency).strip().upper() in CURRENCY_NAMES:
        return None
    return "unsupported_currency"


def local_epoch(offset_minutes: int) -> datetime:
    """The instant at which local time (UTC plus ``offset_minutes``) read 1970-01-01 00:00.

    ``observed_at - local_epoch(offset)`` is the local time as a duration: its ``days`` number the
    local day, its ``seconds`` the time of day. One subtraction per sale, whatever the instant's zone.
    """
    return _EPOCH - timedelta(minutes=offset_minutes)


@functools.lru_cache(maxsize=1 << 14)
def day_of(number: int) -> date:
    """Local day ``number`` (days since 1970-01-01)."""
    return _DAY_ZERO + timedelta(days=number)


def weekday_of(number: int) -> int:
    """Monday 0 to Sunday 6 of local day ``number``."""
    return (number + _DAY_ZERO_WEEKDAY) % 7


class Sale(NamedTuple):
    """One sale event reduced to what the statistics count.

    The statistics step itself reads sales straight into its rows with the functions below (see
    ``statistics._rows``); this is the same reading, one sale at a time.
    """

    event_pk: int
    store_id: str
    at: datetime
    channel: str
    cents: int
    day: date
    daypart: int
    weekday: int
    skus: tuple[str, ...]

    @property
    def is_purchase(self) -> bool:
        return self.cents > 0


def fen(amount: Decimal | str | int | float) -> Decimal:
    """An amount to whole fen, half away from zero, as :func:`cents` counts it: every page, answer and file
    shows money this way, so a line shown and the total it adds to never disagree (decision 0102)."""
    return Decimal(str(amount)).quantize(_CENT, ROUND_HALF_UP)


def cents(total: str) -> int:
    """A payload's money text ("12.50", "-3", "0.125") in whole cents, half away from zero."""
    whole, dot, fraction = total.partition(".")
    if len(fraction) <= 2 and whole.lstrip("-").isdigit() and (not dot or fraction.isdigit()):
        # The usual two decimals or fewer: exact in integers, no rounding to do.
        amount = abs(int(whole)) * 100 + int(fraction.ljust(2, "0") or "0")
        return -amount if whole.startswith("-") else amount
    return int(Decimal(total).quantize(_CENT, ROUND_HALF_UP) * 100)


def channel_of(kind: str, payload: dict[str, Any]) -> str:
    """store for till sales; app, mini_program or online for online orders by their ``channel``."""
    if kind != ONLINE_KIND:
        return "store"
    named = payload.get("channel")
    if not isinstance(named, str):
        return "online"
    # As the full recompute's SQL folds it (central.customers.rebuild): spaces trimmed, ASCII lower case.
    name = "".join(c.lower() if c.isascii() else c for c in named.strip(" ")).replace("-", "_").replace(" ", "_")
    if name in APP_NAMES:
        return "app"
    if name in MINI_PROGRAM_NAMES:
        return "mini_program"
    return "online"


def skus_of(payload: dict[str, Any]) -> tuple[str, ...]:
    """The SKU of each line that names one, in order (repeats kept: they are counted per line)."""
    items = payload.get("items")
    if not isinstance(items, list):
        return ()
    # A list comprehension, not a generator: no frame to resume per line on ingest's hot path.
    return tuple([sku for item in items if isinstance(item, dict) and isinstance(sku := item.get("sku"), str) and sku])


def sale_of(
    event_pk: int, kind: str, store_id: str, observed_at: datetime, payload: dict[str, Any], offset_minutes: int
) -> Sale | None:
    """The sale an event records, or None for any other kind."""
    if kind not in SALE_KINDS:
        return None
    local = observed_at - local_epoch(offset_minutes)
    return Sale(
        event_pk=event_pk,
        store_id=store_id,
        at=observed_at,
        channel=channel_of(kind, payload),
        cents=cents(payload["total"]),
        day=day_of(local.days),
        daypart=local.seconds // DAYPART_SECONDS,
        weekday=weekday_of(local.days),
        skus=skus_of(payload),
    )
