"""Coupons end to end: campaigns at central, offline redemption at two tills, atomic application at sync."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import sqlalchemy as sa
from sqlalchemy import func, select, update

from central import db as central_db
from central.campaigns import coupons
from central.campaigns.coupon_models import CouponCampaign, CouponConflict, CouponRedemption
from central.cli import main
from central.clock import system_clock
from central.fleet.models import EnrollToken
from central.ingest.models import Event
from edge_agent.downlink import DownlinkStore, remember_central_key
from edge_agent.till.coupons import CouponRedeemer
from shared import coupon_code, wire
from shared.crypto import b64
from tests.central.cli_runner import write_config
from tests.central.live import serving
from tests.central.support import BATCHES, Agent, create_user, login, token_for
from tests.central.test_downlink import Getter


def _campaign(client, name: str = "double-11", *, max_redemptions: int = 100, budget: int = 10, **extra) -> dict:
    now = system_clock()
    body = {
        "name": name,
        "value": "10.00",
        "valid_from": (now - timedelta(hours=1)).isoformat(),
        "valid_to": (now + timedelta(days=1)).isoformat(),
        "max_redemptions": max_redemptions,
        "offline_budget": budget,
        "stores": None,
        **extra,
    }
    reply = client.post("/api/v1/coupons/campaigns", json=body)
    assert reply.status_code == 201, reply.get_data(as_text=True)
    return reply.get_json()


def _issue(client, campaign: int, member: str) -> str:
    reply = client.post(f"/api/v1/coupons/campaigns/{campaign}/codes", json={"member_id": member})
    assert reply.status_code == 201, reply.get_data(as_text=True)
    return reply.get_json()["codes"][0]["code"]


class Till:
    """A register's agent: enrolled over HTTP, its downlink and used-set on disk, redeeming offline."""

    def __init__(self, base: str, app, store: str, directory: Path) -> None:
        self.agent = Agent(store_id=store, clock=lambda: datetime.now(UTC))
        token = token_for(app, store, now=system_clock())
        reply = requests.post(
            f"{base}/api/v1/enroll", json={"token": token, "public_key": b64(self.agent.public_key)}, timeout=10
        )
        assert reply.status_code == 201, reply.text
        self.agent.device_id = reply.json()["device_id"]
        directory.mkdir()
        remember_central_key(directory, reply.json())
        self.directory = directory
        self.downlink = DownlinkStore(directory, store)
        self.redeemer = CouponRedeemer(directory, store)
        self.pending: list[wire.Event] = []

    def sync(self, base: str) -> wire.Reply:
        body = gzip.compress(self.agent.body(self.pending or [self.agent.event("agent.heartbeat", {})]))
        reply = requests.post(f"{base}{BATCHES}", data=body, headers=self.agent.signed_headers(body), timeout=10)
        assert reply.status_code == 200, reply.text
        decoded = wire.decode_reply(reply.content)
        self.pending = []
        self.downlink.maybe_fetch(Getter(base), self.agent.signer(), decoded.downlink_version)
        self.redeemer.update({name: self.downlink.document(name) for name in self.downlink.names()})
        return decoded

    def scan(self, code: str) -> str:
        verdict = self.redeemer.redeem(code)
        payload = verdict.payload(code, "R1")
        self.pending.append(self.agent.event("scan.coupon", payload, observed_at=datetime.now(UTC)))
        return payload["result"]


def test_two_registers_redeeming_one_code_offline_make_one_redemption_and_one_conflict(app, tmp_path):
    app.config["CLOCK"] = system_clock  # before logging in: a session is timed by the app's clock
    create_user(app)
    user_client = app.test_client()
    assert login(user_client).status_code == 302
    campaign = _campaign(user_client)
    code = _issue(user_client, campaign["id"], "M1")
    with serving(app) as base:
        tills = [Till(base, app, store, tmp_path / store) for store in ("S001", "S002")]
        for till in tills:
            till.sync(base)
            assert till.redeemer.terms.campaigns
    # Central is down: both tills accept the same code on their own.
    assert [till.scan(code) for till in tills] == ["accepted", "accepted"]
    assert tills[0].scan(code) == "used-here"
    with serving(app) as base:
        replies = [till.sync(base) for till in tills]
    assert all(len(r.accepted) >= 1 and not r.rejected for r in replies)
    with central_db.session_factory(app)() as db:
        redemptions = db.execute(select(CouponRedemption)).scalars().all()
        conflicts = db.execute(select(CouponConflict)).scalars().all()
        stored = db.scalar(select(func.count()).select_from(Event).where(Event.kind == "scan.coupon"))
        redeemed = db.scalar(select(CouponCampaign.redeemed))
    assert [(r.status, r.store_id) for r in redemptions] == [("applied", "S001")]
    assert [(c.kind, c.store_id) for c in conflicts] == [("double_redemption", "S002")]
    assert conflicts[0].payload["code"] == code and "S001" in conflicts[0].detail
    assert stored == 3  # both redemptions and the refusal: nothing lost
    assert redeemed == 1
    for till in tills:
        till.redeemer.close()
    listed = user_client.get("/api/v1/coupons/conflicts").get_json()["conflicts"]
    assert [c["kind"] for c in listed] == ["double_redemption"]
    reply = user_client.post(f"/api/v1/coupons/conflicts/{listed[0]['id']}/resolve", json={"resolution": "refunded"})
    assert reply.status_code == 200
    assert user_client.get("/api/v1/coupons/conflicts").get_json()["conflicts"] == []


