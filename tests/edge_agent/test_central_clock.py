"""Central's clock measured from the Date of its replies, anchored to the monotonic clock."""

from __future__ import annotations

import email.utils

import pytest

from edge_agent.central_clock import CentralClock


class Clocks:
    def __init__(self):
        self.wall = 1_800_000_000.0
        self.mono = 500.0


def test_before_any_reply_central_time_is_this_pcs_time():
    c = Clocks()
    clock = CentralClock(lambda: c.wall, lambda: c.mono)
    assert clock.now() == c.wall
    assert clock.offset() is None


def test_the_date_header_sets_an_offset_from_the_midpoint_of_the_round_trip():
    c = Clocks()
    clock = CentralClock(lambda: c.wall, lambda: c.mono)
    central_now = c.wall + 7200.0  # this PC is two hours behind
    assert clock.observe(email.utils.formatdate(central_now, usegmt=True), c.mono - 0.2, c.mono)
    assert clock.offset() == pytest.approx(7200.0, abs=0.6)
    assert clock.sample is not None and clock.sample.uncertainty == pytest.approx(0.6)
    c.mono += 100
    c.wall += 100
    assert clock.now() == pytest.approx(central_now + 100, abs=0.6)


def test_a_jump_of_the_wall_clock_moves_the_offset_not_central_time():
    c = Clocks()
    clock = CentralClock(lambda: c.wall, lambda: c.mono)
    clock.observe(email.utils.formatdate(c.wall, usegmt=True), c.mono, c.mono)
    before = clock.now()
    c.wall -= 3600
    assert clock.now() == before
    assert clock.offset() == pytest.approx(3600, abs=0.6)


@pytest.mark.parametrize("header", [None, "", "yesterday", "Mon, 99 Foo 2026 99:99:99 GMT"])
def test_missing_or_unreadable_dates_change_nothing(header):
    clock = CentralClock()
    assert clock.observe(header, 1.0, 2.0) is False
    assert clock.sample is None
