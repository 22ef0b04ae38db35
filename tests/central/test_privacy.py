"""A person's requests: export-data gives them everything held, erase leaves nothing of them (decisions 0097, 0098)."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from central import db as central_db
from central.cli import main
from central.customers.models import Receipt
from central.identity.models import Customer, Identifier
from central.ingest.models import Event
from central.models import AuditLog
from central.privacy.models import ErasedIdentifier, Erasure
from tests.central.privacy_support import (
    MEMBER,
    NAME,
    OTHER,
    PHONE,
    config_file,
    event,
    load,
    make_person,
    traces,
)
from tests.central.support import START


@pytest.fixture
def config_path(app):
    return config_file(app)


@pytest.fixture
def person(app, client, agent):
    """One member with a signup, consents, a till receipt, an online order, a note and a complaint; and someone else."""
    return make_person(app, client, agent)


def _run(config_path, *args):
    return main([*args, "--config", config_path])


def test_export_data_holds_each_kind_of_data(app, person, config_path, tmp_path, capsys):
    out = tmp_path / "person.json"
    assert _run(config_path, "customer", "export-data", "--type", "phone", "--value", PHONE, "--out", str(out)) == 0
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert not out.with_name("person.json.partial").exists()
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["customer_id"] == person and doc["erased_at"] is None
    assert {(i["type"], i["value"]) for i in doc["identifiers"]} == {("phone", "+86" + PHONE), ("member_id", MEMBER)}
    golden = {g["attribute"]: (g["value"], g["source"]) for g in doc["golden_record"]}
    assert golden["name"] == (NAME, "source:crm") and golden["birthday"][0] == "1990-03-05"
    assert [(c["purpose"], c["granted"]) for c in doc["consents"]] == [("marketing", True), ("marketing", False)]
    assert sorted(s["total"] for s in doc["sales"]) == ["100.00", "59.90"]
    assert [o["order_no"] for o in doc["online_orders"]] == ["W1"]
    assert [n["text"] for n in doc["notes"]] == [f"called back {NAME} about the order"]
    assert any(e["kind"] == "service.complaint" and e["payload"]["text"] == "late delivery" for e in doc["events"])
    assert [r["receipt_no"] for r in doc["till_receipts"]] == ["R1"]
    with central_db.session_factory(app)() as db:
        row = db.scalars(select(AuditLog).where(AuditLog.action == "privacy.export")).one()
    assert row.subject == f"customer:{person}" and PHONE not in json.dumps(row.detail) + row.subject


def _traces(app, needles):
    return traces(central_db.engine_for(app), needles)


def _finance(app):
    with central_db.session_factory(app)() as db:
        till = db.scalar(select(func.sum(Receipt.total)))
        sales = db.scalar(
            select(func.count()).select_from(Event).where(Event.kind.in_(["pos.receipt", "order.online"]))
        )
    return Decimal(till), sales


def test_erase_leaves_no_trace_and_keeps_the_sales(app, client, agent, person, config_path, capsys, tmp_path):
    before = _finance(app)
    assert _traces(app, [PHONE, NAME, MEMBER])  # the scan does find them while they are there
    assert _run(config_path, "customer", "erase", str(person), "--reason", "ticket 4411") == 2
    assert "would be erased" in capsys.readouterr().out
    assert _run(config_path, "customer", "erase", str(person), "--reason", "ticket 4411", "--yes") == 0
    assert f"customer {person} erased" in capsys.readouterr().out

    assert _traces(app, [PHONE, NAME, MEMBER, "1990-03-05"]) == []
    assert _traces(app, [OTHER])  # the other customer is untouched
    assert _finance(app) == before
    with central_db.session_factory(app)() as db:
        erasure = db.scalars(select(Erasure)).one()
        assert (erasure.customer_id, erasure.reason) == (person, "ticket 4411")
        assert db.scalar(select(func.count()).select_from(ErasedIdentifier)) == 2
        audit = db.scalars(select(AuditLog).where(AuditLog.action == "privacy.erase")).one()
        assert audit.subject == f"customer:{person}"
        live = db.scalars(select(Customer.id).where(Customer.merged_into.is_(None))).all()
    assert person in live  # the shell keeps its id from ever being reused

    # Rerun: already erased, nothing more happens.
    assert _run(config_path, "customer", "erase", str(person), "--reason", "again", "--yes") == 0
    assert "already erased" in capsys.readouterr().out
    # The export of an erased customer says so and holds nothing.
    out = tmp_path / "after.json"
    assert _run(config_path, "customer", "export-data", str(person), "--out", str(out)) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["erased_at"] is not None and doc["identifiers"] == [] and doc["sales"] == []
    # Gone from the lists and from export-identity.
    assert _run(config_path, "export-identity", "--out", str(tmp_path / "ids")) == 0
    assert f"\n{person}," not in (tmp_path / "ids" / "customers.csv").read_text(encoding="utf-8")


def test_late_evidence_does_not_revive_and_a_new_signup_is_a_new_person(app, client, agent, person, config_path):
    assert _run(config_path, "customer", "erase", str(person), "--reason", "ticket 4412", "--yes") == 0
    # A store that was offline uploads a receipt of the day before the erasure.
    agent.send(client, [agent.receipt("R2", "30.00", phone=PHONE, observed_at=START)])
    load(app, [event("late", "member.login", START, identifiers={"member_id": MEMBER}, name=NAME)])
    with central_db.session_factory(app)() as db:
        assert (
            db.scalar(select(func.count()).select_from(Identifier).where(Identifier.value.in_(["+86" + PHONE, MEMBER])))
            == 0
        )
    # Nor are they kept: the late events lose the number, the member id and the name they carried.
    assert _traces(app, [PHONE, MEMBER, NAME]) == []
    with central_db.session_factory(app)() as db:
        at_start = select(Event).where(Event.observed_at == START, Event.kind != "service.complaint")
        late = db.execute(at_start.order_by(Event.kind)).scalars()
        assert [(e.kind, e.identifiers, e.attributes) for e in late] == [
            ("member.login", None, None),
            ("pos.receipt", None, None),
        ]
    # The same phone signing up after the erasure is someone new.
    later = datetime.now(UTC) + timedelta(minutes=1)
    load(app, [event("new", "member.signup", later, identifiers={"phone": PHONE})], now=later)
    with central_db.session_factory(app)() as db:
        owner = db.scalar(select(Identifier.customer_id).where(Identifier.value == "+86" + PHONE))
    assert owner is not None and owner != person
