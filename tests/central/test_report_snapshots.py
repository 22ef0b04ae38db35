"""The campaign pages' report snapshots: exactly the reports computed on request, refreshed by a job or at once.

The trigger history is :mod:`tests.central.test_trigger_effect`'s hand-counted one (two action, two
control occasions, a redemption, purchases in and out of the window); the coupon campaign has codes
for members of two tiers, one without a tier and anonymous ones, some redeemed, one twice.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from central import db as central_db
from central.campaigns import coupons, snapshots
from central.campaigns.effect import effect_report
from central.campaigns.models import Trigger, TriggerCoupon
from central.campaigns.results import by_tier
from central.identity import merges
from central.identity.models import Identifier
from central.identity.registry import load_registry
from central.models import AuditLog
from central.scheduler import run_now
from tests.central.operations_support import coupon_campaign, redeem, tag_tier
from tests.central.sources_support import new_key, post_events, source_event
from tests.central.support import create_user, csrf_from, login, table_rows
from tests.central.test_trigger_effect import history  # noqa: F401  (a fixture)
from tests.central.trigger_support import NOW

OFFSET = 480  # customers.utc_offset_minutes' default, which the job passes
SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved


def _trigger_id(app, name: str) -> int:
    with central_db.session_factory(app)() as db:
        return int(db.scalar(select(Trigger.id).where(Trigger.name == name)))


def test_an_effect_snapshot_equals_the_report_computed_on_request(app, history):  # noqa: F811
    trigger_id = _trigger_id(app, history)
    sessions = central_db.session_factory(app)
    # during the windows (open ones, the redemption in, a purchase still to come) and after them all
    for now in (NOW + timedelta(days=5), NOW + timedelta(days=60)):
        with sessions() as db:
            assert snapshots.refresh_all(db, now, OFFSET) == {"triggers": 1, "campaigns": 1}
        with sessions() as db:
            stored = snapshots.stored_effect(db, trigger_id)
            asked = effect_report(db, history, snapshots.EFFECT_WEEKS, now=now, offset_minutes=OFFSET)
        assert stored == asked
        assert stored is not None and stored.to_json() == asked.to_json() and stored.as_of == now
    assert stored.action.redeemed == 1 and stored.control.repurchased == 1 and stored.open_windows == 0
    assert str(stored.action.spend_per_customer) == "60.00" and stored.repurchase_uplift == 0.5


def _campaign_with_tiers(app, client, agent):
    """Codes for M1, M2 (loyal), M3 (dormant), M4 (no tier) and two anonymous; four redeemed, M1 twice."""
    members = ["M1", "M2", "M3", "M4"]
    signups = [source_event(f"s{m}", "member.signup", identifiers={"member_id": m}) for m in members]
    assert post_events(client, new_key(app), signups).status_code == 200
    with central_db.session_factory(app)() as db:
        rows = db.execute(select(Identifier.value, Identifier.customer_id).where(Identifier.kind == "member_id"))
        held = {str(value): int(customer) for value, customer in rows}
    for member, tier in (("M1", "loyal"), ("M2", "loyal"), ("M3", "dormant")):
        tag_tier(app, held[member], tier)
    campaign = coupon_campaign(app, members, anonymous=2)
    codes = campaign.member_codes
    agent.send(client, [redeem(agent, codes[m], campaign.id) for m in ("M1", "M2", "M3")])
    agent.send(client, [redeem(agent, campaign.anonymous[0], campaign.id), redeem(agent, codes["M1"], campaign.id)])
    return campaign


def test_a_tier_snapshot_equals_the_figures_computed_on_request(app, client, agent):
    campaign = _campaign_with_tiers(app, client, agent)
    clock = app.config["CLOCK"]
    assert run_now(central_db.session_factory(app), app.config["CENTRAL"], "reports", clock) == "ok"
    with central_db.session_factory(app)() as db:
        stored = snapshots.stored_tiers(db, campaign.id)
        asked = by_tier(db, campaign.id)
    assert stored is not None and stored.computed_at == clock() and stored.tiers == asked
    found = {b.key: (b.issued, b.redeemed, b.conflicts) for b in stored.tiers}
    assert found == {"loyal": (2, 2, 1), "dormant": (1, 1, 0), "untiered": (1, 0, 0), "anonymous": (2, 1, 0)}


def test_codes_a_trigger_issued_count_under_their_customers_tiers_and_a_merged_ones_under_its_survivor(
    app,
    history,  # noqa: F811
):
    """The trigger's codes name no member id: they are its customers' all the same, never "anonymous"."""
    secret = app.config["SECRET_KEY"]
    sessions = central_db.session_factory(app)
    with sessions() as db:
        issued = dict(db.execute(select(TriggerCoupon.customer_id, TriggerCoupon.campaign_id)).all())
        (campaign,) = set(issued.values())
        coupons.issue_anonymous(db, str(campaign), 1, now=NOW, actor="t", secret=secret)
        db.commit()
    first, second = sorted(issued)  # A1 (its code redeemed) and A2
    tag_tier(app, first, "loyal")
    tag_tier(app, second, "dormant")
    with sessions() as db:
        found = {b.key: (b.issued, b.redeemed) for b in by_tier(db, campaign)}
    assert found == {"loyal": (1, 1), "dormant": (1, 0), "anonymous": (1, 0)}
    with sessions() as db:
        registry = load_registry(app.config["CENTRAL"])
        assert merges.merge_customers(db, registry, first, second, rule="review", now=NOW, operator="t") == first
        db.commit()
    with sessions() as db:
        found = {b.key: (b.issued, b.redeemed) for b in by_tier(db, campaign)}
    assert found == {"loyal": (2, 1), "anonymous": (1, 0)}  # A2 is A1 now, whatever tier A2 last had


@SQLITE
def test_marketing_refreshes_a_report_at_once_with_the_csrf_token_and_it_is_audited(app, client, agent):
    campaign = _campaign_with_tiers(app, client, agent)
    clock = app.config["CLOCK"]
    sessions = central_db.session_factory(app)
    with sessions() as db:
        snapshots.refresh_all(db, clock(), OFFSET)
    tag_tier(app, 999, "loyal")  # nobody's: the figures stay, only the time moves
    for role in ("marketing", "finance"):
        create_user(app, role, role=role)
    marketing, finance = app.test_client(), app.test_client()
    assert login(marketing, "marketing").status_code == 302 and login(finance, "finance").status_code == 302
    page = f"/console/campaigns/coupons/{campaign.id}"
    html = marketing.get(page).get_data(as_text=True)
    token = csrf_from(html)
    assert 'id="refresh-tiers"' in html and 'data-tier="loyal"' in html
    clock.advance(minutes=10)
    refresh = f"/console/campaigns/coupons/{campaign.id}/tiers"
    assert marketing.post(refresh, data={}).status_code == 400  # no token
    assert (
        finance.post(refresh, data={"csrf_token": csrf_from(finance.get(page).get_data(as_text=True))}).status_code
        == 403
    )
    response = marketing.post(refresh, data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"{page}#by-tier")
    with sessions() as db:
        assert snapshots.stored_tiers(db, campaign.id).computed_at == clock()
    assert (clock() + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S") in marketing.get(page).get_data(as_text=True)
    assert marketing.post("/console/campaigns/coupons/999/tiers", data={"csrf_token": token}).status_code == 404
    assert marketing.post("/console/campaigns/triggers/999/effect", data={"csrf_token": token}).status_code == 404
    audited = [(r.actor, r.action, r.subject) for r in table_rows(app, AuditLog) if r.action == "report.refresh"]
    assert audited == [("marketing", "report.refresh", f"coupon_campaign:{campaign.id}")]


@SQLITE
def test_a_trigger_page_shows_its_snapshot_and_refreshes_it(app, history):  # noqa: F811
    trigger_id = _trigger_id(app, history)
    clock = app.config["CLOCK"]
    clock.now = NOW + timedelta(days=60)
    create_user(app, "marketing", role="marketing")
    marketing = app.test_client()
    assert login(marketing, "marketing").status_code == 302
    page = f"/console/campaigns/triggers/{trigger_id}"
    html = marketing.get(page).get_data(as_text=True)
    assert "还没有计算过" in html and "执行组" not in html
    response = marketing.post(f"{page}/effect", data={"csrf_token": csrf_from(html)})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"{page}#effect")
    html = marketing.get(page).get_data(as_text=True)
    assert (
        "执行组" in html
        and "60.00" in html
        and (clock() + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S UTC+08:00") in html
    )
    audited = [(r.action, r.subject) for r in table_rows(app, AuditLog) if r.action == "report.refresh"]
    assert audited == [("report.refresh", f"trigger:{trigger_id}")]
