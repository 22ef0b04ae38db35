"""Member codes end to end with a real central over loopback (SQLite and PostgreSQL): the code is minted
as the app would, the stores fetch central's keys through the downlink, then verify with central down;
at the next sync central attaches the right sale to the member and flags a code used at two stores."""

from __future__ import annotations

import gzip
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from central import cli as central_cli
from central import db as central_db
from central.customers.models import Receipt
from central.fleet.downlink import changes, current_version
from central.identity.models import Identifier
from central.members import wallet
from central.members.models import MemberScan
from central.models import AuditLog
from edge_agent.downlink import DownlinkStore
from edge_agent.till.member_codes import MemberCodeVerifier
from edge_agent.till.scans import ScanHandler
from edge_agent.transport import HttpTransport
from shared import wire
from shared.crypto import b64, unb64
from shared.member_code import MEMBER_PREFIX, check, key_id
from tests.central.cli_runner import write_config
from tests.central.live import serving
from tests.central.support import BATCHES, START, Agent, token_for

T0 = START.timestamp()


class Store:
    """One store PC: its signing identity, its downlink copy, its till, reading the clock the test sets."""

    def __init__(self, app: Flask, url: str, store_id: str, directory: Path) -> None:
        self.agent = Agent(store_id=store_id)
        reply = requests.post(
            f"{url}/api/v1/enroll",
            json={
                "token": token_for(app, store_id),
                "public_key": b64(self.agent.public_key),
                "hostname": "pos",
                "agent_version": "test",
            },
            timeout=10,
        )
        assert reply.status_code == 201, reply.text
        doc = reply.json()
        self.agent.device_id = doc["device_id"]
        directory.mkdir()
        self.downlink = DownlinkStore(directory, store_id, central_key=unb64(doc["central_key"]))
        self.now = T0
        self.verifier = MemberCodeVerifier(directory, store_id, clock=lambda: self.now)
        self.till = ScanHandler(self.verifier, "R1", clock=lambda: self.now)
        self.events: list[wire.Event] = []

    def fetch(self, url: str, version: int) -> None:
        self.downlink.maybe_fetch(
            HttpTransport(url), self.agent.signer(), version, timestamp=lambda: wire.format_time(START)
        )
        self.verifier.update({name: self.downlink.document(name) for name in self.downlink.names()})

    def scan(self, text: str, at: float) -> str:
        self.now = at
        outcome = self.till.handle(text, "scanner")
        assert outcome.capture is not None
        payload = outcome.capture.payload()
        self.events.append(self.agent.event("scan.member", payload, observed_at=START + timedelta(seconds=at - T0)))
        return str(payload["result"])

    def receipt(self, number: str, total: str, at: float) -> None:
        self.events.append(self.agent.receipt(number, total, observed_at=START + timedelta(seconds=at - T0)))

    def sync(self, url: str) -> dict[str, Any]:
        body = gzip.compress(self.agent.body(self.events))
        response = requests.post(url + BATCHES, data=body, headers=self.agent.signed_headers(body), timeout=30)
        assert response.status_code == 200, response.text
        self.events = []
        reply: dict[str, Any] = response.json()
        return reply


def _code(app: Flask, member: str, at: float) -> str:
    config = app.config["CENTRAL"]
    with Session(central_db.engine_for(app)) as db:
        code = wallet.member_code(
            db,
            app.config["SECRET_KEY"],
            config.server_data_dir,
            member,
            now=START + timedelta(seconds=at - T0),
            days=30,
            actor="test",
        )
        db.commit()
    return code


