"""A person's requests in the console: admins download the document and erase; no other role can (decision 0098)."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from central import db as central_db
from central.cli import main
from central.models import AuditLog
from central.privacy.models import Erasure
from tests.central.privacy_support import MEMBER, NAME, NEEDLES, OTHER, PHONE, config_file, make_person, traces
from tests.central.support import create_user, csrf_from, login, post_form

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
ROLES_WITH_CUSTOMERS = ("admin", "marketing", "customer_service")


@pytest.fixture
def person(app, client, agent):
    for role in (*ROLES_WITH_CUSTOMERS, "finance"):
        create_user(app, role, role=role)
    return make_person(app, client, agent)


def _as(app, role):
    client = app.test_client()
    assert login(client, role).status_code == 302
    return client


def _audited(app, action):
    with central_db.session_factory(app)() as db:
        return [(a.actor, a.subject, a.detail) for a in db.scalars(select(AuditLog).where(AuditLog.action == action))]


def _erasures(app):
    with central_db.session_factory(app)() as db:
        return [(e.customer_id, e.operator, e.reason) for e in db.scalars(select(Erasure))]


def _without_time(doc):
    return {k: v for k, v in doc.items() if k != "exported_at"}


def test_an_admin_downloads_the_document_the_command_writes(app, person, tmp_path):
    admin = _as(app, "admin")
    page = admin.get(f"/console/customers/{person}").get_data(as_text=True)
    assert f'href="/console/customers/{person}/personal-data"' in page

    reply = admin.get(f"/console/customers/{person}/personal-data")
    assert reply.status_code == 200 and reply.mimetype == "application/json"
    assert reply.headers["Content-Disposition"] == f'attachment; filename="customer-{person}-personal-data.json"'
    assert reply.headers["Cache-Control"] == "no-store"
    doc = json.loads(reply.get_data(as_text=True))
    assert {(i["type"], i["value"]) for i in doc["identifiers"]} == {("phone", "+86" + PHONE), ("member_id", MEMBER)}

    out = tmp_path / "cli.json"
    assert main(["customer", "export-data", str(person), "--out", str(out), "--config", config_file(app)]) == 0
    assert _without_time(doc) == _without_time(json.loads(out.read_text(encoding="utf-8")))  # the same document

    (actor, subject, console_detail), (_, _, cli_detail) = _audited(app, "privacy.export")
    assert (actor, subject) == ("admin", f"customer:{person}")
    assert console_detail == {"via": "console", **cli_detail}  # rows per section, as the command's
    assert PHONE not in json.dumps(console_detail)


def test_an_admin_erases_a_customer_after_giving_a_reason_and_typing_the_id(app, person):
    admin = _as(app, "admin")
    asked = post_form(admin, f"/console/customers/{person}/erase", page=f"/console/customers/{person}")
    assert asked.status_code == 200
    html = asked.get_data(as_text=True)
    assert 'id="erase-form"' in html and 'name="typed_id"' in html and 'name="reason"' in html
    assert _erasures(app) == []  # asking changes nothing

    form = {"confirm": "yes", "reason": "ticket 4411", "typed_id": str(person + 1)}
    wrong = post_form(admin, f"/console/customers/{person}/erase", form).get_data(as_text=True)
    assert 'id="problem"' in wrong and 'value="ticket 4411"' in wrong  # the reason is kept for the next try
    blank = post_form(admin, f"/console/customers/{person}/erase", {**form, "reason": " ", "typed_id": str(person)})
    assert 'id="problem"' in blank.get_data(as_text=True)
    assert _erasures(app) == []

    done = post_form(admin, f"/console/customers/{person}/erase", {**form, "typed_id": str(person)})
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/console/customers/{person}?done=erased")
    assert _erasures(app) == [(person, "admin", "ticket 4411")]
    assert traces(central_db.engine_for(app), NEEDLES) == []
    assert traces(central_db.engine_for(app), [OTHER])  # the other customer is untouched
    [(actor, subject, detail)] = _audited(app, "privacy.erase")
    assert (actor, subject, detail["via"]) == ("admin", f"customer:{person}", "console") and detail["identifiers"] == 2

    outcome = admin.get(done.headers["Location"]).get_data(as_text=True)
    assert 'id="erased"' in outcome and 'role="status"' in outcome
    for role in ROLES_WITH_CUSTOMERS:
        html = _as(app, role).get(f"/console/customers/{person}").get_data(as_text=True)
        assert re.search(r'id="erased">[^<]+<time datetime="\d{4}-', html), role
        assert 'id="download"' not in html and 'id="erase-start"' not in html and 'id="note-form"' not in html
        assert not any(n in html for n in (PHONE, PHONE[-4:], NAME, NAME[0] + "*", MEMBER))
    # Sent again (a double click, an old page): nothing more happens, and no note can be added either.
    again = post_form(admin, f"/console/customers/{person}/erase", {**form, "typed_id": str(person)})
    assert again.status_code == 302 and len(_erasures(app)) == 1 and len(_audited(app, "privacy.erase")) == 1
    post_form(admin, f"/console/customers/{person}/notes", {"kind": "note", "text": f"{NAME} called"})
    assert traces(central_db.engine_for(app), [NAME]) == []


@SQLITE_ONLY  # roles and forms only: no database behaviour involved
@pytest.mark.parametrize("role", ["marketing", "customer_service", "finance"])
def test_no_other_role_sees_or_uses_the_actions(app, person, role):
    client = _as(app, role)
    page = client.get(f"/console/customers/{person}")
    html = page.get_data(as_text=True)
    if role == "finance":
        assert page.status_code == 403
    else:
        assert 'id="download"' not in html and 'id="erase-start"' not in html and "/erase" not in html
        assert ('id="privacy-handoff"' in html) == (role == "customer_service")
    token = csrf_from(client.get("/console/").get_data(as_text=True))  # a valid token of this user's own session
    assert client.get(f"/console/customers/{person}/personal-data").status_code == 403
    form = {"csrf_token": token, "confirm": "yes", "reason": "ticket 1", "typed_id": str(person)}
    assert client.post(f"/console/customers/{person}/erase", data=form).status_code == 403
    assert client.post(f"/console/customers/{person}/erase", data={"csrf_token": token}).status_code == 403
    assert _erasures(app) == [] and _audited(app, "privacy.export") == []
    with central_db.session_factory(app)() as db:
        assert db.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action.like("privacy.%"))) == 0
    assert traces(central_db.engine_for(app), [PHONE, NAME])
