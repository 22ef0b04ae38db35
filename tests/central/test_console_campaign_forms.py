"""The campaign forms: who may use them, the API's reasons on bad input, what they create, pause and end, audit."""

from __future__ import annotations

import inspect
import re
from datetime import timedelta

import pytest
from markupsafe import escape
from sqlalchemy import update

from central import db as central_db
from central.accounts.roles import ROLES
from central.campaigns import actions, coupons
from central.campaigns.coupon_models import CouponCampaign
from central.campaigns.models import Trigger
from central.campaigns.triggers import declaration
from central.console import campaign_forms
from central.models import AuditLog
from tests.central.operations_support import coupon_campaign, declare_trigger
from tests.central.support import START, create_user, login, post_form, table_rows, token_for
from tests.central.test_console_roles import XSS

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # forms over domain code tested on both
EDITORS = {"admin", "marketing"}
COUPON = {
    "name": "spring-10",
    "value": "10.00",
    "valid_from": "2026-11-23T00:00",
    "valid_to": "2026-12-31T23:59",
    "max_redemptions": "500",
    "offline_budget": "20",
    "stores": "S001, S002",
}
TRIGGER = {
    "name": "birthday-spring",
    "kind": "birthday",
    "param_days_before": "5",
    "channel": "sms",
    "purpose": "marketing",
    "action": "coupon",
    "campaign": "spring-10",
    "control_percent": "20",
}


@pytest.fixture
def users(app):
    """The app; each role's user is made when first logged in (hashing a password takes a moment).

    Central knows stores S001 and S002 by the enrollment tokens issued for their PCs.
    """
    app.config["TEST_USERS"] = set()
    for store in ("S001", "S002"):
        token_for(app, store)
    return app


def _as(app, role):
    if role not in app.config["TEST_USERS"]:
        create_user(app, role, role=role, stores=("S001",) if role == "store_manager" else ())
        app.config["TEST_USERS"].add(role)
    client = app.test_client()
    assert login(client, role).status_code == 302
    return client


def _audits(app, action):
    return [(a.actor, a.subject, a.detail) for a in table_rows(app, AuditLog) if a.action == action]


