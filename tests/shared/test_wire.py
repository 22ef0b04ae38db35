"""Wire protocol v1: golden files, round trips, and a reason code for every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.wire import (
    KINDS,
    Batch,
    Event,
    Rejection,
    Reply,
    WireError,
    decode_batch,
    decode_reply,
    encode_batch,
    encode_reply,
)

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
EVENT_ID = "019ab3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b"
EVENT_ID_2 = "019ab3c4-5d6e-7f80-9a1b-2c3d4e5f6a7c"


def golden_batch() -> Batch:
    return Batch(
        device_id="dev_0123456789abcdef",
        batch_id="019ab3c4-5d6e-7000-8000-000000000001",
        sent_at="2026-11-23T02:00:00.000Z",
        events=(
            Event(
                event_id=EVENT_ID,
                seq=41,
                kind="pos.receipt",
                observed_at="2026-11-23T01:59:58.120Z",
                store_id="S001",
                payload={
                    "receipt_no": "S001-261123-00042",
                    "total": "36.50",
                    "currency": "CNY",
                    "items": [{"sku": "6921168509256", "name": "农夫山泉 550ml", "qty": "2", "unit_price": "2.00"}],
                    "member": {"phone": "13812345678"},
                    "format": "json",
                },
            ),
            Event(
                event_id=EVENT_ID_2,
                seq=42,
                kind="agent.heartbeat",
                observed_at="2026-11-23T01:59:59.000Z",
                store_id="S001",
                payload={"agent_version": "0.1.0", "uptime_s": 60},
            ),
        ),
    )


def test_encoding_matches_the_v1_golden_file():
    assert encode_batch(golden_batch()) == (GOLDEN / "wire_v1_batch.json").read_bytes().rstrip(b"\n")


def test_golden_batch_decodes_to_the_same_events():
    decoded = decode_batch((GOLDEN / "wire_v1_batch.json").read_bytes())
    assert decoded.rejected == ()
    assert decoded.events == golden_batch().events
    assert decoded.device_id == "dev_0123456789abcdef"
    assert decoded.schema == 1


def test_reply_matches_the_v1_golden_file_and_round_trips():
    reply = Reply(accepted=(EVENT_ID,), duplicate=(EVENT_ID_2,), rejected=(Rejection(None, "invalid_event_id"),))
    golden = (GOLDEN / "wire_v1_reply.json").read_bytes().rstrip(b"\n")
    assert encode_reply(reply) == golden
    assert decode_reply(golden) == reply


def _doc(**changes):
    doc = json.loads((GOLDEN / "wire_v1_batch.json").read_bytes())
    doc.update(changes)
    return doc


def _event(**changes):
    event = json.loads((GOLDEN / "wire_v1_batch.json").read_bytes())["events"][0]
    event.update(changes)
    return event


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "invalid_json"),
        (b"[1, 2]", "invalid_batch"),
        (json.dumps(_doc(schema=2)).encode(), "unsupported_schema"),
        (json.dumps(_doc(schema=True)).encode(), "unsupported_schema"),
        (json.dumps({k: v for k, v in _doc().items() if k != "schema"}).encode(), "unsupported_schema"),
        (json.dumps(_doc(device_id="bad id!")).encode(), "invalid_batch"),
        (json.dumps(_doc(batch_id="1234")).encode(), "invalid_batch"),
        (json.dumps(_doc(sent_at="yesterday")).encode(), "invalid_batch"),
        (json.dumps(_doc(events={})).encode(), "invalid_batch"),
    ],
)
def test_batch_level_faults_raise_with_a_reason(body, reason):
    with pytest.raises(WireError) as info:
        decode_batch(body)
    assert info.value.reason == reason


def test_too_many_events_is_a_batch_fault():
    body = json.dumps(_doc(events=[_event()] * 3)).encode()
    with pytest.raises(WireError) as info:
        decode_batch(body, max_events=2)
    assert info.value.reason == "too_many_events"


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (_event(kind="pos.teleport"), "unknown_kind"),
        (_event(kind=7), "invalid_kind"),
        (_event(seq=-1), "invalid_seq"),
        (_event(seq="1"), "invalid_seq"),
        (_event(seq=True), "invalid_seq"),
        (_event(observed_at="2026-11-23 01:59:58"), "invalid_observed_at"),
        (_event(store_id=""), "invalid_store_id"),
        (_event(store_id="S001\n"), "invalid_store_id"),  # not a second store beside S001
        (_event(payload={"receipt_no": "R1", "total": "1.00\n"}), "invalid_payload:total"),
        (_event(payload=[]), "invalid_payload"),
        (_event(payload={"total": "1.00"}), "invalid_payload:receipt_no"),
        (_event(payload={"receipt_no": "R1", "total": "1,00"}), "invalid_payload:total"),
        (_event(payload={"receipt_no": "R1", "total": "NaN"}), "invalid_payload:total"),
        (_event(payload={"receipt_no": "R1", "total": "1", "items": "x"}), "invalid_payload:items"),
        (_event(payload={"receipt_no": "R1", "total": "1", "member": {"phone": 138}}), "invalid_payload:member.phone"),
    ],
)
def test_a_bad_event_is_rejected_alone_with_a_reason(event, reason):
    good = _event(event_id=EVENT_ID_2)
    decoded = decode_batch(json.dumps(_doc(events=[event, good])).encode())
    assert decoded.rejected == (Rejection(EVENT_ID, reason),)
    assert [e.event_id for e in decoded.events] == [EVENT_ID_2]


def test_unreadable_event_ids_are_rejected_and_repeats_answered_once():
    events = [_event(event_id="nope"), _event(event_id=None), "junk", _event(), _event(), _event(seq=-1)]
    events.append(_event(event_id=EVENT_ID + "\n"))  # not a second event beside EVENT_ID
    decoded = decode_batch(json.dumps(_doc(events=events)).encode())
    assert decoded.rejected == (
        Rejection("nope", "invalid_event_id"),
        Rejection(None, "invalid_event_id"),
        Rejection(None, "invalid_event_id"),
        Rejection(EVENT_ID + "\n", "invalid_event_id"),
    )
    assert [e.event_id for e in decoded.events] == [EVENT_ID]


def test_a_repeat_is_answered_by_its_first_copy_even_when_that_one_is_bad():
    events = [_event(seq=-1), _event()]
    decoded = decode_batch(json.dumps(_doc(events=events)).encode())
    assert decoded.rejected == (Rejection(EVENT_ID, "invalid_seq"),)
    assert decoded.events == ()


def test_every_design_kind_is_known():
    assert {
        "pos.receipt",
        "pos.sale",
        "scan.member",
        "scan.coupon",
        "scan.product",
        "presence.visit",
        "presence.aggregate",
        "agent.heartbeat",
        "agent.gap",
        "member.signup",
        "member.update",
        "member.login",
        "order.online",
        "consent.given",
        "consent.withdrawn",
        "service.complaint",
    } == KINDS


@pytest.mark.parametrize(
    "body",
    [
        b'{"accepted": [1]}',
        b'{"accepted": [], "duplicate": [], "rejected": [], "downlink_version": "7"}',
        b'{"accepted": [], "duplicate": [], "rejected": [], "downlink_version": -1}',
    ],
)
def test_malformed_reply_is_an_error(body):
    with pytest.raises(WireError):
        decode_reply(body)


def test_a_reply_with_the_downlink_version_matches_its_golden_file():
    reply = Reply(accepted=(EVENT_ID,), duplicate=(), rejected=(), downlink_version=7)
    golden = (GOLDEN / "wire_v1_reply_downlink.json").read_bytes().rstrip(b"\n")
    assert encode_reply(reply) == golden
    assert decode_reply(golden) == reply
    # The version is optional both ways: replies without it still read, and None is not sent.
    assert decode_reply((GOLDEN / "wire_v1_reply.json").read_bytes()).downlink_version is None
    assert b"downlink_version" not in encode_reply(Reply())


def test_the_seq_is_bounded_to_what_json_readers_hold_exactly():
    top = _event(seq=2**53 - 1)
    decoded = decode_batch(json.dumps(_doc(events=[top])).encode())
    assert decoded.rejected == ()
    decoded = decode_batch(json.dumps(_doc(events=[_event(seq=2**53)])).encode())
    assert decoded.rejected == (Rejection(EVENT_ID, "invalid_seq"),)


def test_payloads_are_cleaned_to_their_schema():
    event = _event(payload={"receipt_no": "R1", "total": "1.00", "secret_sauce": {"a": [1, 2]}})
    (decoded,) = decode_batch(json.dumps(_doc(events=[event])).encode()).events
    assert decoded.payload == {"receipt_no": "R1", "total": "1.00"}
