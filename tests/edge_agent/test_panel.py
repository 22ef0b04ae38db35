"""The cashier panel's cards: every refusal explained in Chinese and English, members masked, no payment digits."""

from __future__ import annotations

import functools
import socket
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from edge_agent.config import load_config
from edge_agent.downlink import DownlinkStore
from edge_agent.panel.cashier import CashierPanel
from edge_agent.panel.server import Hub, PanelError, PanelServer
from edge_agent.panel.view import Coupon, Directory, scan_card
from edge_agent.parsing.scan import classify
from edge_agent.till.counter import Till
from edge_agent.till.coupons import CouponVerdict
from edge_agent.till.scans import ScanOutcome
from shared.member_code import REASONS, STEP_SECONDS, Verdict
from shared.settings import ConfigError
from tools.panel_till import STORE, Chain


def _member(verdict: Verdict) -> ScanOutcome:
    return ScanOutcome(classify("CDPM1:AAAA"), verdict, None)


def _read_downlink(data_dir: Path, till: Till, panel: CashierPanel) -> None:
    """The till and the panel take the store's published documents, as the agent does at start."""
    downlink = DownlinkStore(data_dir, STORE)
    till.refresh(downlink)
    panel.refresh(downlink)


def _card(panel: CashierPanel, seq: int) -> dict[str, Any]:
    """The card the panel published as number ``seq``."""
    got = panel.hub.next_after(seq - 1, 1.0)
    assert got is not None and got[0] == seq
    return dict(orjson.loads(got[1]))


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


def test_a_scanned_member_shows_the_downlinks_masked_card_tier_and_coupons_not_those_redeemed_here(tmp_path):
    chain = Chain()
    coupons = [
        {"title": "double-11", "value": "10.00", "hint": "7Q2X", "serial": 1042, "campaign": 7},
        {"title": "s041-only", "value": "5.00", "hint": "K9PA", "serial": 1043, "campaign": 8},
    ]
    members = {"M-1001": {"name": "张*", "phone": "138****5678", "tier": "loyal", "coupons": coupons}}
    chain.seed(tmp_path, members)
    config = load_config(None, {}, {"agent.data_dir": str(tmp_path)}, check_required=False)
    panel = CashierPanel("127.0.0.1", 0, used_coupons=lambda serials: till.used_coupons(serials))
    now = time.time()
    till = Till(config, STORE, lambda record: None, clock=lambda: now, on_scan=panel.show)
    _read_downlink(tmp_path, till, panel)
    shown = functools.partial(_card, panel)

    till.scan(chain.code("M-1001", now - STEP_SECONDS), "scanner")  # the step before: one step of skew is allowed
    card = shown(1)
    assert card["member"] == {"id": "**1001", "name": "张*", "phone": "138****5678", "tier": "loyal"}
    assert card["coupons"] == [{"title": "double-11", "hint": "7Q2X"}, {"title": "s041-only", "hint": "K9PA"}]

    till.redeemer.store.redeem(1042, 7, 50, 0.0)  # the till took that code since central last published
    till.scan(chain.code("M-1001", now), "scanner")
    assert shown(2)["coupons"] == [{"title": "s041-only", "hint": "K9PA"}]
    till.redeemer.close()


def test_the_code_just_accepted_read_again_shows_the_member_as_already_scanned_and_is_kept_once(tmp_path):
    chain = Chain()
    chain.seed(tmp_path, {"M-1001": {"name": "张*", "phone": "138****5678"}, "M-1002": {"name": "李*"}})
    config = load_config(None, {}, {"agent.data_dir": str(tmp_path)}, check_required=False)
    # At the start of a code's step, so that 31.2 s later the code is one step old (replayed), never two
    # (expired): from a time late in its step the test failed one run in 25.
    now = time.time() // STEP_SECONDS * STEP_SECONDS + 0.5
    panel = CashierPanel("127.0.0.1", 0, clock=lambda: now)
    kept: list[dict[str, Any]] = []
    till = Till(config, STORE, lambda record: kept.append(record.payload()), clock=lambda: now, on_scan=panel.show)
    _read_downlink(tmp_path, till, panel)
    shown = functools.partial(_card, panel)

    code = chain.code("M-1001", now)
    till.scan(code, "scanner")
    assert shown(1)["member"]["name"] == "张*" and "again" not in shown(1)
    now += 1.2  # the scanner read the code twice
    till.scan(code, "scanner")
    again = shown(2)
    assert (again["kind"], again["member"]["name"], again.get("again")) == ("member", "张*", True)
    # The till still records the second read as a replay: only the first one is the member's scan.
    assert [p["result"] for p in kept] == ["accepted", "replayed"]

    now += 30
    till.scan(chain.code("M-1002", now), "scanner")
    assert shown(3)["kind"] == "member"
    till.scan(code, "scanner")  # the first code again, after another member: a replay, refused
    assert (shown(4)["kind"], shown(4)["reason"]) == ("rejected", "replayed")
    till.redeemer.close()


