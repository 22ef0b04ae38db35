"""The customer pages: search, the 360 view, notes and complaints, split and removal, review, paging, masking."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, select

from central import db as central_db
from central.campaigns import coupons
from central.console import amount, local_time
from central.customers import tagging
from central.identity.models import Customer, Identifier, LedgerEntry, ReviewItem
from central.models import AuditLog
from tests.central.sources_support import new_key, post_events, source_event, stored_events, survivor
from tests.central.support import create_user, login, post_form, table_rows
from tests.central.test_console_roles import MOBILE, XSS

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
PHONE = "13812345678"
OTHER_PHONE = "13912345679"
CONFIRMED = {"confirm": "yes"}  # what the page asking to confirm an action that cannot be undone sends


def _accepted(app, client, events):
    reply = post_events(client, new_key(app), events).get_json()
    assert reply["accepted"] == [e["event_id"] for e in events], reply
    return reply


def _id_of(app, kind, value):
    with central_db.session_factory(app)() as db:
        return db.scalar(
            select(Identifier.customer_id).where(Identifier.kind == kind, Identifier.value.like(f"%{value}"))
        )


def _as(app, role):
    client = app.test_client()
    assert login(client, role).status_code == 302
    return client


def _audited(app, action):
    return [(a.actor, a.subject) for a in table_rows(app, AuditLog) if a.action == action]


@pytest.fixture
def member(app, client, agent):
    """A member who signed up online, bought in store and online, visited, redeemed a coupon, withdrew SMS consent."""
    agent.send(client, [agent.receipt("R-1001", "12.50", phone=PHONE, card="VIP00421234")])
    ids = {"phone": PHONE, "member_id": "M0042"}
    _accepted(
        app,
        client,
        [
            source_event("s1", "member.signup", identifiers=ids, name="张三丰", birthday="1990-03-05", city="上海"),
            source_event("o1", "order.online", identifiers=ids, payload={"order_no": "WX-77", "total": "59.00"}),
            source_event(
                "c1",
                "consent.given",
                identifiers=ids,
                payload={"purpose": "marketing", "channel": "sms", "notice_version": "2026-01", "source": "app"},
            ),
            {
                **source_event(
                    "c2", "consent.withdrawn", identifiers=ids, payload={"purpose": "marketing", "channel": "sms"}
                ),
                "observed_at": "2026-11-21T08:00:00+08:00",
            },
            source_event(
                "l1",
                "consent.given",
                identifiers=ids,
                payload={"purpose": "location", "source": "app", "notice_version": "2026-01"},
            ),
        ],
    )
    with central_db.session_factory(app)() as db:
        now = app.config["CLOCK"]()
        secret = app.config["SECRET_KEY"]
        coupons.create_campaign(
            db,
            name="double11",
            value=Decimal("10.00"),
            valid_from=now - timedelta(days=1),
            valid_to=now + timedelta(days=30),
            max_redemptions=100,
            offline_budget=5,
            stores=None,
            now=now,
            actor="test",
            secret=secret,
        )
        issued = coupons.issue_for_member(db, "double11", "M0042", now=now, actor="test", secret=secret)
        db.commit()
    visit = {
        "medium": "ble",
        "started_at": "2026-11-22T09:00:00+08:00",
        "ended_at": "2026-11-22T09:25:00+08:00",
        "dwell_s": 1500.0,
        "member_id": "M0042",
    }
    redemption = {"code": issued.code, "result": "accepted", "register": "R1"}
    reply = agent.send(client, [agent.event("presence.visit", visit), agent.event("scan.coupon", redemption)])
    assert not reply["rejected"]
    for role in ("admin", "marketing", "customer_service", "finance"):
        create_user(app, role, role=role)
    return _id_of(app, "phone", PHONE)


def test_a_refund_reads_as_one_and_a_coupon_value_is_not_in_the_amounts(app, client, agent, member):
    """Finance read a -20.00 receipt labelled "store purchase", and a coupon's face value in the amount
    column beside purchases, as if paid."""
    agent.send(client, [agent.receipt("R-1002", "-20.00", phone=PHONE)])
    html = _as(app, "admin").get(f"/console/customers/{member}").get_data(as_text=True)
    rows = re.findall(r'<tr class="entry ([\w-]+)">(.*?)</tr>', html, re.S)
    amounts = {kind: re.findall(r'<td class="num">([^<]*)</td>', row) for kind, row in rows}
    assert "-20.00" in amounts["pos-refund"] and "12.50" in amounts["pos-receipt"]
    assert amounts["coupon-issued"] == [""] and amounts["coupon-redeemed"] == [""]
    coupon_row = dict(rows)["coupon-issued"]
    assert "面值" in coupon_row and "10.00" in coupon_row


def test_the_360_view_shows_every_section_and_is_audited(app, member):
    html = _as(app, "admin").get(f"/console/customers/{member}").get_data(as_text=True)
    identifiers = html[html.index('id="identifiers"') : html.index('id="golden"')]
    assert "138****5678" in identifiers and "****1234" in identifiers  # masked even for admins
    golden = html[html.index('id="golden"') : html.index('id="tags"')]
    assert "张三丰" in golden and "上海" in golden and "来源 miniprogram" in golden
    consents = html[html.index('id="consents"') : html.index('id="timeline"')]
    assert "已撤回" in consents and "2026-01" in html  # the withdrawal holds; the notice version is kept
    timeline = html[html.index('id="timeline"') : html.index("</table>", html.index('id="timeline"'))]
    for shown in (
        "R-1001",
        "12.50",
        "WX-77",
        "59.00",
        "double11",
        "门店购买",
        "线上订单",
        "优惠券发放",
        "优惠券核销",
        "到店",
    ):
        assert shown in timeline, shown
    assert 'id="ledger"' in html and 'id="review-items"' in html
    assert _audited(app, "customers.view") == [("admin", f"customer:{member}")]
    english = _as(app, "admin")
    english.set_cookie("cdp-lang", "en")
    html = english.get(f"/console/customers/{member}").get_data(as_text=True)
    for label in ("Timeline", "Merge ledger", "Consents", "Withdrawn", "Online order", "Coupon redeemed"):
        assert label in html, label


@SQLITE_ONLY
def test_the_360_view_names_payments_channels_and_sources_in_the_pages_language(app, client, agent, member):
    paid = {"receipt_no": "R-2002", "total": "8.00", "items": [], "payment_method": "unionpay_qr"}
    agent.send(client, [agent.event("pos.receipt", {**paid, "member": {"phone": PHONE}})])
    order = {"order_no": "MP-9", "total": "5.00", "channel": "mini_program"}
    _accepted(app, client, [source_event("o2", "order.online", identifiers={"phone": PHONE}, payload=order)])
    page = f"/console/customers/{member}"
    complaint = {"kind": "complaint", "category": "refund", "text": "退款未到账"}
    assert post_form(_as(app, "customer_service"), f"{page}/notes", complaint).status_code == 302  # channel console
    with central_db.engine_for(app).begin() as conn:
        tagging.recompute(conn, app.config["CENTRAL"], app.config["CLOCK"]())  # the preferred store, from receipts
    admin = _as(app, "admin")

    def sections(html):
        cut = {n: html.index(f'id="{n}"') for n in ("golden", "tags", "consents", "timeline", "ledger")}
        return (
            html[cut["golden"] : cut["tags"]],
            html[cut["consents"] : cut["timeline"]],
            html[cut["timeline"] : html.index("</table>", cut["timeline"])],
        )

    golden, consents, timeline = sections(admin.get(page).get_data(as_text=True))
    assert "支付方式</span> 银联二维码" in timeline and "渠道</span> 小程序" in timeline, timeline
    assert "渠道</span> 控制台" in timeline and "方式</span> BLE" in timeline
    for code in ("unionpay_qr", "mini_program", "console", "ble<"):
        assert code not in timeline, code
    assert "<td>来源 miniprogram</td>" in golden and "<td>门店小票统计</td>" in golden and "source:" not in golden
    assert "<td>App</td>" in consents and ">app<" not in consents
    assert "<td>营销</td><td>短信</td>" in consents.split('id="consent-history"', 1)[1]  # every decision, too
    admin.set_cookie("cdp-lang", "en")
    golden, consents, timeline = sections(admin.get(page).get_data(as_text=True))
    assert "Payment</span> UnionPay QR" in timeline and "Channel</span> Mini-program" in timeline, timeline
    assert "Channel</span> Console" in timeline
    assert "<td>Source miniprogram</td>" in golden and "<td>Store receipts</td>" in golden
    assert "<td>Marketing</td><td>SMS</td>" in consents.split('id="consent-history"', 1)[1]


@SQLITE_ONLY
def test_a_receipt_paid_with_several_tenders_shows_mixed_tenders_not_its_first(app, client, agent, member):
    tenders = [{"method": "wechat", "amount": "20.00"}, {"method": "cash", "amount": "16.00"}]
    paid = {"receipt_no": "R-3003", "total": "36.00", "items": [], "payment_method": "wechat", "tenders": tenders}
    agent.send(client, [agent.event("pos.receipt", {**paid, "member": {"phone": PHONE}})])
    admin = _as(app, "admin")
    html = admin.get(f"/console/customers/{member}").get_data(as_text=True)
    assert "支付方式</span> 组合支付" in html and "支付方式</span> 微信支付" not in html
    admin.set_cookie("cdp-lang", "en")
    assert "Payment</span> Mixed tenders" in admin.get(f"/console/customers/{member}").get_data(as_text=True)


def test_search_by_each_kind_finds_the_member_and_is_audited(app, member):
    client = _as(app, "marketing")
    for kind, query in (
        ("phone", "138 1234 5678"),
        ("member_card", "VIP00421234"),
        ("member_id", "M0042"),
        ("name", "张三丰"),
    ):
        html = client.get(f"/console/customers?kind={kind}&q={query}").get_data(as_text=True)
        assert f"/console/customers/{member}" in html, kind
        assert "张*" in html and "张三丰" not in html.replace('value="张三丰"', "")
    subjects = [s for _, s in _audited(app, "customers.search")]
    assert subjects == ["phone:138****5678", "member_card:*******1234", "member_id:*0042", "name:张*"]
    # Whom each search showed, not just how many: "whose data did this user see" has an answer.
    searches = [a for a in table_rows(app, AuditLog) if a.action == "customers.search"]
    assert [a.detail["customers"] for a in searches] == [[member]] * 4


@SQLITE_ONLY
def test_a_note_and_a_complaint_from_customer_service_and_the_high_care_tag_that_follows(app, member):
    service = _as(app, "customer_service")
    page = f"/console/customers/{member}"
    assert 'id="recent"' not in service.get("/console/customers").get_data(as_text=True)  # one customer at a time
    response = post_form(service, f"{page}/notes", {"kind": "note", "text": "客户来电询问积分"})
    assert response.status_code == 302 and "done=note" in response.headers["Location"]
    response = post_form(
        service, f"{page}/notes", {"kind": "complaint", "category": "refund", "text": f"退款未到账，回电 {OTHER_PHONE}"}
    )
    assert response.status_code == 302 and "done=complaint" in response.headers["Location"]
    (complaint,) = [e for e in stored_events(app) if e.kind == "service.complaint"]
    assert complaint.device_id == "source:console" and complaint.customer_id == member
    assert complaint.payload == {
        "category": "refund",
        "channel": "console",
        "text": f"退款未到账，回电 {OTHER_PHONE}",
        "operator": "customer_service",
    }
    with central_db.engine_for(app).begin() as conn:
        tagging.recompute(conn, app.config["CENTRAL"], app.config["CLOCK"]())
    html = service.get(page).get_data(as_text=True)
    assert "客户来电询问积分" in html and '重点关怀 <code class="key">service.high_care</code></td><td>是</td>' in html
    assert "投诉次数</span> 1" in html and "complaints=1" not in html
    assert "139****5679" in html and not MOBILE.search(html)
    assert OTHER_PHONE in _as(app, "admin").get(page).get_data(as_text=True)
    assert _audited(app, "customers.note.add") == [("customer_service", f"customer:{member}")]
    assert _audited(app, "customers.complaint.add") == [("customer_service", f"customer:{member}")]
    # Empty notes are refused; marketing and finance may not write at all.
    assert "problem=empty" in post_form(service, f"{page}/notes", {"kind": "note", "text": "  "}).headers["Location"]
    for role in ("marketing", "finance"):
        assert post_form(_as(app, role), f"{page}/notes", {"kind": "note", "text": "x"}).status_code == 403


@SQLITE_ONLY
def test_an_admin_splits_a_merge_and_removes_an_identifier(app, client, member):
    email = {"email": "zsf@example.com"}
    _accepted(
        app,
        client,
        [
            source_event("m1", "member.login", identifiers={"phone": OTHER_PHONE}),
            source_event("m2", "member.login", identifiers={"phone": OTHER_PHONE, **email}),
            source_event("m3", "member.login", identifiers={"phone": PHONE, **email}),
        ],
    )
    live = survivor(app, member)
    assert survivor(app, _id_of(app, "phone", OTHER_PHONE)) == live
    merge = [r for r in table_rows(app, LedgerEntry) if r.action == "merge"][-1]  # the email brought them together
    admin = _as(app, "admin")
    html = admin.get(f"/console/customers/{live}").get_data(as_text=True)
    assert f'name="ledger_id" value="{merge.id}"' in html
    ledger = html.split('id="ledger"', 1)[1].split("</table>", 1)[0]
    # In words, with the identifier named by its masked value: 合并 共用标识 电子邮件 z**@example.com.
    assert "<td>合并</td><td>共用标识</td>" in ledger and "<td>关联</td><td>同一事件</td>" in ledger
    assert '<span class="kind">电子邮件</span> ' in ledger and "zsf@example.com" not in ledger
    assert '<span class="kind">手机号</span> 139****5679' in ledger and not MOBILE.search(ledger)
    for role in ("marketing", "customer_service"):
        refused = post_form(_as(app, role), f"/console/customers/{live}/split", {"ledger_id": str(merge.id)})
        assert refused.status_code == 403
    gone = admin.get(f"/console/customers/{merge.other_customer_id}").get_data(as_text=True)
    assert 'id="merged"' in gone and 'name="ledger_id"' not in gone and 'id="note-form"' not in gone
    response = post_form(admin, f"/console/customers/{live}/split", {"ledger_id": str(merge.id), **CONFIRMED})
    assert "done=split" in response.headers["Location"]
    assert survivor(app, _id_of(app, "phone", PHONE)) != survivor(app, _id_of(app, "phone", OTHER_PHONE))
    assert [s for _, s in _audited(app, "identity.split")] == [f"customer:{live}"]

    holder = _id_of(app, "member_card", "VIP00421234")
    with central_db.session_factory(app)() as db:
        card = db.scalar(select(Identifier.id).where(Identifier.kind == "member_card"))
    form = {"identifier_id": str(card), **CONFIRMED}
    assert post_form(_as(app, "marketing"), f"/console/customers/{holder}/identifiers/remove", form).status_code == 403
    assert post_form(admin, f"/console/customers/{holder + 1000}/identifiers/remove", form).status_code == 404
    assert (
        "done=removed" in post_form(admin, f"/console/customers/{holder}/identifiers/remove", form).headers["Location"]
    )
    (removed,) = [i for i in table_rows(app, Identifier) if i.id == card]
    assert removed.state == "removed" and removed.customer_id is None
    assert _audited(app, "identity.identifier.remove") == [("admin", "member_card:*******1234")]
    # With nothing left to name the customer by, a complaint cannot be filed (and nothing is stored).
    for ident in [i for i in table_rows(app, Identifier) if i.customer_id == holder]:
        form = {"identifier_id": str(ident.id), **CONFIRMED}
        post_form(admin, f"/console/customers/{holder}/identifiers/remove", form)
    refused = post_form(admin, f"/console/customers/{holder}/notes", {"kind": "complaint", "text": "没有收到货"})
    assert "problem=no_identifier" in refused.headers["Location"]
    assert not [e for e in stored_events(app) if e.kind == "service.complaint"]


def _confirmation(response):
    """The page asking to confirm: its form's action and fields."""
    html = response.get_data(as_text=True)
    form = html.split('id="confirm"', 1)[1].split("</form>", 1)[0]
    action = re.search(r'action="([^"]+)"', form).group(1)
    return html, action, dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))


