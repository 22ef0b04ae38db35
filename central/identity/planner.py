"""Deciding what a batch of identity facts does to the graph, in memory, before anything is written.

The planner walks the facts in order against a snapshot of the identifiers they name (and the
constrained identifiers their customers hold). For each fact the identifier of highest priority
decides the customer (the *anchor*); every other customer the fact names is merged in, and every
new identifier attached, unless that would give one customer two values of a unique type or more
values of a type than its limit allows: then nothing joins and a review item says why. A value
that keeps bringing other identifiers to its customer (a staff phone typed for every customer, a
counter tablet) is flagged suspicious: it stops linking, its earlier links are undone after the
batch is written, and a reviewer is asked. A phone idle for longer than its type's
``reassign_after_days`` that a newer unique identifier contradicts moves to the new owner (a
recycled number). Weak types (device hashes) attach to the customer a fact resolves to but never
decide one and never join two.

Customers are *handles*: stored ids are positive, customers still to create negative.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from central.identity.models import LINKED, TRUSTED
from central.identity.plans import (
    Fact,
    Held,
    HeldLoader,
    Known,
    LedgerOp,
    Pair,
    Plan,
    ReviewedLoader,
    ReviewOp,
)
from central.identity.registry import Registry


class Planner:
    """Walks facts over a snapshot; call :meth:`place` per fact, then read :attr:`plan`."""

    def __init__(
        self,
        registry: Registry,
        known: dict[Pair, Known],
        held: HeldLoader,
        reviewed: ReviewedLoader,
        likely: Collection[int] = (),
    ) -> None:
        self.registry = registry
        # What stored customers hold, and which pairs of them are already in the review queue
        # (meeting again is not new evidence), are read on first need: most batches never ask.
        # Both are read only for the customers that need them: on the first need, those of
        # ``likely`` (the customers some fact may merge or add a value to) with it, in one read.
        self._load_held = held
        self._likely: set[int] | None = set(likely)
        self._loaded: set[int] = set()
        self._load_reviewed = reviewed
        self._likely_reviewed: set[int] | None = set(likely)
        self._loaded_reviewed: set[int] = set()
        # Sightings of stored customers' values after the first read, kept for customers whose
        # holdings are read later, so that a late read sees what an early one would have seen.
        self._sightings: dict[int, Held] = {}
        self.reviewed: set[tuple[int, int]] = set()
        self.known = known
        self.plan = Plan()
        self.held: dict[int, Held] = {}
        self.excluded = {p for p, k in known.items() if k.state not in (LINKED, TRUSTED)}
        for pair, row in known.items():
            if pair not in self.excluded and row.customer_id is not None:
                self.plan.owner[pair] = row.customer_id
        self.last_seen = {p: k.last_seen_at for p, k in known.items()}
        self._next = 0

    # -- helpers -------------------------------------------------------------------------------
    def _priority(self, pair: Pair) -> int:
        return self.registry.types[pair[0]].priority

    def _constrained(self, kind: str) -> bool:
        spec = self.registry.types[kind]
        return spec.unique or spec.limit is not None

    def _held(self, handle: int) -> Held:
        if handle > 0 and handle not in self._loaded:
            self._read_held(handle)
        return self.held.setdefault(handle, {})

    def _read_held(self, handle: int) -> None:
        ids = {handle}
        if self._likely is not None:
            ids |= self._likely
            self._likely = None
        ids -= self._loaded
        loaded = self._load_held(ids)
        self._loaded |= ids
        for cid in ids:
            # The loader builds fresh dicts for this planner alone: adopt them rather than copy.
            kinds = self.held.setdefault(cid, loaded.get(cid, {}))
            for kind, seen in self._sightings.pop(cid, {}).items():
                values = kinds.setdefault(kind, {})
                for value, at in seen.items():
                    if values.get(value, at) <= at:
                        values[value] = at

    def _clash(self, a: Held, b: Held, at: datetime) -> str | None:
        """Why customers holding ``a`` and ``b`` cannot be one, or None: a unique type's clash before a limit's.

        The order matters: a reviewer may accept a limit's item (and merge past the limit), never a
        unique type's.
        """
        shared = a.keys() & b.keys()
        for kind in shared:
            if self.registry.types[kind].unique and len({**a[kind], **b[kind]}) > 1:
                return "unique_conflict"
        for kind in shared:
            spec = self.registry.types[kind]
            values = {**a[kind], **b[kind]}
            if spec.limit is not None:
                if spec.window_days is not None:
                    since = at - timedelta(days=spec.window_days)
                    values = {v: t for v, t in values.items() if t >= since}
                if len(values) > spec.limit:
                    return "limit_exceeded"
        return None

    def _hold(self, handle: int, pair: Pair, at: datetime) -> None:
        if self._constrained(pair[0]):
            self._held(handle).setdefault(pair[0], {})[pair[1]] = at

    def _release(self, handle: int, pair: Pair) -> None:
        self._held(handle).get(pair[0], {}).pop(pair[1], None)

    def _counter(self, pair: Pair) -> tuple[int, int, str]:
        if pair in self.plan.counters:
            return self.plan.counters[pair]
        row = self.known.get(pair)
        return (row.partners_total, row.partners_today, row.partners_day) if row else (0, 0, "")

    def _over(self, pair: Pair, gain: int, day: str) -> bool:
        row = self.known.get(pair)
        if gain <= 0 or (row is not None and row.state == TRUSTED):
            return False
        total, today, counted_day = self._counter(pair)
        today = today + gain if counted_day == day else gain
        return total + gain > self.registry.suspicious_total or today > self.registry.suspicious_per_day

    def _count(self, pair: Pair, gain: int, day: str) -> None:
        if gain <= 0:
            return
        total, today, counted_day = self._counter(pair)
        if counted_day == day:
            today += gain
        elif day > counted_day:
            counted_day, today = day, gain
        self.plan.counters[pair] = (total + gain, today, counted_day)

    def _flag(self, index: int, pair: Pair) -> None:
        owner = self.plan.owner.pop(pair, None)
        self.excluded.add(pair)
        self.plan.flagged.append(pair)
        if owner is not None:
            root = self.plan.root(owner)
            self._release(root, pair)
            self.plan.changed.add(root)
            self.plan.ledger.append(LedgerOp("unlink", "suspicious", index, pair=pair, customer=root))
        self.plan.unlinked[pair] = "suspicious"
        self.plan.reviews.append(ReviewOp("suspicious_value", index, owner and self.plan.root(owner), pair=pair))

    def _met_before(self, a: int | None, b: int) -> bool:
        """Whether customers ``a`` and ``b`` already met in a conflict someone has to review."""
        if a is None:
            return False
        if a > 0 and b > 0 and a not in self._loaded_reviewed and b not in self._loaded_reviewed:
            ids = {a, b}
            if self._likely_reviewed is not None:
                ids |= self._likely_reviewed
                self._likely_reviewed = None
            ids -= self._loaded_reviewed
            self.reviewed |= self._load_reviewed(ids)
            self._loaded_reviewed |= ids
        return (min(a, b), max(a, b)) in self.reviewed

    def _new_handle(self) -> int:
        self._next -= 1
        self.plan.new_handles.append(self._next)
        return self._next

    # -- one fact ------------------------------------------------------------------------------
    def place(self, index: int, fact: Fact) -> None:
        """Decide fact ``index``: its customer, and what it links, merges, moves or sends to review."""
        plan = self.plan
        at = fact.observed_at
        seen, excluded = plan.seen, self.excluded
        for pair in fact.strong + fact.weak:
            if pair not in excluded:
                before = seen.get(pair)
                if before is None or before < at:
                    seen[pair] = at
        day = at.date().isoformat()
        while True:
            strong = [p for p in fact.strong if p not in self.excluded]
            if not strong:
                plan.customers.append(None)
                plan.anchors.append(None)
                self._saw(fact)
                return
            groups, fresh = self._groups(strong)
            over = self._suspects(strong, groups, fresh, day)
            if not over:
                break
            for pair in over:
                self._flag(index, pair)
        # Nothing changed owners or exclusions since the groups were formed: _resolve reuses them.
        target = self._resolve(index, fact, strong, groups, fresh, day)
        self._attach_weak(index, fact, target, strong[0], day)
        plan.customers.append(target)
        plan.anchors.append(strong[0])
        self._saw(fact)

    def _saw(self, fact: Fact) -> None:
        """Remember when the fact's values were last seen, for the facts after it in this batch.

        A recycled number's former owner may have used it earlier in the same batch: the idle
        time that allows reassigning it counts from there, exactly as if the batch were split.
        """
        at, last_seen = fact.observed_at, self.last_seen
        for pair in fact.strong + fact.weak:
            before = last_seen.get(pair)
            if before is None or before < at:
                last_seen[pair] = at

    def _groups(self, strong: list[Pair]) -> tuple[dict[int, list[Pair]], list[Pair]]:
        groups: dict[int, list[Pair]] = {}
        fresh: list[Pair] = []
        for pair in strong:
            if pair in self.plan.owner:
                groups.setdefault(self.plan.root(self.plan.owner[pair]), []).append(pair)
            else:
                fresh.append(pair)
        return groups, fresh

    def _news(self, anchor: int | None, groups: dict[int, list[Pair]], fresh: list[Pair]) -> int:
        """How many identifiers or customers a fact brings to ``anchor`` that it had not met before."""
        others = [root for root in groups if root != anchor and not self._met_before(anchor, root)]
        return len(others) + len(fresh)

    def _suspects(self, strong: list[Pair], groups: dict[int, list[Pair]], fresh: list[Pair], day: str) -> list[Pair]:
        """Stored values this fact would push past the suspicion thresholds."""
        if not groups:
            return []  # only values no customer holds: nothing stored to count against
        anchor = self.plan.root(self.plan.owner[strong[0]]) if strong[0] in self.plan.owner else None
        if not fresh and len(groups) == 1 and anchor in groups:
            return []  # the values of one customer seen together again: nothing new, nothing gained
        met = self._news(anchor, groups, fresh)
        over: list[Pair] = []
        for root, members in groups.items():
            gain = met if root == anchor else (0 if self._met_before(anchor, root) else 1)
            over.extend(p for p in members if self._over(p, gain, day))
        return over

    def _resolve(
        self, index: int, fact: Fact, strong: list[Pair], groups: dict[int, list[Pair]], fresh: list[Pair], day: str
    ) -> int:
        plan = self.plan
        best = strong[0]
        at = fact.observed_at
        if best in plan.owner:
            target = plan.root(plan.owner[best])
        else:
            target = self._new_handle()
            plan.owner[best] = target
            plan.new_pairs[best] = at
            self._hold(target, best, at)
            plan.ledger.append(LedgerOp("link", "new_customer", index, pair=best, customer=target))
            fresh.remove(best)
        carriers = list(groups.get(target, []))
        met = self._news(target, groups, fresh)
        self._touch(target, carriers, at)
        for pair in carriers:
            self._count(pair, met, day)
        ordered = list(groups.items())
        if len(ordered) > 1:  # most facts name one customer: nothing to order
            ordered.sort(key=lambda g: -max(self._priority(p) for p in g[1]))
        for root, members in ordered:
            if root == target:
                continue
            if not self._met_before(target, root):
                for pair in members:
                    self._count(pair, 1, day)
            target = self._join(index, fact, target, best, root, members)
        for pair in fresh:
            clash = self._clash(self._held(target), self._one(pair, at), at)
            if clash:
                plan.reviews.append(ReviewOp(clash, index, target, pair=pair, detail=pair[0]))
                continue
            plan.owner[pair] = target
            plan.new_pairs[pair] = at
            self._hold(target, pair, at)
            plan.changed.add(target)
            plan.ledger.append(LedgerOp("link", "same_event", index, pair=pair, anchor=best, customer=target))
        return target

    def _touch(self, handle: int, pairs: list[Pair], at: datetime) -> None:
        """Note that ``pairs`` of customer ``handle`` were seen at ``at`` (for windowed limits)."""
        if handle > 0 and handle not in self._loaded:
            if not self._loaded:
                return  # nothing of this batch has needed holdings yet; the stored last_seen_at will do
            held = self._sightings.setdefault(handle, {})  # applied when this customer's are read
        else:
            held = self._held(handle)
        for pair in pairs:
            if self._constrained(pair[0]):
                values = held.setdefault(pair[0], {})
                if values.get(pair[1], at) <= at:
                    values[pair[1]] = at

    def _one(self, pair: Pair, at: datetime) -> Held:
        return {pair[0]: {pair[1]: at}} if self._constrained(pair[0]) else {}

    def _join(self, index: int, fact: Fact, target: int, best: Pair, root: int, members: list[Pair]) -> int:
        """Merge customer ``root`` (named by ``members``) into ``target``, move its values, or refuse."""
        plan = self.plan
        at = fact.observed_at
        clash = self._clash(self._held(target), self._held(root), at)
        if clash is None:
            # The oldest stored customer survives; between two new ones, the first created (-1 before -2).
            kept = min(target, root) if target > 0 and root > 0 else max(target, root)
            merged = root if kept == target else target
            plan.parent[merged] = kept
            for kind, values in self._held(merged).items():
                self._held(kept).setdefault(kind, {}).update(values)
            plan.merges.append((kept, merged))
            plan.changed.update((kept, merged))
            plan.ledger.append(
                LedgerOp("merge", "shared_identifier", index, pair=members[0], anchor=best, customer=kept, other=merged)
            )
            return kept
        if clash == "unique_conflict" and self._reassignable(best, members, at):
            for pair in members:
                self._release(root, pair)
                plan.owner[pair] = target
                self._hold(target, pair, at)
                plan.ledger.append(LedgerOp("unlink", "reassigned", index, pair=pair, customer=root))
                plan.ledger.append(LedgerOp("link", "reassigned", index, pair=pair, anchor=best, customer=target))
            plan.changed.update((target, root))
            plan.reviews.append(ReviewOp("reassigned", index, target, root, pair=members[0]))
            return target
        plan.reviews.append(ReviewOp(clash, index, target, root, pair=members[0]))
        self.reviewed.add((min(target, root), max(target, root)))
        return target

    def _reassignable(self, best: Pair, members: list[Pair], at: datetime) -> bool:
        """A newer unique identifier contradicts values its old owner stopped using long ago."""
        if not self.registry.types[best[0]].unique:
            return False
        for pair in members:
            days = self.registry.types[pair[0]].reassign_after_days
            last = self.last_seen.get(pair)
            if days is None or last is None or last + timedelta(days=days) >= at:
                return False
        return True

    def _attach_weak(self, index: int, fact: Fact, target: int, best: Pair, day: str) -> None:
        plan = self.plan
        for pair in fact.weak:
            if pair in self.excluded:
                continue
            if pair not in plan.owner:
                if self._clash(self._held(target), self._one(pair, fact.observed_at), fact.observed_at):
                    continue
                plan.owner[pair] = target
                plan.new_pairs.setdefault(pair, fact.observed_at)
                self._hold(target, pair, fact.observed_at)
                plan.changed.add(target)
                plan.ledger.append(LedgerOp("link", "weak_attach", index, pair=pair, anchor=best, customer=target))
            elif plan.root(plan.owner[pair]) != target:
                if self._over(pair, 1, day):
                    self._flag(index, pair)
                else:
                    self._count(pair, 1, day)


def likely_held(facts: Sequence[Fact], known: dict[Pair, Known]) -> set[int]:
    """Stored customers whose holdings (and review pairs) the plan will probably read: those a fact
    names beside a value no stored customer owns, or beside another stored customer (a value to add,
    a merge).

    Only an estimate to read them in one go; the planner reads any other it needs when it needs it.
    """
    likely: set[int] = set()
    for fact in facts:
        owners: set[int] = set()
        unowned = False
        for pair in (*fact.strong, *fact.weak):
            row = known.get(pair)
            if row is None or row.customer_id is None:
                unowned = unowned or row is None or row.state in (LINKED, TRUSTED)
            elif row.state in (LINKED, TRUSTED):
                owners.add(row.customer_id)
        if owners and (unowned or len(owners) > 1):
            likely |= owners
    return likely


def plan_batch(
    registry: Registry,
    facts: Sequence[Fact],
    known: dict[Pair, Known],
    held: HeldLoader = lambda ids: {},
    reviewed: ReviewedLoader = lambda ids: set(),
) -> Plan:
    """The plan for ``facts`` in order, given the stored identifiers and loaders for the rest."""
    planner = Planner(registry, known, held, reviewed, likely_held(facts, known))
    for index, fact in enumerate(facts):
        planner.place(index, fact)
    return planner.plan
