"""Member-app beacons at central: day keys for consenting members only, visits attached under location consent.

The simulated store (tools.store_floor) gains two member phones: one member agreed to location use,
the other did not. The agent's side runs in process on what central published (the downlink
document verified and stored by the agent's DownlinkStore); the visits reach central as a signed batch.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from central import db as central_db
from central import scheduler
from central.fleet import downlink
from central.identity.models import Customer, Identifier
from central.jobs import OK
from central.members import codes, wallet
from central.presence import beacons
from central.presence.models import PresenceVisit
from edge_agent.downlink import DownlinkStore, remember_central_key
from edge_agent.presence.calendar import StoreCalendar
from edge_agent.presence.engine import EngineSettings, PresenceEngine
from edge_agent.presence.member_beacons import DOCUMENT, resolver_from
from edge_agent.presence.pseudonyms import Pseudonymizer
from edge_agent.presence.station import PresenceStation
from edge_agent.records import Capture
from shared import member_beacon, wire
from tests.central.consent_support import load
from tests.central.support import Agent
from tools.store_floor import PLACEMENTS, StoreFloor

CONSENTING, OTHER = "M-1001", "M-1002"
FLOOR_START = datetime(2026, 11, 23, 1, 0, tzinfo=UTC).timestamp()  # the support clock's morning


def member_events(at: datetime) -> list[dict[str, Any]]:
    """Both members sign up in the app; only the first agrees to location use."""

    def event(kind: str, member: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "event_id": str(uuid.uuid4()),
            "kind": kind,
            "observed_at": wire.format_time(at),
            "identifiers": {"member_id": member},
            "payload": payload,
        }

    return [
        event("member.signup", CONSENTING, {}),
        event("member.signup", OTHER, {}),
        event("consent.given", CONSENTING, {"purpose": "location", "notice_version": "2026-01"}),
    ]


def customer(app: Flask, member: str) -> int:
    with central_db.session_factory(app)() as db:
        cid = db.scalar(
            select(Identifier.customer_id).where(Identifier.kind == "member_id", Identifier.value == member)
        )
    assert cid is not None
    return int(cid)


def certify_apps(app: Flask, data_dir: Path, now: datetime) -> None:
    """Each member's app gets its certificate (and beacon root) as `central-server member-code` gives it."""
    with central_db.session_factory(app)() as db:
        for member in (CONSENTING, OTHER):
            wallet.member_code(db, app.config["SECRET_KEY"], data_dir, member, now=now, days=30, actor="test")
        db.commit()


def published(app: Flask) -> dict[str, Any]:
    with central_db.session_factory(app)() as db:
        return downlink.signed_changes(db, "S001", 0, app.config["SECRET_KEY"])


def agent_store(app: Flask, directory: Path) -> DownlinkStore:
    """The agent's downlink store after a fetch: documents verified with central's key, then written to disk."""
    directory.mkdir(parents=True, exist_ok=True)
    remember_central_key(directory, {"central_key": downlink.public_key(app.config["SECRET_KEY"])})
    store = DownlinkStore(directory, "S001")
    store.apply(published(app), full=True)
    return store


def run_floor(store: DownlinkStore, data_dir: Path) -> tuple[list[Capture], StoreFloor, Any]:
    """Both member phones walk the simulated store; the BLE station resolves what the downlink lets it."""
    floor = StoreFloor(seed=3, start=FLOOR_START, hours=1.5)
    apps = {m: (lambda at, m=m: wallet.beacon_id(data_dir, m, at) or b"") for m in (CONSENTING, OTHER)}
    sightings, truth = floor.member_phones(apps)
    calendar = StoreCalendar(UTC)
    captured: list[Capture] = []
    engine = PresenceEngine(EngineSettings(placements=PLACEMENTS, medium="ble"), calendar, clock=lambda: 0.0)
    station = PresenceStation(engine, Pseudonymizer(b"s" * 32, calendar), captured.append, clock=lambda: 0.0)
    station.use_beacons(resolver_from(store.document(DOCUMENT)))
    for s in sightings:
        station.heard_id(s.at, s.identifier, s.reader, s.rssi)
    station.finish(sightings[-1].at + 3600)
    return captured, floor, truth


