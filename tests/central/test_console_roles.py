"""Who may open what: every console route declares its roles, the role x route matrix, masking, XSS."""

from __future__ import annotations

import re

import pytest

from central.accounts.roles import ROLES
from central.accounts.web import ROLES_ATTRIBUTE
from central.models import AuditLog
from tests.central.operations_support import coupon_campaign, declare_trigger, import_members
from tests.central.sources_support import new_key, post_events, source_event
from tests.central.support import START, create_user, csrf_from, login, table_rows

# Every GET page of the console, with the roles that may open it.
PAGES = {
    "/console/": set(ROLES),
    "/console/customers": {"admin", "marketing", "customer_service"},
    "/console/customers/{customer}": {"admin", "marketing", "customer_service"},
    "/console/segments": {"admin", "marketing"},
    "/console/segments/{segment}/export.csv": {"admin", "marketing"},
    "/console/segments/{segment}/edit": {"admin", "marketing"},
    "/console/campaigns": {"admin", "marketing", "finance"},
    "/console/campaigns/coupons.csv": {"admin", "marketing", "finance"},
    "/console/fleet": {"admin", "technician", "store_manager"},
    "/console/imports": {"admin"},
    "/console/fleet/devices/{device_id}": {"admin", "technician", "store_manager"},
    "/console/fleet/source-keys": {"admin", "technician"},
    "/console/campaigns/triggers/{trigger_id}": {"admin", "marketing", "finance"},
    "/console/campaigns/coupons/{campaign_id}": {"admin", "marketing", "finance"},
    "/console/campaigns/coupons/new": {"admin", "marketing"},
    "/console/campaigns/triggers/new": {"admin", "marketing"},
    "/console/imports/{import_id}": {"admin"},
    "/console/customers/review": {"admin"},
    "/console/account/two-step": set(ROLES),
    "/console/customers/{customer}/personal-data": {"admin"},
    "/console/sales": {"admin", "finance", "store_manager"},
    "/console/sales/daily.csv": {"admin", "finance", "store_manager"},
}
# Every state-changing console route, and a form that would do something if the token were right.
STATE_CHANGING = {
    "/console/login": {"username": "alice"},
    "/console/logout": {},
    "/console/language": {"lang": "en"},
    "/console/fleet/tokens": {"store": "S001"},
    "/console/fleet/tokens/{token_id}/revoke": {},
    "/console/fleet/devices/{device_id}/retire": {"reason": "replaced"},
    "/console/fleet/devices/{device_id}/revoke": {"reason": "stolen"},
    "/console/fleet/source-keys": {"source": "app"},
    "/console/fleet/source-keys/{key_id}/revoke": {},
    "/console/customers/{customer}/notes": {"kind": "note", "text": "called back"},
    "/console/customers/{customer}/consents/withdraw": {"purpose": "marketing", "channel": "sms", "asked": "phone"},
    "/console/customers/{customer}/split": {"ledger_id": "1"},
    "/console/customers/{customer}/identifiers/remove": {"identifier_id": "1"},
    "/console/customers/{customer}/erase": {"confirm": "yes", "reason": "ticket 1", "typed_id": "1"},
    "/console/customers/review/{item}": {"decision": "reject"},
    "/console/segments": {"name": "everyone", "rule": "true", "channel": "sms"},
    "/console/segments/{segment}/evaluate": {},
    "/console/segments/{segment}/edit": {"rule": "false", "channel": "sms"},
    "/console/segments/{segment}/delete": {"confirm": "yes"},
    "/console/campaigns/coupons/new": {"name": "spring", "value": "5", "valid_from": "2026-12-01T00:00"},
    "/console/campaigns/coupons/{campaign_id}/end": {},
    "/console/campaigns/triggers/new": {"name": "spring", "kind": "birthday", "action": "export"},
    "/console/campaigns/triggers/{trigger_id}/pause": {},
    "/console/campaigns/triggers/{trigger_id}/resume": {},
    "/console/campaigns/triggers/{trigger_id}/effect": {},
    "/console/campaigns/coupons/{campaign_id}/tiers": {},
    "/console/login/code": {"code": "123456"},
    "/console/account/two-step/start": {},
    "/console/account/two-step/confirm": {"code": "123456"},
    "/console/account/two-step/disable": {"password": "x"},
}
# A mainland mobile, bare or +86, standing on its own: a run of digits inside a token (a CSRF
# token, a form's request id) is no phone, and matched one page in a few hundred.
MOBILE = re.compile(r"(?<![0-9A-Za-z_-])(?:\+?86)?1[3-9]\d{9}(?![0-9A-Za-z_-])")
XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def _placeholders(rule: str) -> str:
    rule = rule.replace("<int32:customer_id>", "{customer}").replace("<int32:item_id>", "{item}")
    rule = rule.replace("/segments/<name>", "/segments/{segment}")
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved
def test_every_console_route_declares_its_roles(app):
    undeclared = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/console") or rule.endpoint == "console.static":
            continue
        if not getattr(app.view_functions[rule.endpoint], ROLES_ATTRIBUTE, None):
            undeclared.append(rule.rule)
    assert undeclared == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved
