"""Coupon liability: codes issued, redeemed, revoked, outstanding and expired, hand-counted on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

from sqlalchemy import select

from central import db as central_db
from central.campaigns import coupons
from central.campaigns.coupon_models import CouponRedemption
from central.campaigns.liability import liabilities
from central.cli import main
from central.models import AuditLog
from tests.central.cli_runner import write_config
from tests.central.operations_support import coupon_campaign, redeem
from tests.central.support import START, create_user, login, table_rows


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


def test_a_code_revoked_after_its_redemption_counts_once_as_redeemed_and_one_campaign_alone(app, client, agent):
    campaign = _chain(app, client, agent)
    assert len(agent.send(client, [redeem(agent, campaign.member_codes["M3"], campaign.id)])["accepted"]) == 1
    secret = app.config["SECRET_KEY"]
    with central_db.session_factory(app)() as db:
        serial = db.scalar(select(CouponRedemption.serial).order_by(CouponRedemption.id.desc()).limit(1))
        coupons.revoke(db, serial, now=START, actor="t", secret=secret)
        db.commit()
        (double,) = liabilities(db, START, campaign_id=campaign.id)
        counts = (double.issued, double.redeemed, double.revoked, double.outstanding, double.expired)
        assert counts == (5, 2, 1, 2, 0)
        assert [row.campaign_id for row in liabilities(db, START)] == [campaign.id, campaign.id + 1]


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


def _cells(html: str, row_id: str) -> list[str]:
    """The text of each numeric cell of the row whose opening tag contains ``row_id``."""
    row = html.split(row_id, 1)[1].split("</tr>", 1)[0]
    return re.findall(r'<td class="num[^"]*">([^<]*)</td>', row)


def test_the_campaigns_page_shows_the_liability_with_a_period_and_totals(app, client, agent):
    _chain(app, client, agent)
    create_user(app, "finance", role="finance")
    finance = app.test_client()
    assert login(finance, "finance").status_code == 302
    # This month by default (the fake clock is in November 2026, local time UTC+08:00).
    html = finance.get("/console/campaigns").get_data(as_text=True)
    assert 'name="from" value="2026-11-01"' in html and 'name="to" value="2026-11-30"' in html
    # face value, issued, redeemed, revoked, outstanding, owed, expired, redeemed in the period and its value
    double = ["10.00", "5", "1", "1", "3", "30.00", "0", "1", "10.00"]
    liability_table = html.split('id="liability"', 1)[1]
    assert _cells(liability_table, 'data-campaign="double-11"') == double
    assert _cells(liability_table, 'data-campaign="spring"') == ["10.00", "0", "0", "0", "0", "0.00", "0", "0", "0.00"]
    assert _cells(liability_table, 'id="liability-total"') == double[1:]
    october = finance.get("/console/campaigns?from=2026-10-01&to=2026-10-31").get_data(as_text=True)
    assert _cells(october.split('id="liability"', 1)[1], 'id="liability-total"')[-2:] == ["0", "0.00"]
    assert finance.get("/console/campaigns?from=2026-11-30&to=2026-11-01").status_code == 400
    assert finance.get("/console/campaigns?from=november").status_code == 400
    assert [a for a in table_rows(app, AuditLog) if a.action == "coupons.export"] == []  # a page view is not audited


def test_the_liability_csv_has_numbers_as_numbers_and_is_audited(app, client, agent):
    campaign = _chain(app, client, agent)
    create_user(app, "finance", role="finance")
    finance = app.test_client()
    assert login(finance, "finance").status_code == 302
    reply = finance.get("/console/campaigns/coupons.csv?from=2026-11-01&to=2026-11-30")
    assert reply.status_code == 200 and reply.mimetype == "text/csv"
    assert 'filename="coupons-2026-11-01-2026-11-30.csv"' in reply.headers["Content-Disposition"]
    text = reply.get_data(as_text=True)
    assert text.startswith("\ufeff")
    header, *rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert header[:6] == ["campaign_id", "campaign", "face_value", "valid_from", "valid_to", "issued"]
    assert dict(zip(header, rows[0], strict=True)) == {
        "campaign_id": str(campaign.id),
        "campaign": "double-11",
        "face_value": "10.00",
        "valid_from": "2026-11-23 09:00",  # local time, an hour before START
        "valid_to": "2026-11-24 10:00",
        "issued": "5",
        "redeemed": "1",
        "revoked": "1",
        "outstanding": "3",
        "outstanding_value": "30.00",
        "expired_unredeemed": "0",
        "period_from": "2026-11-01",
        "period_to": "2026-11-30",
        "redeemed_in_period": "1",
        "redeemed_in_period_value": "10.00",
    }
    assert [r[1] for r in rows] == ["double-11", "spring"]
    exports = [
        (a.actor, a.action, a.subject, a.detail) for a in table_rows(app, AuditLog) if a.action == "coupons.export"
    ]
    detail = {"via": "console", "from": "2026-11-01", "to": "2026-11-30", "rows": 2}
    assert exports == [("finance", "coupons.export", "coupons:liability", detail)]
    assert finance.get("/console/campaigns/coupons.csv?from=2026-11-30&to=2026-11-01").status_code == 400


def test_coupons_list_json_carries_the_liability(app, client, agent, capsys):
    _chain(app, client, agent)  # double-11 ended on 2026-11-24: by the real clock its open codes have expired
    secret = app.config["SECRET_KEY"]
    with central_db.session_factory(app)() as db:
        lasting = coupons.create_campaign(
            db,
            name="lasting",
            value=coupons.parse_value("2.50"),
            valid_from=START,
            valid_to=START.replace(year=2099),
            max_redemptions=10,
            offline_budget=1,
            stores=None,
            now=START,
            actor="test",
            secret=secret,
        )
        coupons.issue_anonymous(db, str(lasting.id), 3, now=START, actor="t", secret=secret)
        db.commit()
    config = app.config["CENTRAL"]
    path = write_config(config.server_data_dir.parent / "central.toml", config.server_data_dir, config.database_url)
    assert main(["coupons", "list", "--json", "--config", str(path)]) == 0
    listed = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    owed = ("revoked", "outstanding", "outstanding_value", "expired_unredeemed")
    assert {name: tuple(c[k] for k in owed) for name, c in listed.items()} == {
        "double-11": (1, 0, "0.00", 3),
        "spring": (0, 0, "0.00", 0),
        "lasting": (0, 3, "7.50", 0),
    }
    assert main(["coupons", "list", "--config", str(path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert "OUTSTANDING" in table[0] and "OWED" in table[0]
    assert [line.split()[-3:-1] for line in table[1:]][-1] == ["3", "7.50"]
