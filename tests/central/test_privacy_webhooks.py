"""Erasure reaches the segment exports queued or sent to a webhook: the person leaves every call's body."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from sqlalchemy import select

from central import db as central_db
from central.campaigns.models import WebhookDelivery
from central.cli import main
from central.segments import definitions, evaluation, exports
from central.segments.definitions import Draft
from central.segments.models import Segment
from tests.central.privacy_support import config_file, event, load, traces
from tests.central.support import START

ANN, BEA = "13912340001", "13912340002"
OFFSET = 480


def _people(app, client, agent):
    at = START - timedelta(days=3)
    grant = {"purpose": "marketing", "channel": "sms", "notice_version": "2026-01"}
    load(
        app,
        [
            event("a1", "member.signup", at, identifiers={"phone": ANN}, name="周安娜"),
            event("a2", "consent.given", at, grant, identifiers={"phone": ANN}),
            event("b1", "member.signup", at, identifiers={"phone": BEA}, name="吴贝"),
            event("b2", "consent.given", at, grant, identifiers={"phone": BEA}),
        ],
    )
    receipts = [
        agent.receipt(f"R{n}", "80.00", phone=p, observed_at=START - timedelta(days=1))
        for n, p in enumerate((ANN, BEA))
    ]
    agent.send(client, receipts)


def _queue(app, chunk: int) -> None:
    """The segment's unmasked export queued for its webhook, as an administrator's export queues it."""
    with central_db.session_factory(app)() as db:
        segment = db.execute(select(Segment.__table__).where(Segment.__table__.c.name == "buyers")).first()
        exports.queue_webhook(db, segment, START.date(), START, unmasked=True, chunk=chunk)
        db.commit()


def _calls(app):
    with central_db.session_factory(app)() as db:
        return [(r.status, orjson.loads(r.body)) for r in db.execute(select(WebhookDelivery.__table__).order_by("id"))]


@pytest.mark.parametrize("delivered", [False, True])
def test_an_erased_person_leaves_every_segment_call_queued_or_sent(app, client, agent, delivered):
    _people(app, client, agent)
    hook = {"webhook_url": "https://crm.example.cn/hooks/seg", "webhook_secret": "a-secret-of-16-chars"}
    with central_db.session_factory(app)() as db:
        definitions.create(db, Draft("buyers", "purchases >= 1", "sms", **hook), actor="test", now=START)
        evaluation.evaluate(db, "buyers", START, OFFSET)
        db.commit()
    _queue(app, chunk=10)  # one call with both
    _queue(app, chunk=1)  # a call each
    if delivered:
        with central_db.engine_for(app).begin() as conn:
            conn.execute(WebhookDelivery.__table__.update().values(status="delivered"))
    engine = central_db.engine_for(app)
    assert traces(engine, [ANN, "周安娜"]) and traces(engine, [BEA])
    ann = next(m["customer_id"] for _, body in _calls(app) for m in body["members"] if m["phone"] == "+86" + ANN)
    config = config_file(app)
    assert main(["customer", "erase", str(ann), "--reason", "ticket 77", "--yes", "--config", config]) == 0
    assert traces(engine, [ANN, "周安娜"]) == []
    calls = _calls(app)
    assert [[m["phone"][3:] for m in body["members"]] for _, body in calls] == [[BEA], [], [BEA]]
    # Still to be sent: the call that was about Ann alone is cancelled, Bea's go; sent ones stay sent.
    expected = ["delivered"] * 3 if delivered else ["pending", "cancelled", "pending"]
    assert [status for status, _ in calls] == expected
