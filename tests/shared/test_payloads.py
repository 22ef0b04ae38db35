"""Per-kind payload schemas: one typical payload per kind, unknown fields dropped, every limit enforced."""

from __future__ import annotations

import pytest

from shared.payloads import KINDS, MAX_DEPTH, SCHEMAS, check_event, measure

TYPICAL = {
    "pos.receipt": {
        "receipt_no": "S001-261123-00042",
        "total": "36.50",
        "currency": "CNY",
        "items": [{"sku": "6921168509256", "name": "农夫山泉 550ml", "qty": "2", "unit_price": "2.00"}],
        "member": {"phone": "13812345678"},
        "format": "json",
        "paid_at": "2026-11-23T09:58:25",
        "payment": "wechat",
        "warnings": ["invalid_member_phone"],
        "ignored_fields": ["table_no"],
    },
    "pos.sale": {"sale_no": "T88", "total": "9.90", "items": [{"sku": "1", "name": "", "qty": 1, "unit_price": None}]},
    "scan.member": {"code": "CDPM1.abc", "symbology": "qr"},
    "scan.coupon": {"code": "CPN-2026-0001", "coupon_id": "c-1"},
    "scan.product": {"code": "6901234567892", "qty": 2},
    "presence.visit": {
        "medium": "wifi",
        "started_at": "2026-11-23T02:04:10.000Z",
        "ended_at": "2026-11-23T02:19:40.500Z",
        "dwell_s": 930.5,
        "zones": [{"zone": "entrance", "dwell_s": 120.0}, {"zone": "aisles", "dwell_s": 810.5}],
        "repeat": False,
        "peak_dbm": -52,
    },
    "presence.aggregate": {
        "medium": "ble",
        "hour_start": "2026-11-23T10:00:00+08:00",
        "hour_end": "2026-11-23T11:00:00+08:00",
        "sightings": 5120,
        "devices": {"p": 12, "registers": "eNpjYBgFo2AUDHcAAAQAAAE=", "estimate": 41},
        "passers_by": {"passes": 30, "devices": {"p": 12, "registers": "eNpjYBgFo2AUDHcAAAQAAAE="}},
        "visitors": {"visits": 12, "repeat_visits": 1, "randomized_visits": 4},
        "dwell": {"bounds_s": [60, 120], "counts": [0, 2, 10], "visits": 12, "total_s": 7200.0},
        "zones": {"aisles": {"dwell_s": 3600.0, "visits": 9}},
    },
    "agent.heartbeat": {
        "agent_version": "0.2.0",
        "uptime_s": 60,
        "health": {"state": "degraded", "backlog": 1200, "oldest_unsent_s": 900.5, "clock_offset_s": -0.4},
        "sources": {"pos": {"state": "reading", "quarantined_by_reason": {"binary_data": 2}}},
        "downlink_version": 3,
    },
    "agent.gap": {"reason": "disk_full", "shed": {"presence.visit": 120}, "from_seq": 10, "to_seq": None},
    "member.signup": {"member_id": "M0001", "channel": "miniprogram"},
    "member.update": {"member_id": "M0001", "changed": ["city"]},
    "member.login": {"member_id": "M0001", "method": "sms"},
    "order.online": {"order_no": "JD-1", "total": "99.00", "status": "paid", "items": []},
    "consent.given": {"purpose": "marketing", "channel": "sms", "notice_version": "2026-01", "source": "app"},
    "consent.withdrawn": {"purpose": "marketing"},
    "service.complaint": {"ticket_no": "T-9", "category": "refund", "text": "商品破损"},
}


def test_every_kind_has_a_schema_and_a_typical_payload_passes_unchanged():
    assert set(TYPICAL) == KINDS == set(SCHEMAS)
    for kind, payload in TYPICAL.items():
        assert check_event(kind, payload) == (payload, None), kind


def test_unknown_fields_are_dropped_at_every_declared_level():
    payload = {**TYPICAL["pos.receipt"], "loyalty_blob": "x" * 1000}
    payload["items"] = [{**payload["items"][0], "secret": 1}]
    payload["member"] = {"phone": "13812345678", "birthday": "1990-01-01"}
    cleaned, reason = check_event("pos.receipt", payload)
    assert reason is None
    assert "loyalty_blob" not in cleaned
    assert cleaned["items"] == TYPICAL["pos.receipt"]["items"]
    assert cleaned["member"] == {"phone": "13812345678"}