def test_central_never_counts_past_the_maximum_and_flags_the_rest(app, user_client, client, agent):
    campaign = _campaign(user_client, max_redemptions=2)
    codes = [_issue(user_client, campaign["id"], f"M{i}") for i in range(4)]
    at = system_clock()
    second = Agent(store_id="S001")
    assert second.enroll(client, token_for(app)).status_code == 201

    def event(sender: Agent, code: str, minutes: int) -> wire.Event:
        payload = {"code": code, "result": "accepted", "register": "R1"}
        return sender.event("scan.coupon", payload, observed_at=at + timedelta(minutes=minutes))

    agent.send(client, [event(agent, codes[0], 1), event(agent, codes[1], 2)])
    reply = second.send(client, [event(second, codes[2], 0), event(second, codes[3], 3), event(second, codes[0], 4)])
    assert len(reply["accepted"]) == 3
    forged = codes[1][:-4] + ("AAAA" if not codes[1].endswith("AAAA") else "BBBB")
    second.send(client, [event(second, forged, 5), event(second, "CDPC1:XYZ", 6)])
    with central_db.session_factory(app)() as db:
        kinds = sorted(db.scalars(select(CouponConflict.kind)))
        applied = db.scalar(
            select(func.count()).select_from(CouponRedemption).where(CouponRedemption.status == "applied")
        )
        row = db.execute(select(CouponCampaign.redeemed, CouponCampaign.max_redemptions)).one()
    assert kinds == ["double_redemption", "forged", "forged", "over_redemption", "over_redemption"]
    assert applied == row.redeemed == row.max_redemptions == 2


def test_the_coupons_document_carries_key_campaigns_and_revocations(app, user_client, agent):
    campaign = _campaign(user_client, stores=["S001"])
    code = _issue(user_client, campaign["id"], "M1")
    assert _issue(user_client, campaign["id"], "M1") == code  # a member claims once
    serial = coupon_code.decode(code).serial
    assert user_client.post(f"/api/v1/coupons/codes/{serial}/revoke").status_code == 200
    with central_db.session_factory(app)() as db:
        body = coupons.document(db, now=system_clock(), secret=app.config["SECRET_KEY"])
    assert body["key"] == b64(coupons.public_key(app.config["SECRET_KEY"]))
    assert [(c["id"], c["stores"], c["offline_budget"]) for c in body["campaigns"]] == [(campaign["id"], ["S001"], 10)]
    assert body["revoked"] == [serial]
    bad = user_client.post("/api/v1/coupons/campaigns", json={**campaign, "name": "x y", "value": "10"})
    assert bad.status_code == 400 and "name" in bad.get_json()["error"]["message"]
    error = bad.get_json()["error"]
    assert (error["code"], error["reason"], error["field"]) == ("coupon_refused", "bad_name", "name")


def test_a_campaign_in_a_store_central_does_not_know_or_over_before_it_exists_is_refused(app, user_client, agent):
    """A store is known by an agent enrolled there or an enrollment token issued for it (a store still to enrol)."""
    token_for(app, "S002")
    token_for(app, "S998")
    with central_db.session_factory(app)() as db:  # a token revoked unused (say its id was mistyped) makes none
        db.execute(update(EnrollToken).where(EnrollToken.store_id == "S998").values(revoked_at=system_clock()))
        db.commit()
    now = system_clock()
    for extra, reason, field, words in (
        ({"stores": ["S001", "S999", "S998"]}, "unknown_store", "stores", "stores 'S998', 'S999' are not"),
        (
            {"valid_from": "2020-01-01T00:00+08:00", "valid_to": "2020-02-01T00:00+08:00"},
            "period_over",
            "valid_to",
            "valid_to 2020-01-31T16:00:00.000Z is not after now",
        ),
    ):
        body = {
            "name": "refused",
            "value": "10.00",
            "valid_from": (now - timedelta(hours=1)).isoformat(),
            "valid_to": (now + timedelta(days=1)).isoformat(),
            "max_redemptions": 10,
            "offline_budget": 1,
            **extra,
        }
        reply = user_client.post("/api/v1/coupons/campaigns", json=body)
        assert reply.status_code == 400, reply.get_data(as_text=True)
        error = reply.get_json()["error"]
        assert (error["reason"], error["field"]) == (reason, field) and words in error["message"], error
    assert _campaign(user_client, "both", stores=["S002", "S001"])["stores"] == ["S001", "S002"]