def test_every_coupon_refusal_reason_has_a_chinese_and_an_english_sentence():
    from edge_agent.panel.view import COUPON_REASONS
    from shared import coupon_code as cc

    assert set(COUPON_REASONS) == set(cc.REASONS)
    for reason in cc.REASONS:
        card = scan_card(ScanOutcome(classify("CDPC1:AAAA"), None, None, CouponVerdict(reason, "detail for the log")))
        assert card["kind"] == "coupon-refused" and card["reason"] == reason
        assert card["zh"] and card["en"] and card["zh"] != card["en"]
        assert not any("\u4e00" <= ch <= "\u9fff" for ch in card["en"])
        assert any("\u4e00" <= ch <= "\u9fff" for ch in card["zh"])
    assert len({COUPON_REASONS[r] for r in cc.REASONS}) == len(cc.REASONS)


def test_a_scanned_coupon_shows_whether_the_till_accepted_it_and_why_not(tmp_path):
    from edge_agent.till.coupons import DOCUMENT as COUPONS
    from shared import coupon_code as cc
    from shared.crypto import b64, new_signing_key

    private, public = new_signing_key()
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600))
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))
    campaigns = [
        {"id": 7, "name": "double-11", "value": "10.00", "valid_from": stamp, "valid_to": until, "offline_budget": 5},
        {"id": 8, "name": "s999-only", "value": "5.00", "valid_from": stamp, "valid_to": until, "offline_budget": 5,
         "stores": ["S999"]},
    ]  # fmt: skip
    config = load_config(None, {}, {"agent.data_dir": str(tmp_path)}, check_required=False)
    panel = CashierPanel("127.0.0.1", 0)
    till = Till(config, STORE, lambda record: None, clock=lambda: now, on_scan=panel.show)
    till.redeemer.update({COUPONS: {"key": b64(public), "campaigns": campaigns, "revoked": []}})
    code = cc.make_code(private, public, 7, 1042)
    forged = cc.CouponCode(cc.key_id(public), 7, 1043, b"\0" * 64).text()
    scans = [code, code, forged, cc.make_code(private, public, 8, 1044)]
    cards = []
    for seq, payload in enumerate(scans, 1):
        till.scan(payload, "scanner")
        got = panel.hub.next_after(seq - 1, 1.0)
        assert got is not None and got[0] == seq
        cards.append({k: v for k, v in orjson.loads(got[1]).items() if k not in ("seq", "at")})
    till.stop()
    assert cards[0] == {"kind": "coupon", "campaign": "double-11", "value": "10.00"}
    assert [(c["kind"], c["reason"]) for c in cards[1:]] == [
        ("coupon-refused", "used-here"),
        ("coupon-refused", "forged"),
        ("coupon-refused", "not-this-store"),
    ]
    assert cards[1]["zh"] == "此优惠券已在本店使用过" and cards[1]["en"] == "Coupon already used at this store"
    assert not any(code[6:20] in orjson.dumps(c).decode() for c in cards)  # the code itself is never shown


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


MEMBER_CARD = {"kind": "member", "member": {"id": "**1001", "name": "张*", "phone": "138****5678", "tier": ""}}


def test_a_card_gives_way_to_the_idle_card_once_its_time_is_up():
    clock = Clock()
    hub = Hub(clock=clock, card_seconds=120)
    hub.publish(MEMBER_CARD)
    clock.now += 119
    seq, data = hub.next_after(0, 0) or (0, b"")  # a page opened now still gets it
    assert seq == 1 and orjson.loads(data)["kind"] == "member"
    clock.now += 2
    seq, data = hub.next_after(0, 0) or (0, b"")  # a page opened later gets the idle card, not the customer
    assert seq == 2 and orjson.loads(data) == {"seq": 2, "at": clock.now, "kind": "idle"}
    assert hub.next_after(1, 0) == (2, data)  # and so does a page that shows the card
    assert hub.next_after(2, 0) is None  # the idle card does not expire
    hub.publish({"kind": "payment"})
    assert orjson.loads((hub.next_after(2, 0) or (0, b""))[1])["kind"] == "payment"


def test_a_page_showing_a_card_is_sent_the_idle_card_when_it_expires():
    hub = Hub(card_seconds=0.3)
    hub.publish(MEMBER_CARD)
    started = time.monotonic()
    seq, data = hub.next_after(1, 5) or (0, b"")  # a stream waiting for the next scan
    assert seq == 2 and orjson.loads(data)["kind"] == "idle"
    assert 0.2 < time.monotonic() - started < 2


