"""Daily sales by store: a hand-counted chain of two stores across a local midnight, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any

import pytest

from central import db as central_db
from central.cli import main
from central.customers.daily_sales import DaySales, RangeError, daily_sales, totals
from central.models import AuditLog
from tests.central.cli_runner import write_config
from tests.central.sources_support import new_key, post_events
from tests.central.support import Agent, create_user, login, table_rows, token_for

OFFSET = 480  # the chain's local time, UTC+08:00
FIRST, LAST = date(2026, 10, 31), date(2026, 11, 1)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _source_receipt(event_id: str, store: str, number: str, total: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "kind": "pos.receipt",
        "store_id": store,
        "observed_at": "2026-10-31T10:00:05+08:00",
        "payload": {
            "receipt_no": number,
            "total": total,
            "items": [],
            "register": "03",
            "datetime": "2026-10-31 10:00:05",
        },
    }


def _order(event_id: str, number: str, status: str, total: str, at: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "kind": "order.online",
        "store_id": "S001",
        "observed_at": f"2026-10-31T{at}+08:00",
        "identifiers": {"phone": "13957240001"},
        "payload": {"order_no": number, "status": status, "total": total, "channel": "mini_program"},
    }


def make_chain(app, client) -> None:
    """Two stores' sales around the local midnight between 31 October and 1 November 2026 (UTC+08:00)."""
    one = Agent(store_id="S001")
    assert one.enroll(client, token_for(app, "S001")).status_code == 201
    two = Agent(store_id="S002")
    assert two.enroll(client, token_for(app, "S002")).status_code == 201
    one.send(
        client,
        [
            # 23:59 local on the 30th: before the range.
            one.receipt("A0", "20.00", observed_at=_utc("2026-10-30T15:59:00")),
            # 12:00 local on the 31st: a refund.
            one.receipt("A3", "-5.00", observed_at=_utc("2026-10-31T04:00:00")),
            # 23:30 local on the 31st (15:30 UTC): a member's sale, on the 31st.
            one.receipt("A1", "35.50", phone="13957241836", observed_at=_utc("2026-10-31T15:30:00")),
            # 23:31 local: A1 printed again with another total, set aside for a person to look at.
            one.receipt("A1", "53.50", observed_at=_utc("2026-10-31T15:31:00")),
            # 00:30 local on 1 November (still the 31st in UTC): on the 1st.
            one.receipt("A2", "12.00", observed_at=_utc("2026-10-31T16:30:00")),
            # 00:00 local on the 2nd: after the range.
            one.receipt("A5", "99.00", observed_at=_utc("2026-11-01T16:00:00")),
        ],
    )
    two.send(
        client,
        [two.receipt("A1", "8.00", phone="13957242222", observed_at=_utc("2026-10-31T02:00:00"))],
    )
    # The same receipt of S002 loaded by two senders: the second copy is duplicate_source.
    backfill = new_key(app, "pos-backfill")
    assert (
        post_events(
            client, backfill, [_source_receipt("b-1", "S002", "B7", "15.00")], source="pos-backfill"
        ).status_code
        == 200
    )
    export = new_key(app, "pos-export")
    assert (
        post_events(client, export, [_source_receipt("x-1", "S002", "B7", "15.00")], source="pos-export").status_code
        == 200
    )
    # Online: one order paid then shipped (counted once), one paid then cancelled (not counted).
    shop = new_key(app, "miniprogram")
    orders = [
        _order("o-1", "W1", "paid", "59.90", "20:00:00"),
        _order("o-2", "W1", "shipped", "59.90", "21:00:00"),
        _order("o-3", "W2", "paid", "30.00", "20:10:00"),
        _order("o-4", "W2", "cancelled", "30.00", "20:20:00"),
    ]
    assert post_events(client, shop, orders, source="miniprogram").status_code == 200


EXPECTED = [
    DaySales(
        "S001", FIRST, sales=1, gross=3550, refunds=1, refunded=500, set_aside=1, set_aside_amount=5350,
        member_sales=1, member_gross=3550, online_orders=1, online_amount=5990,
    ),
    DaySales(
        "S002", FIRST, sales=2, gross=2300, set_aside=1, set_aside_amount=1500, member_sales=1, member_gross=800,
    ),
    DaySales("S001", LAST, sales=1, gross=1200),
]  # fmt: skip


def test_sales_are_counted_per_store_and_local_day_as_a_hand_count(app, client):
    make_chain(app, client)
    with central_db.session_factory(app)() as db:
        rows = daily_sales(db, FIRST, LAST, OFFSET)
        assert rows == EXPECTED
        assert [r.net for r in rows] == [3050, 2300, 1200]
        assert rows[0].member_share == 1.0
        assert rows[1].member_share == pytest.approx(800 / 2300)
        total = totals(rows)
        assert (total.sales, total.gross, total.refunded, total.net, total.set_aside, total.online_orders) == (
            4, 7050, 500, 6550, 2, 1,
        )  # fmt: skip
        # One store: a store manager's view.
        assert daily_sales(db, FIRST, LAST, OFFSET, ("S002",)) == [EXPECTED[1]]
        assert daily_sales(db, FIRST, LAST, OFFSET, ()) == []
        # The day before holds the sale at 23:59 local on the 30th only.
        assert daily_sales(db, date(2026, 10, 30), date(2026, 10, 30), OFFSET) == [
            DaySales("S001", date(2026, 10, 30), sales=1, gross=2000)
        ]