@pytest.mark.parametrize(
    ("kind", "payload", "reason"),
    [
        ("pos.teleport", {}, "unknown_kind"),
        ("pos.receipt", [], "invalid_payload"),
        ("pos.receipt", {"total": "1.00"}, "invalid_payload:receipt_no"),
        ("pos.receipt", {"receipt_no": "R\x001", "total": "1.00"}, "invalid_payload:receipt_no"),
        ("pos.receipt", {"receipt_no": "R1", "total": 1.0}, "invalid_payload:total"),
        ("pos.receipt", {"receipt_no": "R1", "total": "1", "items": [{"sku": 7}]}, "invalid_payload:items.sku"),
        ("pos.receipt", {"receipt_no": "R1", "total": "1", "items": [{}] * 20_001}, "invalid_payload:items"),
        ("order.online", {"status": "closed"}, "invalid_payload:total"),
        ("order.online", {"order_no": "A1"}, "invalid_payload:total"),
        ("order.online", {"order_no": "A1", "status": " "}, "invalid_payload:total"),
        ("consent.given", {"purpose": "telepathy"}, "invalid_payload:purpose"),
        ("consent.withdrawn", {"purpose": "marketing", "channel": "fax"}, "invalid_payload:channel"),
        ("consent.given", {"purpose": "marketing", "source": "rumour"}, "invalid_payload:source"),
        ("agent.heartbeat", {}, "invalid_payload:agent_version"),
        ("agent.heartbeat", {"agent_version": "1", "uptime_s": True}, "invalid_payload:uptime_s"),
        ("agent.heartbeat", {"agent_version": "1", "health": {"a": {"b": {"c": 1}}}}, "invalid_payload:health"),
        ("agent.heartbeat", {"agent_version": "1", "health": {"": 1}}, "invalid_payload:health"),
        (
            "agent.heartbeat",
            {"agent_version": "1", "health": {f"k{i}": i for i in range(65)}},
            "invalid_payload:health",
        ),
        ("agent.heartbeat", {"agent_version": "1", "sources": {"": {}}}, "invalid_payload:sources"),
        ("agent.gap", {"reason": "disk_full", "shed": {"presence.visit": -1}}, "invalid_payload:shed"),
        ("agent.gap", {"reason": "disk_full", "from_seq": "1"}, "invalid_payload:from_seq"),
        (
            "presence.visit",
            {"started_at": "a", "ended_at": "b", "dwell_s": 1, "peak_dbm": -500},
            "invalid_payload:peak_dbm",
        ),
        ("scan.member", {"code": ""}, "invalid_payload:code"),
    ],
)
def test_a_payload_that_does_not_fit_is_rejected_with_the_field(kind, payload, reason):
    assert check_event(kind, payload) == (None, reason)


def _nested(depth: int) -> dict:
    top: dict = {}
    inner = top
    for _ in range(depth - 1):
        inner["x"] = {}
        inner = inner["x"]
    return top


def test_depth_is_bounded_even_in_fields_that_would_be_dropped():
    assert measure(_nested(MAX_DEPTH)) is None
    assert measure(_nested(MAX_DEPTH + 1)) == "payload_too_deep"
    deep = {"code": "x", "extra": [_nested(400)]}
    assert check_event("scan.member", deep) == (None, "payload_too_deep")


def test_size_is_bounded_even_in_fields_that_would_be_dropped():
    assert check_event("scan.member", {"code": "x", "pad": "y" * 4_200_000}) == (None, "event_too_large")
    assert check_event("scan.member", {"code": "x", "pad": ["y" * 1000] * 4200}) == (None, "event_too_large")
    assert check_event("scan.member", {"code": "x", "pad": "y" * 1000}, max_chars=500) == (None, "event_too_large")
    assert check_event("scan.member", {"code": "x", "pad": "y" * 1000})[1] is None


def test_the_size_is_the_compact_json_in_bytes():
    import orjson

    payload = TYPICAL["pos.receipt"]
    exact = len(orjson.dumps(payload))
    assert measure(payload, max_chars=exact) is None
    assert measure(payload, max_chars=exact - 1) == "event_too_large"


def test_many_brackets_in_text_do_not_make_a_payload_deep():
    assert measure({"note": "[[[[{{{{" * 10}) is None
    assert measure({"a": [[{"b": []}] for _ in range(20)]}) is None


def test_long_text_in_a_report_is_cut_not_fatal():
    payload = {
        "agent_version": "1",
        "health": {"last_error": "e" * 1000, "nul": "a\x00b"},
        "sources": {"pos": {"d": "x"}},
    }
    cleaned, reason = check_event("agent.heartbeat", payload)
    assert reason is None
    assert cleaned["health"] == {"last_error": "e" * 256, "nul": "ab"}