def _first_event(port: int) -> dict[str, Any]:
    """The first scan event a newly opened /events stream sends (none within a second: {})."""
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = b""
        try:
            while b"\ndata: " not in received or not received.endswith(b"\n\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            return {}
    return dict(orjson.loads(received.split(b"\ndata: ", 1)[1].split(b"\n", 1)[0]))


def test_a_page_opened_long_after_a_scan_is_not_sent_the_previous_customer():
    clock = Clock()
    server = PanelServer(Hub(clock=clock, card_seconds=120), "127.0.0.1", 0)
    server.start()
    try:
        server.hub.publish(MEMBER_CARD)
        assert _first_event(server.port)["member"]["name"] == "张*"  # within the card's time
        clock.now += 600
        first = _first_event(server.port)
        assert first["kind"] == "idle" and "member" not in first
    finally:
        server.stop()


def _lan_address() -> str:
    """This PC's address on its network (no packet is sent), or skip where it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
            address = probe.getsockname()[0]
        except OSError:
            address = ""
    if not address or address.startswith("127."):
        pytest.skip("this machine has no network address besides loopback")
    return address


def _get(panel: PanelServer, source: str, host_header: str, path: str = "/events") -> int:
    """The status of a GET sent from ``source`` (a local address) to the panel, naming ``host_header``."""
    with socket.create_connection((source, panel.port), timeout=5, source_address=(source, 0)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\n\r\n".encode())
        return int(sock.recv(64).split(b" ", 2)[1])


def test_a_panel_on_every_address_answers_only_this_pc_and_the_named_screen_whatever_host_is_claimed():
    lan = _lan_address()
    unnamed = PanelServer(Hub(), "0.0.0.0", 0)  # noqa: S104  (bound widely, but no screen named)
    unnamed.start()
    try:
        # A PC on the shop's network claiming to be the till itself is refused by its address.
        assert _get(unnamed, lan, "127.0.0.1") == 403
        assert _get(unnamed, lan, lan, "/") == 403
        assert _get(unnamed, "127.0.0.1", "127.0.0.1", "/") == 200
    finally:
        unnamed.stop()
    elsewhere = PanelServer(Hub(), "0.0.0.0", 0, screen="192.0.2.250")  # noqa: S104  (the screen is another PC)
    elsewhere.start()
    try:
        # A PC on the shop's network claiming to be the till itself is still another PC.
        assert _get(elsewhere, lan, "127.0.0.1") == 403
        assert _get(elsewhere, "127.0.0.1", "127.0.0.1", "/") == 200
    finally:
        elsewhere.stop()
    shown_on = PanelServer(Hub(), "0.0.0.0", 0, screen=lan)  # noqa: S104  (the screen: this address)
    shown_on.start()
    try:
        assert _get(shown_on, lan, lan, "/") == 200  # it names the till's address, as its browser does
        assert _get(shown_on, lan, "panel.attacker.example", "/") == 421  # DNS rebinding is still refused
    finally:
        shown_on.stop()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "tillpc"])  # noqa: S104
def test_a_panel_host_that_is_not_loopback_needs_a_named_screen(host):
    env = {"EDGE_POS_PORT": "loop://", "EDGE_PANEL_PORT": "8765", "EDGE_PANEL_HOST": host}
    with pytest.raises(
        ConfigError, match=f"EDGE_PANEL_HOST: '{host}' is not a loopback address: .*panel.screen_address"
    ):
        load_config(None, environ=env)
    config = load_config(None, environ=env | {"EDGE_PANEL_SCREEN_ADDRESS": "192.168.1.23"})
    assert (config.panel_host, config.panel_screen_address) == (host, "192.168.1.23")
    with pytest.raises(ConfigError, match="EDGE_PANEL_SCREEN_ADDRESS: 'screen-pc' is not an IP address"):
        load_config(None, environ=env | {"EDGE_PANEL_SCREEN_ADDRESS": "screen-pc"})
    for loopback in ("127.0.0.1", "127.0.0.2", "localhost", "::1"):
        assert load_config(None, environ=env | {"EDGE_PANEL_HOST": loopback}).panel_host == loopback


def test_a_panel_host_this_pc_does_not_have_names_panel_host_not_panel_port():
    with pytest.raises(PanelError) as refused:
        PanelServer(Hub(), "192.0.2.123", 0)
    assert "panel.host 192.0.2.123 is not an address of this PC; set panel.host to 127.0.0.1" in str(refused.value)
    assert "panel.port" not in str(refused.value)
