"""Coupon liability: codes issued, redeemed, revoked, outstanding and expired, hand-counted on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from central import db as central_db
from central.campaigns import coupons
from central.campaigns.liability import liabilities
from tests.central.operations_support import coupon_campaign, redeem
from tests.central.support import START, create_user, login


def _chain(app, client, agent):
    """double-11 (10.00, valid until a day after START): five codes, one redeemed at START, one revoked."""
    campaign = coupon_campaign(app, ["M1", "M2", "M3", "M4"], anonymous=1)
    reply = agent.send(client, [redeem(agent, campaign.member_codes["M1"], campaign.id)])
    assert len(reply["accepted"]) == 1
    secret = app.config["SECRET_KEY"]
    with central_db.session_factory(app)() as db:
        serial = coupons.issue_for_member(db, str(campaign.id), "M2", now=START, actor="t", secret=secret).serial
        coupons.revoke(db, serial, now=START, actor="t", secret=secret)
        db.commit()
    coupon_campaign(app, [], name="spring")
    return campaign


def test_outstanding_codes_and_their_value_as_a_hand_count(app, client, agent):
    _chain(app, client, agent)
    with central_db.session_factory(app)() as db:
        (double, spring) = liabilities(db, START)
        counts = (double.issued, double.redeemed, double.revoked, double.outstanding, double.expired)
        assert counts == (5, 1, 1, 3, 0)
        assert double.outstanding_value == 3000 and double.redeemed_in_period is None
        assert (spring.issued, spring.outstanding, spring.expired, spring.outstanding_value) == (0, 0, 0, 0)
        # Two days on the campaign is over: nothing is owed, the three codes expired unredeemed.
        (later, _) = liabilities(db, START + timedelta(days=2))
        assert (later.outstanding, later.expired, later.outstanding_value) == (0, 3, 0)
        # The period filter counts redemptions by their till time.
        (month, _) = liabilities(db, START, (START - timedelta(hours=1), START + timedelta(hours=1)))
        assert month.redeemed_in_period == 1
        (before, _) = liabilities(db, START, (START - timedelta(days=3), START - timedelta(days=1)))
        assert before.redeemed_in_period == 0
        assert double.to_json() == {
            "revoked": 1,
            "outstanding": 3,
            "outstanding_value": "30.00",
            "expired_unredeemed": 0,
        }


def test_finance_reads_the_campaign_listing_but_cannot_issue(app, client, agent):
    campaign = _chain(app, client, agent)
    create_user(app, "finance", role="finance")
    finance = app.test_client()
    assert login(finance, "finance").status_code == 302
    listing = finance.get("/api/v1/coupons/campaigns")
    assert listing.status_code == 200
    first = listing.get_json()["campaigns"][0]
    assert (first["name"], first["outstanding"], first["outstanding_value"]) == ("double-11", 3, "30.00")
    assert finance.get(f"/api/v1/coupons/campaigns/{campaign.id}").get_json()["outstanding"] == 3
    assert finance.post(f"/api/v1/coupons/campaigns/{campaign.id}/codes", json={"count": 1}).status_code == 403
    assert finance.post("/api/v1/coupons/codes/1/revoke", json={}).status_code == 403
