"""Erasure finds what named the person without being linked to them (decision 0098 as amended).

An openid sent without its app (unusable), a card removed from the customer and sent again later,
a reprint of the person's receipt (a copy with no customer), and someone else's event that also
carried the person's openid: none is linked to the person, and each held their details.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from central import db as central_db
from central.cli import main
from central.customers.models import Receipt
from central.identity.models import EventCustomer
from central.ingest.models import Event
from tests.central.privacy_support import MEMBER, NAME, OTHER, PHONE, config_file, event, load, make_person, traces
from tests.central.support import START

OPENID = "oPERSON4471xyz"
CARD = "C55667788"


@pytest.fixture
def config_path(app):
    return config_file(app)


def _run(config_path, *args):
    return main([*args, "--config", config_path])


def _unlinked_traces(app, agent, client, config_path):
    """The person, and rows that name them but are linked to no one (or to someone else)."""
    person = make_person(app, client, agent)
    at = START - timedelta(days=2)
    ids = {"member_id": MEMBER}
    load(
        app,
        [
            event("w1", "member.login", at, identifiers={**ids, "wechat_openid": OPENID}, app_id="wxshop"),
            event("k1", "member.update", at, identifiers={**ids, "member_card": CARD}),
        ],
    )
    # The card is removed from the customer for good; the till keeps sending it.
    assert _run(config_path, "remove-identifier", "--type", "member_card", "--value", CARD) == 0
    load(
        app,
        [
            # The openid without its app cannot link anyone (missing_app_id): kept, linked to no one.
            event("w2", "member.login", at + timedelta(hours=1), identifiers={"wechat_openid": OPENID}),
            # The removed card, as a till formats it.
            event("k2", "member.login", at + timedelta(hours=2), identifiers={"member_card": "c5566-7788"}),
            # Someone else's event, which also carried the person's openid (unusable without its app).
            event(
                "f1",
                "service.complaint",
                at + timedelta(hours=3),
                {"text": f"wife of {NAME}, phone {PHONE}"},
                identifiers={"phone": OTHER, "wechat_openid": OPENID},
            ),
        ],
    )
    # The till printed the person's receipt again (a copy: no customer, no identity facts).
    agent.send(client, [agent.receipt("R1", "100.00", phone=PHONE, observed_at=START - timedelta(days=1, minutes=-5))])
    with central_db.session_factory(app)() as db:
        copies = db.scalars(select(Receipt.event_pk).where(Receipt.reprint_of.is_not(None))).all()
        assert len(copies) == 1
        unlinked = db.scalars(
            select(Event.event_id).where(Event.id.not_in(select(EventCustomer.event_pk)), Event.kind != "pos.receipt")
        ).all()
        assert {"w2", "k2"} <= set(unlinked)
    return person


def test_the_dry_run_counts_and_the_erasure_scrubs_what_named_the_person_unlinked(
    app, client, agent, config_path, capsys
):
    person = _unlinked_traces(app, agent, client, config_path)
    engine = central_db.engine_for(app)
    assert traces(engine, [OPENID, CARD]) == [("events", "identifiers"), ("identifiers", "value")]

    assert _run(config_path, "customer", "erase", str(person), "--reason", "ticket 5120") == 2
    shown = capsys.readouterr().out
    assert "events_unlinked 2" in shown and "receipt_copies 1" in shown and "events_of_others 1" in shown
    assert _run(config_path, "customer", "erase", str(person), "--reason", "ticket 5120", "--yes") == 0
    assert "events_unlinked 2" in capsys.readouterr().out

    assert traces(engine, [PHONE, NAME, MEMBER, OPENID, CARD, "c5566-7788"]) == []
    with central_db.session_factory(app)() as db:
        other = db.scalars(select(Event).where(Event.event_id == "f1")).one()
        # Someone else's event keeps what is theirs: their phone, and the rest of the text.
        assert other.identifiers == {"phone": OTHER}
        assert other.payload == {"text": "wife of [erased], phone [erased]"}
        assert db.scalar(select(EventCustomer.customer_id).where(EventCustomer.event_pk == other.id)) is not None
        # The copy stays for finance.
        assert db.scalar(select(Receipt.total).where(Receipt.reprint_of.is_not(None))) is not None


def test_a_scan_of_a_member_id_removed_earlier_keeps_no_trace(app, client, agent, config_path):
    person = make_person(app, client, agent)
    assert _run(config_path, "remove-identifier", "--type", "member_id", "--value", MEMBER) == 0
    # A store reports a scan of the removed member id: it links no one, and the scan row names it.
    scan = {"code": "digest:" + "f" * 32, "result": "accepted", "member_id": MEMBER, "key": "0" * 16, "step": 1}
    agent.send(client, [agent.event("scan.member", scan, observed_at=START - timedelta(hours=5))])
    engine = central_db.engine_for(app)
    assert ("member_scans", "member_id") in traces(engine, [MEMBER])

    assert _run(config_path, "customer", "erase", str(person), "--reason", "ticket 5121", "--yes") == 0
    assert traces(engine, [PHONE, NAME, MEMBER]) == []