def test_amounts_and_counts_past_any_bound_are_refused_with_the_range(app, user_client):
    campaign = _campaign(user_client)
    body = {k: campaign[k] for k in ("valid_from", "valid_to", "max_redemptions", "offline_budget", "stores")}
    body["name"] = "too-much"
    for field, value, reason, words in (
        ("value", "99999999999", "amount_too_large", "must be below 1,000,000,000"),
        ("value", "1e30", "amount_too_large", "must be below 1,000,000,000"),
        ("value", "1E+9999", "amount_too_large", "must be below 1,000,000,000"),
        ("value", "-99999999999", "bad_amount", "positive amount"),
        ("value", "10.001", "bad_amount", "at most 2 decimals"),
        ("max_redemptions", 99999999999999999999, "bad_max_redemptions", "between 1 and 10^12"),
        ("offline_budget", -99999999999999999999, "bad_offline_budget", "between 0 and 1,000,000"),
    ):
        data = json.dumps({"value": "10", **body, field: value})  # orjson writes no int past 64 bits
        reply = user_client.post("/api/v1/coupons/campaigns", data=data, content_type="application/json")
        assert reply.status_code == 400, (field, value, reply.get_data(as_text=True))
        error = reply.get_json()["error"]
        assert (error["reason"], error["field"]) == (reason, field) and words in error["message"], error


def test_many_members_claim_in_one_request_and_keep_the_codes_they_had(app, user_client):
    campaign = _campaign(user_client)
    earlier = _issue(user_client, campaign["id"], "M2")
    url = f"/api/v1/coupons/campaigns/{campaign['id']}/codes"
    reply = user_client.post(url, json={"member_ids": ["M1", "M2", "M3", "M1"]})
    assert reply.status_code == 201, reply.get_data(as_text=True)
    codes = reply.get_json()["codes"]
    assert [c["member_id"] for c in codes] == ["M1", "M2", "M3", "M1"]
    assert codes[1]["code"] == earlier and codes[0] == codes[3]
    assert len({c["serial"] for c in codes}) == 3
    assert [_issue(user_client, campaign["id"], m) for m in ("M1", "M3")] == [codes[0]["code"], codes[2]["code"]]
    key = coupons.public_key(app.config["SECRET_KEY"])
    assert all(coupon_code.decode(c["code"]).verifies(key) for c in codes)
    refusals = [
        user_client.post(url, json={"member_ids": body}).get_json()["error"]["message"]
        for body in ([], ["M1", 2], ["x" * 65], ["M"] * (coupons.MAX_CLAIMS + 1))
    ]
    assert ["1 to 1000" in refusals[0], "list" in refusals[1], "64" in refusals[2], "1 to 1000" in refusals[3]] == [
        True
    ] * 4


def test_the_command_line_creates_lists_and_issues(sqlite_template, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(sqlite_template, data / "central.db")
    config = str(write_config(tmp_path / "central.toml", data, f"sqlite:///{data / 'central.db'}"))

    def run(*args: str) -> tuple[int, str, str]:
        status = main([*args, "--config", config])
        out = capsys.readouterr()
        return status, out.out, out.err

    status, out, err = run(
        "coupons", "create", "--name", "spring", "--value", "5", "--valid-from", "2026-01-01T00:00+08:00",
        "--valid-to", "2030-01-01T00:00+08:00", "--max-redemptions", "10", "--per-store-offline-budget", "3",
    )  # fmt: skip
    assert status == 0, err
    assert json.loads(out)["offline_budget"] == 3
    status, out, err = run("coupons", "issue", "spring", "--count", "3")
    assert status == 0, err
    assert [line.startswith("CDPC1:") for line in out.split()] == [True] * 3
    member = run("coupons", "issue", "spring", "--member", "M1009")
    assert member == run("coupons", "issue", "spring", "--member", "M1009")
    # Each claim audited, the member masked; the second is the same code again, nothing new.
    with sa.create_engine(f"sqlite:///{data / 'central.db'}").connect() as conn:
        rows = conn.execute(sa.text("SELECT subject, detail FROM audit_log WHERE action = 'coupons.issue'")).all()
    assert [(subject, json.loads(detail)) for subject, detail in rows] == [
        ("spring", {"count": 3}),
        ("spring", {"member": "*1009", "new": 1}),
        ("spring", {"member": "*1009", "new": 0}),
    ]
    status, out, _ = run("coupons", "list")
    assert "spring" in out and "     4 " in out
    # Validity in the chain's local time, as the console shows it, and saying so.
    assert "VALID (UTC+08:00)" in out and "2026-01-01 00:00 - 2030-01-01 00:00" in out
    status, _, err = run("coupons", "issue", "nope", "--count", "1")
    assert status == 2 and "coupons list" in err
    status, _, err = run(
        "coupons", "create", "--name", "elsewhere", "--value", "5", "--valid-from", "2026-01-01T00:00+08:00",
        "--valid-to", "2030-01-01T00:00+08:00", "--max-redemptions", "10", "--per-store-offline-budget", "3",
        "--stores", "S999",
    )  # fmt: skip
    assert status == 2 and "store 'S999' is not one central knows" in err and "enroll-token --store S999" in err