def test_marketing_creates_a_campaign_and_a_trigger_pauses_resumes_and_ends_them(users):  # both databases
    client = _as(users, "marketing")
    listing = client.get("/console/campaigns").get_data(as_text=True)
    assert 'id="new-trigger"' in listing and 'id="new-coupon-campaign"' in listing
    assert client.get("/console/campaigns/coupons/new").status_code == 200

    created = post_form(client, "/console/campaigns/coupons/new", COUPON)
    assert created.status_code == 302, created.get_data(as_text=True)
    (campaign,) = table_rows(users, CouponCampaign)
    assert created.headers["Location"].endswith(f"/console/campaigns/coupons/{campaign.id}")
    # Typed in the chain's local time (UTC+8 in the tests' configuration).
    assert campaign.valid_from == START.replace(hour=0) - timedelta(hours=8)
    assert (
        campaign.stores == ["S001", "S002"] and campaign.max_redemptions == 500 and campaign.created_by == "marketing"
    )
    assert [(a, s) for a, s, _ in _audits(users, "coupons.create")] == [("marketing", "spring-10")]

    form = client.get("/console/campaigns/triggers/new?kind=birthday").get_data(as_text=True)
    assert 'name="param_days_before"' in form and '<option value="spring-10"' in form
    declared = post_form(client, "/console/campaigns/triggers/new", TRIGGER)
    assert declared.status_code == 302, declared.get_data(as_text=True)
    (trigger,) = table_rows(users, Trigger)
    assert (trigger.kind, trigger.params, trigger.action_params) == (
        "birthday",
        {"channel": "sms", "days_before": 5},
        {"campaign": "spring-10"},
    )
    assert trigger.control_percent == 20.0 and trigger.enabled and trigger.created_by == "marketing"
    ((actor, subject, detail),) = _audits(users, "trigger.declare")
    assert (actor, subject, detail["via"], detail["does"]) == (
        "marketing",
        "trigger:birthday-spring",
        "console",
        "coupon",
    )
    assert (detail["channel"], detail["purpose"]) == ("sms", "marketing")  # whose consent it reaches on
    service = post_form(
        client, "/console/campaigns/triggers/new", {**TRIGGER, "name": "bday-svc", "purpose": "service"}
    )
    assert service.status_code == 400
    assert "“服务”同意只用于跟进投诉，且不能发放优惠券" in service.get_data(as_text=True)
    listing = client.get("/console/campaigns").get_data(as_text=True)
    assert 'data-trigger="birthday-spring"' in listing and 'data-campaign="spring-10"' in listing
    client.set_cookie("cdp-lang", "en")
    english = client.get("/console/campaigns").get_data(as_text=True).split('data-trigger="birthday-spring"', 1)[1]
    assert "<td>Issue a coupon</td>" in english.split("</tr>", 1)[0]  # the action, not a count of coupons
    client.set_cookie("cdp-lang", "zh")

    assert post_form(client, f"/console/campaigns/triggers/{trigger.id}/pause", {}).status_code == 302
    assert not table_rows(users, Trigger)[0].enabled
    assert "/resume" in client.get(f"/console/campaigns/triggers/{trigger.id}").get_data(as_text=True)
    assert post_form(client, f"/console/campaigns/triggers/{trigger.id}/resume", {}).status_code == 302
    assert table_rows(users, Trigger)[0].enabled
    assert [s for _, s, _ in _audits(users, "trigger.pause") + _audits(users, "trigger.resume")] == [
        f"trigger:{trigger.id}"
    ] * 2

    assert post_form(client, f"/console/campaigns/coupons/{campaign.id}/end", {}).status_code == 302
    assert table_rows(users, CouponCampaign)[0].valid_to == START
    page = client.get(f"/console/campaigns/coupons/{campaign.id}").get_data(as_text=True)
    assert 'id="ended"' in page and 'id="end"' not in page
    assert [(a, s) for a, s, _ in _audits(users, "coupons.end")] == [("marketing", "spring-10")]
    # An ended campaign is no longer offered to a new trigger, and the domain refuses it by name.
    users.config["CLOCK"].advance(seconds=1)
    refused = post_form(client, "/console/campaigns/triggers/new", {**TRIGGER, "name": "late"})
    assert refused.status_code == 400
    assert "这个优惠券活动已结束，请选择进行中的活动。" in refused.get_data(as_text=True)


def test_ending_a_campaign_before_it_starts_ends_it_then_and_never_shows_an_end_before_its_start(users):  # both
    client = _as(users, "marketing")
    later = {**COUPON, "valid_from": "2026-12-04T00:00", "valid_to": "2026-12-31T23:59"}
    assert post_form(client, "/console/campaigns/coupons/new", later).status_code == 302
    (campaign,) = table_rows(users, CouponCampaign)
    assert post_form(client, f"/console/campaigns/coupons/{campaign.id}/end", {}).status_code == 302
    (ended,) = table_rows(users, CouponCampaign)
    assert ended.valid_from == ended.valid_to == START  # over from now, its window empty: no code is ever valid
    ((_, _, detail),) = _audits(users, "coupons.end")
    assert detail["valid_from"] == "2026-12-03T16:00:00.000Z"  # the start it was to have
    ended_at = '<time datetime="2026-11-23T02:00:00Z">2026-11-23 10:00:00 UTC+08:00</time>'
    for page in (f"/console/campaigns/coupons/{campaign.id}", "/console/campaigns"):
        html = client.get(page).get_data(as_text=True)
        assert "2026-12-04" not in html and f"<td>开始前已结束（{ended_at}）</td>" in html, page
    client.set_cookie("cdp-lang", "en")
    html = client.get(f"/console/campaigns/coupons/{campaign.id}").get_data(as_text=True)
    assert f"<td>Ended before it started ({ended_at})</td>" in html and 'id="ended"' in html
    # A campaign ended so before this behaviour kept its later start: shown the same way.
    with central_db.session_factory(users)() as db:
        db.execute(update(CouponCampaign).values(valid_from=START + timedelta(days=11)))
        db.commit()
    html = client.get("/console/campaigns").get_data(as_text=True)
    assert f"<td>Ended before it started ({ended_at})</td>" in html and "2026-12-04" not in html


