"""Reprinted receipts: kept as evidence, counted once, whichever batch or instance brings each copy."""

from __future__ import annotations

import gzip
import json
import threading
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from central import db as central_db
from central.cli import main
from central.customers import timeline
from central.customers.models import CustomerStats, Receipt
from central.identity.models import Customer
from shared import wire
from tests.central.cli_runner import write_config
from tests.central.sources_support import new_key, post_events
from tests.central.support import BATCHES, START, Agent, table_rows

PHONE = "13957241836"


def _printed(
    agent: Agent,
    number: str,
    total: str,
    minutes: float,
    *,
    register: str = "03",
    printed: str | None = "2026-11-23 10:00:05",
    marked: bool = False,
    phone: str | None = PHONE,
) -> wire.Event:
    payload: dict[str, Any] = {
        "format": "escpos",
        "receipt_no": number,
        "total": total,
        "items": [],
        "member": {"phone": phone} if phone else {},
        "register": register,
        "warnings": ["reprint"] if marked else [],
    }
    if printed is not None:
        payload["datetime"] = printed
    return agent.event("pos.receipt", payload, observed_at=START + timedelta(minutes=minutes))


def _receipts(app) -> list[tuple[str, str, str, bool, str | None, bool]]:
    rows = table_rows(app, Receipt)
    ids = {r.id: r.receipt_no for r in rows}
    return [
        (
            r.receipt_no,
            r.register,
            str(r.total),
            r.customer_id is not None,
            r.flag,
            ids.get(r.reprint_of) == r.receipt_no,
        )
        for r in sorted(rows, key=lambda r: r.id)
    ]


def test_a_reprint_is_kept_flagged_and_not_counted_again(app, client, agent):
    # The sale and its reprint (with the 重打印 marker) in one batch, as an agent sends them.
    first = agent.send(
        client, [_printed(agent, "LV-RP2", "35.50", 0), _printed(agent, "LV-RP2", "35.50", 0.05, marked=True)]
    )
    assert len(first["accepted"]) == 2
    # Later batches: a reprint with no marker, a copy whose total is not the sale's, another
    # register's receipt with the same number, and the same number printed the next day by a till
    # that numbers each day from 1.
    agent.send(client, [_printed(agent, "LV-RP2", "35.50", 30)])
    agent.send(client, [_printed(agent, "LV-RP2", "53.50", 31, printed="2026-11-23 10:31:00")])
    agent.send(
        client,
        [
            _printed(agent, "LV-RP2", "12.00", 32, register="04", printed="2026-11-23 10:32:00"),
            _printed(agent, "LV-RP2", "35.50", 24 * 60, printed="2026-11-24 10:00:05"),
        ],
    )

    assert _receipts(app) == [
        ("LV-RP2", "03", "35.50", True, None, False),
        ("LV-RP2", "03", "35.50", False, "reprint", True),
        ("LV-RP2", "03", "35.50", False, "reprint", True),
        ("LV-RP2", "03", "53.50", False, "reprint_total_differs", True),
        ("LV-RP2", "04", "12.00", True, None, False),
        ("LV-RP2", "03", "35.50", True, None, False),
    ]
    (customer,) = table_rows(app, Customer)
    # The sale, register 04's sale and the next day's sale: three purchases.
    assert (customer.receipts_count, str(customer.total_spent)) == (3, "83.00")
    with Session(central_db.engine_for(app)) as db:
        stats = db.get(CustomerStats, customer.id)
        assert stats is not None
        assert (stats.purchases, stats.spent) == (3, 8300)


