"""The presence tags against hand-computed values, through ingest, recompute-tags, the API and the export.

As of the support clock, 2026-11-23 02:00 UTC (10:00 on 23 November in the chain's UTC+8), with the
default settings (30 days from local midnight of 25 October, 2 visits, 20 minutes):

- Ann (member M-2001) agreed to location use and to profiling. Her app beacon made four visits at S001:
  20 November 10:00-10:10 local, a day she bought at S001 (07:30 local, which is still 19 November in
  UTC: days are local); 21 November 15:00-15:25 (25 minutes; she bought that day, but at S002);
  22 November 18:00-18:05; and 24 October 20:00-20:30, before the window. Visits without purchase:
  21 and 22 November, 2, tagged; long dwell: the 25-minute one, 1, longest 25.0 minutes.
- Ben (member M-2002) agreed to location use only: his three visits (one of 30 minutes, no purchase)
  are attached to him, but without profiling consent he gets neither tag.

With a 40-day window Ann's 24 October visit counts too: 3 visits without purchase, 2 long ones. With
3 visits and 26 minutes as thresholds she gets neither tag.
"""

from __future__ import annotations

import csv
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from central import db as central_db
from central.customers import profile, tagging, tags
from central.customers.export import export_tags
from central.presence.models import PresenceVisit
from shared import wire
from tests.central.consent_support import consent_event, customer_of, load
from tests.central.customer_support import sale
from tests.central.support import Agent, create_user, login, table_rows

ANN, BEN = "13900000001", "13900000002"
LOCAL = timedelta(hours=8)