def test_a_campaign_stored_with_its_end_before_its_start_reads_as_ended_flagged_and_issues_nothing(users):  # both
    """A row saved before an end had to follow its start, inserted as such: its end is still to come."""
    start, end = START + timedelta(days=20), START + timedelta(days=10)
    row = {"value": 5, "max_redemptions": 10, "redeemed": 0, "offline_budget": 1, "stores": None}
    with central_db.session_factory(users)() as db:
        db.execute(
            CouponCampaign.__table__.insert().values(
                name="old-inverted", valid_from=start, valid_to=end, created_at=START, created_by="legacy", **row
            )
        )
        db.commit()
    (campaign,) = table_rows(users, CouponCampaign)
    admin, client = _as(users, "admin"), _as(users, "marketing")
    shown = admin.get(f"/api/v1/coupons/campaigns/{campaign.id}").get_json()
    # As stored (nothing rewritten), and flagged: no code of it is valid at any moment.
    assert (shown["valid_from"], shown["valid_to"]) == ("2026-12-13T02:00:00.000Z", "2026-12-03T02:00:00.000Z")
    assert shown["ended_before_start"] is True
    listed = admin.get("/api/v1/coupons/campaigns").get_json()["campaigns"]
    assert [c["ended_before_start"] for c in listed] == [True]
    claimed = admin.post(f"/api/v1/coupons/campaigns/{campaign.id}/codes", json={"member_id": "M1"})
    assert claimed.status_code == 400 and "ended at 2026-12-03" in claimed.get_data(as_text=True)
    page = client.get(f"/console/campaigns/coupons/{campaign.id}").get_data(as_text=True)
    ended_at = '<time datetime="2026-12-03T02:00:00Z">2026-12-03 10:00:00 UTC+08:00</time>'
    assert f"<td>开始前已结束（{ended_at}）</td>" in page and "2026-12-13" not in page
    assert 'id="ended"' in page and 'id="end"' not in page  # over, so no "end now" either
    form = client.get(TRIGGERS).get_data(as_text=True)
    assert 'value="old-inverted"' not in form  # a trigger cannot be pointed at it
    with central_db.engine_for(users).connect() as conn:
        found = actions.coupon_campaign(conn, "old-inverted", START)
    assert (found.id, found.reason) == (None, "campaign_ended")
    assert table_rows(users, CouponCampaign)[0].valid_from == start  # still as stored


COUPONS, TRIGGERS = "/console/campaigns/coupons/new", "/console/campaigns/triggers/new"


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("path", "form", "field", "words", "reason"),
    [
        (COUPONS, {**COUPON, "value": "ten"}, "面额（元）", "须为正数金额", "value 'ten' is not an amount such as"),
        (
            COUPONS,
            {**COUPON, "valid_to": "2026-11-01T00:00"},
            "结束时间",
            "须晚于开始时间。",
            "valid_to must be after valid_from",
        ),
        (
            COUPONS,
            {**COUPON, "valid_from": "soon"},
            "开始时间",
            "不是有效的时间。",
            "valid_from must be an ISO 8601 time such as 2026-12-01T00:00+08:00",
        ),
        (COUPONS, {**COUPON, "max_redemptions": "x"}, "核销上限", "须为整数。", "max_redemptions must be an integer"),
        (
            COUPONS,
            {**COUPON, "max_redemptions": "9" * 23},
            "核销上限",
            "须在 1 到 10^12 之间。",
            "max_redemptions must be between 1 and 10^12",
        ),
        (
            COUPONS,
            {**COUPON, "value": "99999999999"},
            "面额（元）",
            "须小于 1,000,000,000",
            "must be below 1,000,000,000",
        ),
        (COUPONS, {**COUPON, "stores": "S001 S#1"}, "门店", "门店编号须为 1-32 个字符", "store id 'S#1'"),
        (COUPONS, {**COUPON, "stores": "S001, S999"}, "门店", "系统中没有这个门店", "store 'S999' is not one"),
        (
            COUPONS,
            {**COUPON, "valid_from": "2020-01-01T00:00", "valid_to": "2020-02-01T00:00"},
            "结束时间",
            "有效期已经结束",
            "valid_to 2020-01-31T16:00:00.000Z is not after now",
        ),
        (COUPONS, {**COUPON, "name": "春季 券"}, "名称", "不含空格", "must be 1-128 characters"),
        (
            TRIGGERS,
            {**TRIGGER, "param_days_before": "99"},
            "提前天数",
            "须为 0 到 31 之间的整数。",
            "days_before: expected a whole number from 0 to 31",
        ),
        (
            TRIGGERS,
            {**TRIGGER, "campaign": ""},
            "优惠券活动",
            "请选择一个进行中的优惠券活动。",
            "action coupon: coupon needs campaign = the name of a coupon campaign",
        ),
        (
            TRIGGERS,
            {**TRIGGER, "campaign": "autumn"},
            "优惠券活动",
            "没有这个优惠券活动。",
            "no coupon campaign called 'autumn'",
        ),
        (TRIGGERS, {**TRIGGER, "name": "Birthday!"}, "名称", "须为 1-64 个小写字母", "name: 1-64 lower-case letters"),
        (TRIGGERS, {**TRIGGER, "channel": "fax"}, "渠道", "没有这个渠道。", "channel: the marketing channel"),
        (
            TRIGGERS,
            {**TRIGGER, "control_percent": "150"},
            "对照组比例",
            "须为 0 到 100 之间的百分比。",
            "control_percent: expected a percentage from 0 to 100",
        ),
    ],
)
def test_refused_input_names_the_field_and_why_in_the_page_language_with_the_domain_reason(
    users, path, form, field, words, reason
):
    if "triggers" in path:
        coupon_campaign(users, [], name="spring-10")
    client = _as(users, "admin")
    refused = post_form(client, path, form)
    page = refused.get_data(as_text=True)
    assert refused.status_code == 400
    problem = page.split('id="problem">', 1)[1].split("</p>", 1)[0]
    assert f"<strong>{field}</strong>" in problem and words in problem, problem
    # Chinese only: the API's English stays out, the reason code stays, small and labelled.
    assert str(escape(reason)) not in problem, problem
    assert '<span class="reason">原因代码 <code>' in problem and '<span class="hint">' not in problem, problem
    assert f'value="{escape(form["name"])}"' in page  # what the user typed comes back
    assert table_rows(users, Trigger) == [] and all(c.name != form["name"] for c in table_rows(users, CouponCampaign))


