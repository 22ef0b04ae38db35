"""Coupons at the till, offline: each refusal has its own reason, and the used-set survives a restart."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edge_agent.till.coupons import CouponRedeemer
from shared import coupon_code as cc
from shared.crypto import b64, new_signing_key, public_key_of

NOW = datetime(2026, 11, 11, 12, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def central() -> tuple[bytes, bytes]:
    private, public = new_signing_key()
    return private, public


def _document(public: bytes, *, budget: int = 5, revoked: tuple[int, ...] = ()) -> dict:
    def campaign(cid: int, start: str, end: str, stores=None) -> dict:
        return {"id": cid, "name": f"c{cid}", "value": "10.00", "valid_from": start, "valid_to": end,
                "offline_budget": budget, "stores": stores}  # fmt: skip

    return {
        "format": 1,
        "key": b64(public),
        "campaigns": [
            campaign(1, "2026-11-11T00:00:00Z", "2026-11-12T00:00:00Z"),
            campaign(2, "2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z"),
            campaign(3, "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z"),
            campaign(4, "2026-11-11T00:00:00Z", "2026-11-12T00:00:00Z", stores=["S999"]),
        ],
        "revoked": list(revoked),
    }


def test_each_refusal_has_its_own_reason(tmp_path, central):
    private, public = central
    till = CouponRedeemer(tmp_path, "S001", clock=lambda: NOW, document=_document(public, revoked=(9,)))

    def code(campaign: int, serial: int, key: bytes = private) -> str:
        return cc.make_code(key, public_key_of(key) if key is not private else public, campaign, serial)

    other_key = new_signing_key()[0]
    good = code(1, 1)
    forged = cc.CouponCode(cc.key_id(public), 1, 2, b"\x00" * 64).text()
    altered = cc.decode(good)
    results = {
        "valid": till.redeem(good).reason,
        "again": till.redeem(good).reason,
        "forged": till.redeem(forged).reason,
        "altered": till.redeem(cc.CouponCode(altered.key_id, 1, 3, altered.signature).text()).reason,
        "other chain": till.redeem(code(1, 4, other_key)).reason,
        "expired": till.redeem(code(2, 5)).reason,
        "early": till.redeem(code(3, 6)).reason,
        "unknown campaign": till.redeem(code(8, 7)).reason,
        "other store": till.redeem(code(4, 8)).reason,
        "revoked": till.redeem(code(1, 9)).reason,
        "not a coupon": till.redeem("CDPC1:NOTBASE32!").reason,
    }
    assert results == {
        "valid": None,
        "again": cc.USED_HERE,
        "forged": cc.FORGED,
        "altered": cc.FORGED,
        "other chain": cc.UNKNOWN_KEY,
        "expired": cc.EXPIRED,
        "early": cc.NOT_YET_VALID,
        "unknown campaign": cc.UNKNOWN_CAMPAIGN,
        "other store": cc.NOT_THIS_STORE,
        "revoked": cc.REVOKED,
        "not a coupon": cc.NOT_A_COUPON,
    }
    payload = till.redeem(forged).payload(forged, "R2")
    assert payload["result"] == "forged" and payload["register"] == "R2" and payload["detail"]
    till.close()


def test_the_offline_budget_and_used_set_survive_a_restart(tmp_path, central):
    private, public = central
    document = _document(public, budget=2)
    till = CouponRedeemer(tmp_path, "S001", clock=lambda: NOW, document=document)
    codes = [cc.make_code(private, public, 1, serial) for serial in (11, 12, 13)]
    assert till.redeem(codes[0]).accepted
    till.close()
    till = CouponRedeemer(tmp_path, "S001", clock=lambda: NOW)
    till.update({"coupons": document})
    assert till.redeem(codes[0]).reason == cc.USED_HERE
    verdict = till.redeem(codes[1])
    assert verdict.accepted and verdict.payload(codes[1], "R1") == {
        "code": codes[1], "register": "R1", "result": "accepted", "coupon_id": "12", "campaign": 1, "value": "10.00"
    }  # fmt: skip
    assert till.redeem(codes[2]).reason == cc.BUDGET_EXHAUSTED
    assert till.store.redeemed(1) == 2
    till.close()


def test_codes_are_compact_and_classified_by_their_prefix(central):
    private, public = central
    text = cc.make_code(private, public, 4_000_000_000, 2**63)
    assert text.startswith(cc.COUPON_PREFIX) and len(text) == 136
    assert set(text[len(cc.COUPON_PREFIX) :]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    assert cc.decode(text).verifies(public)


def test_a_scanned_coupon_is_redeemed_by_the_tills_scan_handler(tmp_path, central):
    from edge_agent.till.scans import ScanHandler

    private, public = central
    redeemer = CouponRedeemer(tmp_path, "S001", clock=lambda: NOW, document=_document(public))
    handler = ScanHandler(None, "R1", clock=lambda: NOW, redeemer=redeemer)
    code = cc.make_code(private, public, 1, 42)
    first, again = handler.handle(code + "\r\n", "scanner"), handler.handle(code, "scanner")
    assert first.coupon is not None and first.coupon.accepted
    assert first.capture is not None and first.capture.kind == "scan.coupon"
    payload = first.capture.payload()
    assert (payload["result"], payload["coupon_id"], payload["campaign"], payload["register"]) == (
        "accepted",
        "42",
        1,
        "R1",
    )
    assert again.coupon is not None and again.coupon.reason == cc.USED_HERE
    assert again.capture is not None and again.capture.payload()["result"] == cc.USED_HERE
    redeemer.close()
