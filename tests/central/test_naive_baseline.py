"""The naive baseline the identity scorer prints beside the engine: merge on any shared value."""

from __future__ import annotations

from bench.naive_identity import naive_clusters


def test_any_shared_value_merges_everything_it_touches():
    staff = ("phone", "13912340000")
    facts = [
        [("member_card", "CARD0001"), staff],
        [("member_card", "CARD0002"), staff],
        [("member_card", "CARD0003")],
        [("phone", "+86 139 1234 0000")],
        [],
        [("email", "a@example.com"), ("member_card", "CARD0003")],
    ]
    clusters = naive_clusters(facts)
    assert clusters[0] == clusters[1] == clusters[3]
    assert clusters[2] == clusters[5] != clusters[0]
    assert clusters[4] is None
