"""Second item, win-back, repurchase due and complaint triggers: once per occasion, consent first, control kept.

Every history is hand-built around NOW (Monday 30 November 2026, 20:00 in the chain's Shanghai time):
each test says who should fire and with which occasion, runs the evaluation twice (or from two
instances), and checks the ledger and the action rows.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from central import db as central_db
from central import scheduler
from central.campaigns import triggers
from central.campaigns.models import WebhookDelivery
from tests.central.consent_support import consent_event
from tests.central.customer_support import phone, sale
from tests.central.trigger_support import (
    NOW,
    at,
    buy,
    customer,
    declare,
    evaluate,
    exported,
    fired,
    instant,
    load,
    person,
    recompute,
    sales,
    with_catalog,
)

HOOK = {"url": "http://127.0.0.1:9/care", "secret": "a-secret-of-16-chars"}


def test_each_kind_checks_its_parameters_and_fills_in_defaults():
    assert triggers.check("a", "second_item", {"channel": "sms"}, "export", {}).params == {
        "channel": "sms",
        "hours": 72,
        "grace_hours": 72,
        "unless_bought_again": True,
    }
    assert triggers.check("b", "win_back", {"channel": "email"}, "export", {}).params["tag"] == "lifecycle"
    assert triggers.check("c", "repurchase_due", {"channel": "sms"}, "export", {}).params["days_before"] == 3
    complaint = triggers.check("d", "complaint", {"channel": "sms", "purpose": "service"}, "webhook", HOOK)
    assert complaint.params == {"channel": "sms", "purpose": "service", "within_hours": 72}
    for kind, params, message in (
        ("second_item", {"hours": 0}, "hours: expected a whole number from 1 to 720"),
        ("second_item", {"unless_bought_again": "yes"}, "unless_bought_again: expected true or false"),
        ("win_back", {"tag": "rfm.r"}, "tag: expected one of lifecycle, value_tier"),
        ("repurchase_due", {"days_before": 40}, "days_before: expected a whole number from 0 to 31"),
        ("complaint", {"purpose": "profiling"}, "purpose: the consent the action needs, one of marketing, service"),
        ("complaint", {"days_before": 3}, "unknown parameter 'days_before' (expected within_hours, channel, purpose)"),
    ):
        with pytest.raises(triggers.TriggerError) as caught:
            triggers.check("e", kind, {"channel": "sms", **params}, "export", {})
        assert str(caught.value) == message
    with pytest.raises(triggers.TriggerError, match="coupon needs campaign"):
        triggers.check("f", "second_item", {"channel": "sms"}, "coupon", {})


def test_service_consent_covers_complaint_follow_ups_only_and_never_a_coupon():
    """Declared with purpose service, a birthday coupon reached people who had withdrawn marketing consent."""
    for kind, action, params in (
        ("birthday", "coupon", {"campaign": "birthday-10"}),
        ("birthday", "export", {}),
        ("second_item", "webhook", HOOK),
        ("win_back", "export", {}),
        ("complaint", "coupon", {"campaign": "sorry-5"}),
    ):
        with pytest.raises(triggers.TriggerError) as caught:
            triggers.check("s", kind, {"channel": "sms", "purpose": "service"}, action, params)
        assert (caught.value.reason, caught.value.field) == ("purpose_not_service", "purpose"), kind
    for action, params in (("webhook", HOOK), ("export", {})):
        assert triggers.check("s", "complaint", {"channel": "sms", "purpose": "service"}, action, params)
    assert triggers.check("m", "birthday", {"channel": "sms"}, "coupon", {"campaign": "birthday-10"})


def test_a_trigger_stored_with_service_for_a_marketing_kind_needs_marketing_consent(app):
    """A trigger declared before the rule above keeps its row; firing and its export ask for marketing consent."""
    params = triggers.check_params("second_item", {"channel": "sms", "purpose": "service"})
    stored = triggers.Declared("old-second", "second_item", params, "export", {}, 0.0)
    with central_db.session_factory(app)() as db:
        trigger = triggers.declare(db, stored, actor="t", now=NOW)
        db.commit()
    service_only, marketing = phone(1), phone(2)
    person(app, service_only, purpose="service")
    person(app, marketing)
    buy(app, "s-1", service_only, -timedelta(hours=80))
    buy(app, "m-1", marketing, -timedelta(hours=80))
    assert [c for c, _, _ in fired(app, trigger)] == []
    evaluate(app)
    assert [c for c, _, _ in fired(app, trigger)] == [customer(app, marketing)]


def test_second_item_fires_once_per_first_purchase_after_72_hours_with_consent(app, user_client):
    trigger = declare(app, "second-item", "second_item")
    due, again, early, old, silent = (phone(n) for n in range(1, 6))
    for p in (due, again, early, old):
        person(app, p)
    person(app, silent, consent=None)
    buy(app, "due-1", due, -timedelta(hours=80))
    buy(app, "again-1", again, -timedelta(hours=80))
    buy(app, "again-2", again, -timedelta(hours=10))  # bought again: no second-item coupon
    buy(app, "early-1", early, -timedelta(hours=10))  # not 72 hours yet
    buy(app, "old-1", old, -timedelta(days=30))  # long before the grace period
    buy(app, "silent-1", silent, -timedelta(hours=80))  # no marketing consent
    assert evaluate(app)["fired"] == 1
    assert evaluate(app)["fired"] == 0
    assert fired(app, trigger) == [(customer(app, due), instant(-timedelta(hours=80)), "action")]
    # 70 hours later the early customer is due; nobody else fires again.
    assert evaluate(app, NOW + timedelta(hours=70))["fired"] == 1
    assert [c for c, _, _ in fired(app, trigger)] == [customer(app, due), customer(app, early)]
    assert exported(app, trigger) == 2
    # Marketing downloads the export list (an audited download).
    reply = user_client.get("/api/v1/triggers/second-item/export.csv")
    lines = reply.get_data(as_text=True).splitlines()
    assert reply.status_code == 200 and lines[0] == "customer_id,occasion,added_at" and len(lines) == 3
    assert lines[1].startswith(f"{customer(app, due)},{instant(-timedelta(hours=80))},")


def test_second_item_from_two_scheduler_instances_fires_each_customer_once(app, make_app, clock):
    trigger = declare(app, "second-item", "second_item")
    people = [phone(n) for n in range(10, 22)]
    for n, p in enumerate(people):
        person(app, p)
        buy(app, f"first-{n}", p, -timedelta(hours=73 + n))
    clock.now = NOW
    instances = [app, make_app(scheduler__instance="two")]
    barrier = threading.Barrier(2)
    statuses: list[str | None] = []

    def run(instance_app, through_scheduler: bool) -> None:
        barrier.wait()
        if through_scheduler:
            config = instance_app.config["CENTRAL"]
            statuses.append(scheduler.run_now(central_db.session_factory(instance_app), config, "triggers", clock))
        else:  # no lease at all: the ledger alone must hold
            evaluate(instance_app, instance=instance_app.config["CENTRAL"].scheduler_instance or "one")

    for through_scheduler in (True, False):
        threads = [threading.Thread(target=run, args=(a, through_scheduler)) for a in instances]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert "ok" in statuses
    assert sorted(c for c, _, _ in fired(app, trigger)) == sorted(customer(app, p) for p in people)
    assert exported(app, trigger) == len(people)


def test_win_back_fires_once_per_dormant_spell(app):
    trigger = declare(app, "win-back", "win_back")
    bob, carol, dave = phone(1), phone(2), phone(3)
    person(app, bob)
    person(app, carol, consent=False)  # withdrew: never
    person(app, dave)
    buy(app, "b1", bob, -timedelta(days=182))  # lifecycle dormant (121-365 days)
    buy(app, "c1", carol, -timedelta(days=182))
    buy(app, "d1", dave, -timedelta(days=72))  # at risk, not dormant
    recompute(app)
    assert evaluate(app)["fired"] == 1
    assert evaluate(app, NOW + timedelta(hours=1))["fired"] == 0
    first_spell = (customer(app, bob), instant(-timedelta(days=182)), "action")
    assert fired(app, trigger) == [first_spell]
    # Bob comes back the next day; before the nightly recompute his tag still says dormant.
    buy(app, "b2", bob, timedelta(days=1))
    assert evaluate(app, NOW + timedelta(days=1, hours=1))["fired"] == 0
    recompute(app, NOW + timedelta(days=2))
    assert evaluate(app, NOW + timedelta(days=2))["fired"] == 0
    # He lapses again: a new spell, a new firing, and only one; Dave has drifted from at risk to dormant.
    later = NOW + timedelta(days=200)
    recompute(app, later)
    assert evaluate(app, later)["fired"] == 2
    assert evaluate(app, later + timedelta(days=1))["fired"] == 0
    assert fired(app, trigger) == [
        first_spell,
        (customer(app, bob), instant(timedelta(days=1)), "action"),
        (customer(app, dave), instant(-timedelta(days=72)), "action"),
    ]


def test_repurchase_due_reminds_once_per_category_and_due_date(app):
    with_catalog(app)
    trigger = declare(app, "formula-due", "repurchase_due", action="webhook", action_params=HOOK)
    alice, silent = phone(1), phone(2)
    person(app, alice)
    person(app, silent, consent=None)
    for p in (alice, silent):
        # Formula every 5 days (17, 22, 27 November 08:00 local): next due 2 December, within 3 days of 30 November.
        for d in (3, 8, 13):
            buy(app, f"{p}-{d}", p, -timedelta(days=d, hours=12), skus=["F900"])
    recompute(app)
    assert evaluate(app)["fired"] == 1
    assert evaluate(app, NOW + timedelta(days=1))["fired"] == 0
    assert fired(app, trigger) == [(customer(app, alice), "2026-12-02:Baby > Formula", "action")]
    with central_db.session_factory(app)() as db:
        bodies = list(db.scalars(select(WebhookDelivery.__table__.c.body)))
    assert len(bodies) == 1 and '"category":"Baby > Formula"' in bodies[0] and '"due":"2026-12-02"' in bodies[0]
    # Buying formula again moves the due date: the next reminder is a new occasion, once.
    buy(app, "a-again", alice, timedelta(days=1), skus=["F900"])  # 1 December 20:00 local: every 4.8 days now
    recompute(app, NOW + timedelta(days=3))
    assert evaluate(app, NOW + timedelta(days=3))["fired"] == 1
    assert evaluate(app, NOW + timedelta(days=3, hours=1))["fired"] == 0
    assert [o for _, o, _ in fired(app, trigger)] == ["2026-12-02:Baby > Formula", "2026-12-06:Baby > Formula"]


def late(app, event_id: str, p: str, when: timedelta, skus: tuple[str, ...] = ()) -> None:
    """A receipt made at NOW + ``when`` that reaches central only an hour after NOW (a store back online)."""
    sales(app, [sale(event_id, at(when), "50.00", phone=p, skus=list(skus))], now=NOW + timedelta(hours=1))


@pytest.mark.parametrize("tag", ["lifecycle", "value_tier"])
def test_win_back_is_stopped_by_a_purchase_the_tag_did_not_know_about_even_one_made_before_it(app, tag):
    trigger = declare(app, "win-back", "win_back", {"tag": tag})
    bob, carol = phone(1), phone(2)
    for p in (bob, carol):
        person(app, p)
        buy(app, f"{p}-old", p, -timedelta(days=182))
    recompute(app)  # both dormant, computed at NOW
    # Bob's comeback was rung up two hours before the recompute; the till was offline and sent it after.
    late(app, "b-back", bob, -timedelta(hours=2))
    # Carol's late receipt is older than the purchase the tag knew: she is still dormant since then.
    late(app, "c-older", carol, -timedelta(days=190))
    assert evaluate(app, NOW + timedelta(hours=2))["fired"] == 1
    assert fired(app, trigger) == [(customer(app, carol), instant(-timedelta(days=182)), "action")]


def test_win_back_does_not_fire_again_for_the_comeback_purchase_that_arrived_late(app):
    trigger = declare(app, "win-back", "win_back")
    bob = phone(1)
    person(app, bob)
    buy(app, "b-old", bob, -timedelta(days=182))
    recompute(app, NOW - timedelta(days=1))
    assert evaluate(app, NOW - timedelta(days=1))["fired"] == 1
    recompute(app)  # still dormant
    late(app, "b-back", bob, -timedelta(hours=2))
    assert evaluate(app, NOW + timedelta(hours=2))["fired"] == 0
    assert fired(app, trigger) == [(customer(app, bob), instant(-timedelta(days=182)), "action")]


def test_repurchase_due_is_stopped_by_a_purchase_of_the_category_the_tag_did_not_know_about(app):
    with_catalog(app)
    trigger = declare(app, "formula-due", "repurchase_due")
    alice, bob = phone(1), phone(2)
    for p in (alice, bob):
        person(app, p)
        for d in (3, 8, 13):  # Formula every 5 days: due 2 December
            buy(app, f"{p}-{d}", p, -timedelta(days=d, hours=12), skus=["F900"])
    recompute(app)
    # Alice restocked two hours before the recompute; the receipt arrived after it.
    late(app, "a-restock", alice, -timedelta(hours=2), skus=("F900",))
    # Bob's late receipt is another category: his formula is still due.
    late(app, "b-milk", bob, -timedelta(hours=2), skus=("M1",))
    assert evaluate(app, NOW + timedelta(hours=2))["fired"] == 1
    assert fired(app, trigger) == [(customer(app, bob), "2026-12-02:Baby > Formula", "action")]


def _complaint(app, event_id: str, p: str, received: timedelta) -> None:
    event = {
        "event_id": event_id,
        "kind": "service.complaint",
        "observed_at": at(received - timedelta(minutes=5)),
        "identifiers": {"phone": p},
        "payload": {"ticket_no": event_id, "category": "quality"},
    }
    load(app, [event], now=NOW + received)


def test_complaint_calls_customer_service_once_per_complaint_with_service_consent(app):
    trigger = declare(app, "care", "complaint", {"purpose": "service"}, action="webhook", action_params=HOOK)
    bob, mia, old = phone(1), phone(2), phone(3)
    person(app, bob, purpose="service")
    person(app, mia, purpose="marketing")  # marketing consent is not service consent
    person(app, old, purpose="service")
    _complaint(app, "T-1", bob, -timedelta(hours=1))
    _complaint(app, "T-2", mia, -timedelta(hours=1))
    _complaint(app, "T-3", old, -timedelta(days=10))  # before the trigger's 72-hour look-back
    assert evaluate(app)["fired"] == 1
    _complaint(app, "T-4", bob, timedelta(hours=1))  # a second complaint is a second occasion
    assert evaluate(app, NOW + timedelta(hours=2))["fired"] == 1
    assert evaluate(app, NOW + timedelta(hours=3))["fired"] == 0
    fires = fired(app, trigger)
    assert [c for c, _, _ in fires] == [customer(app, bob)] * 2
    assert all(o.startswith("event:") for _, o, _ in fires) and fires[0][1] != fires[1][1]
    with central_db.session_factory(app)() as db:
        assert db.scalar(select(func.count()).select_from(WebhookDelivery.__table__)) == 2


def test_the_control_group_is_recorded_and_gets_no_action_in_every_kind(app):
    with_catalog(app)
    ids = {
        kind: declare(app, f"all-control-{kind}", kind, control=100.0)
        for kind in ("second_item", "win_back", "repurchase_due", "complaint")
    }
    first, dormant, due, unhappy = (phone(n) for n in range(1, 5))
    for p in (first, dormant, due, unhappy):
        person(app, p)
    buy(app, "f1", first, -timedelta(hours=80))
    buy(app, "w1", dormant, -timedelta(days=182))
    for d in (3, 8, 13):
        buy(app, f"r{d}", due, -timedelta(days=d, hours=12), skus=["F900"])
    _complaint(app, "T-9", unhappy, -timedelta(hours=1))
    recompute(app)
    counts = evaluate(app)
    assert counts["control"] >= 4 and counts["queued"] == 0
    for kind, trigger in ids.items():
        assert fired(app, trigger) and {g for _, _, g in fired(app, trigger)} == {"control"}, kind
        assert exported(app, trigger) == 0


def test_a_complaint_is_not_followed_up_again_after_its_customer_is_merged(app):
    from central.identity import merges
    from central.identity.registry import load_registry

    trigger = declare(app, "care", "complaint", action="webhook", action_params=HOOK)
    older, younger = phone(1), phone(2)
    person(app, older)
    person(app, younger)
    _complaint(app, "T-1", younger, -timedelta(hours=1))
    assert evaluate(app)["fired"] == 1
    with central_db.session_factory(app)() as db:
        kept = merges.merge_customers(
            db,
            load_registry(app.config["CENTRAL"]),
            customer(app, older),
            customer(app, younger),
            rule="review",
            now=NOW,
            operator="t",
        )
        db.commit()
    assert kept == customer(app, older)
    assert evaluate(app, NOW + timedelta(hours=1))["fired"] == 0
    assert len(fired(app, trigger)) == 1


def test_a_coupon_trigger_whose_campaign_ended_fails_alone_and_the_others_still_fire(app):
    from decimal import Decimal

    from central.campaigns import coupons
    from central.campaigns.actions import ActionError
    from shared.crypto import load_or_create_key

    secret = load_or_create_key(app.config["CENTRAL"].secret_key_path)
    with central_db.session_factory(app)() as db:
        coupons.create_campaign(
            db,
            name="SHORT",
            value=Decimal("5"),
            valid_from=NOW - timedelta(days=2),
            valid_to=NOW + timedelta(hours=1),
            max_redemptions=10,
            offline_budget=1,
            stores=None,
            now=NOW - timedelta(days=2),
            actor="test",
            secret=secret,
        )
        db.commit()
    with pytest.raises(triggers.TriggerError, match="no coupon campaign called 'NOPE'"):
        declare(app, "nope", "second_item", action="coupon", action_params={"campaign": "NOPE"})
    late = triggers.check("late", "second_item", {"channel": "sms"}, "coupon", {"campaign": "SHORT"})
    with central_db.session_factory(app)() as db, pytest.raises(triggers.TriggerError, match="'SHORT' ended"):
        triggers.declare(db, late, actor="test", now=NOW + timedelta(hours=2))
    coupon = declare(app, "first-coupon", "second_item", action="coupon", action_params={"campaign": "SHORT"})
    listed = declare(app, "first-list", "second_item")
    person(app, phone(1))
    buy(app, "f1", phone(1), -timedelta(hours=80))
    with pytest.raises(ActionError, match="first-coupon: coupon campaign 'SHORT' ended"):
        evaluate(app, NOW + timedelta(hours=2))
    assert fired(app, coupon) == [] and len(fired(app, listed)) == 1


_numbers = iter(range(100, 10_000))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    histories=st.lists(
        st.lists(st.tuples(st.integers(-60, 0), st.booleans(), st.sampled_from(["sms", "email", None])), max_size=3),
        min_size=1,
        max_size=3,
    ),
    data=st.data(),
)
def test_second_item_never_fires_without_a_standing_sms_grant(app, histories, data):
    """Random consent histories, delivered in any order: fired exactly for the latest SMS decision being a grant."""
    name = f"second-{next(_numbers)}"
    trigger = declare(app, name, "second_item")
    expected, mine = set(), set()
    for history in histories:
        p = phone(next(_numbers))
        person(app, p, consent=None)
        buy(app, f"{name}-{p}", p, -timedelta(hours=80))
        events = [
            consent_event(f"{name}-{p}-{i}", p, granted=g, at=NOW + timedelta(days=d, minutes=i), channel=ch)
            for i, (d, g, ch) in enumerate(history)
        ]
        for event in data.draw(st.permutations(events)):
            load(app, [event], now=NOW)
        mine.add(customer(app, p))
        relevant = [(d, i, g) for i, (d, g, ch) in enumerate(history) if ch in ("sms", None)]
        if relevant and max(relevant)[2]:
            expected.add(customer(app, p))
    evaluate(app)
    evaluate(app)
    fires = [c for c, _, _ in fired(app, trigger)]  # earlier examples' customers are due too
    assert set(fires) & mine == expected and len(fires) == len(set(fires))
