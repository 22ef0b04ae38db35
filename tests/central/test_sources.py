"""Online sources: API keys (hashed, revocable), the events endpoint, dedupe and identity on ingest."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from central import db as central_db
from central.cli import main
from central.identity.registry import load_registry
from central.models import AuditLog
from central.sources.backfill import load_events
from central.sources.models import SourceKey
from shared.wire import format_time
from tests.central.cli_runner import write_config
from tests.central.sources_support import new_key, post_events, source_event, stored_events, survivor
from tests.central.support import table_rows

UNAUTHORIZED = b'{"error":{"code":"unauthorized","message":"authentication failed"}}\n'


def test_events_are_stored_once_under_the_source_with_their_own_ids(app, client):
    key = new_key(app)
    events = [
        source_event("login-000001", identifiers={"wechat_openid": "oAbc123"}, app_id="wxmini01"),
        source_event(
            "订单-2026-0001",
            "order.online",
            payload={"total": "59.00", "items": []},
            identifiers={"wechat_openid": "oAbc123", "phone": "+86 138 0013 9001"},
            app_id="wxmini01",
        ),
        source_event(
            "x" * 64,
            "consent.given",
            payload={"purpose": "marketing", "channel": "sms", "notice_version": "2026-01"},
            identifiers={"wechat_openid": "oAbc123"},
            app_id="wxmini01",
        ),
    ]
    reply = post_events(client, key, events).get_json()
    assert reply == {"accepted": ["login-000001", "订单-2026-0001", "x" * 64], "duplicate": [], "rejected": []}
    again = post_events(client, key, events, gzipped=True).get_json()
    assert again == {"accepted": [], "duplicate": ["login-000001", "订单-2026-0001", "x" * 64], "rejected": []}

    rows = stored_events(app)
    assert [(r.device_id, r.event_id, r.store_id, r.seq) for r in rows] == [
        ("source:miniprogram", "login-000001", "", 0),
        ("source:miniprogram", "订单-2026-0001", "", 0),
        ("source:miniprogram", "x" * 64, "", 0),
    ]
    assert rows[1].identifiers == {"wechat_openid": "oAbc123", "phone": "+86 138 0013 9001"}
    assert rows[1].app_id == "wxmini01"
    # The three events name the same openid: one customer.
    assert rows[0].customer_id is not None
    assert survivor(app, rows[0].customer_id) == survivor(app, rows[1].customer_id)
    assert survivor(app, rows[2].customer_id) == survivor(app, rows[0].customer_id)


def test_an_id_used_again_for_other_content_is_a_conflict_not_a_duplicate(app, client, tmp_path):
    """A retry is a duplicate; the same id for another order (a counter reset) was answered duplicate too,
    and the new order was dropped without a word."""
    key = new_key(app)
    order = source_event(
        "mp-order-1", "order.online", payload={"order_no": "A1", "total": "59.00"}, identifiers={"member_id": "M1"}
    )
    consent = source_event(
        "c-1",
        "consent.given",
        payload={"purpose": "marketing", "notice_version": "2026-01"},
        identifiers={"member_id": "M1"},
    )
    assert post_events(client, key, [order, consent]).get_json()["accepted"] == ["mp-order-1", "c-1"]
    other_order = {**order, "payload": {"order_no": "ZZ", "total": "1.00"}, "identifiers": {"member_id": "M2"}}
    other_time = {**consent, "observed_at": "2026-11-22T08:00:00+08:00"}
    retried = {**order, "observed_at": order["observed_at"]}  # the same event, sent again after a timeout
    reply = post_events(client, key, [other_order, other_time, retried]).get_json()
    assert reply["accepted"] == [] and reply["duplicate"] == []
    assert [(r["event_id"], r["reason"]) for r in reply["rejected"]] == [
        ("mp-order-1", "event_id_conflict"),
        ("c-1", "event_id_conflict"),
    ]
    assert post_events(client, key, [retried, consent]).get_json()["duplicate"] == ["mp-order-1", "c-1"]
    path = tmp_path / "again.jsonl"
    path.write_text(json.dumps(other_order) + "\n" + json.dumps(consent) + "\n")
    with central_db.session_factory(app)() as db:
        summary = load_events(
            db, path, "miniprogram", registry=load_registry(app.config["CENTRAL"]), clock=app.config["CLOCK"]
        )
    assert (summary.duplicate, dict(summary.rejected)) == (1, {"event_id_conflict": 1})
    assert [r.payload["order_no"] for r in stored_events(app) if r.kind == "order.online"] == ["A1"]


def test_a_repeated_id_in_one_post_is_answered_once_and_bad_events_are_rejected_alone(app, client):
    key = new_key(app)
    events = [
        source_event("e1", identifiers={"phone": "13800139001"}),
        source_event("e1", identifiers={"phone": "13800139002"}),
        source_event("e2", kind="member.teleport"),
        source_event("e2", identifiers={"phone": "13800139004"}),  # the first copy was refused: not stored
        source_event("e3", observed_at="yesterday"),
        source_event("e4", identifiers={"phone": 13800139003}),
        "junk",
        source_event("e5", store_id="S 1"),
        source_event("e6", identifiers={"phone": "13800139005"}),
        source_event("e6", kind="member.teleport"),  # a bad later copy changes nothing
    ]
    reply = post_events(client, key, events).get_json()
    assert reply["accepted"] == ["e1", "e6"]
    assert reply["duplicate"] == []  # every id in exactly one list, the first copy's
    assert reply["rejected"] == [
        {"event_id": "e2", "reason": "unknown_kind"},
        {"event_id": "e3", "reason": "invalid_observed_at"},
        {"event_id": "e4", "reason": "invalid_identifier:phone"},
        {"event_id": None, "reason": "invalid_event", "index": 6},  # an event without an id: where it stood
        {"event_id": "e5", "reason": "invalid_store_id"},
    ]
    assert [r.identifiers for r in stored_events(app)] == [{"phone": "13800139001"}, {"phone": "13800139005"}]
    again = post_events(client, key, events[:2]).get_json()
    assert (again["accepted"], again["duplicate"]) == ([], ["e1"])  # stored before: a duplicate, once


def test_the_same_event_id_from_two_sources_is_two_events(app, client):
    events = [source_event("42", identifiers={"app_user_id": "u42"}, app_id="shop")]
    assert post_events(client, new_key(app, "shop"), events, source="shop").get_json()["accepted"] == ["42"]
    assert post_events(client, new_key(app, "memberapp"), events, source="memberapp").get_json()["accepted"] == ["42"]
    assert [r.device_id for r in stored_events(app)] == ["source:shop", "source:memberapp"]


def test_an_event_dated_past_centrals_clock_is_rejected(make_app):
    """A source whose clock is off, or that sends local time labelled as UTC, would date sales in the future."""
    app = make_app()
    client = app.test_client()
    now = app.config["CLOCK"]()
    local_as_utc = (now + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%SZ")  # Beijing time marked Z
    events = [
        source_event(
            "soon", observed_at=format_time(now + timedelta(minutes=50)), identifiers={"phone": "13800139001"}
        ),
        source_event("later", observed_at=format_time(now + timedelta(hours=2))),
        source_event("local-as-utc", observed_at=local_as_utc),
    ]
    reply = post_events(client, new_key(app), events).get_json()
    assert reply["accepted"] == ["soon"]
    assert reply["rejected"] == [
        {"event_id": "later", "reason": "observed_at_in_future"},
        {"event_id": "local-as-utc", "reason": "observed_at_in_future"},
    ]
    lenient = make_app(sources__max_ahead_minutes=180)
    reply = post_events(lenient.test_client(), new_key(lenient), events[1:]).get_json()
    assert reply["accepted"] == ["later"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic Zm9vOmJhcg=="},
        {"Authorization": "Bearer cdpsk_not-a-key"},
        {"Authorization": "Bearer " + "x" * 500},
    ],
)
def test_every_way_of_failing_gets_the_same_401(app, client, headers):
    new_key(app)
    response = client.post("/api/v1/sources/miniprogram/events", json={"schema": 1, "events": []}, headers=headers)
    assert (response.status_code, response.get_data()) == (401, UNAUTHORIZED)


def test_a_key_opens_only_its_own_source_and_revoking_closes_it(app, client):
    key = new_key(app, "miniprogram")
    other = post_events(client, key, [], source="shop")
    assert (other.status_code, other.get_data()) == (401, UNAUTHORIZED)
    bad_name = post_events(client, key, [], source="Mini Program")
    assert (bad_name.status_code, bad_name.get_data()) == (401, UNAUTHORIZED)
    assert post_events(client, key, []).status_code == 200
    key_id = table_rows(app, SourceKey)[0].id
    assert main(["source-key", "--revoke", str(key_id), "--config", str(_config(app))]) == 0
    revoked = post_events(client, key, [])
    assert (revoked.status_code, revoked.get_data()) == (401, UNAUTHORIZED)


def _config(app):
    config = app.config["CENTRAL"]
    return write_config(config.server_data_dir.parent / "central.toml", config.server_data_dir, config.database_url)


def test_cli_issues_keys_shown_once_stored_hashed_and_listed(app, client, capsys):
    config = str(_config(app))
    assert main(["source-key", "--source", "miniprogram", "--config", config]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert key.startswith("cdpsk_") and len(key) > 40
    assert "shown only now" in err
    assert post_events(client, key, [source_event("a", identifiers={"member_id": "M1"})]).status_code == 200

    with central_db.session_factory(app)() as db:
        dump = " ".join(str(v) for row in db.execute(text("SELECT * FROM source_keys")) for v in row)
    assert key not in dump and key[12:] not in dump

    assert main(["source-keys", "--config", config]) == 0
    listing, _ = capsys.readouterr()
    assert "miniprogram" in listing and key[:12] + "..." in listing and "active" in listing
    assert key not in listing
    assert main(["source-key", "--revoke", "1", "--config", config]) == 0
    assert main(["source-keys", "--config", config]) == 0
    assert "revoked" in capsys.readouterr().out
    actions = [(a.action, a.subject) for a in table_rows(app, AuditLog)]
    assert ("source_key.create", "source:miniprogram") in actions
    assert ("source_key.revoke", "source:miniprogram") in actions


def test_cli_refuses_bad_names_and_unknown_keys(app, capsys, tmp_path):
    config = str(_config(app))
    assert main(["source-key", "--source", "Mini Program", "--config", config]) == 2
    assert "source name 'Mini Program' must be" in capsys.readouterr().err
    assert main(["source-key", "--config", config]) == 2
    # "console" is the console's own: a source so called would write complaints read as a console user's.
    assert main(["source-key", "--source", "console", "--config", config]) == 2
    assert "and not 'console'" in capsys.readouterr().err
    lines = tmp_path / "events.jsonl"
    lines.write_text("{}\n")
    assert main(["load-events", str(lines), "--source", "console", "--config", config]) == 2
    assert "and not 'console'" in capsys.readouterr().err
    assert main(["source-key", "--revoke", "99", "--config", config]) == 1
    assert "there is no source key 99" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "invalid_json"),
        (b"[]", "invalid_batch"),
        (b'{"schema": 2, "events": []}', "unsupported_schema"),
        (b'{"events": []}', "unsupported_schema"),
        (b'{"schema": 1, "events": {}}', "invalid_batch"),
    ],
)
def test_unreadable_bodies_answer_400_with_a_code(app, client, body, code):
    key = new_key(app)
    response = client.post("/api/v1/sources/miniprogram/events", data=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code


def test_too_many_events_is_refused_whole(make_app):
    app = make_app(ingest__max_events=2)
    key = new_key(app)
    response = post_events(app.test_client(), key, [source_event(str(i)) for i in range(3)])
    assert (response.status_code, response.get_json()["error"]["code"]) == (400, "too_many_events")
    assert stored_events(app) == []


def test_an_event_larger_than_the_configured_limit_is_rejected_alone(make_app, tmp_path):
    """ingest.max_event_bytes bounds a source's and a backfill's events as it bounds an agent's."""
    app = make_app(ingest__max_event_bytes=2048)
    big = source_event("big", "order.online", payload={"total": "1.00", "items": [], "note": "x" * 6000})
    small = source_event("small", identifiers={"member_id": "M1"})
    reply = post_events(app.test_client(), new_key(app), [big, small]).get_json()
    assert reply["accepted"] == ["small"]
    assert reply["rejected"] == [{"event_id": "big", "reason": "event_too_large"}]
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps({**big, "event_id": "big-2"}) + "\n")
    with central_db.session_factory(app)() as db:
        summary = load_events(
            db,
            path,
            "crm",
            registry=load_registry(app.config["CENTRAL"]),
            clock=app.config["CLOCK"],
            max_event_chars=2048,
        )
    assert dict(summary.rejected) == {"event_too_large": 1}


