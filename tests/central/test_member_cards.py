"""The ``member_cards`` job: each store gets its own members' masked cards, tier and coupon hints, nothing more."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from flask import Flask
from sqlalchemy import select

from central import db as central_db
from central import scheduler
from central.campaigns import coupons
from central.campaigns.actions import CouponAction, Firing, TriggerRef
from central.campaigns.models import TriggerOccasion
from central.customers.models import CustomerTag
from central.fleet import downlink
from central.fleet.models import DownlinkDocument
from central.identity.models import Identifier
from central.jobs import OK
from central.members import cards
from central.models import table
from edge_agent.downlink import DownlinkStore, remember_central_key
from shared import wire
from tests.central.consent_support import load

LOYAL, QUIET, ELSEWHERE, LAPSED = "M-2001", "M-2002", "M-2003", "M-2004"
PHONES = {LOYAL: "13812345678", QUIET: "13900001111", ELSEWHERE: "13700002222", LAPSED: "13600003333"}


def sale(member: str, store: str, at: Any, name: str) -> dict[str, Any]:
    return {
        "event_id": f"sale-{member}-{store}",
        "kind": "pos.receipt",
        "observed_at": wire.format_time(at),
        "store_id": store,
        "identifiers": {"member_id": member, "phone": PHONES[member]},
        "attributes": {"name": name},
        "payload": {"receipt_no": f"R-{member}", "total": "25.00", "items": []},
    }


def setup(app: Flask) -> dict[str, str]:
    """Four members; LOYAL agreed to profiling; both S001 regulars carry a tier tag; codes claimed."""
    now = app.config["CLOCK"]()
    load(
        app,
        [
            sale(LOYAL, "S001", now - timedelta(days=2), "张三丰"),
            sale(QUIET, "S001", now - timedelta(days=5), "李四"),
            sale(ELSEWHERE, "S002", now - timedelta(days=1), "王五"),
            sale(LAPSED, "S001", now - timedelta(days=400), "赵六"),
            {
                "event_id": "consent-loyal",
                "kind": "consent.given",
                "observed_at": wire.format_time(now - timedelta(days=3)),
                "identifiers": {"member_id": LOYAL},
                "payload": {"purpose": "profiling", "notice_version": "2026-01"},
            },
        ],
    )
    secret = app.config["SECRET_KEY"]
    with central_db.session_factory(app)() as db:
        owners = dict(
            db.execute(select(Identifier.value, Identifier.customer_id).where(Identifier.kind == "member_id")).all()
        )
        for member in (LOYAL, QUIET):  # QUIET's tag stays unseen: no profiling consent
            db.execute(
                table(CustomerTag)
                .insert()
                .values(
                    customer_id=owners[member], tag="value_tier", value="loyal", inputs={}, version="1", computed_at=now
                )
            )
        terms = dict(value=Decimal("10"), max_redemptions=100, offline_budget=5, now=now, actor="t", secret=secret)
        window = dict(valid_from=now - timedelta(days=1), valid_to=now + timedelta(days=30))
        coupons.create_campaign(db, name="double-11", stores=None, **window, **terms)  # type: ignore[arg-type]
        coupons.create_campaign(db, name="s002-only", stores=["S002"], **window, **terms)  # type: ignore[arg-type]
        codes = {}
        for ref in ("double-11", "s002-only"):
            for issued in coupons.issue_for_members(db, ref, [LOYAL, ELSEWHERE], now=now, actor="test", secret=secret):
                codes[f"{ref}/{issued.member_id}"] = issued.code
        db.commit()
    return codes


def store_body(app: Flask, store_id: str) -> Any:
    with central_db.session_factory(app)() as db:
        return {d.name: d.body for d in downlink.changes(db, store_id, 0)}.get(cards.DOCUMENT)


def test_each_store_gets_its_members_masked_with_tier_and_coupon_hints(app, clock, tmp_path):
    codes = setup(app)
    assert scheduler.run_now(central_db.session_factory(app), app.config["CENTRAL"], "member_cards", clock) == OK

    s001 = store_body(app, "S001")["members"]
    assert sorted(s001) == [LOYAL, QUIET]  # not the other store's member, not the lapsed one
    assert s001[LOYAL] == {
        "name": "张*",
        "phone": "138****5678",
        "tier": "loyal",
        "coupons": [
            {
                "title": "double-11",
                "value": "10.00",
                "hint": codes[f"double-11/{LOYAL}"][-4:],
                "serial": s001[LOYAL]["coupons"][0]["serial"],
                "campaign": s001[LOYAL]["coupons"][0]["campaign"],
            }
        ],
    }
    assert s001[QUIET] == {"name": "李*", "phone": "139****1111", "tier": "", "coupons": []}
    s002 = store_body(app, "S002")["members"]
    assert sorted(s002) == [ELSEWHERE]
    assert [c["title"] for c in s002[ELSEWHERE]["coupons"]] == ["double-11", "s002-only"]

    everything = str(store_body(app, "S001")) + str(s002)
    for secret_text in (*PHONES.values(), "张三丰", "李四", "王五", *codes.values()):
        assert secret_text not in everything

    # The store PC keeps the document as fetched: no full name, phone or code among its files.
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    remember_central_key(agent_dir, {"central_key": downlink.public_key(app.config["SECRET_KEY"])})
    with central_db.session_factory(app)() as db:
        DownlinkStore(agent_dir, "S001").apply(downlink.signed_changes(db, "S001", 0, app.config["SECRET_KEY"]))
    assert DownlinkStore(agent_dir, "S001").document(cards.DOCUMENT)["members"][LOYAL]["name"] == "张*"
    data = b"".join(p.read_bytes() for p in agent_dir.rglob("*") if p.is_file())
    for secret_text in (*PHONES.values(), "张三丰", "李四", *codes.values()):
        assert secret_text.encode() not in data and secret_text.encode("unicode_escape") not in data

    # Nothing changed: the next run publishes nothing.
    with central_db.session_factory(app)() as db:
        before = downlink.current_version(db, "S001")
        assert cards.publish(db, app.config["SECRET_KEY"], now=clock(), days=90, actor="t") == []
        assert downlink.current_version(db, "S001") == before

    # A revoked code leaves the member's card at the next run.
    with central_db.session_factory(app)() as db:
        coupons.revoke(db, s001[LOYAL]["coupons"][0]["serial"], now=clock(), actor="t", secret=app.config["SECRET_KEY"])
        assert cards.publish(db, app.config["SECRET_KEY"], now=clock(), days=90, actor="t") == ["S001"]
        db.commit()
    assert store_body(app, "S001")["members"][LOYAL]["coupons"] == []

    # Months later the members have lapsed everywhere: each store's document empties once.
    clock.advance(days=120)
    with central_db.session_factory(app)() as db:
        assert cards.publish(db, app.config["SECRET_KEY"], now=clock(), days=90, actor="t") == ["S001", "S002"]
        db.commit()
    assert store_body(app, "S001") == {"members": {}}


def test_an_online_order_that_names_no_store_is_no_stores_card(app, clock):
    setup(app)
    online = {
        "event_id": "order-loyal",
        "kind": "order.online",
        "observed_at": wire.format_time(clock() - timedelta(days=1)),
        "identifiers": {"member_id": LOYAL},
        "payload": {"order_no": "WX-1", "total": "59.00", "channel": "mini_program", "items": []},
    }
    load(app, [online])  # the mini-program names no store
    assert scheduler.run_now(central_db.session_factory(app), app.config["CENTRAL"], "member_cards", clock) == OK
    assert sorted(store_body(app, "S001")["members"]) == [LOYAL, QUIET]
    with central_db.session_factory(app)() as db:
        stores = db.scalars(select(DownlinkDocument.store_id).where(DownlinkDocument.name == cards.DOCUMENT))
        assert sorted(stores) == ["S001", "S002"]


def test_a_code_a_trigger_issued_to_the_member_is_on_their_card_like_one_they_claimed(app, clock):
    """A birthday or win-back code is issued to the customer, not claimed by member id: the panel must show it too."""
    codes = setup(app)
    now = clock()
    with central_db.session_factory(app)() as db:
        owner = db.scalar(select(Identifier.customer_id).where(Identifier.value == QUIET))
        trigger = TriggerRef(77, "birthday-coupon", {"campaign": "double-11"})
        occasion = db.execute(
            table(TriggerOccasion)
            .insert()
            .values(trigger_id=77, customer_id=owner, occasion="2026", grp="action", fired_at=now, instance="t")
            .returning(table(TriggerOccasion).c.id)
        ).scalar_one()
        firing = Firing(occasion, owner, "2026", now, {})
        assert CouponAction().enqueue(db.connection(), trigger, [firing], now) == 1
        db.commit()
    assert scheduler.run_now(central_db.session_factory(app), app.config["CENTRAL"], "member_cards", clock) == OK

    s001 = store_body(app, "S001")["members"]
    assert [(c["title"], c["value"]) for c in s001[QUIET]["coupons"]] == [("double-11", "10.00")]
    assert [c["title"] for c in s001[LOYAL]["coupons"]] == ["double-11"]  # the claimed one, as before
    assert not any(code in str(s001) for code in codes.values())
