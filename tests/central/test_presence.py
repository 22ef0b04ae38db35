"""Central presence: agents' visits and hours stored once, merged per store and hour across agents."""

from __future__ import annotations

import hashlib
from typing import Any

from central.presence.models import PresenceHour, PresenceVisit
from shared.hyperloglog import HyperLogLog
from tests.central.support import Agent, table_rows, token_for

HOUR = "2026-11-23T10:00:00+08:00"
NEXT = "2026-11-23T11:00:00+08:00"
WINDOW = {"from": "2026-11-23T00:00:00+08:00", "to": "2026-11-24T00:00:00+08:00"}


def sketch(devices: range) -> dict[str, Any]:
    hll = HyperLogLog(12)
    for n in devices:
        hll.add_hash(int.from_bytes(hashlib.blake2b(n.to_bytes(4, "big"), digest_size=8).digest(), "big"))
    return hll.to_wire()


def estimate(devices: range) -> int:
    return HyperLogLog.from_wire(sketch(devices)).count()


def hour(visitors: range, passers: range, *, visits: int, start: str = HOUR, end: str = NEXT, medium="wifi") -> dict:
    return {
        "medium": medium,
        "hour_start": start,
        "hour_end": end,
        "sightings": 100,
        "devices": sketch(range(min(visitors.start, passers.start), max(visitors.stop, passers.stop))),
        "randomized_devices": sketch(range(0)),
        "passers_by": {"passes": len(passers), "devices": sketch(passers)},
        "visitors": {"visits": visits, "repeat_visits": 0, "randomized_visits": 1, "devices": sketch(visitors)},
        "dwell": {"bounds_s": [60, 300], "counts": [0, visits - 1, 1], "visits": visits, "total_s": 300.0 * visits},
        "zones": {"aisles": {"dwell_s": 200.0 * visits, "visits": visits, "devices": sketch(visitors)}},
    }


VISIT = {
    "medium": "wifi",
    "started_at": "2026-11-23T02:05:00.000Z",
    "ended_at": "2026-11-23T02:15:00.000Z",
    "dwell_s": 600.0,
    "zones": [{"zone": "aisles", "dwell_s": 600.0}],
    "repeat": False,
    "peak_dbm": -55,
}


def test_two_agents_of_a_store_merge_their_sketches_and_sum_their_counts(app, client, agent, user_client):
    second = Agent()
    assert second.enroll(client, token_for(app)).status_code == 201
    other_store = Agent(store_id="S002")
    assert other_store.enroll(client, token_for(app, "S002")).status_code == 201
    batch = [agent.event("presence.aggregate", hour(range(0, 30), range(100, 200), visits=30))]
    batch.append(agent.event("presence.visit", VISIT))
    assert len(agent.send(client, batch)["accepted"]) == 2
    # Sent again (a lost reply): nothing is added twice.
    assert agent.post(client, agent.body(batch)).status_code == 200
    # The same agent, restarted within the hour, sends the rest of it; the second agent overlaps.
    agent.send(client, [agent.event("presence.aggregate", hour(range(30, 40), range(200, 210), visits=10))])
    second.send(client, [second.event("presence.aggregate", hour(range(20, 50), range(150, 250), visits=30))])
    other_store.send(client, [other_store.event("presence.aggregate", hour(range(0, 999), range(0), visits=999))])
    assert len(table_rows(app, PresenceHour)) == 4 and len(table_rows(app, PresenceVisit)) == 1

    report = user_client.get("/api/v1/presence/S001", query_string=WINDOW).get_json()
    (only,) = report["hours"]
    total = report["totals"]["wifi"]
    assert only["hour_start"] == HOUR and only["agents"] == total["agents"] == 2
    assert (total["visits"], total["passes"]) == (70, 210)
    # Merged registers equal those of one sketch of the union: devices 0-49 and 100-249.
    visitors, passers = estimate(range(0, 50)), estimate(range(100, 250))
    assert (total["visitors"], total["passers_by"]) == (visitors, passers)
    assert abs(visitors - 50) <= 1 and abs(passers - 150) <= 3
    assert total["capture_rate"] == round(visitors / (visitors + passers), 4)
    assert total["dwell"]["counts"] == [0, 67, 3] and total["dwell"]["mean_s"] == 300.0
    assert total["zones"] == {"aisles": {"dwell_s": 14000.0, "visits": 70, "visitors": visitors}}
    assert report["visits"] == {"count": 1, "dwell_s": [600.0], "median_dwell_s": 600.0}
    assert user_client.get("/api/v1/presence/S001", query_string={**WINDOW, "medium": "ble"}).get_json()["hours"] == []


def test_bad_times_are_rejected_and_the_api_needs_a_login_and_checks_its_parameters(agent, client, user_client):
    bad = hour(range(1), range(1), visits=1, start="yesterday at ten")
    reply = agent.send(client, [agent.event("presence.aggregate", bad)])
    assert reply["rejected"][0]["reason"] == "invalid_payload:hour_start"
    assert client.get("/api/v1/presence/S001").status_code == 401
    assert user_client.get("/api/v1/presence/S001", query_string={"from": "soon"}).status_code == 400
    assert user_client.get("/api/v1/presence/S001", query_string={**WINDOW, "medium": "radar"}).status_code == 400
    reversed_window = {"from": WINDOW["to"], "to": WINDOW["from"]}
    assert user_client.get("/api/v1/presence/S001", query_string=reversed_window).status_code == 400
    empty = user_client.get("/api/v1/presence/S001", query_string=WINDOW).get_json()
    assert empty["hours"] == [] and empty["totals"] == {} and empty["visits"]["count"] == 0