def _backfill_again(app, tmp_path, events):
    """The same events loaded from a file by ``load-events`` under new ids: the backfill's summary."""
    path = tmp_path / "again.jsonl"
    path.write_text("\n".join(json.dumps({**e, "event_id": "x" + e["event_id"]}) for e in events) + "\n")
    with central_db.session_factory(app)() as db:
        registry = load_registry(app.config["CENTRAL"])
        return load_events(db, path, "crm", registry=registry, clock=app.config["CLOCK"])


def test_a_birthday_or_a_date_no_one_can_have_is_rejected_with_its_reason(app, client, tmp_path):
    """The legacy import refused these as implausible_date, but a source's or a backfill's event took them:
    2099-01-01 made an adult a minor (marketing refused), year 1 counted as a purchase two thousand years ago."""
    events = [
        source_event("b1", "member.signup", identifiers={"phone": "13800139101"}, birthday="2099-01-01"),
        source_event("b2", "member.signup", identifiers={"phone": "13800139102"}, birthday="1800-01-01"),
        source_event("b3", "member.signup", identifiers={"phone": "13800139103"}, birthday="0001-01-01"),
        source_event("b4", "member.signup", identifiers={"phone": "13800139104"}, birthday="someday"),
        source_event("b5", "order.online", payload={"total": "1.00", "items": []}, observed_at="0001-01-01T00:00:00Z"),
        source_event("b6", "member.signup", identifiers={"phone": "13800139106"}, birthday="1990-03-05"),
        # A null Unix time written in Beijing time: the placeholder a feed sends for "no date".
        source_event("b7", "order.online", payload={"total": "1.00"}, observed_at="1970-01-01T08:00:00+08:00"),
    ]
    reply = post_events(client, new_key(app), events).get_json()
    assert reply["accepted"] == ["b6"]
    assert [(r["event_id"], r["reason"]) for r in reply["rejected"]] == [
        ("b1", "invalid_attribute:birthday"),
        ("b2", "invalid_attribute:birthday"),
        ("b3", "invalid_attribute:birthday"),
        ("b4", "invalid_attribute:birthday"),
        ("b5", "invalid_observed_at"),
        ("b7", "invalid_observed_at"),
    ]
    summary = _backfill_again(app, tmp_path, events)
    assert summary.accepted == 1
    assert dict(summary.rejected) == {"invalid_attribute:birthday": 4, "invalid_observed_at": 2}


