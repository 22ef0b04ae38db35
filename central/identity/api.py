"""The identity API for HQ tools, behind a console login: look-up, ledger, review, split, removal, health.

Every read of customer data is audited under the user who made it; identifier values are always
masked. Changes are POSTs with a JSON body (a browser cannot send one cross-site without asking).

* ``GET  /api/v1/identity/lookup?type=phone&value=13812345678``: the customer holding a value
* ``GET  /api/v1/identity/customers/<id>``: golden record and identifiers; ``.../identifiers``, ``.../ledger``
* ``GET  /api/v1/identity/review?status=open``; ``POST .../review/<id>/accept`` and ``.../reject``
* ``POST /api/v1/identity/customers/<id>/split`` ``{"ledger_id": N}``
* ``POST /api/v1/identity/identifiers/remove`` ``{"type": "phone", "value": "..."}``
* ``GET  /api/v1/identity/health``
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from central import audit, clock
from central.auth import actor_name, login_required
from central.bodies import id_member, json_object
from central.db import get_session
from central.errors import ApiError
from central.identity import golden, health, review, split
from central.identity.models import Customer, Identifier, LedgerEntry, ReviewItem
from central.identity.registry import Registry, default_registry
from central.params import int_param
from shared.masking import mask_identifier, mask_name
from shared.wire import format_time

bp = Blueprint("identity", __name__, url_prefix="/api/v1/identity")
MAX_LIMIT = 500


def _registry() -> Registry:
    found = current_app.config.get("IDENTITY_REGISTRY")
    return found if isinstance(found, Registry) else default_registry()


def _audit(db: Session, action: str, subject: str = "", **detail: Any) -> None:
    audit.record(
        db, at=clock.now(), actor=actor_name(), action=action, subject=subject, detail={"via": "api", **detail}
    )


def _mask_attribute(attribute: str, value: str) -> str:
    if attribute == "name":
        return mask_name(value)
    if attribute == "birthday":
        return value[:4] + "-**-**"
    return value


def _live(db: Session, customer_id: int) -> Customer:
    customer = db.get(Customer, customer_id)
    if customer is None:
        raise ApiError(404, "not_found", f"no customer {customer_id}")
    if customer.merged_into is not None:
        raise ApiError(404, "merged", f"customer {customer_id} was merged into customer {customer.merged_into}")
    return customer


def _identifiers(db: Session, customer_id: int) -> list[dict[str, Any]]:
    rows = db.execute(
        select(Identifier.id, Identifier.kind, Identifier.value, Identifier.state, Identifier.last_seen_at)
        .where(Identifier.customer_id == customer_id)
        .order_by(Identifier.kind, Identifier.id)
    )
    return [
        {"id": i, "type": k, "value": mask_identifier(k, v), "state": s, "last_seen_at": format_time(t)}
        for i, k, v, s, t in rows
    ]


def _customer_json(db: Session, customer: Customer) -> dict[str, Any]:
    record = golden.golden_of(db, [customer.id]).get(customer.id, {})
    return {
        "id": customer.id,
        "first_seen_at": format_time(customer.first_seen_at),
        "last_seen_at": format_time(customer.last_seen_at),
        "till_receipts": customer.receipts_count,
        "golden": {a: {"value": _mask_attribute(a, v), "source": s} for a, (v, s) in sorted(record.items())},
        "identifiers": _identifiers(db, customer.id),
    }


@bp.get("/lookup")
@login_required
def lookup() -> Response:
    """The live customer holding an identifier value (normalized the way ingest normalizes it)."""
    kind, raw = request.args.get("type", ""), request.args.get("value", "")
    value, reason = _registry().check(kind, raw, request.args.get("app_id"))
    if value is None:
        raise ApiError(400, "invalid_request", f"the {kind or 'type'} value cannot identify anyone ({reason})")
    db = get_session()
    owner = db.scalar(select(Identifier.customer_id).where(Identifier.kind == kind, Identifier.value == value))
    _audit(db, "identity.lookup", f"{kind}:{mask_identifier(kind, value)}", found=owner is not None)
    db.commit()
    if owner is None:
        raise ApiError(404, "not_found", f"no customer holds this {kind}")
    return jsonify({"customer": _customer_json(db, _live(db, owner))})


@bp.get("/customers/<int32:customer_id>")
@login_required
def customer(customer_id: int) -> Response:
    """One customer's golden record and identifiers."""
    db = get_session()
    row = _live(db, customer_id)
    _audit(db, "identity.customer.view", f"customer:{customer_id}")
    db.commit()
    return jsonify({"customer": _customer_json(db, row)})


@bp.get("/customers/<int32:customer_id>/identifiers")
@login_required
def identifiers(customer_id: int) -> Response:
    """A customer's identifiers, masked."""
    db = get_session()
    _live(db, customer_id)
    _audit(db, "identity.identifiers.view", f"customer:{customer_id}")
    db.commit()
    return jsonify({"identifiers": _identifiers(db, customer_id)})