def test_the_page_table_covers_every_console_route(app):
    gets = {
        _placeholders(r.rule)
        for r in app.url_map.iter_rules()
        if r.rule.startswith("/console") and r.endpoint != "console.static" and "GET" in r.methods
    }
    posts = {
        _placeholders(r.rule) for r in app.url_map.iter_rules() if r.rule.startswith("/console") and "POST" in r.methods
    }
    assert gets - {"/console/login", "/console/login/code"} == set(PAGES)
    assert posts == set(STATE_CHANGING)


@pytest.fixture
def shop(app, client, agent, tmp_path):
    """A customer with a mainland mobile and a member card, an agent, a trigger, a campaign and an import."""
    agent.send(client, [agent.receipt("R1", "12.50", phone="13812345678", card="VIP00421234")])
    agent.send(client, [agent.receipt(XSS[:60], "1.00", phone="13912345679", card=XSS[:40])])
    events = [
        source_event("s1", "member.signup", identifiers={"phone": "13812345678"}, name="张三丰"),
        source_event("s2", "member.signup", identifiers={"phone": "13912345679"}, name=XSS[:60]),
        source_event(
            "s3",
            "consent.given",
            identifiers={"phone": "13812345678"},
            payload={"purpose": "marketing", "channel": "sms", "notice_version": "2026-01"},
        ),
    ]
    assert post_events(client, new_key(app), events).get_json()["accepted"] == ["s1", "s2", "s3"]
    for role in ROLES:
        create_user(app, role, role=role, stores=("S001",) if role == "store_manager" else ())
    app.config["TEST_IDS"] = {
        "device_id": agent.device_id,
        "trigger_id": declare_trigger(app),
        "campaign_id": coupon_campaign(app, ["M1"]).id,
        "import_id": import_members(app, tmp_path),
        "token_id": "0123456789ab",
        "key_id": 1,
        "segment": "all-sms",
    }
    _segment(app)
    return app


def _segment(app):
    """A segment everyone who consented belongs to, evaluated, so its page and export have rows."""
    from central import db as central_db
    from central.segments import definitions, evaluation

    with central_db.session_factory(app)() as db:
        definitions.create(db, definitions.Draft("all-sms", "true", "sms"), actor="test", now=START)
        evaluation.evaluate(db, "all-sms", START, 480)
        db.commit()


def _client_for(app, role):
    client = app.test_client()
    assert login(client, role).status_code == 302
    return client


def _customer_id(app, phone="13812345678"):
    from sqlalchemy import select

    from central import db as central_db
    from central.identity.models import Identifier

    with central_db.session_factory(app)() as db:
        return db.scalar(select(Identifier.customer_id).where(Identifier.value.like(f"%{phone}")))


def test_role_by_route_matrix(shop):
    customer = _customer_id(shop)
    anonymous = shop.test_client()
    for role in ROLES:
        client = _client_for(shop, role)
        for page, allowed in PAGES.items():
            url = page.format(customer=customer, **shop.config["TEST_IDS"])
            status = client.get(url).status_code
            assert status == (200 if role in allowed else 403), (role, url, status)
            refused = anonymous.get(url)
            assert refused.status_code == 302 and refused.headers["Location"].startswith("/console/login")


