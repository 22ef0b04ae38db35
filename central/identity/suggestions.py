"""Weak-evidence matching: customers who look like the same person without sharing an identifier.

Rules on the golden record, within a block of customers with the same birthday and the same first
letter of the name in pinyin:

* the same normalized name and birthday: 0.90; the same pinyin spelling (张三 / Zhang San): 0.85;
  otherwise the pinyin spellings' similarity (rapidfuzz ratio, from 85 up) scaled to 0.85;
* plus 0.08 when the city or the postcode agree, minus 0.20 when both are known and differ.

A score of 0.70 or more becomes a ``weak_match`` review item with its score and evidence; an
import that opts in (``allow_weak_merge=threshold``) merges pairs scoring at least the threshold
instead, unless the registry forbids the merge (then it stays a suggestion).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from rapidfuzz import fuzz
from sqlalchemy import select
from sqlalchemy.orm import Session

from central import bulk
from central.identity import changes, golden, names
from central.identity.merges import MergeRefused, merge_customers
from central.identity.models import Customer, MatchKey, ReviewItem
from central.identity.registry import Registry
from central.models import table

SUGGEST_FROM = 0.70
FUZZY_FROM = 85.0
_keys = table(MatchKey)


@dataclass(frozen=True, slots=True)
class Suggested:
    """How many suggestions were opened and how many weak merges were made."""

    suggested: int
    merged: int


def score(a: dict[str, str], b: dict[str, str]) -> tuple[float, str]:
    """The weak-evidence score of two golden records, and the rule that gave it."""
    if not a.get("name") or not b.get("name") or a.get("birthday") != b.get("birthday") or not a.get("birthday"):
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


def suggest(
    db: Session, registry: Registry, customer_ids: Iterable[int], now: datetime, *, allow_weak_merge: float | None
) -> Suggested:
    """Look for weak matches of ``customer_ids``; open suggestions or merge above the threshold."""
    conn = db.connection()
    ids = sorted(set(customer_ids))
    mine = bulk.select_matching(conn, _keys, ("customer_id",), [(i,) for i in ids], ("customer_id", "block"))
    if not mine:
        return Suggested(0, 0)
    blocks = sorted({block for _, block in mine})
    members = bulk.select_matching(conn, _keys, ("block",), [(b,) for b in blocks], ("customer_id", "block"))
    by_block: dict[str, set[int]] = {}
    for cid, block in members:
        by_block.setdefault(block, set()).add(cid)
    pairs = {(min(c, o), max(c, o)) for c, block in mine for o in by_block.get(block, ()) if o != c}
    if not pairs:
        return Suggested(0, 0)
    records = golden.golden_of(db, {c for pair in pairs for c in pair})
    flat = {cid: {k: v for k, (v, _) in attrs.items()} for cid, attrs in records.items()}
    rows = []
    merged = 0
    customers = table(Customer)
    for low, high in sorted(pairs):
        value, rule = score(flat.get(low, {}), flat.get(high, {}))
        if value < SUGGEST_FROM:
            continue
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
    bulk.insert(conn, table(ReviewItem), changes.REVIEW_COLUMNS, rows, skip_conflicts_on=("key",))
    return Suggested(len(rows), merged)
