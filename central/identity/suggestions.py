"""Weak-evidence matching: customers who look like the same person without sharing an identifier.

Rules on the golden record, within a block of customers with the same birthday and the same first
letter of the name in pinyin:

* the same normalized name and birthday: 0.90; the same pinyin spelling (张三 / Zhang San): 0.85;
  otherwise the pinyin spellings' similarity (rapidfuzz ratio, from 85 up) scaled to 0.85;
* plus 0.08 when the city or the postcode agree, minus 0.20 when both are known and differ.

A score of 0.70 or more becomes a ``weak_match`` review item with its score and evidence; an
import that opts in (``allow_weak_merge=threshold``) merges pairs scoring at least the threshold
instead, unless the registry forbids the merge (then it stays a suggestion).

Bounds, from the registry's ``[matching]``, so that the queue stays one a team can work through
(every pair of 400 sign-ups sharing a name and a birthday was 79,401 items):

* a placeholder birthday (1970-01-01, ...) is no evidence: such a customer has no block;
* a block of more than ``block_limit`` customers is too common to be evidence: nobody is paired
  within it, and the call reports the block and its size instead;
* a customer is offered at most ``suggestions_per_customer`` others, its best by score; pairs
  already in the queue (in any status) take their places and are not queued or counted again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from rapidfuzz import fuzz
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central import bulk
from central.identity import changes, golden, names
from central.identity.merges import MergeRefused, merge_customers
from central.identity.models import Customer, MatchKey, ReviewItem
from central.identity.registry import Registry, default_registry
from central.models import table

SUGGEST_FROM = 0.70
FUZZY_FROM = 85.0
_keys = table(MatchKey)
_reviews = table(ReviewItem)
_CHUNK = 500  # blocks or keys per IN list


@dataclass(frozen=True, slots=True)
class Suggested:
    """How many suggestions were opened and how many weak merges were made.

    ``common``: the blocks of these customers too common to pair within (block -> customers in it).
    """

    suggested: int
    merged: int
    common: dict[str, int] = field(default_factory=dict)


def score(a: dict[str, str], b: dict[str, str], registry: Registry | None = None) -> tuple[float, str]:
    """The weak-evidence score of two golden records, and the rule that gave it.

    A placeholder birthday (``registry``'s, by default the retail defaults') is no evidence: 0.
    """
    registry = registry or default_registry()
    birthday = golden.birthday_evidence(a.get("birthday"), registry)
    if not a.get("name") or not b.get("name") or not birthday:
        return 0.0, ""
    if birthday != golden.birthday_evidence(b.get("birthday"), registry):
        return 0.0, ""
    if names.name_key(a["name"]) == names.name_key(b["name"]):
        value, rule = 0.90, "name_birthday"
    else:
        pa, pb = names.name_pinyin(a["name"]), names.name_pinyin(b["name"])
        if pa == pb:
            value, rule = 0.85, "pinyin_birthday"
        else:
            ratio = fuzz.ratio(pa, pb)
            if ratio < FUZZY_FROM:
                return 0.0, ""
            value, rule = 0.85 * ratio / 100, "fuzzy_name_birthday"
    for place in ("city", "postcode"):
        if a.get(place) and b.get(place):
            if golden.compare_key(place, a[place]) == golden.compare_key(place, b[place]):
                return min(value + 0.08, 0.99), f"{rule}_{place}"
            value -= 0.20
    return value, rule


def _block_sizes(db: Session, blocks: list[str]) -> dict[str, int]:
    """How many customers each of ``blocks`` holds."""
    sizes: dict[str, int] = {}
    for start in range(0, len(blocks), _CHUNK):
        chunk = blocks[start : start + _CHUNK]
        rows = db.execute(select(_keys.c.block, func.count()).where(_keys.c.block.in_(chunk)).group_by(_keys.c.block))
        sizes.update((str(block), int(count)) for block, count in rows)
    return sizes


def _queued(db: Session, pairs: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """Which of ``pairs`` already have a weak-match item, in any status."""
    keys = sorted(f"weak_match:{low}:{high}" for low, high in pairs)
    found: set[tuple[int, int]] = set()
    for start in range(0, len(keys), _CHUNK):
        rows = db.execute(select(_reviews.c.key).where(_reviews.c.key.in_(keys[start : start + _CHUNK])))
        for (key,) in rows:
            _, low, high = key.split(":")
            found.add((int(low), int(high)))
    return found


def _best(ids: list[int], scored: dict[tuple[int, int], tuple[float, str]], keep: int) -> list[tuple[int, int]]:
    """The pairs among the best ``keep`` by score of each of ``ids`` (ties: the lower other id), ordered."""
    offered: dict[int, list[tuple[float, int, tuple[int, int]]]] = {}
    for pair, (value, _) in scored.items():
        for mine, other in (pair, pair[::-1]):
            offered.setdefault(mine, []).append((-value, other, pair))
    chosen: set[tuple[int, int]] = set()
    for cid in ids:
        chosen.update(pair for _, _, pair in sorted(offered.get(cid, []))[:keep])
    return sorted(chosen)


def suggest(
    db: Session, registry: Registry, customer_ids: Iterable[int], now: datetime, *, allow_weak_merge: float | None
) -> Suggested:
    """Look for weak matches of ``customer_ids``; open suggestions or merge above the threshold."""
    conn = db.connection()
    ids = sorted(set(customer_ids))
    mine = bulk.select_matching(conn, _keys, ("customer_id",), [(i,) for i in ids], ("customer_id", "block"))
    if not mine:
        return Suggested(0, 0)
    sizes = _block_sizes(db, sorted({block for _, block in mine}))
    common = {block: size for block, size in sizes.items() if size > registry.block_limit}
    blocks = sorted(block for block in sizes if block not in common)
    members = bulk.select_matching(conn, _keys, ("block",), [(b,) for b in blocks], ("customer_id", "block"))
    by_block: dict[str, set[int]] = {}
    for cid, block in members:
        by_block.setdefault(block, set()).add(cid)
    pairs = {(min(c, o), max(c, o)) for c, block in mine for o in by_block.get(block, ()) if o != c}
    if not pairs:
        return Suggested(0, 0, common)
    records = golden.golden_of(db, {c for pair in pairs for c in pair})
    flat = {cid: {k: v for k, (v, _) in attrs.items()} for cid, attrs in records.items()}
    scored = {}
    for pair in pairs:
        value, rule = score(flat.get(pair[0], {}), flat.get(pair[1], {}), registry)
        if value >= SUGGEST_FROM:
            scored[pair] = (value, rule)
    best = _best(ids, scored, registry.suggestions_per_customer)
    queued = _queued(db, best)
    rows = []
    merged = 0
    customers = table(Customer)
    for low, high in best:
        value, rule = scored[(low, high)]
        if allow_weak_merge is not None and value >= allow_weak_merge:
            live = conn.execute(
                select(customers.c.id).where(customers.c.id.in_((low, high)), customers.c.merged_into.is_(None))
            ).all()
            if len(live) == 2:
                try:
                    merge_customers(
                        db,
                        registry,
                        low,
                        high,
                        rule="weak_match",
                        now=now,
                        operator=None,
                        detail={"score": round(value, 3), "match": rule},
                    )
                    merged += 1
                    continue
                except MergeRefused:
                    pass
        if (low, high) in queued:
            continue  # asked before (open or decided): neither queued nor counted again
        evidence = {
            "match": rule,
            "fields": sorted(k for k in ("name", "birthday", "city", "postcode") if k in flat.get(low, {})),
        }
        rows.append(
            (
                f"weak_match:{low}:{high}",
                "weak_match",
                "open",
                now,
                low,
                high,
                None,
                None,
                None,
                None,
                round(value, 3),
                evidence,
            )
        )
    added = bulk.insert(conn, _reviews, changes.REVIEW_COLUMNS, rows, returning=("id",), skip_conflicts_on=("key",))
    return Suggested(len(added), merged, common)
