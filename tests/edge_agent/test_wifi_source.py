"""The Wi-Fi source: a pcap file replayed, a FIFO, a monitor socket (faked by a socket pair), fuzzed input."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.presence.calendar import StoreCalendar
from edge_agent.presence.engine import EngineSettings, PresenceEngine, Visit
from edge_agent.presence.pseudonyms import Pseudonymizer
from edge_agent.presence.station import PresenceStation
from edge_agent.records import Capture
from edge_agent.sources.wifi import WifiSource
from tools.store_floor import PLACEMENTS, StoreFloor, probe_frame, write_pcapng

SHANGHAI = ZoneInfo("Asia/Shanghai")
SECRET = b"store S001 presence secret 32 b!"


class Heard:
    """A listener that keeps what the source hands over (addresses included: this is the source's test)."""

    def __init__(self) -> None:
        self.sightings: list[tuple[float, str | bytes, str, float, bool | None]] = []
        self.finished: list[float | None] = []
        self.replays = 0

    def heard(self, at, address, anchor, rssi, randomized=None):
        self.sightings.append((at, address, anchor, rssi, randomized))

    def replaying(self, on):
        self.replays += 1 if on else 0

    def finish(self, at=None):
        self.finished.append(at)


def wait_until(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.fixture
def sample(samples_dir):
    wifi = samples_dir / "wifi"
    expected = json.loads((wifi / "airodump__expected_probe_requests.json").read_text())
    return wifi / "airodump__80211-sample1.pcap", expected["files"]["airodump__80211-sample1.pcap"]["probe_requests"]


def test_the_sample_pcap_replayed_hands_over_exactly_its_probe_requests(sample):
    path, expected = sample
    heard = Heard()
    source = WifiSource(str(path), heard, anchor="door")
    source.run()
    assert [(s[1], s[3], s[4]) for s in heard.sightings] == [
        (p["sa"], float(p["wlan_radio_signal_dbm_tshark"]), p["locally_administered"]) for p in expected
    ]
    assert {s[2] for s in heard.sightings} == {"door"}
    assert source.state == "finished" and heard.replays == 1
    # Visits end at the capture's own last moment (its last frame), not at today's date.
    assert len(heard.finished) == 1 and 0 <= heard.finished[0] - heard.sightings[-1][0] < 60
    assert source.probes == len(expected) and sum(source.rejected.values()) == source.frames - len(expected)


def test_a_fifo_is_read_as_frames_arrive(tmp_path):
    fifo = tmp_path / "probes.fifo"
    os.mkfifo(fifo)
    heard = Heard()
    source = WifiSource(str(fifo), heard)
    source.start()
    capture = io.BytesIO()
    floor = StoreFloor(seed=4, walkers=3, visitors=0, hours=1.0)
    sightings = floor.sightings()
    write_pcapng(sightings, capture)
    try:
        with open(fifo, "wb") as writer:
            data = capture.getvalue()
            for start in range(0, len(data), 1000):  # a capture tool writes as it goes
                writer.write(data[start : start + 1000])
                writer.flush()
        wait_until(lambda: len(heard.sightings) == len(sightings))
    finally:
        source.stop()
    assert [s[1] for s in heard.sightings] == [s.address for s in sightings]
    assert {s[2] for s in heard.sightings} == {s.reader for s in sightings}  # pcapng interface names
    assert heard.finished == []  # a FIFO is live: the wall clock drives time, not the end of a capture


def test_a_monitor_interface_is_read_from_a_raw_socket():
    radio, agent_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    heard = Heard()
    source = WifiSource(
        "wlan1mon", heard, anchor="aisles", clock=lambda: 1_795_400_000.0, socket_factory=lambda _: agent_end
    )
    source.start()
    try:
        radio.send(probe_frame("64:5d:86:75:c1:28", -52, 7))
        radio.send(b"\x00\x00\x08\x00")  # a damaged frame
        radio.send(probe_frame("66:5d:86:75:c1:29", -71, 8))
        wait_until(lambda: len(heard.sightings) == 2)
    finally:
        source.stop()
        radio.close()
    assert heard.sightings == [
        (1_795_400_000.0, "64:5d:86:75:c1:28", "aisles", -52.0, False),
        (1_795_400_000.0, "66:5d:86:75:c1:29", "aisles", -71.0, True),
    ]
    assert sum(source.rejected.values()) == 1 and source.frames == 3


def test_a_missing_interface_is_retried_and_explained():
    calls = []

    def no_such_interface(name):
        calls.append(name)
        raise OSError(19, "No such device")

    source = WifiSource("wlan9mon", Heard(), socket_factory=no_such_interface, reconnect_max_delay=0.05)
    source.start()
    try:
        wait_until(lambda: len(calls) >= 3)
        assert source.state == "interface_unavailable"
        assert "no interface wlan9mon" in (source.last_error or "") and "type monitor" in (source.last_error or "")
    finally:
        source.stop()


def test_the_simulated_floor_through_the_source_matches_its_ground_truth(tmp_path):
    floor = StoreFloor(seed=2)
    path = tmp_path / "floor.pcapng"
    with path.open("wb") as out:
        write_pcapng(floor.sightings(), out)
    calendar = StoreCalendar(SHANGHAI)
    visits: list[Visit] = []
    engine = PresenceEngine(EngineSettings(placements=PLACEMENTS), calendar, on_visit=visits.append)
    captures: list[Capture] = []
    a_week_later = floor.start + 7 * 86400
    station = PresenceStation(engine, Pseudonymizer(SECRET, calendar), captures.append, clock=lambda: a_week_later)
    source = WifiSource(str(path), station)
    source.start()
    station.tick()  # the agent's tick job, a week after the capture: it must not end the capture's visits
    source.join(30)
    station.tick()  # nor emit anything once the capture is over
    assert source.state == "finished"
    assert {c.payload()["hour_start"][:10] for c in captures if c.kind == "presence.aggregate"} == {"2026-11-23"}
    truth = Counter(p.kind for p in floor.people)
    assert len(visits) == truth["visitor"]
    hours = [c.payload() for c in captures if c.kind == "presence.aggregate"]
    assert sum(h["passers_by"]["passes"] for h in hours) == truth["walker"]
    truths = sorted(p.dwell for p in floor.people if p.kind == "visitor")
    for measured, true in zip(sorted(v.dwell for v in visits), truths, strict=True):
        assert abs(measured - true) <= 0.10 * true


@settings(max_examples=250, deadline=None)
@given(data=st.binary(max_size=300), linktype=st.sampled_from([127, 105, 1, 0, 65535]), fcs=st.integers(0, 8))
def test_fuzzed_frames_never_stop_the_source(data, linktype, fcs):
    source = WifiSource("wlan1mon", Heard())
    source.frame(linktype, data, 0.0, fcs)
    assert source.frames == 1


@settings(max_examples=150, deadline=None)
@given(
    head=st.sampled_from([b"\xd4\xc3\xb2\xa1", b"\x0a\x0d\x0d\x0a", b"", b"\x4d\x3c\xb2\xa1"]),
    body=st.binary(max_size=400),
)
def test_fuzzed_capture_streams_never_stop_the_source(head, body):
    source = WifiSource("x.pcap", Heard())
    source.read_stream(io.BytesIO(head + body), replay=True)


def test_an_oversized_frame_is_rejected_not_raised():
    source = WifiSource("wlan1mon", Heard())
    source.frame(127, probe_frame("64:5d:86:75:c1:28", -50, 1) + b"\x00" * 70000, 0.0)
    assert source.frames == 1


def test_concurrent_sources_share_a_station_safely():
    calendar = StoreCalendar(SHANGHAI)
    engine = PresenceEngine(EngineSettings(), calendar)
    station = PresenceStation(engine, Pseudonymizer(SECRET, calendar), lambda c: None, clock=lambda: 1_795_400_000.0)

    def feed(offset):
        for n in range(500):
            station.heard(1_795_400_000.0 + n, f"64:5d:86:75:{offset:02x}:{n % 50:02x}", "door", -60.0)

    threads = [threading.Thread(target=feed, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert station.counters.heard == 2000 and engine.devices_in_view == 200
