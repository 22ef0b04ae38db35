"""The agent's presence settings: zones, time zone and thresholds become sources, stations and engines."""

from __future__ import annotations

from datetime import tzinfo

import pytest

from edge_agent.config import load_config
from edge_agent.presence.radios import (
    PresenceRadios,
    PresenceSettingError,
    doctor_checks,
    engine_settings,
    parse_zones,
    store_timezone,
)


def config(tmp_path, **presence):
    return load_config(
        None,
        environ={"EDGE_AGENT_DATA_DIR": str(tmp_path), "EDGE_POS_PORT": "loop://"}
        | {f"EDGE_PRESENCE_{k.upper()}": str(v) for k, v in presence.items()},
    )


def test_zones_are_anchor_zone_pairs():
    assert parse_zones(" entrance=front, aisles = aisles ,,") == {"entrance": "front", "aisles": "aisles"}
    assert parse_zones("") == {}
    with pytest.raises(PresenceSettingError, match=r"presence.zones: item 2 \('checkout'\) is not `anchor=zone`"):
        parse_zones("entrance=front, checkout")


def test_time_zone_is_named_or_the_pcs_own():
    assert str(store_timezone("Asia/Shanghai")) == "Asia/Shanghai"
    assert isinstance(store_timezone(""), tzinfo)
    with pytest.raises(PresenceSettingError, match="not an IANA time zone"):
        store_timezone("Mars/Olympus")


def test_thresholds_reach_the_engine_and_hysteresis_is_checked(tmp_path):
    settings = engine_settings(config(tmp_path, enter_dbm=-65, exit_dbm=-75, min_dwell=300, zones="door=front"), "ble")
    assert (settings.enter_dbm, settings.exit_dbm, settings.min_dwell, settings.medium) == (-65, -75, 300, "ble")
    assert settings.placements == {"door": "front"}
    with pytest.raises(PresenceSettingError, match="exit_dbm must not be above"):
        engine_settings(config(tmp_path, enter_dbm=-80, exit_dbm=-70), "wifi")


def test_radios_are_off_unless_configured_and_the_secret_is_created_on_first_use(tmp_path):
    assert not PresenceRadios(config(tmp_path), lambda c: None).enabled
    assert not (tmp_path / "presence.secret").exists()
    radios = PresenceRadios(config(tmp_path, wifi=tmp_path / "none.pcap", ble_adapter="hci0"), lambda c: None)
    assert radios.enabled and set(radios.stations) == {"wifi", "ble"}
    assert (tmp_path / "presence.secret").stat().st_mode & 0o777 == 0o600
    assert set(radios.states()) == {"wifi", "ble"}


def test_doctor_checks_the_radios_against_sysfs(tmp_path):
    sys_root = tmp_path / "sys"
    (sys_root / "class" / "net" / "wlan1mon").mkdir(parents=True)
    (sys_root / "class" / "net" / "wlan1mon" / "type").write_text("803\n")
    (sys_root / "class" / "net" / "wlan0").mkdir(parents=True)
    (sys_root / "class" / "net" / "wlan0" / "type").write_text("1\n")
    (sys_root / "class" / "bluetooth" / "hci0").mkdir(parents=True)

    assert doctor_checks(config(tmp_path), sys_root) == [
        (True, "presence: off (no presence.wifi, no presence.ble_adapter)")
    ]
    assert doctor_checks(config(tmp_path, wifi="wlan1mon", ble_adapter="hci0"), sys_root) == [
        (True, "presence.wifi: interface wlan1mon in monitor mode"),
        (True, "presence.ble_adapter: hci0 present"),
    ]
    (ok, line), (ble_ok, ble_line) = doctor_checks(config(tmp_path, wifi="wlan0", ble_adapter="hci1"), sys_root)
    assert not ok and "not in monitor mode (type 1): iw dev wlan0 set type monitor" in line
    assert not ble_ok and "bluetoothctl list" in ble_line
    (ok, line), *_ = doctor_checks(config(tmp_path, wifi=tmp_path / "gone.pcapng", zones="door"), sys_root)
    assert not ok and "presence.zones" in line
