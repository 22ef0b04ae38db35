"""A simulated store floor with known ground truth, through the pseudonymizer and the presence engine."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from zoneinfo import ZoneInfo

import pytest

from edge_agent.presence.calendar import StoreCalendar
from edge_agent.presence.engine import EngineSettings, PresenceEngine, Sighting, Visit
from edge_agent.presence.pseudonyms import Pseudonymizer
from shared.hyperloglog import HyperLogLog
from tools.store_floor import PLACEMENTS, StoreFloor

SHANGHAI = ZoneInfo("Asia/Shanghai")


def run_floor(seed: int):
    floor = StoreFloor(seed=seed)
    raw = floor.sightings()
    calendar = StoreCalendar(SHANGHAI)
    pseudonyms = Pseudonymizer(b"store S001 presence secret 32 b", calendar, clock=lambda: floor.start)
    visits: list[Visit] = []
    engine = PresenceEngine(EngineSettings(placements=PLACEMENTS), calendar, clock=lambda: 0.0, on_visit=visits.append)
    for reading in raw:
        device = pseudonyms.device(reading.address, reading.at)
        engine.observe(Sighting(reading.at, device.key, device.randomized, reading.reader, reading.rssi))
    end = raw[-1].at + 3600
    engine.advance(end)
    engine.flush(end)
    return floor, pseudonyms, visits, engine.drain()


@pytest.fixture(scope="module", params=[1, 2, 3])
def floor_run(request):
    return run_floor(request.param)


def aggregates(events):
    return [e.payload for e in events if e.kind == "presence.aggregate"]


def test_visit_and_passer_by_counts_match_the_truth(floor_run):
    floor, _, visits, events = floor_run
    truth = Counter(p.kind for p in floor.people)
    hours = aggregates(events)
    assert sum(h["visitors"]["visits"] for h in hours) == truth["visitor"] == len(visits)
    assert sum(h["passers_by"]["passes"] for h in hours) == truth["walker"]
    randomized_visitors = sum(p.kind == "visitor" and p.randomized for p in floor.people)
    assert sum(h["visitors"]["randomized_visits"] for h in hours) == randomized_visitors
    assert sum(h["visitors"]["repeat_visits"] for h in hours) == sum(p.repeat for p in floor.people)


def test_every_visit_is_a_true_visitor_with_dwell_within_ten_percent(floor_run):
    floor, pseudonyms, visits, _ = floor_run
    people = [p for p in floor.people if p.kind == "visitor"]
    unmatched = list(people)
    for visit in visits:
        candidates = [p for p in unmatched if pseudonyms.device(p.address, p.door_in).key == visit.device]
        person = min(candidates, key=lambda p: abs(p.door_in - visit.started_at))
        unmatched.remove(person)
        assert abs(visit.dwell - person.dwell) <= 0.10 * person.dwell, (visit, person)
        assert visit.randomized is person.randomized
        assert visit.repeat is person.repeat
    assert unmatched == []


def test_only_global_addresses_get_visit_events_and_they_carry_no_identifier(floor_run):
    _, _, visits, events = floor_run
    visit_events = [e for e in events if e.kind == "presence.visit"]
    assert len(visit_events) == sum(not v.randomized for v in visits)
    assert sorted(e.payload["dwell_s"] for e in visit_events) == sorted(
        round(v.dwell, 1) for v in visits if not v.randomized
    )
    assert {frozenset(e.payload) for e in visit_events} == {
        frozenset({"medium", "started_at", "ended_at", "dwell_s", "zones", "repeat", "peak_dbm"})
    }


def test_no_raw_address_or_pseudonym_appears_in_any_event(floor_run):
    floor, _, visits, events = floor_run
    text = json.dumps([e.payload for e in events]).lower()
    for person in floor.people:
        for form in (person.address, person.address.replace(":", ""), person.address.replace(":", "-")):
            assert form not in text
    for visit in visits:
        assert visit.device.hex() not in text
        assert visit.device[:8].hex() not in text


def test_distinct_counts_in_the_sketches_match_the_truth(floor_run):
    floor, _, _, events = floor_run
    passers, visitors, devices = HyperLogLog(), HyperLogLog(), HyperLogLog()
    for hour in aggregates(events):
        passers.merge(HyperLogLog.from_wire(hour["passers_by"]["devices"]))
        visitors.merge(HyperLogLog.from_wire(hour["visitors"]["devices"]))
        devices.merge(HyperLogLog.from_wire(hour["devices"]))
    distinct_visitors = len({p.address for p in floor.people if p.kind == "visitor"})
    assert abs(passers.count() - 200) <= 4
    assert abs(visitors.count() - distinct_visitors) <= 2
    assert abs(devices.count() - len({p.address for p in floor.people})) <= 5


def test_dwell_and_zones_add_up_in_the_aggregates(floor_run):
    _, _, visits, events = floor_run
    hours = aggregates(events)
    assert sum(sum(h["dwell"]["counts"]) for h in hours) == len(visits)
    total = sum(h["dwell"]["total_s"] for h in hours)
    assert total == pytest.approx(sum(v.dwell for v in visits), abs=1.0 * len(hours))
    zone_total = sum(z["dwell_s"] for h in hours for z in h["zones"].values())
    assert zone_total == pytest.approx(total, rel=0.001)
    assert {zone for h in hours for zone in h["zones"]} == set(PLACEMENTS.values())


def test_hours_are_contiguous_local_clock_hours(floor_run):
    _, _, _, events = floor_run
    hours = aggregates(events)
    starts = [h["hour_start"] for h in hours]
    assert starts[0] == "2026-11-23T10:00:00+08:00"
    assert all(a["hour_end"] == b["hour_start"] for a, b in itertools.pairwise(hours))
    assert len(hours) >= 2