@SQLITE_ONLY
def test_a_refusal_reads_in_english_on_request(users):
    client = _as(users, "marketing")
    assert post_form(client, "/console/language", {"lang": "en", "next": "/console/"}).status_code == 302
    page = post_form(client, COUPONS, {**COUPON, "valid_to": "2026-11-01T00:00"}).get_data(as_text=True)
    problem = page.split('id="problem">', 1)[1].split("</p>", 1)[0]
    assert "<strong>Ends</strong>" in problem and "Must be after the start." in problem, problem
    assert "valid_to must be after valid_from" in problem and "Reason code <code>bad_period</code>" in problem
    assert not re.search("[\u4e00-\u9fff]", problem), problem
    page = post_form(client, COUPONS, {**COUPON, "stores": "S999"}).get_data(as_text=True)
    problem = page.split('id="problem">', 1)[1].split("</p>", 1)[0]
    assert "<strong>Store</strong>" in problem and "Central knows no such store" in problem, problem
    page = post_form(
        client, COUPONS, {**COUPON, "valid_from": "2026-11-01T00:00", "valid_to": "2026-11-22T00:00"}
    ).get_data(as_text=True)
    problem = page.split('id="problem">', 1)[1].split("</p>", 1)[0]
    assert "<strong>Ends</strong>" in problem and "already over" in problem, problem
    assert not re.search("[\u4e00-\u9fff]", problem), problem


def test_every_reason_the_domain_gives_has_words_in_the_console():
    reasons = set()
    for module in (coupons, declaration, actions, campaign_forms):
        source = inspect.getsource(module)
        # The reason is the second argument; the first is one string literal, maybe an f-string, or str(exc).
        first = r'(?:f?"(?:[^"\\]|\\.)*"|str\(exc\))'
        reasons |= set(re.findall(rf'(?:CouponError|TriggerError)\(\s*{first},\s*"([a-z_]+)"', source))
        reasons |= set(re.findall(r'CampaignFound\(\s*None, "([a-z_]+)"', source))
    assert {"bad_amount", "bad_param", "unknown_campaign", "campaign_ended", "not_integer"} <= reasons
    texts = campaign_forms.PROBLEM_TEXTS
    missing = {r for r in reasons if r not in texts and f"coupon_{r}" not in texts and f"trigger_{r}" not in texts}
    assert missing == set()


