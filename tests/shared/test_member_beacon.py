"""Member beacon ids: rotate every window, resolve only with that day's key, within one window of skew."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from shared import member_beacon as mb

NOON = 20_422 * mb.DAY_SECONDS + 12 * 3600.0  # 2025-11-30 12:00 UTC


def test_ids_rotate_every_window_and_look_unrelated():
    root = os.urandom(32)
    ids = [mb.advertised_id(root, NOON + n * mb.WINDOW_SECONDS) for n in range(200)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == mb.ID_BYTES for i in ids)
    # Within a window the id stays the same (the app advertises it many times).
    assert mb.advertised_id(root, NOON) == mb.advertised_id(root, NOON + 1)


def test_resolver_knows_its_members_within_one_window_of_skew_and_nobody_else():
    member, other = os.urandom(32), os.urandom(32)
    day = mb.day_of(NOON)
    resolver = mb.BeaconResolver({day: [("M-1", mb.day_key(member, day))]})
    assert resolver.members == 1
    assert resolver.resolve(mb.advertised_id(member, NOON), NOON) == "M-1"
    for skew in (-mb.WINDOW_SECONDS, mb.WINDOW_SECONDS):
        assert resolver.resolve(mb.advertised_id(member, NOON + skew), NOON) == "M-1"
    assert resolver.resolve(mb.advertised_id(member, NOON + 2 * mb.WINDOW_SECONDS), NOON) is None
    assert resolver.resolve(mb.advertised_id(other, NOON), NOON) is None
    # Another day's id needs that day's key, which this resolver was not given.
    tomorrow = NOON + mb.DAY_SECONDS
    assert resolver.resolve(mb.advertised_id(member, tomorrow), tomorrow) is None
    assert mb.BeaconResolver().resolve(mb.advertised_id(member, NOON), NOON) is None


def test_windows_across_midnight_use_each_side_s_day_key():
    root = os.urandom(32)
    midnight = (mb.day_of(NOON) + 1) * mb.DAY_SECONDS
    days = {d: [("M-1", mb.day_key(root, d))] for d in (mb.day_of(NOON), mb.day_of(NOON) + 1)}
    resolver = mb.BeaconResolver(days)
    before, after = midnight - 1, midnight + 1
    assert resolver.resolve(mb.advertised_id(root, before), after) == "M-1"
    assert resolver.resolve(mb.advertised_id(root, after), before) == "M-1"


def test_the_eddystone_frame_carries_the_id():
    identifier = bytes(range(8))
    assert mb.eddystone_eid_service_data(identifier, -59) == bytes([0x30, 0xC5]) + identifier


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=8, max_size=8), st.floats(min_value=0, max_value=2**32 * 100.0))
def test_random_ids_resolve_to_nobody(identifier, at):
    root = b"\x01" * 32
    day = mb.day_of(at)
    resolver = mb.BeaconResolver({day: [("M-1", mb.day_key(root, day))]})
    if identifier not in {mb.advertised_id(root, at + k * mb.WINDOW_SECONDS) for k in (-1, 0, 1)}:
        assert resolver.resolve(identifier, at) is None