def send(agent: Agent, client: FlaskClient, captures: Iterable[Capture]) -> dict[str, Any]:
    events = [agent.event(c.kind, c.payload(), observed_at=wire.parse_time(c.observed_at)) for c in captures]
    return agent.send(client, events)


def visits(app: Flask) -> list[Any]:
    with central_db.session_factory(app)() as db:
        return list(db.scalars(select(PresenceVisit).order_by(PresenceVisit.id)))


def test_consenting_member_gets_a_visit_on_the_timeline_and_the_other_does_not(
    app, client, agent, user_client, clock, tmp_path
):
    load(app, member_events(clock()))
    certify_apps(app, tmp_path / "central", clock())
    body = published(app)["documents"]
    document = next(d for d in body if d["name"] == DOCUMENT)["body"]
    listed = {member for entries in document["days"].values() for member, _ in entries}
    assert listed == {CONSENTING}

    captures, _floor, truth = run_floor(agent_store(app, tmp_path / "agent"), tmp_path / "central")
    member_visits = [c for c in captures if c.kind == "presence.visit"]
    # The consenting member's visit names them; the other member's beacon only counted (randomized).
    assert [c.payload().get("member_id") for c in member_visits] == [CONSENTING]
    hours = [c.payload() for c in captures if c.kind == "presence.aggregate"]
    # Unresolved, its id is a new device every window: the visit counts in pieces, never as a person.
    assert sum(h["visitors"]["randomized_visits"] for h in hours) >= 1
    assert not any(OTHER.encode() in c.payload_json for c in captures)
    reply = send(agent, client, captures)
    assert not reply["rejected"]

    stored = visits(app)
    assert [v.customer_id for v in stored] == [customer(app, CONSENTING)]
    person = next(p for p in truth if p.address == CONSENTING)
    assert abs(stored[0].dwell_s - person.dwell) <= 0.1 * person.dwell

    mine = user_client.get(f"/api/v1/customers/{customer(app, CONSENTING)}").get_json()
    assert [(v["store_id"], v["medium"]) for v in mine["visits"]] == [("S001", "ble")]
    theirs = user_client.get(f"/api/v1/customers/{customer(app, OTHER)}").get_json()
    assert theirs["visits"] == []
    # The console's customer page shows the same timeline.
    for member, rows in ((CONSENTING, 1), (OTHER, 0)):
        page = user_client.get(f"/console/customers/{customer(app, member)}").get_data(as_text=True)
        timeline = page.split('id="timeline"', 1)[1].split("</table>", 1)[0]
        assert timeline.count('class="entry presence-visit"') == rows, member


def test_a_copied_agent_data_directory_cannot_resolve_a_member_without_location_consent(app, clock, tmp_path):
    load(app, member_events(clock()))
    certify_apps(app, tmp_path / "central", clock())
    agent_store(app, tmp_path / "agent")
    (tmp_path / "agent" / "presence.secret").write_bytes(b"k" * 32)
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "agent", copy)

    # Everything the copy holds, read the way the agent reads it back.
    resolver = resolver_from(DownlinkStore(copy, "S001").document(DOCUMENT))
    data = b"".join(p.read_bytes() for p in copy.rglob("*") if p.is_file())
    now = clock().timestamp()
    with central_db.session_factory(app)() as db:
        fingerprints = dict(db.execute(select(codes._keys.c.member_id, codes._keys.c.fingerprint)).all())
    other_root = beacons.beacon_root(app.config["SECRET_KEY"], fingerprints[OTHER])
    for hours in range(-48, 49):
        at = now + hours * 3600
        assert resolver.resolve(member_beacon.advertised_id(other_root, at), at) is None
    for day in range(member_beacon.day_of(now) - 3, member_beacon.day_of(now) + 4):
        key = member_beacon.day_key(other_root, day)
        assert key not in data and wire_b64(key) not in data
    assert other_root not in data and OTHER.encode() not in data
    # The consenting member is resolvable, but only for the days published: never beyond tomorrow.
    consenting_root = beacons.beacon_root(app.config["SECRET_KEY"], fingerprints[CONSENTING])
    assert resolver.resolve(member_beacon.advertised_id(consenting_root, now), now) == CONSENTING
    later = now + 3 * 86400
    assert resolver.resolve(member_beacon.advertised_id(consenting_root, later), later) is None
    assert consenting_root not in data