@bp.get("/customers/<int32:customer_id>/ledger")
@login_required
def history(customer_id: int) -> Response:
    """Every ledger row naming the customer or a customer merged into it, oldest first."""
    db = get_session()
    _live(db, customer_id)
    tree = [customer_id, *db.scalars(select(Customer.id).where(Customer.merged_into == customer_id))]
    rows = db.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.customer_id.in_(tree) | LedgerEntry.other_customer_id.in_(tree))
        .order_by(LedgerEntry.id)
    )
    kinds = dict(db.execute(select(Identifier.id, Identifier.kind).where(Identifier.customer_id.in_(tree))).all())
    out = [
        {
            "id": r.id,
            "at": format_time(r.at),
            "action": r.action,
            "rule": r.rule,
            "identifier_id": r.identifier_id,
            "identifier_type": kinds.get(r.identifier_id) if r.identifier_id else None,
            "through_identifier_id": r.anchor_identifier_id,
            "customer_id": r.customer_id,
            "other_customer_id": r.other_customer_id,
            "event_pk": r.event_pk,
            "source": r.source,
            "store_id": r.store_id,
            "operator": r.operator,
            "detail": r.detail,
        }
        for r in rows
    ]
    _audit(db, "identity.ledger.view", f"customer:{customer_id}", rows=len(out))
    db.commit()
    return jsonify({"ledger": out})


def _item_json(item: ReviewItem, blocked: dict[int, str]) -> dict[str, Any]:
    evidence = dict(item.evidence or {})
    if "value" in evidence:
        evidence["value"] = mask_identifier(str(evidence.get("type", "")), str(evidence["value"]))
    return {
        "id": item.id,
        "reason": item.reason,
        "status": item.status,
        "created_at": format_time(item.created_at),
        "customer_id": item.customer_id,
        "other_customer_id": item.other_customer_id,
        "identifier_id": item.identifier_id,
        "event_pk": item.event_pk,
        "source": item.source,
        "store_id": item.store_id,
        "score": item.score,
        "evidence": evidence,
        "decided_by": item.decided_by,
        "blocked": blocked.get(item.id),
    }


@bp.get("/review")
@login_required
def review_items() -> Response:
    """A page of review items (``status`` open, accepted or rejected), oldest first."""
    status = request.args.get("status", review.OPEN)
    if status not in (review.OPEN, review.ACCEPTED, review.REJECTED):
        raise ApiError(400, "invalid_request", "status must be open, accepted or rejected")
    limit = int_param("limit", 50, 1, MAX_LIMIT)
    offset = int_param("offset", 0, 0)
    db = get_session()
    items, total = review.list_items(db, status, limit, offset)
    blocked = review.blocked(db, _registry(), items)
    _audit(db, "identity.review.list", status=status, returned=len(items), customers=review.customers_of(items))
    db.commit()
    return jsonify({"items": [_item_json(i, blocked) for i in items], "total": total})


@bp.post("/review/<int32:item_id>/<decision>")
@login_required
def decide(item_id: int, decision: str) -> Response:
    """Accept or reject a review item."""
    json_object()
    if decision not in ("accept", "reject"):
        raise ApiError(404, "not_found", "decide with /accept or /reject")
    db = get_session()
    now, who = clock.now(), actor_name()
    try:
        if decision == "accept":
            done = review.accept(db, _registry(), item_id, operator=who, now=now)
        else:
            done = review.reject(db, item_id, operator=who, now=now)
    except review.ReviewError as exc:
        db.rollback()
        raise ApiError(409, "conflict", str(exc)) from None
    _audit(db, f"identity.review.{decision}", f"review:{item_id}", customer=done.customer_id, also=list(done.also))
    db.commit()
    return jsonify({"item": item_id, "status": done.status, "customer_id": done.customer_id, "also": list(done.also)})


@bp.post("/customers/<int32:customer_id>/split")
@login_required
def split_customer(customer_id: int) -> Response:
    """Undo one merge or link of a customer by replaying its ledger without it."""
    ledger_id = id_member(json_object(), "ledger_id", LedgerEntry.id, "a ledger row")
    db = get_session()
    try:
        result = split.split(db, customer_id, ledger_id, now=clock.now(), operator=actor_name(), registry=_registry())
    except split.SplitError as exc:
        db.rollback()
        raise ApiError(409, "conflict", str(exc)) from None
    _audit(db, "identity.split", f"customer:{customer_id}", ledger_id=ledger_id, customers=result.customers)
    db.commit()
    return jsonify({"customers": result.customers})


@bp.post("/identifiers/remove")
@login_required
def remove() -> Response:
    """Remove an identifier from its customer for good (a tombstone: it never links again)."""
    body = json_object()
    kind, raw = body.get("type"), body.get("value")
    if not isinstance(kind, str) or not isinstance(raw, str):
        raise ApiError(400, "invalid_request", "type and value must be strings")
    app_id = body.get("app_id")
    value, reason = _registry().check(kind, raw, app_id if isinstance(app_id, str) else None)
    if value is None:
        raise ApiError(400, "invalid_request", f"the {kind} value cannot identify anyone ({reason})")
    db = get_session()
    customer_id = split.remove_identifier(db, kind, value, now=clock.now(), operator=actor_name())
    _audit(db, "identity.identifier.remove", f"{kind}:{mask_identifier(kind, value)}", customer=customer_id)
    db.commit()
    return jsonify({"removed": True, "customer_id": customer_id})


@bp.get("/health")
@login_required
def graph_health() -> Response:
    """Customers, identifiers per customer, merge rate, review queue, the largest clusters and common blocks."""
    db = get_session()
    figures = health.graph_health(db, _registry().block_limit)
    _audit(db, "identity.health.view")
    db.commit()
    return jsonify(figures.to_json())
