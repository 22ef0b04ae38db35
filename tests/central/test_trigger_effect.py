"""The effect report against hand-counted numbers: coupons redeemed, repurchases and spend per group.

Four customers made a first purchase 80 hours before NOW; a second-item trigger with the coupon
action fires for all of them at NOW (30 November, 20:00 local), two in its action group (A1, A2,
who get a code) and two in its control group (C1, C2). Over the four weeks after:

- A1 redeems the code on 2 December and spends 100.00 that day;
- A2 spends 5.00 later on the firing day (left out: it may precede the firing), 20.00 on
  10 December, and 50.00 on 9 January (after the window);
- C1 spends 30.00 on 3 December; C2 buys nothing.

Action: 2 occasions, 2 coupons, 1 redeemed (0.5), 2 repurchased (1.0), 120.00 spent, 60.00 each.
Control: 2 occasions, no coupons, 1 repurchased (0.5), 30.00 spent, 15.00 each. Uplift 0.5.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from central import db as central_db
from central.campaigns import coupons, triggers
from central.campaigns.coupon_redemptions import Redemption, apply, check_code
from central.campaigns.effect import GroupEffect, UnknownTrigger, effect_report
from central.campaigns.models import TriggerCoupon
from central.cli import main
from central.customers import timeline
from shared import coupon_code
from shared.crypto import load_or_create_key, public_key_of
from tests.central.cli_runner import write_config
from tests.central.customer_support import phone
from tests.central.support import create_user, login
from tests.central.trigger_support import NOW, buy, customer, declare, evaluate, fired, person

SECRET_NAME = "second-item"


def _campaign(app) -> bytes:
    secret = load_or_create_key(app.config["CENTRAL"].secret_key_path)
    with central_db.session_factory(app)() as db:
        coupons.create_campaign(
            db,
            name="SECOND10",
            value=Decimal("10"),
            valid_from=NOW - timedelta(days=1),
            valid_to=NOW + timedelta(days=60),
            max_redemptions=100,
            offline_budget=10,
            stores=None,
            now=NOW,
            actor="test",
            secret=secret,
        )
        db.commit()
    return secret


def _name_splitting(ids: list[int]) -> str:
    """A trigger name whose 50 % control group is exactly the last two of ``ids``."""
    for n in range(1000):
        name = f"{SECRET_NAME}-{n}"
        if [triggers.in_control_group(name, c, 50.0) for c in ids] == [False, False, True, True]:
            return name
    raise AssertionError("no name splits the customers as wanted")


def _redeem(app, secret: bytes, serial: int, campaign: int, when: timedelta) -> None:
    key = coupons.signing_key(secret)
    payload = {"code": coupon_code.make_code(key, public_key_of(key), campaign, serial), "result": "accepted"}
    redemption = Redemption(9000 + serial, "S001", NOW + when, payload, check_code(payload, public_key_of(key)))
    with central_db.session_factory(app)() as db:
        assert apply(db, "till-1", [redemption], now=NOW + when).applied == 1
        db.commit()


@pytest.fixture
def history(app):
    secret = _campaign(app)
    people = [phone(n) for n in range(1, 5)]
    for n, p in enumerate(people):
        person(app, p)
        buy(app, f"first-{n}", p, -timedelta(hours=80))
    ids = [customer(app, p) for p in people]
    name = _name_splitting(ids)
    trigger = declare(app, name, "second_item", action="coupon", action_params={"campaign": "SECOND10"}, control=50.0)
    assert evaluate(app)["fired"] == 4
    assert [g for _, _, g in sorted(fired(app, trigger))] == ["action", "action", "control", "control"]
    with central_db.session_factory(app)() as db:
        rows = db.execute(select(TriggerCoupon.customer_id, TriggerCoupon.serial, TriggerCoupon.campaign_id))
        issued = {int(c): (int(s), int(k)) for c, s, k in rows}
    assert sorted(issued) == ids[:2]  # the control group gets no coupon
    a1, a2, c1, _ = people
    serial, campaign = issued[ids[0]]
    _redeem(app, secret, serial, campaign, timedelta(days=2))
    buy(app, "a1-1", a1, timedelta(days=2), "100.00")
    buy(app, "a2-0", a2, timedelta(hours=2), "5.00")  # 22:00 on the firing day
    buy(app, "a2-1", a2, timedelta(days=10), "20.00")
    buy(app, "a2-2", a2, timedelta(days=40), "50.00")
    buy(app, "c1-1", c1, timedelta(days=3), "30.00")
    return name


def test_the_effect_report_matches_the_hand_counted_numbers(app, history):
    with central_db.session_factory(app)() as db:
        report = effect_report(db, history, now=NOW + timedelta(days=60))
        during = effect_report(db, history, 2, now=NOW + timedelta(days=5))
    assert report.action == GroupEffect(2, 2, 1, 0.5, 2, 1.0, Decimal("120.00"), Decimal("60.00"))
    assert report.control == GroupEffect(2, 0, 0, None, 1, 0.5, Decimal("30.00"), Decimal("15.00"))
    assert (report.repurchase_uplift, report.spend_uplift, report.open_windows) == (0.5, Decimal("45.00"), 0)
    # Two weeks, five days after firing: A2's 10 December purchase is yet to come, every window is open.
    assert during.action == GroupEffect(2, 2, 1, 0.5, 1, 0.5, Decimal("100.00"), Decimal("50.00"))
    assert during.open_windows == 4


@pytest.fixture
def two_months_later(clock):
    """The clock two months after NOW, before the console user logs in (sessions expire)."""
    clock.now = NOW + timedelta(days=60)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_report_over_the_api_and_the_command_line(
    two_months_later, app, history, user_client, tmp_path, backend, capsys
):
    reply = user_client.get(f"/api/v1/triggers/{history}/report")
    body = reply.get_json()
    assert reply.status_code == 200, body
    assert body["action"]["spend_per_customer"] == "60.00" and body["control"]["repurchase_rate"] == 0.5
    assert body["repurchase_uplift"] == 0.5 and body["weeks"] == 4
    assert user_client.get("/api/v1/triggers/nobody/report").status_code == 404
    assert user_client.get(f"/api/v1/triggers/{history}/report?weeks=0").status_code == 400
    config = write_config(tmp_path / "central.toml", tmp_path / "data", backend.url)
    capsys.readouterr()
    assert (
        main(["trigger", "report", history, "--weeks", "4", "--as-of", "2027-01-29T12:00:00Z", "--config", str(config)])
        == 0
    )
    out = capsys.readouterr().out
    assert "spend per customer" in out and "60.00" in out and "15.00" in out
    with central_db.session_factory(app)() as db, pytest.raises(UnknownTrigger):
        effect_report(db, "nobody", now=NOW)
    # Finance reads the aggregates; the export list of customers is for marketing and admins only.
    create_user(app, "fiona", "finance-password-1", role="finance")
    finance = app.test_client()
    assert login(finance, "fiona", "finance-password-1").status_code in (302, 303)
    assert finance.get(f"/api/v1/triggers/{history}/report").status_code == 200
    assert finance.get(f"/api/v1/triggers/{history}/export.csv").status_code == 403


def test_a_customers_timeline_lists_the_code_a_trigger_issued_them_and_its_redemption(app, history):
    """A trigger's code names no member id on the code; it is the customer's all the same."""
    with central_db.session_factory(app)() as db:
        rows = db.execute(select(TriggerCoupon.customer_id, TriggerCoupon.serial).order_by(TriggerCoupon.customer_id))
        (first, redeemed), (second, waiting) = ((int(c), str(s)) for c, s in rows)
        pages = {c: timeline.page(db, c).entries for c in (first, second)}
    shown = {
        c: [(e.kind, dict(e.fields)["serial"]) for e in entries if e.kind.startswith("coupon.")]
        for c, entries in pages.items()
    }
    assert shown == {
        first: [("coupon.redeemed", redeemed), ("coupon.issued", redeemed)],
        second: [("coupon.issued", waiting)],
    }
