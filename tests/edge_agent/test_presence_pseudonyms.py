"""Presence pseudonyms: keyed, rotating at the store's local midnight, randomized addresses flagged."""

from __future__ import annotations

import stat
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from edge_agent.presence.calendar import StoreCalendar
from edge_agent.presence.pseudonyms import AddressError, Pseudonymizer, load_secret, mac_bytes

SHANGHAI = ZoneInfo("Asia/Shanghai")
SECRET = bytes(range(32))
MAC = "64:5D:86:75:C1:28"


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture
def pseudonyms():
    return Pseudonymizer(SECRET, StoreCalendar(SHANGHAI))


def test_the_same_address_on_the_same_local_day_gets_the_same_pseudonym(pseudonyms):
    morning = pseudonyms.device(MAC, at("2026-11-23T09:00:00+08:00"))
    night = pseudonyms.device("64-5d-86-75-c1-28", at("2026-11-23T23:59:59+08:00"))
    assert morning == night
    assert len(morning.key) == 16
    assert not morning.randomized


def test_the_pseudonym_changes_at_local_midnight_not_utc_midnight(pseudonyms):
    before = pseudonyms.device(MAC, at("2026-11-23T23:59:59+08:00")).key
    after = pseudonyms.device(MAC, at("2026-11-24T00:00:00+08:00")).key
    assert before != after
    # 08:00 in Shanghai is UTC midnight: nothing changes there.
    assert pseudonyms.device(MAC, at("2026-11-24T07:59:59+08:00")).key == after
    assert pseudonyms.device(MAC, at("2026-11-24T08:00:00+08:00")).key == after


def test_another_store_secret_gives_unrelated_pseudonyms(pseudonyms):
    other = Pseudonymizer(bytes(32), StoreCalendar(SHANGHAI))
    moment = at("2026-11-23T12:00:00+08:00")
    assert other.device(MAC, moment).key != pseudonyms.device(MAC, moment).key


def test_the_pseudonym_holds_no_part_of_the_address(pseudonyms):
    key = pseudonyms.device(MAC, at("2026-11-23T12:00:00+08:00")).key
    assert mac_bytes(MAC) not in key
    assert bytes.fromhex("75c128") not in key


def test_the_clock_is_used_when_no_time_is_given():
    now = [at("2026-11-23T12:00:00+08:00")]
    pseudonyms = Pseudonymizer(SECRET, StoreCalendar(SHANGHAI), clock=lambda: now[0])
    today = pseudonyms.device(MAC).key
    now[0] += 86_400
    assert pseudonyms.device(MAC).key != today
    assert pseudonyms.device(MAC, now[0] - 86_400).key == today


def test_randomized_addresses_are_flagged(pseudonyms):
    assert pseudonyms.device("da:a1:19:00:00:01", 0.0).randomized
    assert not pseudonyms.device("d8:a1:19:00:00:01", 0.0).randomized
    # BLE states the address type itself.
    assert pseudonyms.device("d8:a1:19:00:00:01", 0.0, randomized=True).randomized


def test_rotating_ids_get_pseudonyms_too(pseudonyms):
    rpi = bytes.fromhex("0d3b4f65584c582160571dd19010d41c")
    assert pseudonyms.pseudonym(rpi, 0.0) != rpi[:16]
    assert pseudonyms.pseudonym(rpi, 0.0) == pseudonyms.pseudonym(rpi, 1.0)


@pytest.mark.parametrize("text", ["", "64:5d:86:75:c1", "zz:5d:86:75:c1:28", "64:5d:86:75:c1:28:00", b"\x00" * 5])
def test_things_that_are_not_addresses_are_refused(pseudonyms, text):
    with pytest.raises(AddressError):
        pseudonyms.device(text, 0.0)


def test_a_short_secret_is_refused():
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Pseudonymizer(b"short", StoreCalendar(SHANGHAI))


def test_the_secret_file_is_created_once_and_private(tmp_path):
    path = tmp_path / "presence.key"
    first = load_secret(path)
    assert load_secret(path) == first
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
