"""A person's requests: export-data gives them everything held, erase leaves nothing of them (decisions 0097, 0098)."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import JSON, String, Text, func, select, text

from central import db as central_db
from central.cli import main
from central.customers.models import Receipt
from central.customers.notes import add_note, file_complaint
from central.identity.models import Customer, Identifier
from central.identity.registry import load_registry
from central.ingest.models import Event
from central.models import AuditLog
from central.privacy.models import ErasedIdentifier, Erasure
from central.schema import Base
from central.sources.events import store_source_events
from tests.central.cli_runner import write_config
from tests.central.support import START

PHONE = "13912340876"
NAME = "欧阳娜娜"
MEMBER = "M7788123"
OTHER = "13712345670"


def _load(app, events, *, now=START, source="crm"):
    with central_db.session_factory(app)() as db:
        staged = store_source_events(db, source, events, now, registry=load_registry(app.config["CENTRAL"]))
        db.commit()
    assert not staged.rejected, staged.rejected


def _event(event_id, kind, at, payload=None, **fields):
    return {"event_id": event_id, "kind": kind, "observed_at": at.isoformat(), "payload": payload or {}, **fields}


@pytest.fixture
def config_path(app):
    config = app.config["CENTRAL"]
    return str(
        write_config(config.server_data_dir.parent / "central.toml", config.server_data_dir, config.database_url)
    )


@pytest.fixture
def person(app, client, agent):
    """One member with a signup, consents, a till receipt, an online order, a note and a complaint; and someone else."""
    ids = {"phone": PHONE, "member_id": MEMBER}
    at = START - timedelta(days=3)
    _load(
        app,
        [
            _event("s1", "member.signup", at, identifiers=ids, name=NAME, birthday="1990-03-05", city="杭州"),
            _event("c1", "consent.given", at, {"purpose": "marketing", "channel": "sms"}, identifiers=ids),
            _event("c2", "consent.withdrawn", at + timedelta(hours=1), {"purpose": "marketing"}, identifiers=ids),
            _event(
                "o1",
                "order.online",
                at + timedelta(hours=2),
                {"order_no": "W1", "total": "59.90", "items": [{"sku": "F900", "name": "Formula", "qty": 1}]},
                identifiers={"phone": PHONE},
            ),
            _event("x1", "member.signup", at, identifiers={"phone": OTHER}, name="李四"),
        ],
    )
    agent.send(client, [agent.receipt("R1", "100.00", phone=PHONE, observed_at=START - timedelta(days=1))])
    with central_db.session_factory(app)() as db:
        customer = db.scalar(select(Identifier.customer_id).where(Identifier.value == "+86" + PHONE))
        add_note(db, customer, f"called back {NAME} about the order", author="wang", now=START)
        file_complaint(db, load_registry(app.config["CENTRAL"]), customer, "late delivery", now=START)
        db.commit()
    return customer


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


def _text_columns():
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, String | Text | JSON):
                yield table.name, column.name


def _traces(app, needles):
    """Every (table, column) whose text holds one of ``needles``: a scan of the whole database."""
    found = []
    with central_db.engine_for(app).connect() as conn:
        for table, column in _text_columns():
            for (value,) in conn.execute(text(f"SELECT CAST({column} AS TEXT) FROM {table}")):  # noqa: S608
                if value is not None and any(n in value or json.dumps(n)[1:-1] in value for n in needles):
                    found.append((table, column))
    return sorted(set(found))


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
    _load(app, [_event("late", "member.login", START, identifiers={"member_id": MEMBER}, name=NAME)])
    with central_db.session_factory(app)() as db:
        assert (
            db.scalar(select(func.count()).select_from(Identifier).where(Identifier.value.in_(["+86" + PHONE, MEMBER])))
            == 0
        )
    assert _traces(app, [NAME]) == [("events", "attributes")]  # only the late event itself, which names no one
    # The same phone signing up after the erasure is someone new.
    later = datetime.now(UTC) + timedelta(minutes=1)
    _load(app, [_event("new", "member.signup", later, identifiers={"phone": PHONE})], now=later)
    with central_db.session_factory(app)() as db:
        owner = db.scalar(select(Identifier.customer_id).where(Identifier.value == "+86" + PHONE))
    assert owner is not None and owner != person
