"""Online orders: posted again at each status, counted once per (source, order number), out when cancelled."""

from __future__ import annotations

import json
import threading
from typing import Any

from sqlalchemy.orm import Session

from central import db as central_db
from central.cli import main
from central.customers import rebuild, statistics, timeline
from central.customers.models import CustomerStats, OnlineOrder
from central.identity.models import Customer
from tests.central.cli_runner import write_config
from tests.central.customer_support import snapshot
from tests.central.sources_support import new_key, post_events
from tests.central.support import table_rows

PHONE = "13957241836"


def _order(event_id: str, number: str, status: str, at: str, total: str = "59.90", **payload: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "kind": "order.online",
        "observed_at": f"2026-10-{at}+08:00",
        "identifiers": {"phone": PHONE},
        "payload": {"order_no": number, "status": status, "total": total, "channel": "mini_program", **payload},
    }


def _stats(app) -> tuple[int, int, str | None, str | None] | None:
    (customer,) = table_rows(app, Customer)
    with Session(central_db.engine_for(app)) as db:
        row = db.get(CustomerStats, customer.id)
        if row is None:
            return None
        return (
            row.purchases,
            row.spent,
            row.first_purchase_at and row.first_purchase_at.isoformat(),
            row.last_purchase_at and row.last_purchase_at.isoformat(),
        )


def _orders(app) -> list[tuple[str, str, bool, int, str | None]]:
    return [(o.order_no, o.status, o.counted, o.events, o.flag) for o in table_rows(app, OnlineOrder)]


def _same_as_a_recount(app) -> None:
    """The statistics ingest kept equal a full recompute from the stored events."""
    engine = central_db.engine_for(app)
    incremental = snapshot(engine)
    with engine.begin() as conn:
        rebuild.rebuild_all(conn, statistics.DEFAULT_OFFSET_MINUTES)
    assert snapshot(engine) == incremental


def test_an_order_posted_at_each_status_counts_once_and_a_cancellation_takes_it_out(app, client):
    key = new_key(app)
    # An earlier order, then order 88 paid and shipped, each posted on its own.
    for event in (
        _order("wx-77-paid", "77", "paid", "10T09:00:00", "20.00"),
        _order("wx-88-paid", "88", "paid", "20T08:00:00"),
        _order("wx-88-shipped", "88", "shipped", "21T09:30:00"),
    ):
        assert post_events(client, key, [event]).get_json()["accepted"] == [event["event_id"]]
    assert _stats(app) == (2, 7990, "2026-10-10T01:00:00+00:00", "2026-10-20T00:00:00+00:00")
    assert _orders(app) == [("77", "paid", True, 1, None), ("88", "shipped", True, 2, None)]
    # The timeline shows both events of order 88: the sale with the order's status now and its
    # amount, the update with its own status and no amount.
    (customer,) = table_rows(app, Customer)
    with central_db.session_factory(app)() as db:
        entries = timeline.page(db, customer.id).entries
    assert [(e.amount and str(e.amount), dict(e.fields)["status"]) for e in entries] == [
        (None, "shipped"),
        ("59.90", "shipped"),
        ("20.00", "paid"),
    ]
    _same_as_a_recount(app)

    # Cancelled: order 88 is no purchase any more, and the last purchase is order 77's again.
    reply = post_events(client, key, [_order("wx-88-cancelled", "88", "Cancelled", "22T10:00:00")]).get_json()
    assert reply["accepted"] == ["wx-88-cancelled"]
    assert _stats(app) == (1, 2000, "2026-10-10T01:00:00+00:00", "2026-10-10T01:00:00+00:00")
    assert _orders(app)[1] == ("88", "Cancelled", False, 3, None)
    _same_as_a_recount(app)
    # Delivered again, the same events change nothing.
    again = post_events(client, key, [_order("wx-88-paid", "88", "paid", "20T08:00:00")]).get_json()
    assert again["duplicate"] == ["wx-88-paid"]
    assert _stats(app) == (1, 2000, "2026-10-10T01:00:00+00:00", "2026-10-10T01:00:00+00:00")