@SQLITE_ONLY
def test_split_and_remove_identifier_change_nothing_until_confirmed(app, client, member):
    email = {"email": "zsf@example.com"}
    _accepted(
        app,
        client,
        [
            source_event("m1", "member.login", identifiers={"phone": OTHER_PHONE, **email}),
            source_event("m2", "member.login", identifiers={"phone": PHONE, **email}),
        ],
    )
    live = survivor(app, member)
    merge = [r for r in table_rows(app, LedgerEntry) if r.action == "merge"][-1]
    admin = _as(app, "admin")
    asked = post_form(admin, f"/console/customers/{live}/split", {"ledger_id": str(merge.id)})
    html, action, fields = _confirmation(asked)
    assert asked.status_code == 200 and "这个操作无法撤销。" in html and f"合并记录 #{merge.id}" in html
    assert survivor(app, _id_of(app, "phone", OTHER_PHONE)) == live and _audited(app, "identity.split") == []
    assert action == f"/console/customers/{live}/split" and fields["ledger_id"] == str(merge.id)
    assert fields["confirm"] == "yes" and fields["csrf_token"]
    assert f'href="/console/customers/{live}"' in html  # cancel: back to the customer
    done = admin.post(action, data=fields)
    assert "done=split" in done.headers["Location"]
    assert survivor(app, _id_of(app, "phone", PHONE)) != survivor(app, _id_of(app, "phone", OTHER_PHONE))

    holder = _id_of(app, "member_card", "VIP00421234")
    with central_db.session_factory(app)() as db:
        card = db.scalar(select(Identifier.id).where(Identifier.kind == "member_card"))
    asked = post_form(admin, f"/console/customers/{holder}/identifiers/remove", {"identifier_id": str(card)})
    html, action, fields = _confirmation(asked)
    assert asked.status_code == 200 and "这个操作无法撤销。" in html
    assert "会员卡号 *******1234" in html and "VIP00421234" not in html  # masked, as on the customer's page
    assert [i.state for i in table_rows(app, Identifier) if i.id == card] != ["removed"]
    assert _audited(app, "identity.identifier.remove") == []
    admin.set_cookie("cdp-lang", "en")
    english = post_form(admin, f"/console/customers/{holder}/identifiers/remove", {"identifier_id": str(card)})
    assert "This cannot be undone." in english.get_data(as_text=True)
    assert "done=removed" in admin.post(action, data=fields).headers["Location"]
    assert [i.state for i in table_rows(app, Identifier) if i.id == card] == ["removed"]


