"""The console overview: figures hand-checked on a small chain fed through the real ingest APIs, the drop
alert recorded and sent once to a real loopback receiver, and what each role may see."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta

import orjson
import pytest
from flask import Flask
from sqlalchemy import insert

from central import db as central_db
from central import scheduler
from central.campaigns import webhooks
from central.console import asset_version
from central.customers import tagging
from central.customers.models import StoreAlert
from central.identity.models import Customer
from central.jobs import OK
from tests.central.sources_support import new_key, post_events
from tests.central.support import START, Agent, create_user, login, table_rows, token_for
from tests.central.test_console_roles import MOBILE
from tests.central.test_presence import hour
from tests.central.test_webhooks import receiving

SECRET = "store-alert-secret"
# START is Monday 2026-11-23 10:00 in the chain's time (UTC+8): the last full day is Sunday the 22nd.
SUNDAY = date(2026, 11, 22)
WEEKS_BEFORE = [SUNDAY - timedelta(weeks=k) for k in (1, 2, 3, 4)]
BUYERS = {"loyal": "13800000001", "potential": "13800000002", "dormant": "13800000003", "other": "13800000004"}


def _at(day: date, hour_of_day: int = 12) -> str:
    """Noon (by default) of a local day, as the wire writes times."""
    return f"{day.isoformat()}T{hour_of_day:02d}:00:00+08:00"


def _signups(store: str, day: date, count: int, first: int) -> list[dict]:
    return [
        {
            "event_id": f"{store}-{first + n}",
            "kind": "member.signup",
            "observed_at": _at(day),
            "store_id": store,
            "identifiers": {"phone": f"1380000{first + n:04d}"},
            "payload": {},
        }
        for n in range(count)
    ]


def _days_ago(days: float) -> datetime:
    return START - timedelta(days=days)


@pytest.fixture
def chain(app: Flask, client, agent: Agent) -> Flask:
    """Two stores: S001's sign-ups fall from 4 a Sunday to 1, S002's hold at 2; four buyers, one per tier."""
    events = []
    for week in WEEKS_BEFORE:
        events += _signups("S001", week, 4, 100 + 10 * WEEKS_BEFORE.index(week))
        events += _signups("S002", week, 2, 200 + 10 * WEEKS_BEFORE.index(week))
    events += _signups("S001", SUNDAY, 1, 1)  # 13800000001: the loyal buyer signed up in S001
    events += _signups("S002", SUNDAY, 2, 300)
    events += _signups("S002", SUNDAY + timedelta(days=1), 1, 2)  # today, 13800000002
    events[-1]["observed_at"] = _at(SUNDAY + timedelta(days=1), 9)  # this morning, before START (10:00)
    events += _signups("S001", SUNDAY - timedelta(days=3), 2, 3)  # 13800000003 and 13800000004
    # The buyers agreed to profiling, so their value tiers and RFM scores are computed.
    events += [
        {
            "event_id": f"profiling-{tier}",
            "kind": "consent.given",
            "observed_at": _at(SUNDAY - timedelta(days=40)),
            "identifiers": {"phone": phone},
            "payload": {"purpose": "profiling", "notice_version": "2026-01"},
        }
        for tier, phone in BUYERS.items()
    ]
    assert len(post_events(client, new_key(app), events).get_json()["accepted"]) == len(events) == 30 + len(BUYERS)

    second = Agent(store_id="S002")
    assert second.enroll(client, token_for(app, "S002")).status_code == 201
    receipts = [
        agent.receipt(f"L{n}", "100.00", phone=BUYERS["loyal"], observed_at=_days_ago(n + 0.5)) for n in range(5)
    ]
    receipts += [
        agent.receipt(f"P{n}", "20.00", phone=BUYERS["potential"], observed_at=_days_ago(10 * n)) for n in (1, 2)
    ]
    agent.send(client, receipts)
    second.send(client, [second.receipt("D1", "10.00", phone=BUYERS["dormant"], observed_at=_days_ago(120))])
    second.send(client, [second.receipt("O1", "50.00", phone=BUYERS["other"], observed_at=_days_ago(12))])
    visitors_hour = hour(
        range(0, 30),
        range(100, 200),
        visits=30,
        start=_at(SUNDAY + timedelta(days=1), 9),
        end=_at(SUNDAY + timedelta(days=1), 10),
    )
    agent.send(client, [agent.event("presence.aggregate", visitors_hour)])
    with central_db.engine_for(app).begin() as conn:
        tagging.recompute(conn, app.config["CENTRAL"], START)
    for role in ("admin", "finance", "technician", "store_manager", "marketing"):
        create_user(app, role, role=role, stores=("S001",) if role == "store_manager" else ())
    return app


def _page(app: Flask, role: str) -> str:
    client = app.test_client()
    assert login(client, role).status_code == 302
    response = client.get("/console/")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _chart(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="overview-data">(.*?)</script>', html, re.S)
    assert match, "no chart data block"
    return json.loads(match.group(1))


def _cells(html: str, table: str) -> list[list[str]]:
    body = re.search(rf'<table class="data[^"]*" id="{table}">(.*?)</table>', html, re.S)
    assert body, table
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, re.S)] for r in rows
    ]


def test_the_overview_figures_match_a_hand_count(chain):
    html = _page(chain, "admin")
    assert re.search(r'id="members-total">30<', html)  # 30 sign-ups, one profile each; receipts linked to them
    assert '<span class="label">客户总数</span>' in html  # every live profile, member or not: not "members"
    assert re.search(r'id="members-new">24<', html)  # 10-27 to today: not the six of Sunday 10-25
    chart = _chart(html)
    days = chart["days"]
    assert len(days) == 28 and days[-1] == "2026-11-23"
    per_day = {store: dict(zip(days, counts, strict=True)) for store, counts in chart["new_members"].items()}
    assert per_day["S001"]["2026-11-15"] == 4 and per_day["S001"]["2026-11-22"] == 1
    assert per_day["S002"]["2026-11-22"] == 2 and per_day["S002"]["2026-11-23"] == 1
    assert per_day["S001"]["2026-11-19"] == 2 and sum(per_day["S001"].values()) == 12 + 1 + 2
    # The alert: S001 made 1 against a mean of 4 on the four Sundays before (-75 %); S002 held at 2.
    (alert,) = re.findall(r'<li class="alert">(.*?)</li>', html)
    assert "S001" in alert and "2026-11-22" in alert and "75%" in alert and "S002" not in alert

    # Finance read the tiers' spending as the chain's sales: the page says whom they leave out.
    assert 'id="tiers-cover"' in html and "同意画像分析的客户" in html
    tiers = {row[0]: row[1:] for row in _cells(html, "table-tiers")[1:]}
    assert tiers == {
        "忠诚": ["1", "500.00"],
        "潜力": ["1", "40.00"],
        "沉睡": ["1", "10.00"],
        "其他": ["1", "50.00"],
    }
    # R by last purchase: dormant < other < potential < loyal; F by purchases: 1, 1, 2, 5; M by spend.
    assert sorted(chart["rfm"]) == [[0, 0, 1], [0, 1, 1], [2, 2, 1], [3, 3, 1]]
    rfm = {(row[0]): row[1:] for row in _cells(html, "table-rfm")[1:]}
    assert rfm["R4"][3] == "1 (4.0)" and rfm["R2"][0] == "1 (3.0)" and rfm["R1"][0] == "1 (1.0)"
    assert rfm["R3"][2] == "1 (2.0)" and rfm["R5"] == ["0"] * 5

    # 30 visits of 300 s each, 100 passes: 30 / 130 came in.
    assert _cells(html, "table-footfall")[1:] == [["S001", "Wi-Fi", "30", "100", "23.1%", "5.0"]]
    assert [f["store"] for f in chart["footfall"]] == ["S001 (Wi-Fi)"]  # the chart names the medium as the table
    assert 'id="fleet-states"' in html and "离线: 2" in html  # no heartbeats yet


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # formatting only
def test_counts_show_with_thousands_grouped(chain):
    with central_db.engine_for(chain).begin() as conn:
        conn.execute(
            insert(Customer),
            [{"created_at": START, "first_seen_at": START, "last_seen_at": START} for _ in range(1_234)],
        )
    assert re.search(r'id="members-total">1,264<', _page(chain, "admin"))  # the chain's 30 and 1,234 more


def test_an_online_order_that_names_no_store_counts_its_buyer_once_in_the_chain(chain, client):
    order = {
        "event_id": "web-1",
        "kind": "order.online",
        "observed_at": _at(SUNDAY, 20),
        "identifiers": {"phone": BUYERS["loyal"]},
        "payload": {"order_no": "W1", "total": "30.00", "channel": "mini_program", "items": []},
    }
    assert post_events(client, new_key(chain), [order]).get_json()["accepted"] == ["web-1"]
    with central_db.engine_for(chain).begin() as conn:
        tagging.recompute(conn, chain.config["CENTRAL"], START)
    tiers = {row[0]: row[1:] for row in _cells(_page(chain, "admin"), "table-tiers")[1:]}
    assert tiers["忠诚"] == ["1", "530.00"]  # once, with the order: not again as a store named ''
    rfm = {(row[0]): row[1:] for row in _cells(_page(chain, "admin"), "table-rfm")[1:]}
    assert sum(int(cell.split()[0]) for row in rfm.values() for cell in row) == 4


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved
def test_english_labels(chain):
    client = chain.test_client()
    assert login(client, "admin").status_code == 302
    client.set_cookie("cdp-lang", "en")
    html = client.get("/console/").get_data(as_text=True)
    assert "Sales by value tier" in html and "RFM heat map" in html and "Loyal" in html
    assert '<span class="label">Customers</span>' in html
    assert "75% below the mean of 4.0" in html
    assert _chart(html)["labels"]["visits"] == "Visits"


def test_a_drop_is_recorded_and_sent_once_to_the_webhook(chain, make_app, clock):
    with receiving([500]) as (receiver, url):
        app = make_app(
            overview__alert_webhook_url=url,
            overview__alert_webhook_secret=SECRET,
            webhooks__allow_private_addresses=True,
        )
        sessions = central_db.session_factory(app)
        config = app.config["CENTRAL"]
        assert scheduler.run_now(sessions, config, "store_alerts", clock) == OK  # the receiver fails once
        (row,) = table_rows(app, StoreAlert)
        assert (row.store_id, row.day, row.value, row.baseline, row.status) == ("S001", SUNDAY, 1, 4.0, "pending")
        clock.advance(seconds=config.webhooks_backoff_seconds)
        assert scheduler.run_now(sessions, config, "store_alerts", clock) == OK
        clock.advance(hours=1)
        assert scheduler.run_now(sessions, config, "store_alerts", clock) == OK
        make_app(
            overview__alert_webhook_url=url,
            overview__alert_webhook_secret=SECRET,
            webhooks__allow_private_addresses=True,
        )  # a second instance
        assert scheduler.run_now(sessions, config, "store_alerts", clock) == OK
    assert len(receiver.calls) == 2  # the failed attempt and the one delivery; never again
    (row,) = table_rows(app, StoreAlert)
    assert (row.status, row.attempts) == ("delivered", 2)
    headers, body = receiver.calls[-1]
    sent_at = clock.now - timedelta(hours=1)
    assert webhooks.verify(SECRET, headers["X-CDP-Signature"], body, int(sent_at.timestamp()))
    assert headers["X-CDP-Delivery"] == f"store-alert-{row.id}"
    assert orjson.loads(body) == {
        "kind": "new_members_drop",
        "alert_id": row.id,
        "store_id": "S001",
        "day": "2026-11-22",
        "new_members": 1,
        "baseline": 4.0,
        "drop_percent": 75,
    }
    assert "138" not in body.decode()  # counts only


def test_past_days_are_kept_by_the_job_and_today_is_counted_live(chain, client, clock):
    before = _chart(_page(chain, "admin"))["new_members"]
    sessions = central_db.session_factory(chain)
    assert scheduler.run_now(sessions, chain.config["CENTRAL"], "store_alerts", clock) == OK
    assert _chart(_page(chain, "admin"))["new_members"] == before  # now read from new_member_days
    # An agent back online delivers a sign-up of Sunday late; a member signs up today.
    late = _signups("S001", SUNDAY, 1, 900) + _signups("S001", SUNDAY + timedelta(days=1), 1, 901)
    late[-1]["observed_at"] = _at(SUNDAY + timedelta(days=1), 9)  # this morning, before START (10:00)
    assert len(post_events(client, new_key(chain), late).get_json()["accepted"]) == 2
    s001 = _chart(_page(chain, "admin"))["new_members"]["S001"]
    assert (s001[-2], s001[-1]) == (2, 1)  # both at once: Sunday is counted from the events until the job runs
    assert scheduler.run_now(sessions, chain.config["CENTRAL"], "store_alerts", clock) == OK
    s001 = _chart(_page(chain, "admin"))["new_members"]["S001"]
    assert (s001[-2], s001[-1]) == (2, 1)


def test_a_late_sign_up_from_a_till_shows_before_the_job_runs_again(chain, agent, client, clock):
    sessions = central_db.session_factory(chain)
    assert scheduler.run_now(sessions, chain.config["CENTRAL"], "store_alerts", clock) == OK
    before = _chart(_page(chain, "admin"))["new_members"]["S001"]
    saturday = datetime.fromisoformat(_at(SUNDAY - timedelta(days=1), 15))
    agent.send(client, [agent.event("member.signup", {}, observed_at=saturday)])
    after = _chart(_page(chain, "admin"))["new_members"]["S001"]
    assert after[-3] == before[-3] + 1
    assert after[:-3] + after[-2:] == before[:-3] + before[-2:]
    assert scheduler.run_now(sessions, chain.config["CENTRAL"], "store_alerts", clock) == OK
    assert _chart(_page(chain, "admin"))["new_members"]["S001"] == after


def test_an_online_sign_up_names_no_store_and_the_job_still_keeps_the_days(chain, client, clock):
    online = _signups("S001", SUNDAY, 1, 950)
    del online[0]["store_id"]  # the mini-program's sign-up: no store
    assert len(post_events(client, new_key(chain), online).get_json()["accepted"]) == 1
    before = _chart(_page(chain, "admin"))["new_members"]
    sessions = central_db.session_factory(chain)
    assert scheduler.run_now(sessions, chain.config["CENTRAL"], "store_alerts", clock) == OK
    assert _chart(_page(chain, "admin"))["new_members"] == before


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the rule alone, no database behaviour
def test_without_a_webhook_the_alert_is_shown_and_recorded_unsent(chain, clock):
    sessions = central_db.session_factory(chain)
    assert scheduler.run_now(sessions, chain.config["CENTRAL"], "store_alerts", clock) == OK
    assert [(r.store_id, r.status) for r in table_rows(chain, StoreAlert)] == [("S001", "unsent")]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved
def test_the_technician_sees_fleet_health_only(chain):
    html = _page(chain, "technician")
    assert 'id="fleet-states"' in html
    for figure in ("members-total", "table-tiers", "table-rfm", "table-footfall", "overview-data", "echarts"):
        assert figure not in html
    assert "S001" not in html and "500.00" not in html and "138" not in html


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved
def test_finance_sees_amounts_but_no_profiles(chain):
    html = _page(chain, "finance")
    assert "500.00" in html and 'id="table-rfm"' in html
    assert "/console/customers" not in html and not MOBILE.search(html)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved
def test_a_store_manager_sees_only_their_stores(chain):
    html = _page(chain, "store_manager")
    chart = _chart(html)
    assert list(chart["new_members"]) == ["S001"] and "S002" not in html
    assert re.search(r'id="members-total">19<', html)  # the sign-ups in S001
    tiers = {row[0]: row[1:] for row in _cells(html, "table-tiers")[1:]}
    assert tiers["忠诚"] == ["1", "500.00"] and tiers["潜力"] == ["1", "40.00"] and tiers["沉睡"] == ["0", "0.00"]
    assert sorted(chart["rfm"]) == [[2, 2, 1], [3, 3, 1]]
    assert "离线: 1" in html  # S001's agent only
    assert "本店注册会员" in html and 'id="tiers-per-store"' not in html


def test_a_regional_lead_is_told_the_figures_of_several_stores_count_a_customer_at_each(chain):
    """A three-store lead's page said "this store" and added up customers who bought at two stores twice, unsaid."""
    create_user(chain, "lead", role="store_manager", stores=("S001", "S002"))
    html = _page(chain, "lead")
    assert "你的门店注册会员" in html and "本店注册会员" not in html
    assert 'id="tiers-per-store"' in html and "在每家各算一次" in html


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved
def test_chart_data_is_a_json_block_not_script(chain):
    html = _page(chain, "marketing")
    assert html.count("<script") == 3 and 'src="/console/static/overview.js?v=' in html
    assert 'src="/console/static/vendor/echarts/echarts.min.js?v=' in html


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved
def test_static_files_linked_by_their_version_are_cached_and_others_revalidated(chain):
    html = _page(chain, "marketing")
    linked = re.search(r'src="(/console/static/vendor/echarts/echarts.min.js\?v=([0-9a-f]{12}))"', html)
    assert linked, "the charting library is linked with its version"
    client = chain.test_client()
    cached = client.get(linked.group(1))
    assert cached.status_code == 200 and "max-age=31536000" in cached.headers["Cache-Control"]
    assert "no-cache" not in cached.headers["Cache-Control"]
    for url in ("/console/static/vendor/echarts/echarts.min.js", "/console/static/overview.js?v=000000000000"):
        response = client.get(url)  # an old or missing version is asked again each time
        assert response.status_code == 200 and response.headers["Cache-Control"] == "no-cache", url
    assert client.get("/console/static/../__init__.py?v=1").status_code == 404
    assert asset_version("../__init__.py") is None and asset_version("nothing.js") is None


def test_the_vendored_charting_library_ships_as_package_data():
    import tomllib

    from tests.conftest import REPO

    vendor = REPO / "central" / "console" / "static" / "vendor" / "echarts"
    assert (vendor / "echarts.min.js").stat().st_size > 500_000 and (vendor / "LICENSE").is_file()
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "console/static/vendor/echarts/*" in package_data["central"]
