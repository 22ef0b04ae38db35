"""Backoff with full jitter, and Retry-After read as seconds or as an HTTP date."""

from __future__ import annotations

import email.utils

import pytest

from edge_agent.backoff import RETRY_AFTER_LIMIT, Backoff, parse_retry_after


def test_ceilings_double_up_to_the_maximum_and_reset():
    backoff = Backoff(0.5, 300.0, rng=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(12)] == [0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_waits_are_drawn_anywhere_below_the_ceiling():
    backoff = Backoff(1.0, 300.0, rng=lambda: 0.0)
    assert backoff.next_delay() == 0.0
    backoff._rng = lambda: 0.3
    assert backoff.next_delay() == pytest.approx(0.6)


def test_retry_after_is_a_floor_with_a_little_spread():
    assert Backoff(1.0, 300.0, rng=lambda: 0.0).next_delay(retry_after=42.0) == 42.0
    assert Backoff(1.0, 300.0, rng=lambda: 1.0).next_delay(retry_after=42.0) == pytest.approx(46.2)


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "date", "expected"),
    [
        (None, None, None),
        ("120", None, 120.0),
        (" 5 ", None, 5.0),
        ("99999999", None, RETRY_AFTER_LIMIT),
        ("soon", None, None),
        ("-3", None, None),
        (email.utils.formatdate(NOW + 90, usegmt=True), None, 90.0),
        # Against the reply's own Date, whatever this PC's clock says.
        (email.utils.formatdate(NOW + 90, usegmt=True), email.utils.formatdate(NOW + 60, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 90, usegmt=True), None, 0.0),
        ("Sunday, 06-Nov-94 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:07 GMT", 30.0),  # RFC 850, obsolete but allowed
    ],
)
def test_retry_after_values(value, date, expected):
    assert parse_retry_after(value, date=date, now=NOW) == expected