@SQLITE_ONLY
def test_weak_match_suggestions_are_accepted_or_rejected_from_the_review_queue(app, client, member):
    twins = {"name": "王芳", "birthday": "1990-03-05"}
    _accepted(
        app,
        client,
        [
            source_event("w1", "member.signup", identifiers={"phone": "13700000001"}, **twins),
            source_event("w2", "member.signup", identifiers={"phone": "13700000002"}, **twins),
            source_event(
                "w3", "member.signup", identifiers={"phone": "13700000003"}, name="王芳", birthday="1990-03-05"
            ),
        ],
    )
    items = [i for i in table_rows(app, ReviewItem) if i.reason == "weak_match"]
    assert len(items) >= 2
    admin = _as(app, "admin")
    queue = admin.get("/console/customers/review").get_data(as_text=True)
    assert all(f'/console/customers/review/{i.id}"' in queue for i in items) and "弱匹配建议" in queue
    (listed,) = [a for a in table_rows(app, AuditLog) if a.action == "identity.review.list"]
    shown = {c for i in table_rows(app, ReviewItem) for c in (i.customer_id, i.other_customer_id) if c}
    assert listed.detail["customers"] == sorted(shown)  # both sides of every item the queue showed
    for role in ("marketing", "customer_service"):
        assert _as(app, role).get("/console/customers/review").status_code == 403
        assert (
            post_form(_as(app, role), f"/console/customers/review/{items[0].id}", {"decision": "accept"}).status_code
            == 403
        )
    first, second = items[0], items[1]
    on_page = admin.get(f"/console/customers/{first.customer_id}").get_data(as_text=True)
    assert f'/console/customers/review/{first.id}"' in on_page  # suggestions show on the customer too
    done = post_form(
        admin, f"/console/customers/review/{first.id}", {"decision": "accept", "customer": first.customer_id}
    )
    assert done.headers["Location"].startswith(f"/console/customers/{first.customer_id}?done=accept")
    assert survivor(app, first.customer_id) == survivor(app, first.other_customer_id)
    rejected = post_form(admin, f"/console/customers/review/{second.id}", {"decision": "reject"})
    assert rejected.headers["Location"] == "/console/customers/review?done=reject"
    again = post_form(admin, f"/console/customers/review/{second.id}", {"decision": "accept"})
    assert again.headers["Location"] == "/console/customers/review?problem=review_decided"
    statuses = {i.id: (i.status, i.decided_by) for i in table_rows(app, ReviewItem)}
    assert statuses[first.id] == ("accepted", "admin") and statuses[second.id] == ("rejected", "admin")
    assert [s for _, s in _audited(app, "identity.review.accept")] == [f"review:{first.id}"]