def test_member_scans_verified_offline_link_the_right_sale_and_a_code_used_twice_is_caught(app, tmp_path):
    engine = central_db.engine_for(app)
    with serving(app) as url:
        a = Store(app, url, "S001", tmp_path / "a")
        b = Store(app, url, "S002", tmp_path / "b")
        c = Store(app, url, "S001", tmp_path / "c")  # another register of store S001
        member_code = _code(app, "M-0042", T0)
        shared_code = _code(app, "M-0077", T0 + 20)
        for store in (a, b, c):
            store.fetch(url, 1)
        assert a.verifier.keys.keys, "the stores hold central's public key"

    # Central is down from here on: every verdict below is made offline.
    assert a.scan(member_code, T0 + 5) == "accepted"
    assert a.scan(member_code, T0 + 6) == "replayed"
    c.receipt("C-1", "99.00", T0 + 20)  # register C's sale at the same moment: not the member's
    a.receipt("A-1", "35.50", T0 + 40)  # register A's next receipt: the member's sale
    a.receipt("A-2", "12.00", T0 + 400)  # outside members.link_window of any scan
    # A screenshot of M-0077's code used at C and at store B within its validity: neither can know offline.
    assert c.scan(shared_code, T0 + 25) == "accepted"
    assert b.scan(shared_code, T0 + 30) == "accepted"
    b.receipt("B-1", "8.00", T0 + 50)
    # A rogue store PC reports an "accepted" scan it never verified: central knows no such certified key.
    rogue = {"code": "digest:" + "f" * 32, "result": "accepted", "member_id": "M-0042", "key": "0" * 16, "step": 1}
    b.events.append(b.agent.event("scan.member", rogue, observed_at=START + timedelta(seconds=60)))
    b.receipt("B-2", "70.00", T0 + 70)

    with serving(app) as url:
        for store in (c, a, b):
            assert store.sync(url)["rejected"] == []
        later_code = _code(app, "M-0042", T0 + 90)
        assert a.scan(later_code, T0 + 90) == "accepted"
        a.sync(url)
        with Session(engine) as db:
            version = current_version(db, "S002")
        assert version is not None
        b.fetch(url, version)
    # Central down again: store B refuses the code A used, from central's list of used codes it fetched.
    assert b.scan(later_code, T0 + 95) == "other-store-replayed"

    with Session(engine) as db:
        receipts = {r.receipt_no: r.customer_id for r in db.scalars(select(Receipt))}
        member = db.scalar(
            select(Identifier.customer_id).where(
                Identifier.kind == "member_id", Identifier.value.in_(["M-0042", "m-0042"])
            )
        )
        scans = sorted(
            (s.store_id, s.member_id, s.flag or "", s.receipt_id is not None) for s in db.scalars(select(MemberScan))
        )
    assert member is not None
    assert receipts == {"A-1": member, "C-1": None, "A-2": None, "B-1": None, "B-2": None}
    assert scans == [
        ("S001", "M-0042", "", False),  # the later scan: no receipt within the window
        ("S001", "M-0042", "", True),
        ("S001", "M-0077", "code_reused", False),  # register C printed no receipt after it
        ("S002", "M-0042", "unknown_key", False),
        ("S002", "M-0077", "code_reused", False),
    ]


# The commands are the same on both databases (the linking test above covers both).
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_member_code_command_prints_a_code_and_writes_its_qr_image_and_revoke_reaches_the_stores(
    app, backend, tmp_path, capsys, monkeypatch
):
    for name in [k for k in os.environ if k.startswith("CENTRAL_") or k == "DATABASE_URL"]:
        monkeypatch.delenv(name)
    config = str(write_config(tmp_path / "central.toml", tmp_path / "data", backend.url))
    png = tmp_path / "code.png"
    assert central_cli.main(["member-code", "M-0042", "--png", str(png), "--at", str(T0), "--config", config]) == 0
    out, err = capsys.readouterr()
    code = out.strip()
    assert code.startswith(MEMBER_PREFIX) and len(code) < 400
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"QR image of member M-0042's code written to {png}" in err
    verdict = check(code, {key_id(k): k for k in _published_keys(app)}, now=T0)
    assert verdict.accepted and verdict.member_id == "M-0042"

    assert central_cli.main(["member-revoke", "M-0042", "--config", config]) == 0
    assert "revoked 1 key(s) of member M-0042" in capsys.readouterr().out
    with Session(central_db.engine_for(app)) as db:
        revoked = frozenset({d.name: d.body for d in changes(db, "S001", 0)}["member_codes"]["revoked"])
    assert check(code, {key_id(k): k for k in _published_keys(app)}, now=T0, revoked=revoked).reason == "revoked"
    # The audit log names the member as the console shows them, masked: it cannot be erased later.
    with Session(central_db.engine_for(app)) as db:
        rows = db.execute(select(AuditLog.action, AuditLog.subject).where(AuditLog.action.like("member_key.%"))).all()
    assert sorted(rows) == [("member_key.certify", "**0042"), ("member_key.revoke", "**0042")]


def _published_keys(app: Flask) -> list[bytes]:
    with Session(central_db.engine_for(app)) as db:
        body = {d.name: d.body for d in changes(db, "S001", 0)}["member_codes"]
    return [unb64(k) for k in body["keys"]]
