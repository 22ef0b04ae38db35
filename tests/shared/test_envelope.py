"""The identity envelope on the wire: optional, bounded, golden, and readable from online sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.envelope import MAX_ATTRIBUTES, MAX_IDENTIFIERS
from shared.wire import (
    Batch,
    Event,
    Rejection,
    decode_batch,
    decode_source_event,
    encode_batch,
)

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
EVENT_ID = "019ab3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b"


def identity_batch() -> Batch:
    return Batch(
        device_id="dev_0123456789abcdef",
        batch_id="019ab3c4-5d6e-7000-8000-000000000002",
        sent_at="2026-11-23T02:00:00.000Z",
        events=(
            Event(
                event_id=EVENT_ID,
                seq=43,
                kind="member.signup",
                observed_at="2026-11-23T01:59:58.120Z",
                store_id="S001",
                payload={"channel": "counter"},
                identifiers={"phone": "+86 138 1234 5678", "member_card": "VIP0042", "device_hash": "9f2c"},
                app_id="wx0123456789abcdef",
                attributes={"name": "王芳", "gender": "female", "birthday": "1990-03-05", "city": "上海"},
            ),
        ),
    )


def test_identity_fields_match_their_golden_file():
    assert encode_batch(identity_batch()) == (GOLDEN / "wire_v1_batch_identity.json").read_bytes().rstrip(b"\n")


def test_identity_golden_batch_decodes_to_the_same_event():
    decoded = decode_batch((GOLDEN / "wire_v1_batch_identity.json").read_bytes())
    assert decoded.rejected == ()
    assert decoded.events == identity_batch().events


def test_an_event_without_identity_fields_encodes_exactly_as_before():
    event = identity_batch().events[0]
    plain = Event(event.event_id, event.seq, event.kind, event.observed_at, event.store_id, event.payload)
    assert "identifiers" not in encode_batch(Batch("dev_1", "b", "t", (plain,))).decode()
    assert plain.to_dict().keys() == {"event_id", "seq", "kind", "observed_at", "store_id", "payload"}


def _golden_event(**changes):
    event = json.loads((GOLDEN / "wire_v1_batch_identity.json").read_bytes())["events"][0]
    event.update(changes)
    return event


def _rejected(event):
    doc = json.loads((GOLDEN / "wire_v1_batch_identity.json").read_bytes())
    doc["events"] = [event]
    return decode_batch(json.dumps(doc).encode()).rejected


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"identifiers": []}, "invalid_identifiers"),
        ({"identifiers": {}}, "invalid_identifiers"),
        ({"identifiers": {f"t{i}": "1" for i in range(MAX_IDENTIFIERS + 1)}}, "invalid_identifiers"),
        ({"identifiers": {"Phone": "1"}}, "invalid_identifiers"),
        ({"identifiers": {"phone": 13812345678}}, "invalid_identifier:phone"),
        ({"identifiers": {"phone": ""}}, "invalid_identifier:phone"),
        ({"identifiers": {"phone": "1" * 129}}, "invalid_identifier:phone"),
        ({"identifiers": {"phone": "138\x00"}}, "invalid_identifier:phone"),
        ({"app_id": ""}, "invalid_app_id"),
        ({"app_id": "wx 1"}, "invalid_app_id"),
        ({"attributes": ["name"]}, "invalid_attributes"),
        ({"attributes": {f"a{i}": "x" for i in range(MAX_ATTRIBUTES + 1)}}, "invalid_attributes"),
        ({"attributes": {"name": 7}}, "invalid_attribute:name"),
        ({"attributes": {"name": "x" * 257}}, "invalid_attribute:name"),
        ({"attributes": {"name": "a\nb"}}, "invalid_attribute:name"),
    ],
)
def test_a_malformed_envelope_rejects_the_event_with_a_reason(change, reason):
    assert _rejected(_golden_event(**change)) == (Rejection(EVENT_ID, reason),)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"items": []}, "invalid_payload:total"),
        ({"total": "9.90", "items": "x"}, "invalid_payload:items"),
    ],
)
def test_an_online_order_needs_a_total_and_items(payload, reason):
    assert _rejected(_golden_event(kind="order.online", payload=payload)) == (Rejection(EVENT_ID, reason),)


def test_source_event_defaults_and_shorthand_attributes():
    event = decode_source_event(
        {
            "event_id": "crm:000042",
            "kind": "member.signup",
            "observed_at": "2019-05-01T08:00:00+08:00",
            "identifiers": {"member_id": "M42"},
            "name": "李雷",
            "birthday": "1988-02-29",
            "attributes": {"name": "李雷 (VIP)", "city": "北京"},
        }
    )
    assert isinstance(event, Event)
    assert (event.seq, event.store_id, event.payload) == (0, "", {})
    assert event.attributes == {"name": "李雷 (VIP)", "birthday": "1988-02-29", "city": "北京"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("junk", Rejection(None, "invalid_event")),
        ({"event_id": "x" * 65, "kind": "member.login"}, Rejection("x" * 65, "invalid_event_id")),
        ({"event_id": "a\tb", "kind": "member.login"}, Rejection("a\tb", "invalid_event_id")),
        ({"event_id": 7}, Rejection(None, "invalid_event_id")),
        (
            {"event_id": "e1", "kind": "member.login", "observed_at": "2020-01-01"},
            Rejection("e1", "invalid_observed_at"),
        ),
        (
            {"event_id": "e1", "kind": "member.login", "observed_at": "2020-01-01T00:00:00Z", "name": 5},
            Rejection("e1", "invalid_attribute:name"),
        ),
        (
            {
                "event_id": "e1",
                "kind": "member.login",
                "observed_at": "2020-01-01T00:00:00Z",
                "name": "x",
                "attributes": [],
            },
            Rejection("e1", "invalid_attributes"),
        ),
        (
            {"event_id": "e1", "kind": "member.fly", "observed_at": "2020-01-01T00:00:00Z"},
            Rejection("e1", "unknown_kind"),
        ),
    ],
)
def test_source_event_rejections(raw, expected):
    assert decode_source_event(raw) == expected


def test_source_event_ids_may_be_any_text_up_to_64_characters():
    for event_id in ("1", "订单-2024-000001", "import:0123456789abcdef:100000", "x" * 64):
        event = decode_source_event(
            {"event_id": event_id, "kind": "member.login", "observed_at": "2020-01-01T00:00:00Z"}
        )
        assert isinstance(event, Event) and event.event_id == event_id


def test_empty_attributes_are_allowed_and_empty_values_too():
    event = decode_source_event(
        {"event_id": "e", "kind": "member.update", "observed_at": "2020-01-01T00:00:00Z", "attributes": {}}
    )
    assert isinstance(event, Event) and event.attributes == {}
    event = decode_source_event(
        {"event_id": "e", "kind": "member.update", "observed_at": "2020-01-01T00:00:00Z", "attributes": {"city": ""}}
    )
    assert isinstance(event, Event)
    bad = decode_source_event(
        {"event_id": "e", "kind": "member.update", "observed_at": "2020-01-01T00:00:00Z", "attributes": {"": "x"}}
    )
    assert bad == Rejection("e", "invalid_attributes")
