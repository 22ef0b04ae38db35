"""The agent checks each capture against its kind's payload schema before it enters the outbox."""

from __future__ import annotations

import orjson

from edge_agent.outbox import Capture, Quarantined
from edge_agent.payload_gate import REFUSED_COUNTER, admit, is_refusal
from edge_agent.writer import OutboxWriter
from shared.payloads import MAX_EVENT_BYTES

AT = "2026-11-23T02:00:00.000Z"


def receipt(n: int, **extra) -> Capture:
    return Capture.of("pos.receipt", {"receipt_no": f"R{n}", "total": "1.00", **extra}, AT, "pos", n * 10)


def write(outbox, records) -> tuple[OutboxWriter, list[dict[str, int]]]:
    offsets: list[dict[str, int]] = []
    writer = OutboxWriter(outbox, commit_interval=0.0, on_commit=offsets.append)
    for record in records:
        writer.put(record)
    writer.start()
    writer.stop()
    return writer, offsets


def test_unknown_fields_are_dropped_before_the_outbox(outbox):
    write(outbox, [receipt(1, colour="red", loyalty={"tier": "gold"})])
    [row] = outbox.pending(10)
    assert row.event().payload == {"receipt_no": "R1", "total": "1.00"}


def test_a_payload_that_fits_is_handed_on_unchanged():
    record = receipt(1)
    assert admit(record) is record


def test_an_oversize_payload_is_quarantined_with_the_reason_and_counted(outbox):
    huge = receipt(2, note="x" * (MAX_EVENT_BYTES + 1))
    writer, offsets = write(outbox, [receipt(1), huge, receipt(3)])
    assert [row.event().payload["receipt_no"] for row in outbox.pending(10)] == ["R1", "R3"]
    [quarantined] = outbox.quarantine()
    assert (quarantined.source, quarantined.reason) == ("pos", "event_too_large")
    assert orjson.loads(quarantined.raw or b"")["receipt_no"] == "R2"
    stats = outbox.stats()
    assert stats.quarantined == 1 and (stats.counters or {})[REFUSED_COUNTER] == 1
    assert offsets == [{"pos": 30}]  # the refused record's offset still moves: the journal can let it go
    assert writer.committed == 3


def test_a_field_of_the_wrong_type_names_the_field():
    refused = admit(Capture.of("pos.receipt", {"receipt_no": "R1", "total": "1,00"}, AT, "pos", 7))
    assert isinstance(refused, Quarantined)
    assert (refused.reason, refused.offset) == ("invalid_payload:total", 7)
    assert is_refusal(refused)


def test_the_agents_own_records_are_checked_too():
    refused = admit(Capture.of("agent.nonsense", {}, AT))
    assert isinstance(refused, Quarantined) and (refused.source, refused.reason) == ("agent", "unknown_kind")
    deep: dict = {}
    for _ in range(40):
        deep = {"a": deep}
    assert admit(Capture.of("agent.heartbeat", {"agent_version": "1", "health": deep}, AT)).reason == (  # type: ignore[union-attr]
        "payload_too_deep"
    )


def test_parser_quarantines_are_not_counted_as_refusals():
    assert not is_refusal(Quarantined("pos", "line_too_long", b"...", 0.0, 3))


def test_refusals_are_counted_across_restarts(outbox, tmp_path, sealer):
    write(outbox, [Capture.of("pos.receipt", {"total": "1.00"}, AT, "pos", 1)])
    write(outbox, [Capture.of("pos.receipt", {"total": "x"}, AT, "pos", 2)])
    assert outbox.counters()[REFUSED_COUNTER] == 2
    assert [row.reason for row in outbox.quarantine()] == ["invalid_payload:total", "invalid_payload:receipt_no"]
