"""An erased customer takes no note and no complaint, whichever page or command asks (decision 0098)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from central import db as central_db
from central.cli import main
from central.customers.models import CustomerNote
from central.ingest.models import Event
from tests.central.privacy_support import config_file, make_person
from tests.central.support import create_user, login, post_form


@pytest.fixture
def erased(app, client, agent):
    """An erased customer, and a customer-service user."""
    create_user(app, "service", role="customer_service")
    person = make_person(app, client, agent)
    erase = ["customer", "erase", str(person), "--reason", "ticket 6001", "--yes"]
    assert main([*erase, "--config", config_file(app)]) == 0
    return person


def _held(app):
    with central_db.session_factory(app)() as db:
        notes = db.scalar(select(func.count()).select_from(CustomerNote))
        complaints = db.scalar(select(func.count()).select_from(Event).where(Event.kind == "service.complaint"))
    return notes, complaints


@pytest.mark.parametrize("form", [{"kind": "note", "text": "回访"}, {"kind": "complaint", "text": "投诉"}])
def test_a_note_or_complaint_on_an_erased_customer_is_refused_with_why(app, erased, form):
    service = app.test_client()
    assert login(service, "service").status_code == 302
    page = f"/console/customers/{erased}"
    before = _held(app)
    response = post_form(service, f"{page}/notes", form)
    assert response.status_code == 302 and response.headers["Location"].endswith("problem=erased")
    shown = service.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="problem"' in shown and 'id="erased"' in shown
    assert _held(app) == before