def test_copies_sent_at_once_in_two_batches_count_once(app, agent):
    # No member: nothing else (a new customer's phone) makes the transactions wait for each other.
    bodies = [
        gzip.compress(agent.body([_printed(agent, "LV-RP9", "20.00", minutes, phone=None)]))
        for minutes in (0.0, 0.1, 0.2)
    ]
    start = threading.Barrier(len(bodies))
    statuses: list[int] = []

    def send(body: bytes) -> None:
        client = app.test_client()
        start.wait()
        statuses.append(client.post(BATCHES, data=body, headers=agent.signed_headers(body)).status_code)

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200, 200, 200]
    assert sorted(r.flag or "" for r in table_rows(app, Receipt)) == ["", "reprint", "reprint"]


def test_a_marked_reprint_of_a_sale_central_never_saw_is_counted_and_flagged(app, client, agent):
    agent.send(client, [_printed(agent, "LV-RP5", "9.90", 0, marked=True)])
    assert _receipts(app) == [("LV-RP5", "03", "9.90", True, "reprint_unmatched", False)]


def _backfilled(number: str, total: str, *, register: str = "03", printed: str = "2026-11-23 10:00:05") -> str:
    """The same receipt as HQ's export of the till's history gives it, one JSON line."""
    payload: dict[str, Any] = {"receipt_no": number, "total": total, "items": [], "datetime": printed}
    if register:
        payload["register"] = register
    return json.dumps(
        {
            "event_id": f"pos-{number}-{register or 'x'}",
            "kind": "pos.receipt",
            "store_id": "S001",
            "observed_at": "2026-11-23T10:00:05+08:00",
            "identifiers": {"phone": PHONE},
            "payload": payload,
        }
    )


def _load(app, tmp_path, *lines: str) -> None:
    config = app.config["CENTRAL"]
    path = write_config(config.server_data_dir.parent / "central.toml", config.server_data_dir, config.database_url)
    history = tmp_path / "receipts.jsonl"
    history.write_text("\n".join(lines) + "\n")
    assert main(["load-events", str(history), "--source", "pos-backfill", "--config", str(path)]) == 0


def _purchases(app) -> tuple[int, int]:
    (customer,) = table_rows(app, Customer)
    with Session(central_db.engine_for(app)) as db:
        stats = db.get(CustomerStats, customer.id)
        assert stats is not None
        return stats.purchases, stats.spent


def test_a_receipt_the_agent_sent_and_a_backfill_loaded_again_counts_once(app, client, agent, tmp_path):
    agent.send(client, [_printed(agent, "LV-D1", "35.50", 0)])
    # HQ loads the till's history: the same receipt, and one the agent never sent.
    _load(app, tmp_path, _backfilled("LV-D1", "35.50"), _backfilled("LV-D2", "12.00"))
    assert _receipts(app) == [
        ("LV-D1", "03", "35.50", True, None, False),
        ("LV-D2", "03", "12.00", True, None, False),
        ("LV-D1", "03", "35.50", False, "duplicate_source", True),
    ]
    assert _purchases(app) == (2, 4750)
    # Both receipts the store printed are till receipts, whoever brought them; the copy is not.
    (customer,) = table_rows(app, Customer)
    assert (customer.receipts_count, str(customer.total_spent)) == (2, "47.50")


def test_a_backfilled_receipt_the_agent_sends_afterwards_counts_once(app, client, agent, tmp_path):
    # Without a register: the backfill and the agent meet on the printed time and the total.
    _load(app, tmp_path, _backfilled("LV-D3", "20.00", register=""), _backfilled("LV-D4", "8.00", register=""))
    reply = agent.send(
        client,
        [
            _printed(agent, "LV-D3", "20.00", 0, register=""),
            # The same number and time with another total: another sale, not a copy.
            _printed(agent, "LV-D4", "9.00", 0, register=""),
        ],
    )
    assert len(reply["accepted"]) == 2
    assert _receipts(app) == [
        ("LV-D3", "", "20.00", True, None, False),
        ("LV-D4", "", "8.00", True, None, False),
        ("LV-D4", "", "9.00", True, None, False),
        ("LV-D3", "", "20.00", False, "duplicate_source", True),
    ]
    assert _purchases(app) == (3, 3700)
    (customer,) = table_rows(app, Customer)
    assert (customer.receipts_count, str(customer.total_spent)) == (3, "37.00")


