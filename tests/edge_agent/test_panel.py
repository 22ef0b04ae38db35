"""The cashier panel's cards: every refusal explained in Chinese and English, members masked, no payment digits."""

from __future__ import annotations

import socket
import threading

import orjson
import pytest

from edge_agent.panel.server import Hub, PanelError, PanelServer
from edge_agent.panel.view import Coupon, Directory, scan_card
from edge_agent.parsing.scan import classify
from edge_agent.till.scans import ScanOutcome
from shared.member_code import REASONS, Verdict


def _member(verdict: Verdict) -> ScanOutcome:
    return ScanOutcome(classify("CDPM1:AAAA"), verdict, None)


def test_every_refusal_reason_has_a_chinese_and_an_english_sentence():
    for reason in REASONS:
        card = scan_card(_member(Verdict(reason, "detail for the log", member_id="M-0042")))
        assert card["kind"] == "rejected" and card["reason"] == reason
        assert card["zh"] and card["en"] and card["zh"] != card["en"]
        assert not any("\u4e00" <= ch <= "\u9fff" for ch in card["en"])
        assert any("\u4e00" <= ch <= "\u9fff" for ch in card["zh"])
        assert "M-0042" not in orjson.dumps(card).decode()
    assert len({scan_card(_member(Verdict(r, ""))).get("zh") for r in REASONS}) == len(REASONS)


def test_a_member_is_masked_with_the_downlinks_card_or_by_id_alone():
    accepted = _member(Verdict(None, "", member_id="M-000042"))
    directory = Directory.from_document(
        {"members": {"M-000042": {"name": "张三丰", "phone": "13812345678", "tier": "gold"}}}
    )
    card = scan_card(accepted, directory=directory, coupons=lambda m: (Coupon("满50减5", "CP-**12"),))
    assert card["member"] == {"id": "****0042", "name": "张*", "phone": "138****5678", "tier": "gold"}
    assert card["coupons"] == [{"title": "满50减5", "hint": "CP-**12"}]
    bare = scan_card(accepted)
    assert bare["member"] == {"id": "****0042", "name": "", "phone": "", "tier": ""} and bare["coupons"] == []
    assert Directory.from_document({"members": ["not", "a", "map"]}).cards == {}
    assert Directory.from_document(None).cards == {}


def test_a_payment_code_card_carries_no_digits():
    card = scan_card(ScanOutcome(classify("134567890123456789"), None, None))
    assert card == {"kind": "payment"}
    assert scan_card(ScanOutcome(classify("6901234567892"), None, None)) == {"kind": "product", "code": "6901234567892"}


def test_the_hub_wakes_a_waiting_stream_with_the_newest_card_only():
    hub = Hub(clock=lambda: 1.0)
    assert hub.next_after(0, 0.01) is None
    got: list[tuple[int, bytes] | None] = []
    waiter = threading.Thread(target=lambda: got.append(hub.next_after(0, 5)))
    waiter.start()
    hub.publish({"kind": "product", "code": "1"})
    waiter.join(5)
    assert (
        got and got[0] is not None and orjson.loads(got[0][1]) == {"seq": 1, "at": 1.0, "kind": "product", "code": "1"}
    )
    hub.publish({"kind": "unknown"})
    hub.publish({"kind": "payment"})
    seq, data = hub.next_after(1, 0) or (0, b"")
    assert seq == 3 and orjson.loads(data)["kind"] == "payment"
    hub.close()
    assert hub.next_after(0, 5) is None


def test_a_taken_port_is_refused_with_the_setting_to_change():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(PanelError, match=r"set panel\.port to a free port, or to 0"):
            PanelServer(Hub(), "127.0.0.1", taken.getsockname()[1])
