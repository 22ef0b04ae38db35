"""What a customer-service desk does on a customer's page: tag times, consent withdrawals, receipts, complaints."""

from __future__ import annotations

import csv
import io
import re

from sqlalchemy import select

from central import db as central_db
from central.customers import tagging
from central.customers.consent_models import ConsentDecision
from central.customers.receipt_search import receipts_query
from central.models import AuditLog
from tests.central.sources_support import source_event
from tests.central.support import csrf_from, post_form, table_rows
from tests.central.test_console_customers import PHONE, _accepted, _as, member
from tests.central.test_segments import _api, _evaluate, _save, chain

__all__ = ["chain", "member"]  # the fixtures, shared with the customer pages' and segments' tests


def _cell(html, purpose):
    """The text of a purpose's row in the consent panel."""
    row = html.split(f'<tr data-purpose="{purpose}">', 1)[1].split("</tr>", 1)[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()


def _withdraw(client, customer, **form):
    page = client.get(f"/console/customers/{customer}").get_data(as_text=True)
    request_id = re.search(r'name="request_id" value="([0-9a-f]+)"', page).group(1)
    fields = {"purpose": "marketing", "channel": "sms", "asked": "phone", "request_id": request_id, **form}
    url = f"/console/customers/{customer}/consents/withdraw"
    return client.post(url, data={**fields, "csrf_token": csrf_from(page)})


def _consent_rows(app):
    return [
        (d.purpose, d.channel, d.granted, d.source, d.origin, d.actor)
        for d in table_rows(app, ConsentDecision)
        if d.origin == "console"
    ]


def test_a_tags_time_inputs_read_in_the_chains_local_time_without_microseconds(app, client, member):
    profiling = {"purpose": "profiling", "source": "app", "notice_version": "2026-01"}
    _accepted(app, client, [source_event("p1", "consent.given", identifiers={"phone": PHONE}, payload=profiling)])
    with central_db.engine_for(app).begin() as conn:
        tagging.recompute(conn, app.config["CENTRAL"], app.config["CLOCK"]())
    page = _as(app, "customer_service").get(f"/console/customers/{member}").get_data(as_text=True)
    table = page.split('id="tags"', 1)[1].split("</table>", 1)[0]
    shown = re.findall(r'最近购买</span> <time datetime="([^"]+)">([^<]+)</time>', table)
    assert shown, table
    for instant, local in shown:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", instant)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\+08:00", local)
        assert local[11:13] == f"{(int(instant[11:13]) + 8) % 24:02d}"  # UTC shown eight hours on
    assert ".000000" not in table


def test_customer_service_records_a_withdrawal_on_the_customers_page(app, member):
    service = _as(app, "customer_service")
    page = f"/console/customers/{member}"
    html = service.get(page).get_data(as_text=True)
    assert _cell(html, "location") == "位置 已同意 · 全部渠道"
    assert _cell(html, "marketing") == "营销 已撤回 未同意 未同意 未同意"  # SMS withdrawn, the rest never given
    assert 'id="consent-withdraw"' in html and 'name="granted"' not in html  # withdrawals only
    response = _withdraw(service, member, purpose="location", channel="all", asked="counter")
    assert response.status_code == 302 and "done=consent" in response.headers["Location"]
    html = service.get(page).get_data(as_text=True)
    assert _cell(html, "location") == "位置 已撤回 · 全部渠道" and "撤回已记录" not in html
    assert "撤回已记录" in service.get(response.headers["Location"]).get_data(as_text=True)
    assert _consent_rows(app) == [("location", "all", False, "console", "console", "customer_service")]
    (audited,) = [a for a in table_rows(app, AuditLog) if a.action == "consent.record"]
    assert (audited.actor, audited.subject) == ("customer_service", f"customer:{member}")
    assert audited.detail == {
        "via": "console",
        "purpose": "location",
        "channel": "all",
        "asked": "counter",
        "decisions": 1,
        "recorded": 1,
    }
    # "Stop everything": marketing on every channel.
    _withdraw(service, member, channel="all")
    assert _cell(service.get(page).get_data(as_text=True), "marketing") == "营销 已撤回 已撤回 已撤回 已撤回"


