"""Member-app beacons through a real agent and a real central over loopback.

Central runs under waitress; the agent is enrolled with `edge-agent enroll` and then runs in this
process (its BLE radio is the one thing that cannot exist here, so the simulated store's member
phones are handed to its BLE station as the scanner would). The agent learns the consenting
member's day keys from the downlink, its visits reach central through the sync job, and the
customer API shows the visit on that member's timeline only. Then the member withdraws location
consent through the API: the agent's next downlink version resolves nobody.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.auth import hash_password
from central.fleet.enrollment import issue_token
from central.identity.models import Identifier
from central.identity.registry import default_registry
from central.members import wallet
from central.models import User
from central.sources.events import store_source_events
from edge_agent.agent import Agent as EdgeAgent
from edge_agent.config import load_config
from shared import member_beacon, wire
from shared.crypto import read_secret_file
from tests.e2e.test_presence import PASSWORD, login
from tools.processes import Agent, Central, wait_until
from tools.store_floor import PLACEMENTS, StoreFloor

pytestmark = pytest.mark.e2e

CONSENTING, OTHER = "M-2001", "M-2002"
ZONES = ", ".join(f"{reader}={zone}" for reader, zone in PLACEMENTS.items())


@pytest.fixture
def central(tmp_path):
    """SQLite only: tests/central/test_member_beacons.py runs the same central code on both databases."""
    server = Central(tmp_path, f"sqlite:///{tmp_path / 'central.db'}")
    server.start()
    yield server
    server.close()


def members_and_apps(central: Central, now: datetime) -> None:
    """Both members sign up in the app, one agrees to location use; each app gets its certificate."""

    def event(kind: str, member: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "event_id": str(uuid.uuid4()),
            "kind": kind,
            "observed_at": wire.format_time(now),
            "identifiers": {"member_id": member},
            "payload": payload,
        }

    events = [
        event("member.signup", CONSENTING, {}),
        event("member.signup", OTHER, {}),
        event("consent.given", CONSENTING, {"purpose": "location", "notice_version": "2026-01"}),
    ]
    secret = read_secret_file(central.workdir / "secret.key")
    with Session(central.engine) as db:
        staged = store_source_events(db, "app", events, now, registry=default_registry())
        assert not staged.rejected
        db.add(User(username="admin", password_hash=hash_password(PASSWORD), role="admin", created_at=now))
        db.commit()
        for member in (CONSENTING, OTHER):  # as `central-server member-code` does; publishes member_beacons
            wallet.member_code(db, secret, central.workdir, member, now=now, days=30, actor="test")
        db.commit()


def customer(central: Central, member: str) -> int:
    with Session(central.engine) as db:
        cid = db.scalar(select(Identifier.customer_id).where(Identifier.value == member))
    assert cid is not None
    return int(cid)


def test_consenting_member_visit_reaches_the_timeline_and_withdrawal_stops_resolution(central, tmp_path, cleanup):
    now = datetime.now(UTC)
    members_and_apps(central, now)
    process = Agent(
        tmp_path,
        "loop://",
        presence_settings=f'ble_adapter = "hci0"\nzones = "{ZONES}"\ntimezone = "UTC"\ntick_interval = 0.5',
    )
    with Session(central.engine) as db:
        token = issue_token(db, "S001", 1.0)
        db.commit()
    process.enroll(central.url, token)
    agent = EdgeAgent(load_config(process.config, environ={}))
    station = agent.presence.stations["ble"]
    station.replaying(True)  # the floor's own times drive the engine, not the wall clock
    agent.start()
    cleanup.append(agent)
    wait_until(lambda: station.as_dict()["resolvable_members"] == 1, 30, "the agent to run central's member_beacons")

    # Yesterday from noon (UTC, the agent's timezone here), whatever the time the test runs: a visit
    # across midnight ends at the salt change (decision 0045) and would make two visits of one,
    # which failed this test when it ran between about 00:45 and 01:45 UTC.
    yesterday_noon = (member_beacon.day_of(now.timestamp()) - 1) * member_beacon.DAY_SECONDS + 12 * 3600
    floor = StoreFloor(seed=4, start=yesterday_noon, hours=1.5)
    apps = {m: (lambda at, m=m: wallet.beacon_id(central.workdir, m, at) or b"") for m in (CONSENTING, OTHER)}
    sightings, truth = floor.member_phones(apps)
    for s in sightings:
        station.heard_id(s.at, s.identifier, s.reader, s.rssi)
    station.finish(sightings[-1].at + 3600)
    wait_until(
        lambda: central.scalar("SELECT COUNT(*) FROM presence_visits WHERE customer_id IS NOT NULL") == 1,
        30,
        "the consenting member's visit at central",
    )
    assert central.scalar("SELECT COUNT(*) FROM presence_visits") == 1  # the other one's beacon only counted

    session = requests.Session()
    login(central, session)
    mine = session.get(f"{central.url}/api/v1/customers/{customer(central, CONSENTING)}", timeout=10).json()
    person = next(p for p in truth if p.address == CONSENTING)
    assert len(mine["visits"]) == 1 and mine["visits"][0]["medium"] == "ble"
    assert abs(mine["visits"][0]["dwell_s"] - person.dwell) <= 0.1 * person.dwell
    theirs = session.get(f"{central.url}/api/v1/customers/{customer(central, OTHER)}", timeout=10).json()
    assert theirs["visits"] == []

    withdrawn = session.post(
        f"{central.url}/api/v1/customers/{customer(central, CONSENTING)}/consents",
        json={"purpose": "location", "granted": False},
        timeout=10,
    )
    assert withdrawn.status_code == 201, withdrawn.text
    agent.heartbeat()  # the next sync's reply names the new downlink version
    wait_until(lambda: station.as_dict()["resolvable_members"] == 0, 30, "the agent to stop resolving the member")
    resolved = station.as_dict()["member_beacon_sightings"]
    at = time.time()
    station.heard_id(at, wallet.beacon_id(central.workdir, CONSENTING, at) or b"", "entrance", -50.0)
    assert station.as_dict()["member_beacon_sightings"] == resolved  # heard, and stayed anonymous