def test_the_first_release_heartbeat_fits():
    beat = {
        "agent_version": "0.1.0",
        "uptime_s": 3600,
        "outbox": {
            "pending": 3,
            "delivered": 10,
            "rejected": 0,
            "quarantined": 1,
            "last_seq": 14,
            "writer_backlog": 0,
            "writer_error": None,
        },
        "sources": {
            "pos": {
                "state": "reading",
                "detail": "",
                "bytes_read": 100,
                "events": 13,
                "quarantined": 1,
                "quarantined_by_reason": {"binary_data": 1},
                "reconnects": 0,
            }
        },
        "sync": {"consecutive_failures": 0, "last_error": None},
    }
    assert check_event("agent.heartbeat", beat) == (beat, None)


def test_a_value_json_cannot_hold_is_invalid_not_deep():
    assert check_event("scan.member", {"code": "x", "n": 2**70}) == (None, "invalid_payload")


def test_a_sale_read_from_a_printed_receipt_keeps_every_declared_field():
    payload = {
        "format": "escpos",
        "profile": "cn-supermarket",
        "receipt_no": "260314000042",
        "datetime": "2026-03-14T09:12:05",
        "store_name": "联华超市(南京西路店)",
        "register": "03",
        "cashier": "王芳",
        "items": [
            {"name": "可口可乐 330ml", "sku": "6901028075831", "qty": "2", "unit_price": "3.50", "amount": "7.00"}
        ],
        "discount_total": "1.00",
        "total": "6.00",
        "paid": "10.00",
        "change": "4.00",
        "payment_method": "cash",
        "card_last4": "7894",
        "member_card": "VIP1234567",
        "member_phone": "138****5678",
        "member": {"card": "VIP1234567"},
        "text_lines": ["联华超市(南京西路店)", "合计:6.00"],
        "codes": [{"symbology": "qr", "data": "https://fp.example.cn/i?no=260314000042"}],
        "warnings": ["change_mismatch"],
    }
    assert check_event("pos.receipt", payload) == (payload, None)
    assert check_event("pos.receipt", {**payload, "card_last4": "78"}) == (None, "invalid_payload:card_last4")
    assert check_event("pos.receipt", {**payload, "change": "4,00"}) == (None, "invalid_payload:change")
    bad_item = [{**payload["items"][0], "amount": 7.0}]
    assert check_event("pos.receipt", {**payload, "items": bad_item}) == (None, "invalid_payload:items.amount")


def test_an_order_status_update_may_leave_out_the_total():
    """Cancellation and refund webhooks name the order and its status, no amount."""
    update = {"order_no": "JD-1", "status": "TRADE_CLOSED"}
    assert check_event("order.online", update) == (update, None)


@pytest.mark.parametrize("total", ["10.005", "0.001", "10.0049", "10.125", "10.135", "-0.001", "1.0001"])
def test_an_amount_finer_than_a_fen_is_refused(total: str) -> None:
    """A total a till or source rounded differently from central would be shown and summed two ways."""
    assert check_event("pos.receipt", {"receipt_no": "R1", "total": total}) == (None, "invalid_payload:total")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"items": [{"sku": "1", "qty": 1, "amount": "1.005"}]}, "invalid_payload:items.amount"),
        ({"tenders": [{"method": "cash", "amount": "0.015"}]}, "invalid_payload:tenders.amount"),
        ({"paid": "20.001"}, "invalid_payload:paid"),
        ({"change": "0.005"}, "invalid_payload:change"),
        ({"discount_total": "0.333"}, "invalid_payload:discount_total"),
    ],
)
def test_every_amount_that_changes_hands_is_in_whole_fen(payload: dict[str, object], reason: str) -> None:
    assert check_event("pos.receipt", {"receipt_no": "R1", "total": "1.00", **payload}) == (None, reason)
    assert check_event("order.online", {"order_no": "A", "total": "-3.0001"}) == (None, "invalid_payload:total")
    assert check_event("scan.coupon", {"code": "C", "value": "0.015"}) == (None, "invalid_payload:value")


@pytest.mark.parametrize("total", ["10", "-3", "10.5", "10.50", "10.500", "10.5000", "0.01"])
def test_whole_fen_are_accepted_with_trailing_zeros(total: str) -> None:
    assert check_event("pos.receipt", {"receipt_no": "R1", "total": total})[1] is None


def test_a_weighed_items_unit_price_may_be_finer_than_a_fen() -> None:
    """A scale's label prints ¥12.345/kg; the line's amount, what is paid, is in fen."""
    item = {"sku": "2100001", "name": "猪肉", "qty": "0.512", "unit_price": "12.345", "amount": "6.32"}
    assert check_event("pos.receipt", {"receipt_no": "R1", "total": "6.32", "items": [item]})[1] is None
