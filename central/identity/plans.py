"""What the identity planner works on and produces: stored identifiers, facts, and the plan of a batch.

Customers are *handles*: stored ids are positive, customers still to create negative.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime

Pair = tuple[str, str]
Held = dict[str, dict[str, datetime]]  # kind -> value -> last seen, for constrained kinds only
HeldLoader = Callable[[Collection[int]], dict[int, Held]]
ReviewedLoader = Callable[[Collection[int]], set[tuple[int, int]]]  # pairs (low, high) naming any of the ids


@dataclass(slots=True)
class Known:
    """A stored identifier as the batch's look-up found it."""

    id: int
    customer_id: int | None
    state: str
    last_seen_at: datetime
    partners_total: int
    partners_today: int
    partners_day: str
    version: int | None


@dataclass(frozen=True, slots=True)
class Fact:
    """What the planner needs from one event: its identifiers, already normalized."""

    observed_at: datetime
    strong: tuple[Pair, ...]  # highest priority first
    weak: tuple[Pair, ...]


@dataclass(frozen=True, slots=True)
class LedgerOp:
    """A ledger row to write; customers are handles, identifiers pairs, ``fact`` the evidence's index."""

    action: str
    rule: str
    fact: int | None
    pair: Pair | None = None
    anchor: Pair | None = None
    customer: int | None = None
    other: int | None = None


@dataclass(frozen=True, slots=True)
class ReviewOp:
    """A review item to open: the reason, the customers (handles) and the value concerned."""

    reason: str
    fact: int
    customer: int | None
    other: int | None = None
    pair: Pair | None = None
    detail: str = ""


@dataclass
class Plan:
    """Everything a batch changes, in handles and pairs, ready to be written."""

    customers: list[int | None] = field(default_factory=list)  # per fact: its customer handle (unresolved)
    anchors: list[Pair | None] = field(default_factory=list)  # per fact: the identifier that decided it
    new_handles: list[int] = field(default_factory=list)
    owner: dict[Pair, int] = field(default_factory=dict)  # linkable pair -> handle (resolve with root())
    new_pairs: dict[Pair, datetime] = field(default_factory=dict)  # created in this batch: first seen
    unlinked: dict[Pair, str] = field(default_factory=dict)  # stored pairs detached: new state
    counters: dict[Pair, tuple[int, int, str]] = field(default_factory=dict)  # changed partner counters
    seen: dict[Pair, datetime] = field(default_factory=dict)  # latest sighting per pair in the batch
    merges: list[tuple[int, int]] = field(default_factory=list)  # (kept, merged) handles as they happened
    ledger: list[LedgerOp] = field(default_factory=list)
    reviews: list[ReviewOp] = field(default_factory=list)
    flagged: list[Pair] = field(default_factory=list)  # became suspicious: undo their links afterwards
    changed: set[int] = field(default_factory=set)  # handles whose identifiers changed
    parent: dict[int, int] = field(default_factory=dict)

    def root(self, handle: int) -> int:
        """The handle ``handle`` now lives on as."""
        top = handle
        while (up := self.parent.get(top, top)) != top:
            top = up
        while handle != top:
            self.parent[handle], handle = top, self.parent.get(handle, handle)
        return top