def test_out_of_order_statuses_in_one_post_and_late_make_one_sale_dated_by_its_earliest_event(app, client):
    key = new_key(app)
    # Completed, then paid (which happened first), and the completed one again, in one post.
    first = post_events(
        client,
        key,
        [
            _order("wx-5-completed", "5", "completed", "25T12:00:00"),
            _order("wx-5-paid", "5", "paid", "21T08:00:00"),
            _order("wx-5-completed", "5", "completed", "25T12:00:00"),
        ],
    ).get_json()
    assert (first["accepted"], first["duplicate"]) == (["wx-5-completed", "wx-5-paid"], [])  # each id answered once
    assert _stats(app) == (1, 5990, "2026-10-21T00:00:00+00:00", "2026-10-21T00:00:00+00:00")
    assert _orders(app) == [("5", "completed", True, 2, None)]
    # The creation arrives last, with another total: it is the sale now (its time and its total),
    # the status stays the newest one's, and the order is flagged for a look.
    post_events(client, key, [_order("wx-5-created", "5", "created", "20T22:00:00", total="64.90")])
    assert _stats(app) == (1, 6490, "2026-10-20T14:00:00+00:00", "2026-10-20T14:00:00+00:00")
    assert _orders(app) == [("5", "completed", True, 3, "order_total_differs")]
    _same_as_a_recount(app)


def test_an_update_of_an_order_central_never_saw_is_its_sale_and_a_newer_status_brings_it_back(app, client):
    key = new_key(app)
    post_events(client, key, [_order("wx-9-shipped", "9", "shipped", "21T09:00:00")])
    assert _stats(app) == (1, 5990, "2026-10-21T01:00:00+00:00", "2026-10-21T01:00:00+00:00")
    # Closed, then (a later status) completed after all: counted again.
    post_events(client, key, [_order("wx-9-closed", "9", "closed", "22T09:00:00")])
    assert _stats(app) is None
    post_events(client, key, [_order("wx-9-done", "9", "completed", "23T09:00:00")])
    assert _stats(app) == (1, 5990, "2026-10-21T01:00:00+00:00", "2026-10-21T01:00:00+00:00")
    # A status older than the newest changes nothing; the same order number from another source is
    # another order; an order with no number is a sale of its own, as before.
    post_events(client, key, [_order("wx-9-refunded-old", "9", "refunded", "21T10:00:00")])
    other = new_key(app, "eshop")
    post_events(client, other, [_order("shop-9", "9", "paid", "24T09:00:00", "10.00")], source="eshop")
    loose = _order("wx-loose", "x", "paid", "24T10:00:00", "1.00")
    del loose["payload"]["order_no"]
    post_events(client, key, [loose])
    assert _stats(app) == (3, 7090, "2026-10-21T01:00:00+00:00", "2026-10-24T02:00:00+00:00")
    _same_as_a_recount(app)


def test_a_backfill_loads_an_orders_statuses_as_one_sale(app, tmp_path):
    config = app.config["CENTRAL"]
    config_path = write_config(
        config.server_data_dir.parent / "central.toml", config.server_data_dir, config.database_url
    )
    history = tmp_path / "orders.jsonl"
    events = [
        _order("h-1-paid", "H1", "paid", "01T08:00:00", "30.00"),
        _order("h-1-done", "H1", "completed", "03T08:00:00", "30.00"),
        _order("h-2-paid", "H2", "paid", "02T08:00:00", "45.00"),
        _order("h-2-refunded", "H2", "refunded", "04T08:00:00", "45.00"),
        _order("h-3-shipped", "H3", "shipped", "05T08:00:00", "12.50"),
    ]
    history.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    # Chunks of two: the statuses of H1 and of H2 fall into different transactions.
    args = ["load-events", str(history), "--source", "eshop", "--config", str(config_path), "--chunk-size", "2"]
    assert main(args) == 0
    assert main(args) == 0  # a rerun: every line a duplicate
    assert _stats(app) == (2, 4250, "2026-10-01T00:00:00+00:00", "2026-10-05T00:00:00+00:00")
    assert _orders(app) == [
        ("H1", "completed", True, 2, None),
        ("H2", "refunded", False, 2, None),
        ("H3", "shipped", True, 1, None),
    ]
    _same_as_a_recount(app)