def test_a_receipt_loaded_twice_from_two_sources_counts_once(app, client, tmp_path):
    line = _backfilled("LV-D5", "15.00")
    _load(app, tmp_path, line)
    key = new_key(app, "pos-export")
    reply = post_events(client, key, [json.loads(line)], source="pos-export").get_json()
    assert reply["accepted"] == ["pos-LV-D5-03"]
    assert [r[4] for r in _receipts(app)] == [None, "duplicate_source"]
    assert _purchases(app) == (1, 1500)


def _line(event_id: str, number: str, total: str, at: str) -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "kind": "pos.receipt",
            "store_id": "S002",
            "observed_at": at,
            "identifiers": {"phone": PHONE},
            "payload": {"receipt_no": number, "register": "01", "total": total},
        }
    )


def test_a_copy_with_another_total_is_named_in_the_load_summary_and_the_sources_reply(app, client, tmp_path, capsys):
    """F0004 at 12.34, the same number an hour later at 99.99: the summary said "accepted 2" and nothing else."""
    config = app.config["CENTRAL"]
    path = write_config(config.server_data_dir.parent / "central.toml", config.server_data_dir, config.database_url)
    history = tmp_path / "f.jsonl"
    history.write_text(
        _line("f1", "F0004", "12.34", "2026-11-20T10:00:00+08:00")
        + "\n"
        + _line("f2", "F0004", "99.99", "2026-11-20T11:00:00+08:00")
        + "\n"
    )
    assert main(["load-events", str(history), "--source", "pos-backfill", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "  loaded with warnings 1" in out and "    reprint_total_differs" in out
    # The same through the API: the copy is accepted, and the reply says it was set aside.
    posted = [
        json.loads(_line(f"w{i}", "F0005", total, at))
        for i, (total, at) in enumerate(
            (
                ("5.00", "2026-11-20T12:00:00+08:00"),
                ("5.00", "2026-11-20T12:01:00+08:00"),
                ("6.00", "2026-11-20T12:02:00+08:00"),
            )
        )
    ]
    reply = post_events(client, new_key(app, "pos-export"), posted, source="pos-export").get_json()
    assert reply["accepted"] == ["w0", "w1", "w2"]
    # A plain reprint (same total) counts once and needs no one: only the other total is named.
    assert reply["warnings"] == [{"event_id": "w2", "reason": "reprint_total_differs"}]


def test_an_agents_copy_with_another_total_is_named_in_the_batch_reply(app, client, agent):
    reply = agent.send(client, [_printed(agent, "F0004", "12.34", 0), _printed(agent, "F0004", "12.34", 1)])
    assert "warnings" not in reply
    differs = _printed(agent, "F0004", "99.99", 60)
    reply = agent.send(client, [differs])
    assert reply["accepted"] == [differs.event_id]
    assert reply["warnings"] == [{"event_id": differs.event_id, "reason": "reprint_total_differs"}]
    assert wire.decode_reply(json.dumps(reply).encode()).warnings == (
        wire.Rejection(differs.event_id, "reprint_total_differs"),
    )


def _reprint_with_another_total(app, client, agent) -> int:
    """Receipt F0004 at 12.34, then the same number an hour later at 99.99 (set aside); the customer's id."""
    agent.send(client, [_printed(agent, "F0004", "12.34", 0)])
    agent.send(client, [_printed(agent, "F0004", "99.99", 60)])
    agent.send(client, [_printed(agent, "F0006", "8.00", 24 * 60, printed="2026-11-24 10:00:05")])
    agent.send(client, [_printed(agent, "F0006", "80.00", 24 * 60 + 5, printed="2026-11-24 10:05:00")])
    (customer,) = table_rows(app, Customer)
    return customer.id


def test_a_receipt_set_aside_is_on_its_customers_timeline_marked_as_such(app, client, agent, user_client):
    customer_id = _reprint_with_another_total(app, client, agent)
    with Session(central_db.engine_for(app)) as db:
        entries = timeline.page(db, customer_id).entries
        # Paged one entry at a time, the set-aside entries come in order and none twice.
        cursor, paged = None, []
        while True:
            page = timeline.page(db, customer_id, cursor, limit=1)
            paged += page.entries
            if page.next is None:
                break
            cursor = page.next
    assert [(e.kind, str(e.amount)) for e in entries] == [
        (timeline.SET_ASIDE_KIND, "80.00"),
        ("pos.receipt", "8.00"),
        (timeline.SET_ASIDE_KIND, "99.99"),
        ("pos.receipt", "12.34"),
    ]
    assert [(e.kind, e.id) for e in paged] == [(e.kind, e.id) for e in entries]
    assert dict(entries[2].fields) == {
        "receipt_no": "F0004",
        "set_aside": "reprint_total_differs",
        "counted_total": "12.34",
    }
    page_text = user_client.get(f"/console/customers/{customer_id}").get_data(as_text=True)
    assert "门店小票（已搁置，未计入）" in page_text and "同一小票号再次出现，金额不同：待财务核对" in page_text
    # Still counted nowhere: the figures are the two sales.
    (listed,) = user_client.get("/api/v1/customers").get_json()["customers"]
    assert (listed["till_receipts"], listed["till_spent"], listed["purchases"]) == (2, "20.34", 2)


def test_finance_lists_the_receipts_set_aside_per_store_and_day(app, client, agent, capsys):
    _reprint_with_another_total(app, client, agent)
    config = app.config["CENTRAL"]
    path = str(
        write_config(config.server_data_dir.parent / "central.toml", config.server_data_dir, config.database_url)
    )
    capsys.readouterr()
    assert main(["receipts", "set-aside", "--csv", "--config", path]) == 0
    out, err = capsys.readouterr()
    rows = [line.split(",") for line in out.splitlines()]
    assert rows[0][:9] == [
        "store_id",
        "local_date",
        "observed_at",
        "register",
        "receipt_no",
        "total",
        "counted_total",
        "difference",
        "reason",
    ]
    # START is 10:00 in the chain's time (UTC+8); the second copy was an hour later.
    assert [r[:9] for r in rows[1:]] == [
        [
            "S001",
            "2026-11-23",
            "2026-11-23 11:00:00",
            "03",
            "F0004",
            "99.99",
            "12.34",
            "87.65",
            "reprint_total_differs",
        ],
        ["S001", "2026-11-24", "2026-11-24 10:05:00", "03", "F0006", "80.00", "8.00", "72.00", "reprint_total_differs"],
    ]
    assert [r[9] for r in rows[1:]] == [agent.device_id] * 2
    assert "2 receipts set aside" in err
    assert main(["receipts", "set-aside", "--csv", "--since", "2026-11-24", "--config", path]) == 0
    assert [line.split(",")[4] for line in capsys.readouterr().out.splitlines()[1:]] == ["F0006"]
    assert main(["receipts", "set-aside", "--csv", "--until", "2026-11-23", "--config", path]) == 0
    assert [line.split(",")[4] for line in capsys.readouterr().out.splitlines()[1:]] == ["F0004"]
    assert main(["receipts", "set-aside", "--store", "S009", "--config", path]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "0 receipts set aside" in err
    assert main(["receipts", "set-aside", "--config", path]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:3] == [
        "S001 2026-11-23",
        "  11:00:00  register 03  receipt F0004  99.99  (counted: 12.34)",
        f"      reprint_total_differs; sent by {agent.device_id}",
    ]
    assert main(["receipts", "set-aside", "--since", "23 Nov", "--config", path]) == 2
