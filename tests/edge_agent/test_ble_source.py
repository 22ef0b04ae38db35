"""The BLE source: bleak's own BlueZ backend against a mocked BlueZ on a private D-Bus, into the engine.

Also: error classes, the watchdog, and fuzzed reports that never stop the source.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.presence.calendar import StoreCalendar
from edge_agent.presence.engine import EngineSettings, PresenceEngine
from edge_agent.presence.pseudonyms import Pseudonymizer
from edge_agent.presence.station import PresenceStation
from edge_agent.records import Capture
from edge_agent.sources.ble import BleSource, classify
from tests.conftest import unavailable
from tests.edge_agent import bluez_mock

# A BlueCharm iBeacon's manufacturer data (Apple, 0x004C), as the shared BLE samples show it.
IBEACON = bytes.fromhex("0215426c7565436861726d426561636f6e730efe1355c5")
BEACON_ADDRESS = "C8:2B:96:12:34:56"


def wait_until(check, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def station(captures: list[Capture]) -> PresenceStation:
    calendar = StoreCalendar(ZoneInfo("Asia/Shanghai"))
    engine = PresenceEngine(EngineSettings(medium="ble"), calendar)
    return PresenceStation(engine, Pseudonymizer(b"store S001 ble presence secret!!", calendar), captures.append)


@pytest.fixture
def bluez(tmp_path, monkeypatch):
    problem = bluez_mock.missing()
    if problem:
        unavailable(problem)
    with bluez_mock.MockBluez(tmp_path) as mock:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", mock.address)
        yield mock


def test_bleak_on_a_mocked_bluez_delivers_an_ibeacon_into_the_engine(bluez):
    bluez.add_adapter("hci0")
    target = station([])
    source = BleSource(target, adapter="hci0", anchor="door", mode="passive", watchdog=30)
    source.start()
    try:
        # The mock has no advertisement monitors: passive scanning falls back to active, once.
        wait_until(lambda: source.state == "scanning (active)")
        path = bluez.add_device(BEACON_ADDRESS, "BlueCharm")
        bluez.advertise(path, -58, {0x004C: IBEACON})
        wait_until(lambda: target.counters.heard >= 1)
    finally:
        source.stop()
    assert source.frames["ibeacon"] == 1
    assert source.rejected["no_rssi"] == 1  # announced without a reading (-127): not a sighting
    assert target.engine.devices_in_view == 1
    assert target.engine.sightings == 1
    assert source.as_dict()["errors_by_class"] == {}


def test_adapter_loss_and_return_are_survived(bluez):
    bluez.add_adapter("hci0")
    target = station([])
    source = BleSource(target, adapter="hci0", mode="active", watchdog=1.0)
    source.start()
    try:
        wait_until(lambda: source.state.startswith("scanning"))
        bluez.remove_adapter("hci0")  # unplugged: BlueZ goes quiet, then the adapter is missing
        wait_until(lambda: source.errors["adapter_missing"] >= 1)
        assert "bluetoothctl list" in (source.last_error or "")
        bluez.add_adapter("hci0")
        path = bluez.add_device(BEACON_ADDRESS, "BlueCharm")
        wait_until(lambda: source.state.startswith("scanning"), timeout=20)
        bluez.advertise(path, -60, {0x004C: IBEACON})
        wait_until(lambda: target.counters.heard >= 1)
    finally:
        source.stop()
    assert source.restarts >= 1


class _Quiet:
    """A scanner that starts and never reports anything (BlueZ stalled)."""

    starts = 0

    async def start(self) -> None:
        _Quiet.starts += 1

    async def stop(self) -> None:
        pass


def test_the_watchdog_restarts_a_scanner_that_goes_quiet():
    _Quiet.starts = 0
    source = BleSource(station([]), watchdog=0.2, scanner_factory=lambda cb, adapter, mode: _Quiet())
    source.start()
    try:
        wait_until(lambda: _Quiet.starts >= 3, timeout=10)
    finally:
        source.stop()
    assert source.restarts >= 2


class _Failing:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def start(self) -> None:
        raise self.exc

    async def stop(self) -> None:
        pass


def test_each_error_class_has_its_own_backoff_and_advice():
    from bleak.exc import BleakDBusError, BleakError

    source = BleSource(
        station([]),
        adapter="hci1",
        scanner_factory=lambda cb, adapter, mode: _Failing(BleakError("adapter 'hci1' not found")),
    )
    source.start()
    try:
        wait_until(lambda: source.errors["adapter_missing"] >= 1)
        assert source.state == "adapter_missing" and "hci1" in (source.last_error or "")
    finally:
        source.stop()
    assert classify(BleakDBusError("org.bluez.Error.NotReady", [])) == "adapter_off"
    assert classify(BleakDBusError("org.bluez.Error.InProgress", [])) == "busy"
    assert classify(BleakDBusError("org.freedesktop.DBus.Error.ServiceUnknown", [])) == "bluez_unavailable"
    assert classify(FileNotFoundError(2, "No such file")) == "bluez_unavailable"
    assert classify(BleakError("passive scanning on Linux requires BlueZ >= 5.56")) == "passive_unsupported"
    assert classify(RuntimeError("something else")) == "failed"


_bytes = st.binary(max_size=64)
_reports = st.fixed_dictionaries(
    {
        "rssi": st.one_of(st.integers(-300, 300), st.none(), st.text(max_size=3), st.booleans()),
        "manufacturer_data": st.one_of(st.dictionaries(st.integers(-1, 70000), _bytes, max_size=3), st.none()),
        "service_data": st.one_of(st.dictionaries(st.text(max_size=40), _bytes, max_size=3), st.none()),
        "service_uuids": st.one_of(st.lists(st.text(max_size=40), max_size=3), st.none()),
        "local_name": st.one_of(st.text(max_size=10), st.none(), st.integers()),
        "tx_power": st.one_of(st.integers(-200, 200), st.none()),
    }
)
_addresses = st.one_of(st.text(max_size=20), st.just(BEACON_ADDRESS), st.binary(max_size=8), st.none())


@settings(max_examples=150, deadline=None)
@given(
    report=_reports, address=_addresses, details=st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.none()))
)
def test_fuzzed_advertisements_never_stop_the_source(report, address, details):
    target = station([])
    source = BleSource(target)
    source.advertisement(SimpleNamespace(address=address, details=details), SimpleNamespace(**report))
    assert source.advertisements == 1


def test_oversized_and_truncated_advertisements_are_counted_not_raised():
    target = station([])
    source = BleSource(target)
    device = SimpleNamespace(address=BEACON_ADDRESS, details={"props": {"AddressType": "public"}})
    for manufacturer in ({0x004C: IBEACON + b"\x00" * 5000}, {0x004C: IBEACON[:7]}, {0x004C: b""}):
        report = SimpleNamespace(
            rssi=-60, manufacturer_data=manufacturer, service_data={}, service_uuids=[], local_name=None, tx_power=None
        )
        source.advertisement(device, report)
    assert source.advertisements == 3 and source.frames["ibeacon"] == 0
    assert target.counters.heard == 3  # still a phone in view, just not a beacon