def test_what_only_a_stores_agent_observes_is_refused_from_a_source(app, client):
    """A source's heartbeat, coupon scan or store visit was stored as accepted and acted on nothing."""
    who = {"member_id": "M0001"}
    events = [
        source_event("k1", "agent.heartbeat", payload={"agent_version": "1"}),
        source_event("k2", "scan.coupon", payload={"code": "CDPC1:AAAA", "result": "accepted"}),
        source_event("k3", "presence.visit", identifiers=who, payload={"member_id": "M0001"}),
        source_event("k4", "member.login", identifiers=who),
    ]
    reply = post_events(client, new_key(app), events).get_json()
    assert reply["accepted"] == ["k4"]
    assert {(r["event_id"], r["reason"]) for r in reply["rejected"]} == {
        ("k1", "kind_not_for_sources"),
        ("k2", "kind_not_for_sources"),
        ("k3", "kind_not_for_sources"),
    }


def test_a_sale_in_another_currency_than_the_chains_is_rejected_not_added_to_the_yuan(app, client, tmp_path):
    """A USD order of 100.00 used to add 100 to the customer's spend in yuan."""
    who = {"phone": "13800139201"}
    events = [
        source_event("u1", "order.online", identifiers=who, payload={"total": "100.00", "currency": "USD"}),
        source_event(
            "u2", "pos.receipt", identifiers=who, payload={"receipt_no": "R1", "total": "5.00", "currency": "hkd"}
        ),
        source_event("c1", "order.online", identifiers=who, payload={"total": "30.00", "currency": "CNY"}),
        source_event("c2", "order.online", identifiers=who, payload={"total": "20.00", "currency": " rmb"}),
        source_event("c3", "order.online", identifiers=who, payload={"total": "10.00"}),
    ]
    reply = post_events(client, new_key(app), events).get_json()
    assert reply["accepted"] == ["c1", "c2", "c3"]
    assert [(r["event_id"], r["reason"]) for r in reply["rejected"]] == [
        ("u1", "unsupported_currency"),
        ("u2", "unsupported_currency"),
    ]
    with central_db.engine_for(app).connect() as conn:
        assert conn.execute(text("SELECT purchases, spent FROM customer_stats")).all() == [(3, 6000)]
    summary = _backfill_again(app, tmp_path, events)
    assert summary.accepted == 3
    assert dict(summary.rejected) == {"unsupported_currency": 2}


