"""The read-only JSON API: login required, identifiers masked, every read of customer data audited."""

from __future__ import annotations

from datetime import timedelta

import pytest

from central.identity.models import Customer
from central.models import AuditLog
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
        "receipts_count": 1,
        "total_spent": "12.50",
        "purchases": 1,
        "spent": "12.50",
    }
    text = response.get_data(as_text=True)
    assert "13812345678" not in text and "VIP00421234" not in text
    (entry,) = [a for a in table_rows(app, AuditLog) if a.action == "customers.list"]
    assert (entry.actor, entry.detail["via"], entry.detail["returned"]) == ("alice", "api", 2)


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
    assert body["customer"]["receipts_count"] == 25
    assert body["customer"]["total_spent"] == "27.50"
    assert len(body["receipts"]) == 20
    assert body["receipts"][0] == {
        "receipt_no": "R24",
        "total": "1.10",
        "store_id": "S001",
        "observed_at": "2026-11-23T02:00:00.000Z",
    }
    views = [a for a in table_rows(app, AuditLog) if a.action == "customer.view"]
    assert [(a.actor, a.subject) for a in views] == [("alice", f"customer:{customer_id}")]


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