def test_statuses_of_one_order_posted_at_once_count_once(app):
    key = new_key(app)
    client = app.test_client()
    post_events(client, key, [_order("wx-1-seed", "seed", "paid", "19T08:00:00", "1.00")])  # the customer exists
    events = [
        _order("wx-4-paid", "4", "paid", "20T08:00:00"),
        _order("wx-4-shipped", "4", "shipped", "21T08:00:00"),
        _order("wx-4-cancelled", "4", "cancelled", "22T08:00:00"),
        _order("wx-4-paid-again", "4", "paid", "20T08:00:00"),
    ]
    start = threading.Barrier(len(events))
    replies: list[list[str]] = []

    def send(event: dict[str, Any]) -> None:
        own = app.test_client()
        start.wait()
        replies.append(post_events(own, key, [event]).get_json()["accepted"])

    threads = [threading.Thread(target=send, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(e for r in replies for e in r) == sorted(e["event_id"] for e in events)
    assert _orders(app) == [("seed", "paid", True, 1, None), ("4", "cancelled", False, 4, None)]
    assert _stats(app) == (1, 100, "2026-10-19T00:00:00+00:00", "2026-10-19T00:00:00+00:00")
    _same_as_a_recount(app)


def _status_update(event_id: str, number: str, status: str, at: str) -> dict[str, Any]:
    """A cancellation or refund webhook as platforms send it: the order and its status, no total."""
    event = _order(event_id, number, status, at)
    del event["payload"]["total"]
    return event


def _post_known(client, key: str, *events: dict[str, Any]) -> None:
    """Post ``events``: each accepted, with no warning (every status is one central knows)."""
    reply = post_events(client, key, list(events)).get_json()
    assert reply["accepted"] == [e["event_id"] for e in events]
    assert "warnings" not in reply


def test_an_unpaid_order_is_no_purchase_until_a_newer_status_says_it_was_paid(app, client):
    key = new_key(app)
    # Placed, not paid, then closed (Taobao): never a purchase.
    _post_known(client, key, _order("tb-1-new", "TB1", "WAIT_BUYER_PAY", "10T09:00:00", "66.00"))
    assert _stats(app) is None
    _post_known(client, key, _order("tb-1-closed", "TB1", "TRADE_CLOSED", "10T10:00:00", "66.00"))
    assert _stats(app) is None
    # Placed (待付款), then paid and awaiting shipment: a purchase, dated at its first event.
    _post_known(client, key, _order("tb-2-new", "TB2", "待付款", "11T09:00:00", "66.00"))
    assert _stats(app) is None
    _post_known(client, key, _order("tb-2-paid", "TB2", "WAIT_SELLER_SEND_GOODS", "11T09:05:00", "66.00"))
    assert _stats(app) == (1, 6600, "2026-10-11T01:00:00+00:00", "2026-10-11T01:00:00+00:00")
    assert [(number, counted) for number, _, counted, _, _ in _orders(app)] == [("TB1", False), ("TB2", True)]
    _same_as_a_recount(app)


def test_platform_spellings_of_closures_and_full_refunds_take_a_paid_order_out(app, client):
    key = new_key(app)
    _post_known(client, key, _order("tb-1-paid", "TB1", "paid", "11T09:00:00", "66.00"))
    _post_known(client, key, _order("tb-3-paid", "TB3", "paid", "12T08:00:00", "20.00"))
    _post_known(client, key, _order("tb-3-refund", "TB3", "退款成功", "13T08:00:00", "20.00"))
    _post_known(
        client,
        key,
        _order("tb-4-paid", "TB4", "paid", "14T08:00:00", "30.00"),
        _order("yz-5-paid", "YZ5", "paid", "14T09:00:00"),
        _order("yz-6-paid", "YZ6", "paid", "14T10:00:00"),
    )
    _post_known(
        client,
        key,
        _order("tb-4-closed", "TB4", "Trade Closed By Taobao", "15T08:00:00", "30.00"),
        _order("yz-5-closed", "YZ5", "交易取消", "15T09:00:00"),
        _order("yz-6-void", "YZ6", "已作废", "15T10:00:00"),
    )
    assert _stats(app) == (1, 6600, "2026-10-11T01:00:00+00:00", "2026-10-11T01:00:00+00:00")
    assert [(number, counted) for number, _, counted, _, _ in _orders(app)] == [
        ("TB1", True),
        ("TB3", False),
        ("TB4", False),
        ("YZ5", False),
        ("YZ6", False),
    ]
    _same_as_a_recount(app)


def test_an_unknown_status_counts_with_a_warning_in_the_reply_and_the_load_summary(app, client, tmp_path, capsys):
    key = new_key(app)
    reply = post_events(
        client,
        key,
        [
            _order("yz-1", "Y1", "WAIT_GROUP_SUCCESS", "10T09:00:00", "12.00"),
            _order("yz-2", "Y2", "paid", "11T09:00:00", "8.00"),
            _order("yz-1", "Y1", "WAIT_GROUP_SUCCESS", "10T09:00:00", "12.00"),
        ],
    ).get_json()
    assert reply["accepted"] == ["yz-1", "yz-2"]
    assert reply["warnings"] == [{"event_id": "yz-1", "reason": "unknown_order_status"}]
    assert _stats(app) == (2, 2000, "2026-10-10T01:00:00+00:00", "2026-10-11T01:00:00+00:00")

    config = app.config["CENTRAL"]
    config_path = write_config(
        config.server_data_dir.parent / "central.toml", config.server_data_dir, config.database_url
    )
    history = tmp_path / "orders.jsonl"
    lines = [_order("h-1", "H1", "待成团", "01T08:00:00", "5.00"), _order("h-2", "H2", "completed", "02T08:00:00")]
    history.write_text("\n".join(json.dumps(e) for e in lines) + "\n")
    capsys.readouterr()
    assert main(["load-events", str(history), "--source", "eshop", "--config", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "  loaded with warnings 1\n    unknown_order_status       1\n" in out
    _same_as_a_recount(app)


def test_a_status_update_without_a_total_cancels_and_never_changes_the_sales_total(app, client):
    key = new_key(app)
    post_events(client, key, [_order("wx-88-paid", "88", "paid", "20T08:00:00")])
    assert _stats(app) == (1, 5990, "2026-10-20T00:00:00+00:00", "2026-10-20T00:00:00+00:00")
    # Shipped without a total: still the sale's 59.90, and no total_differs flag.
    reply = post_events(client, key, [_status_update("wx-88-shipped", "88", "shipped", "21T08:00:00")]).get_json()
    assert reply["accepted"] == ["wx-88-shipped"]
    assert _orders(app) == [("88", "shipped", True, 2, None)]
    assert _stats(app) == (1, 5990, "2026-10-20T00:00:00+00:00", "2026-10-20T00:00:00+00:00")
    # The refund webhook carries no total either: the order stops counting.
    post_events(client, key, [_status_update("wx-88-refund", "88", "refunded", "22T08:00:00")])
    assert _orders(app) == [("88", "refunded", False, 3, None)]
    assert _stats(app) is None
    _same_as_a_recount(app)

    # The first central hears of order 91 is its shipment without a total: kept, not counted,
    # until an event with a total (the payment, posted later) arrives and becomes its sale.
    post_events(client, key, [_status_update("wx-91-shipped", "91", "shipped", "24T08:00:00")])
    assert _orders(app)[1] == ("91", "shipped", False, 1, None)
    assert _stats(app) is None
    post_events(client, key, [_order("wx-91-paid", "91", "paid", "23T08:00:00", "30.00")])
    assert _orders(app)[1] == ("91", "shipped", True, 2, None)
    assert _stats(app) == (1, 3000, "2026-10-23T00:00:00+00:00", "2026-10-23T00:00:00+00:00")
    _same_as_a_recount(app)

    # An order with no number, or a number but no status, still needs its total.
    loose = _status_update("wx-loose", "x", "paid", "24T10:00:00")
    del loose["payload"]["order_no"]
    bare = _status_update("wx-bare", "92", "", "24T10:00:00")
    rejected = post_events(client, key, [loose, bare]).get_json()["rejected"]
    assert rejected == [
        {"event_id": "wx-loose", "reason": "invalid_payload:total"},
        {"event_id": "wx-bare", "reason": "invalid_payload:total"},
    ]
