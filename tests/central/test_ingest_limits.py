"""Hostile or broken batches: deep nesting, oversized events, repeated ids, absurd sequence numbers."""

from __future__ import annotations

from central.fleet.models import Device
from central.ingest.models import Event
from tests.central.support import table_rows


def _nested(depth: int) -> dict:
    inner: dict = {}
    top = inner
    for _ in range(depth - 1):
        inner["x"] = {}
        inner = inner["x"]
    return top


def test_a_payload_nested_too_deep_is_rejected_alone(app, client, agent):
    good = agent.receipt("R1")
    deep = agent.event("scan.member", {"code": "m1", "extra": _nested(300)})
    response = agent.post(client, agent.body([good.to_dict(), deep.to_dict()]))  # json, not orjson: 300 levels
    assert response.status_code == 200, response.get_data(as_text=True)
    reply = response.get_json()
    assert reply["accepted"] == [good.event_id]
    assert reply["rejected"] == [{"event_id": deep.event_id, "reason": "payload_too_deep"}]
    assert [e.event_id for e in table_rows(app, Event)] == [good.event_id]


def test_an_oversized_event_is_rejected_and_unknown_fields_are_dropped(app, client, agent):
    huge = agent.event("scan.product", {"code": "6901234567892", "padding": "x" * (5 * 1024 * 1024)})
    small = agent.event("scan.product", {"code": "6901234567892", "colour": "red", "nested": {"a": 1}})
    reply = agent.send(client, [huge, small])
    assert reply["accepted"] == [small.event_id]
    assert reply["rejected"] == [{"event_id": huge.event_id, "reason": "event_too_large"}]
    (stored,) = table_rows(app, Event)
    assert stored.payload == {"code": "6901234567892"}


def test_an_event_id_repeated_in_a_batch_is_answered_once(app, client, agent):
    event = agent.receipt("R1")
    response = agent.post(client, agent.body([event.to_dict()] * 3))
    reply = response.get_json()
    answered = [*reply["accepted"], *reply["duplicate"], *(r["event_id"] for r in reply["rejected"])]
    assert answered == [event.event_id]
    assert reply["accepted"] == [event.event_id]
    assert len(table_rows(app, Event)) == 1


def test_an_absurd_seq_is_rejected_and_cannot_freeze_the_heartbeat(app, client, agent):
    absurd = agent.receipt("R1")
    reply = agent.post(client, agent.body([{**absurd.to_dict(), "seq": 2**63 - 1}])).get_json()
    assert reply["rejected"] == [{"event_id": absurd.event_id, "reason": "invalid_seq"}]
    beat = agent.event("agent.heartbeat", {"agent_version": "0.3.0"})
    agent.send(client, [beat])
    (device,) = table_rows(app, Device)
    assert device.agent_version == "0.3.0"


def test_the_highest_allowed_seq_does_not_freeze_the_heartbeat(app, client, agent):
    high = agent.receipt("R1")
    reply = agent.post(client, agent.body([{**high.to_dict(), "seq": 2**53 - 1}])).get_json()
    assert reply["accepted"] == [high.event_id]
    agent.send(client, [agent.event("agent.heartbeat", {"agent_version": "0.4.0"})])
    (device,) = table_rows(app, Device)
    assert device.agent_version == "0.4.0"
