"""Identity review items as the review queue and a customer's page show them.

Each item's evidence in the page's words, which items a unique identifier (or a limit) keeps from
being accepted, and the two customers side by side, as a reviewer compares them.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy.orm import Session

from central.console.customer_labels import ATTRIBUTE_LABELS, EVIDENCE_LABELS, KIND_LABELS, MATCH_LABELS
from central.console.navigation import IDENTIFIER_LABELS
from central.console.shown import customer_rows, shown_text
from central.customers.queries import summaries_of
from central.identity import review
from central.identity.models import ReviewItem
from central.identity.registry import Registry
from shared.masking import mask_identifier


def identity_registry() -> Registry:
    """The identifier registry this central runs with."""
    registry: Registry = current_app.config["IDENTITY_REGISTRY"]
    return registry


# One line of a review item's evidence: a label (a message id) and its parts, each (text, translate it).
EvidenceLine = tuple[str, list[tuple[str, bool]]]


def _match_parts(rule: str) -> list[tuple[str, bool]]:
    for place in ("city", "postcode"):
        base = rule.removesuffix(f"_{place}")
        if base != rule and base in MATCH_LABELS:
            return [(MATCH_LABELS[base], True), (MATCH_LABELS[place], True)]
    return [(MATCH_LABELS[rule], True)] if rule in MATCH_LABELS else [(rule, False)]


def review_evidence(evidence: dict[str, Any] | None) -> list[EvidenceLine]:
    """A review item's evidence in the page's words: the event, its kind, the identifier (masked), the rule.

    The identifier is masked for every role, admins included, as everywhere identifiers are shown
    (decision 0058): deciding needs its type and its last digits, not the whole number.
    """
    evidence = dict(evidence or {})
    lines: list[EvidenceLine] = []
    kind_of_value = evidence.pop("type", None)
    value = evidence.pop("value", None)
    for key in EVIDENCE_LABELS:
        raw = evidence.pop(key, None)
        if raw is None:
            continue
        if key == "kind":
            parts = [(KIND_LABELS[raw], True)] if raw in KIND_LABELS else [(str(raw), False)]
        elif key == "match":
            parts = _match_parts(str(raw))
        elif key == "fields" and isinstance(raw, list):
            parts = [(ATTRIBUTE_LABELS[f], True) if f in ATTRIBUTE_LABELS else (str(f), False) for f in raw]
        else:
            parts = [(shown_text(str(raw)), False)]
        lines.append((EVIDENCE_LABELS[key], parts))
    if value is not None:
        kind = str(kind_of_value or "")
        lines.append((IDENTIFIER_LABELS.get(kind, kind or "标识"), [(mask_identifier(kind, str(value)), False)]))
    lines.extend((str(k), [(shown_text(str(v)), False)]) for k, v in sorted(evidence.items()))  # keys of later writers
    return lines


def blocked_types(db: Session, items: list[ReviewItem]) -> dict[int, tuple[str, str]]:
    """The items among ``items`` that cannot be accepted now: (``unique_conflict`` or ``limit_exceeded``, type)."""
    found = review.blocked(db, identity_registry(), items)
    return {item_id: (why.partition(":")[0], why.partition(":")[2]) for item_id, why in found.items()}


def review_people(db: Session, items: list[ReviewItem]) -> dict[int, dict[str, Any]]:
    """The customers ``items`` name, as lists show them, by id: what a reviewer compares."""
    ids = sorted({cid for i in items for cid in (i.customer_id, i.other_customer_id) if cid is not None})
    return {row["id"]: row for row in customer_rows(summaries_of(db, ids))}