def test_a_withdrawal_form_sent_twice_records_once_and_a_bad_one_nothing(app, member):
    service = _as(app, "customer_service")
    page = service.get(f"/console/customers/{member}").get_data(as_text=True)
    request_id = re.search(r'name="request_id" value="([0-9a-f]+)"', page).group(1)
    form = {"purpose": "marketing", "channel": "email", "asked": "phone", "request_id": request_id}
    url = f"/console/customers/{member}/consents/withdraw"
    for _ in range(2):
        assert post_form(service, url, form, page=f"/console/customers/{member}").status_code == 302
    assert _consent_rows(app) == [("marketing", "email", False, "console", "console", "customer_service")]
    for bad in ({"purpose": "spam"}, {"channel": "fax"}, {"asked": ""}, {"request_id": "x"}):
        response = post_form(service, url, {**form, **bad})
        assert "problem=consent" in response.headers["Location"], bad
    assert service.post(url, data=form).status_code == 400  # no CSRF token: the form expired
    assert len(_consent_rows(app)) == 1


def test_marketing_sees_the_consent_state_without_the_form_and_may_not_withdraw(app, member):
    marketing = _as(app, "marketing")
    html = marketing.get(f"/console/customers/{member}").get_data(as_text=True)
    assert _cell(html, "location") == "位置 已同意 · 全部渠道" and 'id="consent-withdraw"' not in html
    form = {"purpose": "marketing", "channel": "sms", "asked": "phone", "request_id": "0" * 32}
    assert post_form(marketing, f"/console/customers/{member}/consents/withdraw", form).status_code == 403
    assert _consent_rows(app) == []


def test_a_withdrawal_at_the_desk_takes_the_customer_out_of_a_marketing_sms_segments_export(app, chain):
    _save(app)
    _evaluate(app)
    marketing = _api(app, "marketing")

    def exported():
        text = marketing.get("/api/v1/segments/loyal/export").get_data(as_text=True)
        return {int(r["customer_id"]) for r in csv.DictReader(io.StringIO(text))}

    assert exported() == {chain["ann"], chain["bob"]}
    service = _api(app, "customer_service")
    assert _withdraw(service, chain["bob"]).status_code == 302  # "stop sending me SMS"
    assert exported() == {chain["ann"]}  # at once, before the next evaluation


def test_customer_service_may_withdraw_but_not_grant_through_the_api(app, member):
    service = _as(app, "customer_service")
    url = f"/api/v1/customers/{member}/consents"
    assert service.get(url).status_code == 200
    withdrawal = {"purpose": "marketing", "channel": "email", "granted": False, "id": "ticket-7"}
    assert service.post(url, json=withdrawal).status_code == 201
    grant = {"purpose": "marketing", "channel": "email", "granted": True, "notice_version": "2026-01"}
    refused = service.post(url, json={"decisions": [withdrawal, grant]})
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "grant_needs_admin"
    assert [(d.granted, d.origin, d.actor) for d in table_rows(app, ConsentDecision) if d.origin == "api"] == [
        (False, "api", "customer_service")
    ]
    assert _as(app, "marketing").post(url, json=withdrawal).status_code == 403