def _links(html, anchor):
    match = re.search(rf'id="{anchor}" href="([^"]+)"', html)
    return match.group(1).replace("&amp;", "&") if match else None


def test_keyset_pages_of_customers_and_of_the_timeline(app, client, member):
    _accepted(
        app, client, [source_event(f"n{n}", "member.signup", identifiers={"member_id": f"N{n:03}"}) for n in range(55)]
    )
    orders = [
        {
            **source_event(
                f"t{n}", "order.online", identifiers={"phone": PHONE}, payload={"order_no": f"T{n:03}", "total": "1.00"}
            ),
            "observed_at": f"2026-11-22T{n // 60:02}:{n % 60:02}:00+08:00",
        }
        for n in range(60)
    ]
    _accepted(app, client, orders)
    admin = _as(app, "admin")
    statements: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, *args):
        statements.append((statement, parameters))

    event.listen(central_db.engine_for(app), "before_cursor_execute", record)
    first = admin.get("/console/customers").get_data(as_text=True)
    ids = [int(i) for i in re.findall(r'<tr><td><a href="/console/customers/(\d+)"', first)]
    assert len(ids) == 50 and ids == sorted(ids, reverse=True)
    following = _links(first, "next")
    assert following == f"/console/customers?after={ids[-1]}"
    rest = [
        int(i)
        for i in re.findall(r'<tr><td><a href="/console/customers/(\d+)"', admin.get(following).get_data(as_text=True))
    ]
    with central_db.session_factory(app)() as db:
        live = set(db.scalars(select(Customer.id).where(Customer.merged_into.is_(None))))
    assert set(ids) | set(rest) == live and not set(ids) & set(rest)

    page = admin.get(f"/console/customers/{member}").get_data(as_text=True)
    seen = re.findall(r"T(\d{3})</span>", page)
    assert len(re.findall(r'<tr class="entry ', page)) == 50
    older = _links(page, "older")
    assert older is not None and "before=" in older
    second = admin.get(older).get_data(as_text=True)
    seen += re.findall(r"T(\d{3})</span>", second)
    assert sorted(seen) == [f"{n:03}" for n in range(60)]  # every order once, none twice
    assert "R-1001" in page and "WX-77" in second and _links(second, "older") is None
    event.remove(central_db.engine_for(app), "before_cursor_execute", record)
    # SQLite's compiler writes every LIMIT as "LIMIT ? OFFSET ?"; the offset it is given must be 0.
    skipping = [
        q for q, params in statements if "OFFSET" in q.upper() and not (isinstance(params, tuple) and params[-1] == 0)
    ]
    assert statements and skipping == []
    assert admin.get(f"/console/customers/{member}?before=junk").status_code == 400
    assert admin.get("/console/customers?after=x").status_code == 400
    assert len(_audited(app, "customers.view")) == 2 and len(_audited(app, "customers.list")) == 2