@SQLITE_ONLY
def test_the_trigger_form_asks_for_each_kinds_parameters(users):
    client = _as(users, "marketing")
    for kind, field in [
        ("second_item", "param_unless_bought_again"),
        ("win_back", "param_tag"),
        ("complaint", "param_within_hours"),
    ]:
        assert f'name="{field}"' in client.get(f"/console/campaigns/triggers/new?kind={kind}").get_data(as_text=True)
    form = {**TRIGGER, "name": "second", "kind": "second_item", "action": "export", "campaign": ""}
    form |= {"param_hours": "48", "param_grace_hours": "24"}  # the checkbox left unticked: false
    assert post_form(client, "/console/campaigns/triggers/new", form).status_code == 302
    (trigger,) = table_rows(users, Trigger)
    assert trigger.params == {"channel": "sms", "hours": 48, "grace_hours": 24, "unless_bought_again": False}
    assert trigger.action == "export" and trigger.action_params == {}


@SQLITE_ONLY
def test_the_win_back_trigger_names_the_tags_it_follows_in_the_pages_language(users):
    client = _as(users, "marketing")
    for lang, lifecycle, tier in (("zh", "生命周期", "价值层级"), ("en", "Lifecycle", "Value tier")):
        client.set_cookie("cdp-lang", lang)
        form = client.get("/console/campaigns/triggers/new?kind=win_back").get_data(as_text=True)
        choices = form.split('name="param_tag"', 1)[1].split("</select>", 1)[0]
        # In words, with the tag's key after them, as the customer page and the segment rules name it.
        assert f'<option value="lifecycle" selected>{lifecycle} (lifecycle)</option>' in choices, choices
        assert f'<option value="value_tier">{tier} (value_tier)</option>' in choices, choices


@SQLITE_ONLY
def test_other_roles_may_not_use_the_forms_and_every_post_needs_the_token(users):
    trigger_id = declare_trigger(users)
    campaign_id = coupon_campaign(users, []).id
    posts = {
        "/console/campaigns/coupons/new": COUPON,
        "/console/campaigns/triggers/new": TRIGGER,
        f"/console/campaigns/triggers/{trigger_id}/pause": {},
        f"/console/campaigns/coupons/{campaign_id}/end": {},
    }
    for role in set(ROLES) - EDITORS:
        client = _as(users, role)
        assert client.get("/console/campaigns/triggers/new").status_code == 403
        for path, form in posts.items():
            assert post_form(client, path, form).status_code == 403, (role, path)
    finance = _as(users, "finance").get("/console/campaigns").get_data(as_text=True)
    assert "new-trigger" not in finance and "/pause" not in finance
    marketing = _as(users, "marketing")
    for path, form in posts.items():
        assert marketing.post(path, data=form).status_code == 400, path  # no CSRF token
    assert table_rows(users, Trigger)[0].enabled
    assert [c.name for c in table_rows(users, CouponCampaign)] == ["double-11"]


@SQLITE_ONLY
def test_hostile_text_in_the_forms_comes_back_inert(users):
    client = _as(users, "marketing")
    for path, form in [
        ("/console/campaigns/coupons/new", {**COUPON, "name": XSS, "stores": XSS}),
        ("/console/campaigns/triggers/new", {**TRIGGER, "name": XSS, "campaign": XSS, "param_days_before": XSS}),
    ]:
        page = post_form(client, path, form).get_data(as_text=True)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<script>alert" not in page and "<img src=x" not in page
    assert table_rows(users, Trigger) == [] and table_rows(users, CouponCampaign) == []


@SQLITE_ONLY
def test_the_forms_speak_english_on_request(users):
    client = _as(users, "marketing")
    assert "新建触发规则" in client.get("/console/campaigns/triggers/new").get_data(as_text=True)
    assert post_form(client, "/console/language", {"lang": "en", "next": "/console/"}).status_code == 302
    trigger = client.get("/console/campaigns/triggers/new?kind=second_item").get_data(as_text=True)
    assert "New trigger" in trigger and "Hours after the first purchase" in trigger and "新建" not in trigger
    coupon = client.get("/console/campaigns/coupons/new").get_data(as_text=True)
    assert "New coupon campaign" in coupon and "stores' local time (UTC+08:00)" in coupon.replace("&#39;", "'")