def wire_b64(key: bytes) -> bytes:
    import base64

    return base64.b64encode(key)


def test_withdrawal_stops_publishing_and_later_visits_stay_anonymous(app, client, agent, user_client, clock, tmp_path):
    load(app, member_events(clock()))
    certify_apps(app, tmp_path / "central", clock())
    before = published(app)["version"]
    captures, _floor, _truth = run_floor(agent_store(app, tmp_path / "agent"), tmp_path / "central")
    named = [c for c in captures if c.kind == "presence.visit"]
    assert [c.payload()["member_id"] for c in named] == [CONSENTING]

    clock.advance(minutes=5)
    withdrawal = wire.Event(
        event_id=agent.new_id(),
        seq=agent.seq + 1,
        kind="consent.withdrawn",
        observed_at=wire.format_time(clock()),
        store_id="S001",
        payload={"purpose": "location"},
        identifiers={"member_id": CONSENTING},
    )
    agent.seq += 1
    assert agent.send(client, [withdrawal])["accepted"] == [withdrawal.event_id]

    after = published(app)
    assert after["version"] > before
    document = next(d for d in after["documents"] if d["name"] == DOCUMENT)["body"]
    assert document["days"] == {}
    assert resolver_from(document).members == 0

    # A store that had not synced yet still named the member: central refuses to attach the visit.
    assert not send(agent, client, named)["rejected"]
    stored = visits(app)
    assert [v.customer_id for v in stored] == [None]
    with central_db.session_factory(app)() as db:
        payloads = db.scalars(select(func.count()).select_from(PresenceVisit)).one()
        assert payloads == 1
        from central.ingest.models import Event

        kept = db.scalars(select(Event.payload).where(Event.kind == "presence.visit")).all()
    assert all("member_id" not in p for p in kept)
    timeline = user_client.get(f"/api/v1/customers/{customer(app, CONSENTING)}").get_json()
    assert timeline["visits"] == []


def counts(app: Flask) -> tuple[int, int]:
    with central_db.session_factory(app)() as db:
        customers = db.scalar(select(func.count()).select_from(Customer))
        identifiers = db.scalar(select(func.count()).select_from(Identifier))
    return int(customers or 0), int(identifiers or 0)


def test_a_visit_naming_an_unknown_member_creates_nobody(app, client, agent, clock):
    with central_db.session_factory(app)() as db:
        before = (
            db.scalar(select(func.count()).select_from(Customer)),
            db.scalar(select(func.count()).select_from(Identifier)),
        )
    end = clock()
    payload = {
        "medium": "ble",
        "started_at": wire.format_time(end - timedelta(minutes=10)),
        "ended_at": wire.format_time(end),
        "dwell_s": 600.0,
        "member_id": "M-9999",
    }
    assert not agent.send(client, [agent.event("presence.visit", payload)])["rejected"]
    with central_db.session_factory(app)() as db:
        after = (
            db.scalar(select(func.count()).select_from(Customer)),
            db.scalar(select(func.count()).select_from(Identifier)),
        )
    assert after == before
    assert [v.customer_id for v in visits(app)] == [None]


def test_the_hourly_job_moves_the_published_days_on(app, clock, tmp_path):
    load(app, member_events(clock()))
    certify_apps(app, tmp_path / "central", clock())
    sessions = central_db.session_factory(app)

    def days() -> set[int]:
        document = next(d for d in published(app)["documents"] if d["name"] == DOCUMENT)["body"]
        return {int(day) for day in document["days"]}

    today = member_beacon.day_of(clock().timestamp())
    assert days() == {today - 1, today, today + 1}
    version = published(app)["version"]
    assert scheduler.run_now(sessions, app.config["CENTRAL"], "member_beacons", clock) == OK
    assert published(app)["version"] == version  # nothing changed within the day: nothing published
    clock.advance(days=1)
    assert scheduler.run_now(sessions, app.config["CENTRAL"], "member_beacons", clock) == OK
    assert days() == {today, today + 1, today + 2}