@SQLITE_ONLY
def test_marketing_and_customer_service_see_masked_data_and_stored_xss_is_inert(app, client, member):
    _accepted(
        app,
        client,
        [
            source_event("x1", "member.signup", identifiers={"phone": OTHER_PHONE}, name=XSS[:60], city=XSS[:60]),
            source_event(
                "x3",
                "consent.given",
                identifiers={"phone": OTHER_PHONE},
                payload={"purpose": "marketing", "notice_version": XSS[:32]},
            ),
            source_event(
                "x2",
                "order.online",
                identifiers={"phone": OTHER_PHONE},
                payload={"order_no": XSS[:60], "total": "2.00"},
            ),
        ],
    )
    hostile = _id_of(app, "phone", OTHER_PHONE)
    service = _as(app, "customer_service")
    page = f"/console/customers/{hostile}"
    post_form(service, f"{page}/notes", {"kind": "note", "text": f"{XSS} {PHONE}"})
    post_form(service, f"{page}/notes", {"kind": "complaint", "category": XSS[:60], "text": XSS})
    for role in ("admin", "marketing", "customer_service"):
        client = _as(app, role)
        for url in (
            page,
            f"/console/customers/{member}",
            "/console/customers",
            f"/console/customers?kind=name&q={XSS[:60]}",
        ):
            html = client.get(url).get_data(as_text=True)
            assert "<script>alert" not in html and "<img src=x" not in html, (role, url)
            if role != "admin":
                assert not MOBILE.search(html), (role, url, MOBILE.search(html))
        if role == "admin":
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get(page).get_data(as_text=True)
    masked = _as(app, "marketing").get(f"/console/customers/{member}").get_data(as_text=True)
    assert "张*" in masked and "张三丰" not in masked and "1990-**-**" in masked and "VIP00421234" not in masked


@SQLITE_ONLY
def test_a_postcode_shows_its_area_only_to_roles_that_see_data_masked(app, client):
    """A six-digit postcode narrows a customer to a few streets; its first three digits name the area
    (the city's postal district), as much as marketing needs beside the city and province."""
    signup = source_event(
        "p1", "member.signup", identifiers={"phone": OTHER_PHONE}, name="王五", city="上海", postcode="200031"
    )
    _accepted(app, client, [signup])
    for role in ("admin", "marketing", "customer_service"):
        create_user(app, role, role=role)
    page = f"/console/customers/{_id_of(app, 'phone', OTHER_PHONE)}"
    for role in ("marketing", "customer_service"):
        html = _as(app, role).get(page).get_data(as_text=True)
        assert "200***" in html and "200031" not in html and "上海" in html, role
    assert "200031" in _as(app, "admin").get(page).get_data(as_text=True)


