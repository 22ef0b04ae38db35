"""The catalogue CSV parser: category paths, refused rows with their line, a header that cannot work."""

from __future__ import annotations

import pytest

from central.customers.catalog import CatalogError, Item, category_path, parse
from central.customers.sales import cents, channel_of, sale_of


def test_category_paths_are_spelled_one_way():
    assert category_path("Baby/Formula / Stage 1") == "Baby > Formula > Stage 1"
    assert category_path(" Dairy >Milk ") == "Dairy > Milk"
    assert category_path(" / ") == ""


def test_rows_are_read_or_refused_with_their_line():
    rows = list(
        parse(
            [
                "SKU,Name,Category,GTIN,Brand\n",
                "F900,Formula,Baby/Formula,6901234567892,Feihe\n",
                ",Nameless,Baby,,\n",
                "X1,Bad code,Baby,12ab,\n",
                "X2,No levels,/,,\n",
            ]
        )
    )
    assert rows == [
        (2, Item("F900", "6901234567892", "Formula", "Baby > Formula", "Feihe")),
        (3, "sku is empty"),
        (4, "gtin must be 8 to 14 digits"),
        (5, "category has no level"),
    ]


def test_a_header_without_the_required_columns_is_refused():
    with pytest.raises(CatalogError, match="missing: category"):
        list(parse(["sku,name\n", "A,B\n"]))


@pytest.mark.parametrize(
    ("total", "expected"),
    [("12.50", 1250), ("-3", -300), ("0.125", 13), ("-0.125", -13), ("12.3449", 1234), ("0", 0), ("7.5", 750)],
)
def test_amounts_are_whole_cents_rounded_half_away_from_zero(total, expected):
    assert cents(total) == expected


def test_channels_and_local_time():
    from datetime import UTC, datetime

    assert channel_of("pos.sale", {"channel": "app"}) == "store"
    assert channel_of("order.online", {"channel": "Mini-Program"}) == "mini_program"
    assert channel_of("order.online", {"channel": "商城"}) == "online"
    # Spellings feeds send: they used to count as plain online orders.
    assert [channel_of("order.online", {"channel": c}) for c in ("小程序", "微信小程序", "WeApp", "Member App")] == [
        "mini_program",
        "mini_program",
        "mini_program",
        "app",
    ]
    sale = sale_of(1, "pos.receipt", "S1", datetime(2026, 11, 21, 17, 30, tzinfo=UTC), {"total": "1"}, 480)
    assert sale is not None
    # 01:30 on Sunday 22 November in UTC+8.
    assert (sale.day.isoformat(), sale.daypart, sale.weekday) == ("2026-11-22", 0, 6)
    assert sale_of(1, "member.login", "S1", datetime(2026, 11, 21, tzinfo=UTC), {}, 480) is None


@pytest.mark.parametrize("offset", [-600, -330, 0, 345, 480, 840])
def test_local_day_time_of_day_and_weekday_match_the_shifted_clock(offset):
    from datetime import UTC, datetime, timedelta

    start = datetime(1969, 12, 28, tzinfo=UTC)
    for minutes in range(0, 60 * 24 * 400 * 40, 60 * 24 * 40 + 37):  # across years, every hour of the day
        at = start + timedelta(minutes=minutes, microseconds=999_999)
        sale = sale_of(1, "pos.sale", "S1", at, {"total": "1"}, offset)
        local = at + timedelta(minutes=offset)
        assert sale is not None
        assert (sale.day, sale.daypart, sale.weekday) == (local.date(), local.hour // 6, local.weekday()), at
