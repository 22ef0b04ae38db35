"""The chain generator and the pair scorer: exact on hand-made cases, and the naive baseline is worse."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from bench.chain import build_chain, write_chain
from bench.identity_score import load_chain, naive_clusters, our_clusters, pair_scores, read_truth
from central.db import make_engine


def brute_force(clusters, truth):
    """Precision and recall by listing every pair: the definition the scorer must agree with."""
    events = sorted(truth)
    cluster = {e: clusters.get(e, ("single", e)) for e in events}
    predicted = true = both = 0
    for a, b in itertools.combinations(events, 2):
        same_cluster, same_person = cluster[a] == cluster[b], truth[a] == truth[b]
        predicted += same_cluster
        true += same_person
        both += same_cluster and same_person
    return predicted, true, both


def test_a_hand_made_example():
    truth = {"a": "P1", "b": "P1", "c": "P1", "d": "P2", "e": "P2"}
    clusters = {"a": 1, "b": 1, "c": 2, "d": 2}  # e is linked to nobody
    scores = pair_scores(clusters, truth)
    assert (scores.true_positives, scores.predicted_pairs, scores.true_pairs) == (1, 2, 4)
    assert (scores.precision, scores.recall) == (0.5, 0.25)
    assert pair_scores({}, {"a": "P1"}).precision == 1.0


def test_contingency_counts_equal_listing_every_pair():
    rng = random.Random(4)
    for _ in range(200):
        events = [f"e{i}" for i in range(rng.randint(1, 14))]
        truth = {e: f"P{rng.randrange(4)}" for e in events}
        clusters = {e: rng.randrange(5) for e in events if rng.random() < 0.8}
        scores = pair_scores(clusters, truth)
        assert (scores.predicted_pairs, scores.true_pairs, scores.true_positives) == brute_force(clusters, truth)


def test_the_naive_baseline_merges_on_any_shared_value():
    lines = [
        {"event_id": "1", "identifiers": {"phone": "+86 138 0013 9001"}},
        {"event_id": "2", "identifiers": {"phone": "13800139001", "member_card": "VIP1"}},
        {"event_id": "3", "identifiers": {"member_card": "vip1 "}},
        {"event_id": "4", "identifiers": {"wechat_openid": "o1"}, "app_id": "mini"},
        {"event_id": "5", "identifiers": {"wechat_openid": "o1"}, "app_id": "oa"},
        {"event_id": "6", "identifiers": {"device_hash": "tablet"}},
        {"event_id": "7"},
    ]
    clusters = naive_clusters(json.dumps(line).encode() for line in lines)
    assert clusters["1"] == clusters["2"] == clusters["3"]
    assert clusters["4"] == clusters["5"] != clusters["1"]
    assert len({clusters["6"], clusters["7"], clusters["1"], clusters["4"]}) == 4


def test_the_chain_is_reproducible_and_holds_every_hard_case(tmp_path):
    counts = write_chain(tmp_path, 2000, seed=4)
    again = write_chain(tmp_path / "again", 2000, seed=4)
    assert counts == again
    assert (tmp_path / "events.jsonl").read_bytes() == (tmp_path / "again" / "events.jsonl").read_bytes()
    for case in (
        "staff_phone",
        "test_number",
        "typo",
        "households",
        "changed_numbers",
        "recycled_numbers",
        "replaced_cards",
        "duplicate_app_accounts",
        "openid_collisions",
        "walk_ins",
    ):
        assert counts.get(case, 0) > 0, case
    truth = read_truth(tmp_path / "truth.csv")
    assert len(truth) == counts["events"] > 10 * 2000 // 2
    kinds = {json.loads(line)["kind"] for line in (tmp_path / "events.jsonl").read_text().splitlines()}
    assert kinds == {
        "pos.receipt",
        "member.signup",
        "member.login",
        "member.update",
        "order.online",
        "consent.given",
        "service.complaint",
    }
    chain = build_chain(2000, seed=4)
    assert len({p.store for p in chain.people}) == 10
    assert chain.plan == sorted(chain.plan)


@pytest.fixture
def loaded(backend, tmp_path, request):
    people = request.config.getoption("--chain-people")
    write_chain(tmp_path, people, seed=2)
    engine = make_engine(backend.url)
    summary, _ = load_chain(engine, tmp_path / "events.jsonl", chunk_size=500 if people <= 1000 else 2000)
    assert summary.rejected_total == 0, summary.rejected  # every generated event is valid on the wire
    truth = read_truth(tmp_path / "truth.csv")
    ours = pair_scores(our_clusters(engine), truth)
    engine.dispose()
    with (tmp_path / "events.jsonl").open("rb") as lines:
        naive = pair_scores(naive_clusters(lines), truth)
    return ours, naive


def test_our_resolution_beats_merging_on_any_shared_value(loaded):
    ours, naive = loaded
    assert ours.events == naive.events > 2000
    assert naive.precision < 0.1 < ours.precision
    assert ours.recall > 0.9


def test_resolution_meets_the_targets_on_a_small_chain(loaded):
    ours, _ = loaded
    assert ours.precision >= 0.999
    assert ours.recall >= 0.98