def test_a_range_backwards_or_over_a_year_is_refused(app):
    with central_db.session_factory(app)() as db:
        with pytest.raises(RangeError):
            daily_sales(db, LAST, FIRST, OFFSET)
        with pytest.raises(RangeError):
            daily_sales(db, date(2024, 12, 31), date(2026, 1, 1), OFFSET)


def _logged_in(app, role: str, stores: tuple[str, ...] = ()):
    create_user(app, role, role=role, stores=stores)
    client = app.test_client()
    assert login(client, role).status_code == 302
    return client


def test_finance_reads_the_page_and_a_store_manager_only_their_store(app, client):
    make_chain(app, client)
    finance = _logged_in(app, "finance")
    html = finance.get("/console/sales?from=2026-10-31&to=2026-11-01").get_data(as_text=True)
    assert 'data-store="S001" data-day="2026-10-31"' in html and 'data-store="S002"' in html
    assert "30.50" in html and "65.50" in html  # S001's net on the 31st, and the total net
    # Sales linked to any customer, not only to members; the share is of the amount, and says so.
    assert "识别到顾客的销售笔数" in html and "识别到顾客的销售额占比" in html and "会员销售" not in html
    assert 'href="/console/sales"' in finance.get("/console/campaigns").get_data(as_text=True)
    manager = _logged_in(app, "store_manager", ("S002",))
    mine = manager.get("/console/sales?from=2026-10-31&to=2026-11-01").get_data(as_text=True)
    assert 'data-store="S002"' in mine and 'data-store="S001"' not in mine
    csv = manager.get("/console/sales/daily.csv?from=2026-10-31&to=2026-11-01").get_data(as_text=True)
    assert csv.splitlines()[1:] == ["2026-10-31,S002,2,23.00,0,0.00,23.00,1,15.00,1,8.00,34.8,0,0.00"]
    # A page view of aggregates is not audited; the download is an export and is.
    exports = [(a.actor, a.action, a.detail) for a in table_rows(app, AuditLog) if a.action.startswith("sales.")]
    assert exports == [
        (
            "store_manager",
            "sales.export",
            {"via": "console", "from": "2026-10-31", "to": "2026-11-01", "rows": 1, "stores": ["S002"]},
        )
    ]
    assert finance.get("/console/sales?from=2026-11-01&to=2026-10-31").status_code == 400
    assert finance.get("/console/sales?from=yesterday").status_code == 400
    # A refused range shows why, and neither the default week's figures nor "no sales" as its answer.
    refused = finance.get("/console/sales?from=2024-01-01&to=2026-11-01").get_data(as_text=True)
    assert 'id="sales-problem"' in refused and "这段时间没有销售" not in refused and 'id="sales-total"' not in refused
    assert 'data-store="S001"' not in refused
    assert _logged_in(app, "marketing").get("/console/sales").status_code == 403


def test_the_csv_has_numbers_as_numbers_and_no_formula_cells(app, client):
    # A store id a spreadsheet would compute (-2-1 = -3); a refund of 12.50 there.
    refund = _source_receipt("r-9", "-2-1", "R9", "-12.50")
    reply = post_events(client, new_key(app, "pos-export"), [refund], source="pos-export").get_json()
    assert reply["accepted"] == ["r-9"], reply
    reader = _logged_in(app, "finance")
    text = reader.get("/console/sales/daily.csv?from=2026-10-31&to=2026-10-31").get_data(as_text=True)
    header, row = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert header[:3] == ["date", "store_id", "sales"]
    # Counts and amounts as plain numbers (a spreadsheet sums them); the store id behind an apostrophe.
    assert row == [
        "2026-10-31",
        "'-2-1",
        "0",
        "0.00",
        "1",
        "12.50",
        "-12.50",
        "0",
        "0.00",
        "0",
        "0.00",
        "",
        "0",
        "0.00",
    ]


def test_the_command_prints_the_table_and_writes_the_csv(app, client, tmp_path, capsys):
    make_chain(app, client)
    config = app.config["CENTRAL"]
    path = write_config(config.server_data_dir.parent / "central.toml", config.server_data_dir, config.database_url)
    assert main(["sales", "daily", "--from", "2026-10-31", "--to", "2026-11-01", "--config", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("date\tstore_id\tsales\tgross")
    assert lines[1:] == [
        "2026-10-31\tS001\t1\t35.50\t1\t5.00\t30.50\t1\t53.50\t1\t35.50\t100.0\t1\t59.90",
        "2026-10-31\tS002\t2\t23.00\t0\t0.00\t23.00\t1\t15.00\t1\t8.00\t34.8\t0\t0.00",
        "2026-11-01\tS001\t1\t12.00\t0\t0.00\t12.00\t0\t0.00\t0\t0.00\t0.0\t0\t0.00",
        "total\t\t4\t70.50\t1\t5.00\t65.50\t2\t68.50\t2\t43.50\t61.7\t1\t59.90",
    ]
    out = tmp_path / "november.csv"
    argv = ["sales", "daily", "--from", "2026-10-31", "--to", "2026-11-01", "--store", "S002", "--csv", str(out)]
    assert main([*argv, "--config", str(path)]) == 0
    assert out.read_text().splitlines()[1:] == ["2026-10-31,S002,2,23.00,0,0.00,23.00,1,15.00,1,8.00,34.8,0,0.00"]
    assert out.stat().st_mode & 0o777 == 0o600
    assert [a.action for a in table_rows(app, AuditLog) if a.action.startswith("sales.")] == ["sales.export"]
    assert main(["sales", "daily", "--from", "2026-11-01", "--to", "2026-10-31", "--config", str(path)]) == 2
