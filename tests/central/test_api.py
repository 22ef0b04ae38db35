"""The read-only JSON API: login required, identifiers masked, every read of customer data audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from central import db as central_db
from central.identity.models import Customer
from central.models import AuditLog
from central.sources.backfill import load_events
from tests.central.sources_support import default_registry, new_key, post_events, source_event
from tests.central.support import START, table_rows

UNAUTHORIZED = {"error": {"code": "unauthorized", "message": "login required"}}


@pytest.mark.parametrize("path", ["/api/v1/customers", "/api/v1/customers/1", "/api/v1/devices"])
def test_login_is_required(app, client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.get_json() == UNAUTHORIZED
    assert table_rows(app, AuditLog) == []


def test_customers_are_listed_masked_newest_first(app, client, agent, user_client):
    agent.send(client, [agent.receipt("R1", "12.50", phone="13812345678", card="VIP00421234", observed_at=START)])
    agent.send(client, [agent.receipt("R2", "3.00", phone="+85291234567", observed_at=START + timedelta(hours=1))])
    response = user_client.get("/api/v1/customers")
    assert response.status_code == 200
    body = response.get_json()
    assert body["total"] == 2
    newest, older = body["customers"]
    assert newest["identifiers"] == [{"kind": "phone", "value": "+852****4567"}]
    assert older == {
        "id": older["id"],
        "identifiers": [
            {"kind": "member_card", "value": "*******1234"},
            {"kind": "phone", "value": "138****5678"},
        ],
        "first_seen_at": "2026-11-23T02:00:00.000Z",
        "last_seen_at": "2026-11-23T02:00:00.000Z",
        "purchases": 1,
        "spent": "12.50",
        "till_receipts": 1,
        "till_spent": "12.50",
    }
    text = response.get_data(as_text=True)
    assert "13812345678" not in text and "VIP00421234" not in text
    (entry,) = [a for a in table_rows(app, AuditLog) if a.action == "customers.list"]
    assert (entry.actor, entry.detail["via"], entry.detail["returned"]) == ("alice", "api", 2)
    assert sorted(entry.detail["customers"]) == sorted(c["id"] for c in response.get_json()["customers"])


def test_paging_and_bad_parameters(client, agent, user_client):
    agent.send(client, [agent.receipt(f"R{i}", phone=f"1380001000{i}") for i in range(5)])
    page = user_client.get("/api/v1/customers?limit=2&offset=4").get_json()
    assert (len(page["customers"]), page["total"]) == (1, 5)
    for query in ("limit=0", "limit=501", "limit=x", "offset=-1"):
        response = user_client.get(f"/api/v1/customers?{query}")
        assert response.status_code == 400, query
        assert response.get_json()["error"]["code"] == "invalid_request"


def test_customer_detail_with_recent_receipts(app, client, agent, user_client):
    agent.send(client, [agent.receipt(f"R{i}", "1.10", phone="13812345678") for i in range(25)])
    customer_id = user_client.get("/api/v1/customers").get_json()["customers"][0]["id"]
    response = user_client.get(f"/api/v1/customers/{customer_id}")
    assert response.status_code == 200
    body = response.get_json()
    assert body["customer"]["till_receipts"] == 25
    assert body["customer"]["till_spent"] == "27.50"
    assert len(body["receipts"]) == 20
    assert body["receipts"][0] == {
        "receipt_no": "R24",
        "total": "1.10",
        "store_id": "S001",
        "observed_at": "2026-11-23T02:00:00.000Z",
    }
    views = [a for a in table_rows(app, AuditLog) if a.action == "customer.view"]
    assert [(a.actor, a.subject) for a in views] == [("alice", f"customer:{customer_id}")]


def test_a_profiles_figures_agree_with_a_hand_count(app, client, agent, user_client):
    """Two sales and a refund at the till, one online order: every figure the API and the console show.

    By hand: the till printed 3 receipts (100.00 + 45.50 - 20.00 = 125.50); the customer made 3
    purchases (the two sales and the order; a refund is no purchase) and spent 125.50 + 59.90 = 185.40.
    """
    agent.send(
        client,
        [
            agent.receipt("R1", "100.00", phone="13812345678"),
            agent.receipt("R2", "45.50", phone="13812345678", observed_at=START + timedelta(hours=1)),
            agent.receipt("RF1", "-20.00", phone="13812345678", observed_at=START + timedelta(hours=2)),
        ],
    )
    order = source_event("o1", "order.online", identifiers={"phone": "13812345678"})
    reply = post_events(client, new_key(app), [{**order, "payload": {"order_no": "WX-1", "total": "59.90"}}])
    assert reply.get_json()["accepted"] == ["o1"], reply.get_json()
    (listed,) = user_client.get("/api/v1/customers").get_json()["customers"]
    figures = {"purchases": 3, "spent": "185.40", "till_receipts": 3, "till_spent": "125.50"}
    assert {k: listed[k] for k in figures} == figures
    assert "receipts_count" not in listed and "total_spent" not in listed  # renamed: they read as the whole spend
    cid = listed["id"]
    detail = user_client.get(f"/api/v1/customers/{cid}").get_json()
    assert {k: detail["customer"][k] for k in figures} == figures
    assert sorted(r["total"] for r in detail["receipts"]) == ["-20.00", "100.00", "45.50"]
    statistics = user_client.get(f"/api/v1/customers/{cid}/tags").get_json()["statistics"]
    assert (statistics["purchases"], statistics["spent"]) == (3, "185.40")
    assert statistics["channels"]["store"] == {"purchases": 2, "spent": "125.50"}
    assert statistics["channels"]["online"] == {"purchases": 1, "spent": "59.90"}
    assert user_client.get(f"/api/v1/identity/customers/{cid}").get_json()["customer"]["till_receipts"] == 3
    page = user_client.get(f"/console/customers/{cid}").get_data(as_text=True)
    assert '<span id="purchases">3</span>' in page and '<span id="spent">185.40</span>' in page
    assert '<span id="till-receipts">3</span>' in page and '<span id="till-spent">125.50</span>' in page


def test_store_receipts_loaded_as_history_or_posted_by_a_source_are_till_receipts(
    app, client, agent, user_client, tmp_path
):
    """A history customer's header said 12 purchases and 0 till receipts while the timeline listed 12 store
    receipts: receipts a store printed count however they reached central (an agent, a source, load-events)."""
    history = tmp_path / "history.jsonl"
    lines = [
        {
            "event_id": f"h{i}",
            "kind": "pos.receipt",
            "observed_at": f"2026-10-0{i}T10:00:00+08:00",
            "store_id": "S001",
            "identifiers": {"phone": "13812345678"},
            "payload": {"receipt_no": f"R00000257{i}", "register": "01", "total": "100.10"},
        }
        for i in (1, 2)
    ]
    history.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    with central_db.session_factory(app)() as db:
        load_events(db, history, "pos-backfill", registry=default_registry(), clock=app.config["CLOCK"])
    posted = source_event(
        "o1",
        "pos.receipt",
        store_id="S003",
        identifiers={"phone": "13812345678"},
        payload={"receipt_no": "W1", "total": "5.00"},
    )
    online = source_event(
        "o2", "pos.receipt", identifiers={"phone": "13812345678"}, payload={"receipt_no": "W2", "total": "7.00"}
    )
    assert post_events(client, new_key(app), [posted, online]).get_json()["accepted"] == ["o1", "o2"]
    agent.send(client, [agent.receipt("R9", "1.00", phone="13812345678")])
    # The backfill's first receipt again from the agent's till: a copy, counted once.
    agent.send(
        client,
        [
            agent.event(
                "pos.receipt",
                {**lines[0]["payload"], "member": {"phone": "13812345678"}},
                observed_at=datetime(2026, 10, 1, 2, tzinfo=UTC),
            )
        ],
    )
    (listed,) = user_client.get("/api/v1/customers").get_json()["customers"]
    # A receipt that names no store is no store's receipt: it counts among purchases, not at the tills.
    till = {"till_receipts": 4, "till_spent": "206.20", "purchases": 5, "spent": "213.20"}
    assert {k: listed[k] for k in till} == till
    detail = user_client.get(f"/api/v1/customers/{listed['id']}").get_json()
    assert {k: detail["customer"][k] for k in till} == till
    assert [r["receipt_no"] for r in detail["receipts"]] == ["R9", "W1", "R000002572", "R000002571"]
    assert user_client.get(f"/api/v1/identity/customers/{listed['id']}").get_json()["customer"]["till_receipts"] == 4


def test_unknown_and_merged_customers(app, client, agent, user_client):
    assert user_client.get("/api/v1/customers/999").get_json() == {
        "error": {"code": "not_found", "message": "no customer 999"}
    }
    agent.send(client, [agent.receipt("R1", phone="13800000001")])
    agent.send(client, [agent.receipt("R2", card="CARD0002")])
    agent.send(client, [agent.receipt("R3", phone="13800000001", card="CARD0002")])
    (kept,) = [c["id"] for c in user_client.get("/api/v1/customers").get_json()["customers"]]
    (merged,) = [c.id for c in table_rows(app, Customer) if c.merged_into is not None]
    response = user_client.get(f"/api/v1/customers/{merged}")
    assert response.status_code == 404
    assert response.get_json()["error"] == {
        "code": "merged",
        "message": f"customer {merged} was merged into customer {kept}",
        "merged_into": kept,
    }


def test_devices(client, agent, user_client, app):
    beat = {"agent_version": "0.2.0", "outbox_rows": 3, "health": {"state": "ok", "backlog": 0}}
    agent.send(client, [agent.event("agent.heartbeat", beat)])
    body = user_client.get("/api/v1/devices").get_json()
    assert body == {
        "devices": [
            {
                "device_id": agent.device_id,
                "store_id": "S001",
                "hostname": "pos-1",
                "agent_version": "0.2.0",
                "status": "active",
                "state": "healthy",
                "enrolled_at": "2026-11-23T02:00:00.000Z",
                "last_seen_at": "2026-11-23T02:00:00.000Z",
                "heartbeat_at": "2026-11-23T02:00:00.000Z",
                "last_seq": 1,
                "health": {"state": "ok", "backlog": 0},
                "sources": None,
                "downlink_version": None,
                # Unknown heartbeat fields (outbox_rows) are dropped by the payload schema.
                "last_heartbeat": {"agent_version": "0.2.0", "health": {"state": "ok", "backlog": 0}},
                "status_changed_at": None,
                "status_reason": "",
                "settings_ignored": {},  # an agent of an earlier release reports none
            }
        ],
        "counts": {"healthy": 1, "degraded": 0, "offline": 0, "retired": 0, "revoked": 0},
    }
    assert [a.action for a in table_rows(app, AuditLog)][-1] == "devices.list"


def test_an_unexpected_error_on_the_api_is_a_json_500(make_app):
    app = make_app()
    app.config["PROPAGATE_EXCEPTIONS"] = False

    def broken() -> str:
        raise RuntimeError("boom")

    app.add_url_rule("/api/v1/broken", view_func=broken)
    app.add_url_rule("/console/broken", view_func=broken)
    response = app.test_client().get("/api/v1/broken")
    assert response.status_code == 500
    assert response.get_json() == {"error": {"code": "internal_error", "message": "internal server error"}}
    page = app.test_client().get("/console/broken")
    assert (page.status_code, page.content_type.startswith("text/html")) == (500, True)


def test_a_source_receipt_that_merges_two_customers_counts_on_the_survivor(app, client, agent, user_client):
    agent.send(client, [agent.receipt("R1", "1.00", phone="13800000001")])
    agent.send(client, [agent.receipt("R2", "2.00", card="CARD0002")])
    both = source_event(
        "m1",
        "pos.receipt",
        store_id="S001",
        identifiers={"phone": "13800000001", "member_card": "CARD0002"},
        payload={"receipt_no": "W3", "total": "4.00"},
    )
    assert post_events(client, new_key(app), [both]).get_json()["accepted"] == ["m1"]
    (listed,) = user_client.get("/api/v1/customers").get_json()["customers"]
    assert (listed["till_receipts"], listed["till_spent"]) == (3, "7.00")