def test_times_are_shown_in_the_chains_local_time_with_its_offset(app, member):
    with central_db.engine_for(app).begin() as conn:
        tagging.recompute(conn, app.config["CENTRAL"], datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    html = _as(app, "admin").get(f"/console/customers/{member}").get_data(as_text=True)
    consents = html[html.index('id="consents"') : html.index('id="timeline"')]
    # The withdrawal was observed at 08:00 in Beijing (00:00 UTC); the tests' chain is at UTC+8.
    assert '<time datetime="2026-11-21T00:00:00Z">2026-11-21 08:00:00 UTC+08:00</time>' in consents
    tags = html[html.index('id="tags"') : html.index('id="consents"')]
    assert "2026-11-23 10:00:00 UTC+08:00</time>" in tags and "Z<" not in tags  # when the tag was computed
    assert " UTC<" not in html and " UTC " not in html


@SQLITE_ONLY
def test_a_chain_west_of_greenwich_sees_its_own_offset(make_app):
    app = make_app(customers__utc_offset_minutes=-210)
    with app.test_request_context():
        shown = local_time(datetime(2026, 11, 21, 2, 0, tzinfo=UTC))
        naive = local_time(datetime(2026, 11, 21, 2, 0))  # stored times are UTC
    assert shown == naive == '<time datetime="2026-11-21T02:00:00Z">2026-11-20 22:30:00 UTC-03:30</time>'


def test_the_header_counts_purchases_over_every_channel_like_the_timeline(app, member):
    html = _as(app, "admin").get(f"/console/customers/{member}").get_data(as_text=True)
    # The till's receipt (12.50) and the mini-program's order (59.00), as in the timeline below.
    assert '<span id="purchases">2</span>' in html and '<span id="spent">71.50</span>' in html
    api = _as(app, "admin").get(f"/api/v1/customers/{member}").get_json()["customer"]
    assert (api["purchases"], api["spent"]) == (2, "71.50")
    assert (api["till_receipts"], api["till_spent"]) == (1, "12.50")  # the tills' receipts alone


def test_the_list_names_each_identifiers_type_in_the_pages_language(app, member):
    admin = _as(app, "admin")
    html = admin.get("/console/customers").get_data(as_text=True)
    listed = html[html.index('id="recent"') :]
    assert '<span class="kind">手机号</span> 138****5678' in listed and '<span class="kind">会员卡号</span>' in listed
    admin.set_cookie("cdp-lang", "en")
    listed = admin.get("/console/customers").get_data(as_text=True)
    assert '<span class="kind">Member card</span>' in listed and ">card<" not in listed


@SQLITE_ONLY
def test_review_evidence_reads_in_the_pages_language_with_the_identifier_named(app, client, member):
    twins = {"name": "王芳", "birthday": "1990-03-05", "city": "上海"}
    _accepted(
        app,
        client,
        [
            source_event("w1", "member.signup", identifiers={"phone": "13700000001"}, **twins),
            source_event("w2", "member.signup", identifiers={"phone": "13700000002"}, **twins),
            source_event("u1", "member.signup", identifiers={"member_id": "U001", "phone": "13700000009"}),
            source_event("u2", "member.signup", identifiers={"member_id": "U002", "phone": "13700000009"}),
        ],
    )
    reasons = {i.reason for i in table_rows(app, ReviewItem)}
    assert {"weak_match", "unique_conflict"} <= reasons, reasons
    admin = _as(app, "admin")
    queue = admin.get("/console/customers/review").get_data(as_text=True)
    table = queue.split('id="review-items"', 1)[1]
    assert "依据</span> 姓名与生日相同、城市相同" in table and "一致的资料</span> 生日、城市、姓名" in table
    assert "事件</span> u2" in table and "事件类型</span> 会员注册" in table
    # Identifiers are masked for every role, admins included, in the evidence as in the customers' cells.
    evidence = " ".join(re.findall(r'<td class="evidence">(.*?)</td>', table, re.S))
    assert "手机号</span> 137****0009" in evidence and not MOBILE.search(table), evidence
    assert "fields=" not in table and "[&#39;" not in table and "value=+86" not in table
    # Each customer as the reviewer compares them: name, birthday, city, masked identifiers, purchases.
    assert "王芳 · 1990-03-05 · 上海" in table and "137****0001" in table and "137****0002" in table
    assert "购买 0 次" in table
    admin.set_cookie("cdp-lang", "en")
    english = admin.get("/console/customers/review").get_data(as_text=True).split('id="review-items"', 1)[1]
    assert "Same name and birthday, same city" in english and "birthday, city, name" in english.lower()
    assert 'class="reject">Reject</button>' in english and 'class="accept">Accept</button>' in english


@SQLITE_ONLY
def test_an_identifier_respelled_by_the_migration_reads_in_the_pages_language(app, client, member):
    """Migration 0028's review items and ledger rows (a full-width value now spelt as another customer's)."""
    _accepted(app, client, [source_event("r1", "member.signup", identifiers={"phone": "13900001111"})])
    mine, other = _id_of(app, "phone", PHONE[-8:]), _id_of(app, "phone", "13900001111")
    with central_db.session_factory(app)() as db:
        held = db.scalar(select(Identifier.id).where(Identifier.customer_id == mine, Identifier.kind == "phone"))
        now = app.config["CLOCK"]()
        db.add(
            ReviewItem(
                key=f"respelled_value:{mine}:{other}",
                reason="respelled_value",
                status="open",
                created_at=now,
                customer_id=mine,
                other_customer_id=other,
                identifier_id=held,
                source="migration",
                evidence={"type": "phone", "value": "+8613900001111", "stored_ids": f"{held} 99"},
            )
        )
        db.add(
            LedgerEntry(
                at=now,
                action="unlink",
                rule="respelled",
                identifier_id=held,
                customer_id=mine,
                operator="migration 0028_respell_identifiers",
                detail={"respelled_as": 99},
            )
        )
        db.commit()
    admin = _as(app, "admin")
    queue = admin.get("/console/customers/review").get_data(as_text=True).split('id="review-items"', 1)[1]
    assert "重新规范化后与另一位客户的相同" in queue and "存储记录</span> " in queue, queue
    assert "respelled_value" not in queue and "stored_ids" not in queue and "+8613900001111" not in queue
    ledger = admin.get(f"/console/customers/{mine}").get_data(as_text=True)
    assert "按新规则重新规范化" in ledger and ">respelled<" not in ledger
    admin.set_cookie("cdp-lang", "en")
    english = admin.get("/console/customers/review").get_data(as_text=True).split('id="review-items"', 1)[1]
    assert "respelled_value" not in english and "stored_ids" not in english


def test_a_review_item_a_unique_type_blocks_says_so_instead_of_offering_accept(app, client, member):
    _accepted(
        app,
        client,
        [
            source_event("u1", "member.signup", identifiers={"member_id": "U001", "phone": "13700000009"}),
            source_event("u2", "member.signup", identifiers={"member_id": "U002", "phone": "13700000009"}),
        ],
    )
    (item,) = [i for i in table_rows(app, ReviewItem) if i.reason == "unique_conflict"]
    admin = _as(app, "admin")
    form = f'action="/console/customers/review/{item.id}"'
    for page in ("/console/customers/review", f"/console/customers/{item.customer_id}"):
        html = admin.get(page).get_data(as_text=True)
        row = html.split(f"<tr><td>{item.id}</td>", 1)[1].split("</tr>", 1)[0]
        assert "不能合并：会员编号不同。" in row and "移除其会员编号" in row, row
        assert f"{form} class" in row and row.count(form) == 1  # reject only
    refused = post_form(admin, f"/console/customers/review/{item.id}", {"decision": "accept"})
    assert refused.headers["Location"] == "/console/customers/review?problem=review_unique"
    assert "如确为同一人，请先在其中一位的页面移除该标识" in admin.get(refused.headers["Location"]).get_data(
        as_text=True
    )
    admin.set_cookie("cdp-lang", "en")
    english = admin.get("/console/customers/review").get_data(as_text=True)
    assert "Cannot merge: Member id differs." in english
    admin.set_cookie("cdp-lang", "zh")
    # The reviewer removes the newer account's member id: the item can be accepted, and merges.
    newer = max(item.customer_id, item.other_customer_id)
    with central_db.session_factory(app)() as db:
        held = db.scalar(select(Identifier.id).where(Identifier.kind == "member_id", Identifier.customer_id == newer))
    removed = post_form(admin, f"/console/customers/{newer}/identifiers/remove", {"identifier_id": held, **CONFIRMED})
    assert removed.status_code == 302
    assert f"{form} class" in admin.get("/console/customers/review").get_data(as_text=True).split("不能合并", 1)[0]
    accepted = post_form(admin, f"/console/customers/review/{item.id}", {"decision": "accept"})
    assert accepted.headers["Location"] == "/console/customers/review?done=accept"
    assert survivor(app, item.customer_id) == survivor(app, item.other_customer_id)
    again = post_form(admin, f"/console/customers/review/{item.id}", {"decision": "reject"})
    assert again.headers["Location"] == "/console/customers/review?problem=review_decided"


def test_one_decision_settles_every_open_item_on_the_same_two_customers(app, client, member):
    twin = {"name": "王芳", "birthday": "1990-03-05"}
    _accepted(
        app,
        client,
        [
            source_event("p1", "member.signup", identifiers={"member_id": "P001", "phone": "13700000007"}, **twin),
            source_event("p2", "member.signup", identifiers={"member_id": "P002", "phone": "13700000007"}, **twin),
        ],
    )
    items = {i.reason: i for i in table_rows(app, ReviewItem)}
    conflict, suggestion = items["unique_conflict"], items["weak_match"]
    assert {conflict.customer_id, conflict.other_customer_id} == {suggestion.customer_id, suggestion.other_customer_id}
    admin = _as(app, "admin")
    rejected = post_form(admin, f"/console/customers/review/{conflict.id}", {"decision": "reject"})
    assert rejected.headers["Location"] == "/console/customers/review?done=reject"
    statuses = {i.id: (i.status, i.decided_by) for i in table_rows(app, ReviewItem)}
    assert statuses[conflict.id] == statuses[suggestion.id] == ("rejected", "admin")
    ((actor, subject, detail),) = [
        (a.actor, a.subject, a.detail) for a in table_rows(app, AuditLog) if a.action == "identity.review.reject"
    ]
    assert (actor, subject, detail["also"]) == ("admin", f"review:{conflict.id}", [suggestion.id])
    assert f'/console/customers/review/{suggestion.id}"' not in admin.get("/console/customers/review").get_data(
        as_text=True
    )


def test_a_weak_match_a_limit_blocks_says_so(app, client, member):
    twin = {"name": "王芳", "birthday": "1990-03-05"}
    cards = [{"member_card": f"CARD000{n}", "phone": "13700000003"} for n in (1, 2, 3)]
    events = [source_event(f"lim{n}", "member.signup", identifiers=ids, **twin) for n, ids in enumerate(cards)]
    events.append(source_event("lim9", "member.signup", identifiers={"member_card": "CARD0004"}, **twin))
    _accepted(app, client, events)
    (item,) = [i for i in table_rows(app, ReviewItem) if i.reason == "weak_match"]
    queue = _as(app, "admin").get("/console/customers/review").get_data(as_text=True)
    row = queue.split(f"<tr><td>{item.id}</td>", 1)[1].split("</tr>", 1)[0]
    assert "不能合并：会员卡号合计超出上限。" in row and 'value="accept"' not in row


@SQLITE_ONLY
def test_tags_read_in_the_pages_language_with_their_keys_and_inputs(app, client, member):
    profiling = {"purpose": "profiling", "source": "app", "notice_version": "2026-01"}
    _accepted(app, client, [source_event("p1", "consent.given", identifiers={"phone": PHONE}, payload=profiling)])
    with central_db.engine_for(app).begin() as conn:
        tagging.recompute(conn, app.config["CENTRAL"], app.config["CLOCK"]())
    admin = _as(app, "admin")
    page = admin.get(f"/console/customers/{member}").get_data(as_text=True)
    assert f"<h1>客户 #{member}</h1>" in page
    table = page.split('id="tags"', 1)[1].split("</table>", 1)[0]
    assert '生命周期 <code class="key">lifecycle</code></td><td>新客</td>' in table
    assert '渠道偏好 <code class="key">channel</code></td><td>全渠道</td>' in table
    assert '价值层级 <code class="key">value_tier</code>' in table and "距最近购买（天）</span>" in table
    assert not re.search(r">[^<]*\w=[^<]*<", table)  # no key=value left in the text
    admin.set_cookie("cdp-lang", "en")
    english_page = admin.get(f"/console/customers/{member}").get_data(as_text=True)
    english = english_page.split('id="tags"', 1)[1]
    assert ">New</td>" in english and "Lifecycle" in english and "Days since last purchase</span>" in english
    assert f"<h1>Customer #{member}</h1>" in english_page
    identifiers = english_page.split('id="identifiers"', 1)[1].split("</table>", 1)[0]
    assert "<td>Linked</td>" in identifiers and "<td>linked</td>" not in identifiers  # sentence case, as "Given"


@SQLITE_ONLY
def test_amounts_show_with_thousands_grouped(app, client, member):
    _accepted(
        app, client, [source_event("big", "order.online", identifiers={"phone": PHONE}, payload={"total": "12345.60"})]
    )
    html = _as(app, "admin").get(f"/console/customers/{member}").get_data(as_text=True)
    assert '<span id="spent">12,417.10</span>' in html and '<td class="num">12,345.60</td>' in html
    assert amount(None) == amount("") == "" and amount(Decimal("-1234.5")) == "-1,234.50"
    assert amount(59036866, cents=True) == "590,368.66"


@SQLITE_ONLY
def test_an_online_orders_status_reads_in_the_pages_language_and_an_unknown_one_as_sent(app, client, member):
    statuses = {"o-paid": "paid", "o-refunded": "Refunded", "o-cancelled": "canceled", "o-odd": "awaiting_pickup"}
    payloads = {order: {"order_no": order, "total": "3.00", "status": status} for order, status in statuses.items()}
    orders = [source_event(o, "order.online", identifiers={"phone": PHONE}, payload=p) for o, p in payloads.items()]
    _accepted(app, client, orders)
    admin = _as(app, "admin")

    def rows():
        html = admin.get(f"/console/customers/{member}").get_data(as_text=True)
        timeline = html[html.index('id="timeline"') : html.index("</table>", html.index('id="timeline"'))]
        found = {order: next(r for r in timeline.split("<tr") if f" {order}</span>" in r) for order in statuses}
        return {**found, "coupon": next(r for r in timeline.split("<tr") if "coupon-redeemed" in r)}

    shown = rows()
    assert "状态</span> 已付款</span>" in shown["o-paid"], shown["o-paid"]
    assert "状态</span> 已退款</span>" in shown["o-refunded"] and "状态</span> 已取消</span>" in shown["o-cancelled"]
    odd = shown["o-odd"]
    assert '<q class="as-sent"' in odd and ">awaiting_pickup</q>" in odd and "（来源原值）" in odd, odd
    assert not any(f"</span> {code}</span>" in "".join(shown.values()) for code in ("paid", "Refunded", "canceled"))
    assert "状态</span> 已计入活动</span>" in shown["coupon"]  # a redemption's status is a code of its own
    admin.set_cookie("cdp-lang", "en")
    shown = rows()
    assert "State</span> Paid</span>" in shown["o-paid"] and "State</span> Refunded</span>" in shown["o-refunded"]
    assert "State</span> Cancelled</span>" in shown["o-cancelled"]
    assert ">awaiting_pickup</q>" in shown["o-odd"] and "(as the source sent it)" in shown["o-odd"]