def test_receipts_from_a_source_link_their_member_like_an_agents(app, client):
    key = new_key(app, "pos-history")
    receipt = {"receipt_no": "R1", "total": "10.00", "member": {"phone": "13800139077", "card": "VIP-77"}}
    events = [
        source_event("r1", "pos.receipt", store_id="S001", payload=receipt),
        source_event("s1", "member.signup", identifiers={"member_card": "vip77"}, name="王芳"),
    ]
    assert post_events(client, key, events, source="pos-history").get_json()["accepted"] == ["r1", "s1"]
    rows = stored_events(app)
    assert rows[1].attributes == {"name": "王芳"}
    assert survivor(app, rows[0].customer_id) == survivor(app, rows[1].customer_id) is not None
    with central_db.session_factory(app)() as db:
        kinds = sorted(db.execute(select(text("kind, value")).select_from(text("identifiers"))))
    assert kinds == [("member_card", "VIP77"), ("phone", "+8613800139077")]


def test_concurrent_sources_naming_the_same_people_lose_nothing(app):
    """Four sources post at once about the same ten people: every event is stored, one customer each."""
    import threading

    keys = {name: new_key(app, name) for name in ("app", "mini", "shop", "crm")}
    errors = []

    def send(name):
        client = app.test_client()
        for n in range(10):
            events = [
                source_event(f"{name}-{n}-{p}", identifiers={"phone": f"1380013{9100 + p:04d}"}) for p in range(10)
            ]
            response = post_events(client, keys[name], events, source=name)
            if response.status_code != 200 or len(response.get_json()["accepted"]) != 10:
                errors.append(response.get_data(as_text=True))

    threads = [threading.Thread(target=send, args=(name,)) for name in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    rows = stored_events(app)
    assert len(rows) == 400
    by_phone = {}
    for r in rows:
        by_phone.setdefault(r.identifiers["phone"], set()).add(survivor(app, r.customer_id))
    assert len(by_phone) == 10
    assert all(len(customers) == 1 and None not in customers for customers in by_phone.values())