def test_a_request_refused_to_a_logged_in_role_is_audited(shop):
    """Probing for what a role may not reach leaves a trace in the audit log, page or API, GET or POST."""
    customer = _customer_id(shop)
    service = _client_for(shop, "customer_service")
    assert service.get("/console/fleet").status_code == 403
    finance = _client_for(shop, "finance")
    assert finance.post(f"/api/v1/customers/{customer}/consents", json={}).status_code == 403
    assert finance.get(f"/console/customers/{customer}").status_code == 403
    refused = [(a.actor, a.subject, a.detail) for a in table_rows(shop, AuditLog) if a.action == "access.refused"]
    assert refused == [
        ("customer_service", "GET /console/fleet", {"role": "customer_service"}),
        ("finance", f"POST /api/v1/customers/{customer}/consents", {"role": "finance"}),
        ("finance", f"GET /console/customers/{customer}", {"role": "finance"}),
    ]


def test_json_apis_without_a_role_declaration_are_for_administrators_only(shop):
    assert _client_for(shop, "marketing").get("/api/v1/devices").status_code == 403
    assert _client_for(shop, "admin").get("/api/v1/devices").status_code == 200
    assert shop.test_client().get("/api/v1/devices").status_code == 401


def test_marketing_sees_masked_personal_data_only_and_views_are_audited(shop):
    customer = _customer_id(shop)
    client = _client_for(shop, "marketing")
    found = client.get("/console/customers?kind=phone&q=138 1234 5678").get_data(as_text=True)
    assert f"/console/customers/{customer}" in found
    pages = [found]
    for page in PAGES:
        if "marketing" in PAGES[page]:
            pages.append(client.get(page.format(customer=customer, **shop.config["TEST_IDS"])).get_data(as_text=True))
    exported = client.get("/console/segments/all-sms/export.csv").get_data(as_text=True)
    assert "138****5678" in exported and "张*" in exported
    profile = client.get(f"/console/customers/{customer}").get_data(as_text=True)
    assert "138****5678" in profile and "VIP00421234" not in profile
    assert "张*" in profile and "张三丰" not in profile
    assert "张三丰" in _client_for(shop, "admin").get(f"/console/customers/{customer}").get_data(as_text=True)
    for html in pages:
        assert not MOBILE.search(html), MOBILE.search(html)
    actions = [(a.actor, a.action) for a in table_rows(shop, AuditLog) if a.action.startswith("customers.")]
    assert ("marketing", "customers.search") in actions and ("marketing", "customers.view") in actions


def test_the_technician_sees_no_customer_data(shop):
    customer = _customer_id(shop)
    client = _client_for(shop, "technician")
    for page in PAGES:
        html = client.get(page.format(customer=customer, **shop.config["TEST_IDS"])).get_data(as_text=True)
        assert "5678" not in html and "1234" not in html and "12.50" not in html
    nav = client.get("/console/").get_data(as_text=True)
    assert "/console/customers" not in nav and "/console/fleet" in nav


def test_a_store_manager_sees_only_their_stores(shop, client):
    from tests.central.support import Agent, token_for

    other = Agent(store_id="S002")
    assert other.enroll(client, token_for(shop, "S002")).status_code == 201
    html = _client_for(shop, "store_manager").get("/console/fleet").get_data(as_text=True)
    assert "S001" in html and "S002" not in html and other.device_id not in html
    assert other.device_id in _client_for(shop, "technician").get("/console/fleet").get_data(as_text=True)


def test_stored_xss_in_device_and_customer_fields_renders_inert(shop):
    customer = _customer_id(shop)
    client = _client_for(shop, "admin")
    pages = [client.get(p.format(customer=customer, **shop.config["TEST_IDS"])).get_data(as_text=True) for p in PAGES]
    pages.append(client.get(f"/console/customers?kind=member_card&q={XSS[:40]}").get_data(as_text=True))
    pages.append(client.get("/console/customers?kind=phone&q=13912345679").get_data(as_text=True))
    hostile = _customer_id(shop, "13912345679")
    pages.append(client.get(f"/console/customers/{hostile}").get_data(as_text=True))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[-1]  # shown, as text
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html


def test_csrf_is_required_on_every_state_changing_route_for_every_role(shop):
    customer = _customer_id(shop)
    for role in ("admin", "technician"):
        client = _client_for(shop, role)
        token = csrf_from(client.get("/console/").get_data(as_text=True))
        for route, form in STATE_CHANGING.items():
            path = route.format(customer=customer, item=1, **shop.config["TEST_IDS"])
            assert client.post(path, data=form).status_code == 400, (role, path)
            assert client.post(path, data={**form, "csrf_token": token[::-1]}).status_code == 400, (role, path)
        assert client.get("/console/").status_code == 200
