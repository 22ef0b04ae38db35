"""The presence engine on hand-made sightings: hysteresis, zones, visitors, repeats and hourly output."""

from __future__ import annotations

import hashlib
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from edge_agent.presence.calendar import StoreCalendar
from edge_agent.presence.engine import EngineSettings, PresenceEngine, Sighting, Visit

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI).timestamp()
PLACEMENTS = {"door": "entrance", "back": "aisles"}


def key(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()[:16]


class Floor:
    """An engine with a settable clock, collecting its visits."""

    def __init__(self, **overrides) -> None:
        self.now = T0
        self.visits: list[Visit] = []
        settings = EngineSettings(placements=PLACEMENTS, **overrides)
        calendar = StoreCalendar(SHANGHAI)
        self.engine = PresenceEngine(settings, calendar, clock=lambda: self.now, on_visit=self.visits.append)

    def hear(self, name: str, start: float, end: float, rssi, anchor="door", every=10.0, randomized=False):
        """Readings of one device from T0+start to T0+end; ``rssi`` is a number or a function of the offset."""
        t = start
        while t <= end:
            value = rssi(t) if callable(rssi) else rssi
            self.engine.observe(Sighting(T0 + t, key(name), randomized, anchor, value))
            t += every

    def settle(self, offset: float) -> list:
        self.now = T0 + offset
        self.engine.tick()
        return self.engine.drain()


def test_a_visitor_gets_one_visit_with_its_dwell_and_no_identifier():
    floor = Floor()
    floor.hear("phone", 0, 600, -60)
    events = floor.settle(700)
    (visit,) = floor.visits
    assert (visit.started_at, visit.ended_at) == (T0, T0 + 600)
    assert visit.zones == (("entrance", 600.0),)
    (event,) = [e for e in events if e.kind == "presence.visit"]
    assert event.payload == {
        "medium": "wifi",
        "started_at": "2026-11-23T02:00:00.000Z",
        "ended_at": "2026-11-23T02:10:00.000Z",
        "dwell_s": 600.0,
        "zones": [{"zone": "entrance", "dwell_s": 600.0}],
        "repeat": False,
        "peak_dbm": -60,
    }
    assert event.observed_at == "2026-11-23T02:10:00.000Z"
    assert key("phone").hex() not in repr(event.payload)


def test_hysteresis_keeps_a_wavering_signal_inside():
    # Between the exit (-78) and enter (-70) thresholds the state does not change.
    floor = Floor()
    floor.hear("phone", 0, 30, -60)
    floor.hear("phone", 40, 900, lambda t: -72 if int(t) % 20 else -77)
    floor.settle(1000)
    assert len(floor.visits) == 1
    assert floor.visits[0].dwell == pytest.approx(900, abs=10)


def test_a_signal_between_the_thresholds_never_enters():
    floor = Floor()
    floor.hear("outside", 0, 900, -74)
    floor.settle(2000)
    assert floor.visits == []
    assert floor.engine.drain() == []


def test_a_visit_ends_at_the_last_moment_heard_inside():
    floor = Floor()
    floor.hear("phone", 0, 300, -60)
    floor.hear("phone", 310, 600, -85)  # walked out but still heard from the pavement
    floor.settle(700)
    (visit,) = floor.visits
    assert visit.ended_at == pytest.approx(T0 + 300, abs=10)


def test_readings_slightly_out_of_order_do_not_shorten_a_visit():
    floor = Floor()
    floor.hear("phone", 0, 600, -60, anchor="door")
    floor.engine.observe(Sighting(T0 + 599.5, key("phone"), False, "back", -65))  # a late reader queue
    floor.settle(700)
    assert [v.ended_at for v in floor.visits] == [T0 + 600]


def test_short_strong_sightings_make_a_passer_by_not_a_visitor():
    floor = Floor()
    floor.hear("walker", 0, 60, -62)
    events = floor.settle(3600 + 900 + 1)
    assert floor.visits == []
    (hour,) = [e.payload for e in events if e.kind == "presence.aggregate"]
    assert hour["passers_by"]["passes"] == 1
    assert hour["visitors"]["visits"] == 0
    assert hour["passers_by"]["devices"]["estimate"] == 1


def test_readings_below_the_floor_are_ignored():
    floor = Floor()
    floor.hear("far away", 0, 600, -93)
    events = floor.settle(3600 + 900 + 1)
    (hour,) = [e.payload for e in events if e.kind == "presence.aggregate"]
    assert (hour["sightings"], hour["passers_by"]["passes"]) == (0, 0)
    assert floor.engine.ignored_weak == 61


def test_randomized_visitors_only_reach_the_aggregates():
    floor = Floor()
    floor.hear("random", 0, 600, -60, randomized=True)
    events = floor.settle(3600 + 900 + 1)
    assert [e.kind for e in events] == ["presence.aggregate"]
    hour = events[0].payload
    assert hour["visitors"]["visits"] == hour["visitors"]["randomized_visits"] == 1
    assert hour["randomized_devices"]["estimate"] == 1
    assert hour["dwell"]["counts"][4] == 1  # 600 s falls in the 600-1200 s bucket
    assert len(floor.visits) == 1 and floor.visits[0].randomized


def test_a_phone_that_changes_its_random_address_mid_visit_is_never_linked():
    floor = Floor()
    floor.hear("random-1", 0, 300, -60, randomized=True)
    floor.hear("random-2", 310, 600, -60, randomized=True)
    floor.settle(700)
    assert [v.device for v in floor.visits] == [key("random-1"), key("random-2")]


def test_zones_follow_the_strongest_recent_anchor():
    floor = Floor()
    for t in range(0, 601, 10):
        near_door = t < 300
        floor.engine.observe(Sighting(T0 + t, key("p"), False, "door", -55 if near_door else -75))
        floor.engine.observe(Sighting(T0 + t, key("p"), False, "back", -75 if near_door else -55))
    floor.settle(700)
    (visit,) = floor.visits
    zones = dict(visit.zones)
    assert list(zones) == ["entrance", "aisles"]
    assert zones["entrance"] == pytest.approx(300, abs=20)
    assert zones["aisles"] == pytest.approx(300, abs=20)
    assert sum(zones.values()) == pytest.approx(visit.dwell)


def test_a_second_visit_the_same_day_is_a_repeat_and_the_next_day_starts_over():
    floor = Floor()
    floor.hear("regular", 0, 300, -60)
    floor.hear("regular", 2000, 2300, -60)
    floor.settle(2400)
    assert [v.repeat for v in floor.visits] == [False, True]
    # The next local day (the pseudonym would differ anyway): not a repeat.
    floor.hear("regular", 86_400, 86_700, -60)
    floor.settle(86_800)
    assert floor.visits[-1].repeat is False


def test_hours_are_emitted_after_settling_even_when_empty():
    floor = Floor()
    floor.hear("phone", 0, 600, -60)
    assert [e.kind for e in floor.settle(3600 + 899)] == ["presence.visit"]
    (first,) = floor.settle(3600 + 900)
    assert first.payload["hour_start"] == "2026-11-23T10:00:00+08:00"
    assert first.observed_at == "2026-11-23T03:00:00.000Z"
    later = floor.settle(4 * 3600 + 900)
    assert [e.payload["hour_start"][11:13] for e in later] == ["11", "12", "13"]
    assert all(e.payload["sightings"] == 0 for e in later)


def test_a_visit_counts_where_it_began_and_its_dwell_where_it_ended():
    floor = Floor()
    floor.hear("phone", 3000, 4200, -60)  # 10:50 to 11:10
    events = floor.settle(2 * 3600 + 900)
    ten, eleven = (e.payload for e in events if e.kind == "presence.aggregate")
    assert (ten["visitors"]["visits"], eleven["visitors"]["visits"]) == (1, 0)
    assert (ten["dwell"]["visits"], eleven["dwell"]["visits"]) == (0, 1)


def test_devices_are_forgotten_and_flush_closes_everything():
    floor = Floor()
    floor.hear("walker", 0, 20, -80)
    floor.hear("visitor", 0, 290, -60)
    assert floor.engine.devices_in_view == 2
    floor.hear("visitor", 300, 400, -60)
    assert floor.engine.devices_in_view == 1  # the walker, unheard for 5 minutes, is forgotten
    floor.hear("stayer", 800, 1200, -60)
    floor.engine.flush(T0 + 1200)
    events = floor.engine.drain()
    assert floor.engine.devices_in_view == 0
    assert [v.dwell for v in floor.visits] == [400, 400]
    (hour,) = [e.payload for e in events if e.kind == "presence.aggregate"]
    assert hour["passers_by"]["passes"] == 1 and hour["visitors"]["visits"] == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"enter_dbm": -80, "exit_dbm": -70}, "hysteresis"),
        ({"smoothing_s": 0}, "smoothing_s"),
        ({"forget_after": 10}, "forget_after"),
        ({"settle": 60}, "settle"),
    ],
)
def test_inconsistent_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        EngineSettings(**overrides)