def local(text: str) -> datetime:
    """A UTC instant from a local (UTC+8) ``YYYY-MM-DDTHH:MM``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC) - LOCAL


def members(at: datetime) -> list[dict[str, Any]]:
    def signup(member: str, phone: str) -> dict[str, Any]:
        return {
            "event_id": str(uuid.uuid4()),
            "kind": "member.signup",
            "observed_at": wire.format_time(at - timedelta(days=60)),
            "identifiers": {"member_id": member, "phone": phone},
            "payload": {},
        }

    since = at - timedelta(days=50)
    return [
        signup("M-2001", ANN),
        signup("M-2002", BEN),
        consent_event("a-loc", ANN, granted=True, at=since, purpose="location", channel=None),
        consent_event("a-prof", ANN, granted=True, at=since, purpose="profiling", channel=None),
        consent_event("b-loc", BEN, granted=True, at=since, purpose="location", channel=None),
    ]


def visit(agent: Agent, member: str, start: str, minutes: int) -> wire.Event:
    started = local(start)
    ended = started + timedelta(minutes=minutes)
    payload = {
        "medium": "ble",
        "started_at": wire.format_time(started),
        "ended_at": wire.format_time(ended),
        "dwell_s": minutes * 60.0,
        "member_id": member,
    }
    return agent.event("presence.visit", payload, observed_at=ended)


def test_presence_tags_match_the_hand_computed_values(app: Flask, client: FlaskClient, agent: Agent, clock, tmp_path):
    now = clock()
    load(app, members(now))
    load(app, [sale("a-s002", "2026-11-21T12:00:00+08:00", "15.00", phone=ANN, store="S002")], source="pos_backfill")
    events = [
        visit(agent, "M-2001", "2026-11-20T10:00", 10),
        agent.receipt("a-s001", "30.00", phone=ANN, observed_at=local("2026-11-20T07:30")),
        visit(agent, "M-2001", "2026-11-21T15:00", 25),
        visit(agent, "M-2001", "2026-11-22T18:00", 5),
        visit(agent, "M-2001", "2026-10-24T20:00", 30),
        visit(agent, "M-2002", "2026-11-20T11:00", 30),
        visit(agent, "M-2002", "2026-11-21T11:00", 5),
        visit(agent, "M-2002", "2026-11-22T11:00", 5),
    ]
    assert not agent.send(client, events)["rejected"]
    ann, ben = customer_of(app, ANN), customer_of(app, BEN)
    assert sorted(v.customer_id for v in table_rows(app, PresenceVisit)) == [ann] * 4 + [ben] * 3

    config = app.config["CENTRAL"]
    engine = central_db.engine_for(app)
    with engine.begin() as conn:
        done = tagging.recompute(conn, config, now, statistics=True)
    assert done.tags["presence.visits_without_purchase"] == 1
    assert done.tags["presence.long_dwell"] == 1

    create_user(app)
    user = app.test_client()
    login(user)
    shown = {t["tag"]: t for t in user.get(f"/api/v1/customers/{ann}/tags").get_json()["tags"]}
    browse, dwell = shown["presence.visits_without_purchase"], shown["presence.long_dwell"]
    assert browse["value"] == "2"
    assert browse["why"] == {"visits": 3, "visits_without_purchase": 2, "window_days": 30, "min_visits": 2}
    assert browse["version"] == tags.version(config, "visits_without_purchase")
    assert browse["version"].startswith("1:")
    assert dwell["value"] == "1"
    assert dwell["why"] == {
        "visits": 3,
        "long_visits": 1,
        "longest_dwell_minutes": 25.0,
        "window_days": 30,
        "min_minutes": 20,
    }
    assert dwell["version"] == tags.version(config, "long_dwell")
    ben_tags = {t["tag"] for t in user.get(f"/api/v1/customers/{ben}/tags").get_json()["tags"]}
    assert not {t for t in ben_tags if t.startswith("presence.")}

    export_tags(engine, tmp_path / "out", now, config.customers_utc_offset_minutes)
    with Path(tmp_path / "out" / "tags.csv").open(newline="") as f:
        exported = [(int(r["customer_id"]), r["tag"], r["value"]) for r in csv.DictReader(f) if "presence" in r["tag"]]
    assert exported == [(ann, "presence.long_dwell", "1"), (ann, "presence.visits_without_purchase", "2")]


def _presence_tags(engine: Any, customer: int) -> dict[str, tuple[str, Any, str]]:
    with engine.connect() as conn:
        return {
            t["tag"]: (t["value"], t["why"], t["version"])
            for t in profile.tags_of(conn, customer)
            if t["tag"].startswith("presence.")
        }


def test_the_window_and_thresholds_are_settings(app: Flask, client: FlaskClient, agent: Agent, clock):
    now = clock()
    load(app, members(now))
    events = [
        visit(agent, "M-2001", "2026-11-20T10:00", 10),
        agent.receipt("a-s001", "30.00", phone=ANN, observed_at=local("2026-11-20T07:30")),
        visit(agent, "M-2001", "2026-11-21T15:00", 25),
        visit(agent, "M-2001", "2026-11-22T18:00", 5),
        visit(agent, "M-2001", "2026-10-24T20:00", 30),
    ]
    assert not agent.send(client, events)["rejected"]
    ann = customer_of(app, ANN)
    engine = central_db.engine_for(app)
    default = app.config["CENTRAL"]
    wider = replace(default, tags_presence_window_days=40)
    with engine.begin() as conn:
        tagging.recompute(conn, wider, now)
    shown = _presence_tags(engine, ann)
    assert shown["presence.visits_without_purchase"][:2] == (
        "3",
        {"visits": 4, "visits_without_purchase": 3, "window_days": 40, "min_visits": 2},
    )
    assert shown["presence.long_dwell"][0] == "2"
    assert shown["presence.long_dwell"][1]["longest_dwell_minutes"] == 30.0
    assert shown["presence.long_dwell"][2] != tags.version(default, "long_dwell")
    stricter = replace(default, tags_browse_min_visits=3, tags_long_dwell_minutes=26)
    with engine.begin() as conn:
        tagging.recompute(conn, stricter, now)
    assert _presence_tags(engine, ann) == {}