def test_search_by_receipt_number_finds_the_customer_it_is_linked_to(app, client, agent, member):
    agent.send(client, [agent.receipt("R000002577", "8.00")])  # nobody named at the till
    service = _as(app, "customer_service")

    def search(number, store=""):
        return service.get(f"/console/customers?kind=receipt&q={number}&store={store}").get_data(as_text=True)

    html = search("R-1001")
    receipts = html.split('id="receipts"', 1)[1].split("</table>", 1)[0]
    assert (
        f'href="/console/customers/{member}">#{member}</a>' in receipts and "S001" in receipts and "12.50" in receipts
    )
    assert f"/console/customers/{member}" in html.split('id="results"', 1)[1]  # the customer's row, masked
    assert f"/console/customers/{member}" in search("R-1001", "S001")
    elsewhere = search("R-1001", "S999")
    assert 'id="no-receipt"' in elsewhere and 'id="receipts"' not in elsewhere
    unlinked = search("R000002577")
    assert "这张小票没有关联任何客户" in unlinked and 'id="results"' not in unlinked
    subjects = [(s, a.detail) for a in table_rows(app, AuditLog) if a.action == "customers.search" for s in [a.subject]]
    assert [s for s, _ in subjects] == [
        "receipt:**1001",
        "receipt:**1001",
        "receipt:**1001",
        "receipt:******2577",
    ]
    assert [(d["store"], d["receipts"], d["returned"]) for _, d in subjects] == [
        (None, 1, 1),
        ("S001", 1, 1),
        ("S999", 0, 0),
        (None, 1, 0),
    ]


def test_the_search_by_receipt_number_reads_an_index_not_the_table(app, backend):
    with central_db.session_factory(app)() as db:
        sql = str(receipts_query("R000002577").compile(db.get_bind(), compile_kwargs={"literal_binds": True}))
        if backend.name == "postgresql":
            db.execute(select(1))
            db.connection().exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = "\n".join(r[0] for r in db.connection().exec_driver_sql("EXPLAIN " + sql))
        else:
            plan = "\n".join(r[-1] for r in db.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    assert "ix_receipts_receipt_no" in plan, plan


def test_a_complaint_shows_who_filed_it_as_a_note_shows_its_author(app, member):
    service = _as(app, "customer_service")
    page = f"/console/customers/{member}"
    post_form(service, f"{page}/notes", {"kind": "note", "text": "客户来电询问积分"})
    post_form(service, f"{page}/notes", {"kind": "complaint", "category": "refund", "text": "退款未到账"})
    html = _as(app, "marketing").get(page).get_data(as_text=True)
    timeline = html.split('id="timeline"', 1)[1].split("</table>", 1)[0]
    (complaint,) = re.findall(r'<tr class="entry service-complaint">.*?</tr>', timeline, re.S)
    (note,) = re.findall(r'<tr class="entry note">.*?</tr>', timeline, re.S)
    assert '<span class="author">— customer_service</span>' in complaint
    assert '<span class="author">— customer_service</span>' in note


def test_a_complaint_a_source_sent_names_its_sender_not_a_console_user(app, client, member):
    """A source's complaint saying operator admin and channel console read exactly as one the admin had filed."""
    forged = {"category": "退款", "channel": "console", "text": "客户同意转账", "operator": "admin"}
    _accepted(app, client, [source_event("sp-1", "service.complaint", identifiers={"phone": PHONE}, payload=forged)])
    service = _as(app, "customer_service")
    page = f"/console/customers/{member}"
    assert post_form(service, f"{page}/notes", {"kind": "complaint", "text": "真实投诉"}).status_code == 302
    rows = [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
        for row in service.get(page).get_data(as_text=True).split("<tr")
        if "投诉" in row and ("真实投诉" in row or "客户同意转账" in row)
    ]
    (sent,) = [r for r in rows if "客户同意转账" in r]
    (filed,) = [r for r in rows if "真实投诉" in r]
    assert "— customer_service" in filed and "渠道 控制台" in filed
    assert "— " not in sent.split("客户同意转账", 1)[1]  # no console user as its author
    assert "受理人（来源所述） admin" in sent and "发送方 来源 miniprogram" in sent
    assert "渠道 console （来源原值）" in sent  # the source's word, not the console's


def test_bidirectional_controls_in_free_text_are_named_not_obeyed(app, member):
    service = _as(app, "customer_service")
    page = f"/console/customers/{member}"
    assert (
        post_form(service, f"{page}/notes", {"kind": "note", "text": "note \u202eABC unterminated"}).status_code == 302
    )
    html = service.get(page).get_data(as_text=True)
    assert "note [U+202E]ABC unterminated" in html and "\u202e" not in html
