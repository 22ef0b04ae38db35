"""The planner alone, in memory: which stored customers' holdings it reads, and what a late read sees."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from central.identity.models import LINKED
from central.identity.planner import Planner, plan_batch
from central.identity.plans import Fact, Held, Known
from central.identity.registry import default_registry

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
PHONES = [f"+861380000000{i}" for i in range(5)]


def _known(pairs: dict[tuple[str, str], tuple[int, datetime]]) -> dict[tuple[str, str], Known]:
    return {
        pair: Known(n, customer, LINKED, seen, 0, 0, "", 1)
        for n, (pair, (customer, seen)) in enumerate(pairs.items(), start=1)
    }


class Loader:
    """Holdings of stored customers, recording which customers each read asked for."""

    def __init__(self, held: dict[int, Held]) -> None:
        self.held = held
        self.asked: list[set[int]] = []

    def __call__(self, ids: Collection[int]) -> dict[int, Held]:
        self.asked.append(set(ids))
        return {cid: {k: dict(v) for k, v in self.held[cid].items()} for cid in ids if cid in self.held}


def test_holdings_are_read_once_and_only_for_customers_a_fact_adds_to_or_merges():
    registry = default_registry()
    card = ("member_card", "CARD0001")
    known = _known({("phone", PHONES[0]): (1, NOW), card: (2, NOW), ("phone", PHONES[1]): (3, NOW)})
    loader = Loader({1: {"phone": {PHONES[0]: NOW}}, 2: {"member_card": {"CARD0001": NOW}}, 3: {}})
    facts = [
        Fact(NOW, (("phone", PHONES[0]),), ()),  # customer 1 only confirmed
        Fact(NOW, (card, ("phone", PHONES[2])), ()),  # customer 2 gains a phone
        Fact(NOW, (("member_card", "CARD0002"), ("phone", PHONES[1])), ()),  # customer 3 gains a card
    ]
    plan = plan_batch(registry, facts, known, loader)
    assert loader.asked == [{2, 3}]
    assert plan.owner[("phone", PHONES[2])] == 2 and plan.root(plan.owner[("member_card", "CARD0002")]) == 3


def test_review_pairs_are_read_only_for_customers_a_fact_names_together():
    registry = default_registry()
    one, two, three = ("phone", PHONES[0]), ("member_card", "CARD0001"), ("phone", PHONES[1])
    known = _known({one: (1, NOW), two: (2, NOW), three: (3, NOW)})
    asked: list[set[int]] = []

    def reviewed(ids: Collection[int]) -> set[tuple[int, int]]:
        asked.append(set(ids))
        return {(1, 2)}  # these two met before: meeting again is not news

    facts = [Fact(NOW, (three,), ()), Fact(NOW, (two, one), ())]
    plan = plan_batch(registry, facts, known, Loader({1: {}, 2: {}, 3: {}}), reviewed)
    assert asked == [{1, 2}]
    assert plan.counters == {}  # neither value brought news to the other's customer


def _late_read(seen_earlier: bool) -> tuple[Planner, Loader]:
    """Customer 1 holds three phones, one idle for 400 days; its holdings are read after customer 2's."""
    registry = default_registry()
    old = NOW - timedelta(days=400)
    recent = NOW - timedelta(days=10)
    phones = {PHONES[0]: old, PHONES[1]: recent, PHONES[2]: recent}
    known = _known({("phone", p): (1, at) for p, at in phones.items()} | {("member_card", "CARD0001"): (2, NOW)})
    loader = Loader({1: {"phone": phones}, 2: {"member_card": {"CARD0001": NOW}}})
    planner = Planner(registry, known, loader, lambda ids: set())  # no estimate: each customer is read on its own need
    facts = [Fact(NOW, (("member_card", "CARD0001"), ("member_card", "CARD0002")), ())]
    if seen_earlier:
        facts.append(Fact(NOW, (("phone", PHONES[0]),), ()))  # the idle phone used again
    facts.append(Fact(NOW, (("phone", PHONES[1]), ("phone", PHONES[3])), ()))  # a fourth phone for customer 1
    for index, fact in enumerate(facts):
        planner.place(index, fact)
    return planner, loader


def test_a_late_read_of_holdings_sees_the_batch_s_earlier_sightings():
    # Within the 365-day window customer 1 holds two phones, so a third links...
    planner, loader = _late_read(seen_earlier=False)
    assert loader.asked == [{2}, {1}]
    assert planner.plan.owner[("phone", PHONES[3])] == 1
    # ... unless the idle one was used earlier in the batch: then it counts, and the limit stops the fourth.
    planner, loader = _late_read(seen_earlier=True)
    assert loader.asked == [{2}, {1}]
    assert ("phone", PHONES[3]) not in planner.plan.owner
    assert [r.reason for r in planner.plan.reviews] == ["limit_exceeded"]
