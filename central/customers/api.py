"""The read-only JSON API for HQ tools, behind a console login (session cookie).

``GET /api/v1/customers?limit=50&offset=0``, ``GET /api/v1/customers/<id>`` and
``GET /api/v1/customers/<id>/tags`` (statistics and built-in tags, each with why). Identifiers are
always masked, and every read of customer data is audited under the user who made it.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from central import audit, clock
from central.auth import actor_name, login_required
from central.customers.profile import local_today, statistics_of, tags_of
from central.customers.queries import customer_detail, find_customer, list_customers, survivor_of
from central.db import get_session
from central.errors import ApiError
from central.params import int_param
from central.presence import beacons

bp = Blueprint("customers", __name__)

MAX_LIMIT = 500


@bp.get("/api/v1/customers")
@login_required
def customers() -> Response:
    """A page of live customers, most recently seen first."""
    limit = int_param("limit", 50, 1, MAX_LIMIT)
    offset = int_param("offset", 0, 0)
    db = get_session()
    rows, total = list_customers(db, limit, offset)
    audit.record(
        db,
        at=clock.now(),
        actor=actor_name(),
        action="customers.list",
        detail={
            "via": "api",
            "limit": limit,
            "offset": offset,
            "returned": len(rows),
            "customers": [c.id for c in rows],
        },
    )
    db.commit()
    return jsonify({"customers": [c.to_json() for c in rows], "total": total})


def _merged(customer_id: int, survivor: int) -> Response:
    response = jsonify(
        {
            "error": {
                "code": "merged",
                "message": f"customer {customer_id} was merged into customer {survivor}",
                "merged_into": survivor,
            }
        }
    )
    response.status_code = 404
    return response


@bp.get("/api/v1/customers/<int32:customer_id>")
@login_required
def customer(customer_id: int) -> Response:
    """One customer's timeline: their last 20 receipts and last 20 store visits (member-app beacon, consented).

    A customer merged into another answers 404 with code ``merged`` and ``merged_into`` naming the
    live customer to ask for instead; an unknown id answers 404 ``not_found``.
    """
    db = get_session()
    row = find_customer(db, customer_id)
    if row is None:
        raise ApiError(404, "not_found", f"no customer {customer_id}")
    if row.merged_into is not None:
        return _merged(customer_id, survivor_of(db, row))
    summary, receipts = customer_detail(db, row)
    audit.record(
        db,
        at=clock.now(),
        actor=actor_name(),
        action="customer.view",
        subject=f"customer:{customer_id}",
        detail={"via": "api"},
    )
    db.commit()
    visits = beacons.customer_visits(db, customer_id)
    return jsonify({"customer": summary.to_json(), "receipts": [r.to_json() for r in receipts], "visits": visits})


@bp.get("/api/v1/customers/<int32:customer_id>/tags")
@login_required
def customer_tags(customer_id: int) -> Response:
    """A customer's purchase statistics (rolling windows as of today) and built-in tags with their inputs.

    ``statistics`` is null for a customer without sales; each tag carries ``why`` (the inputs that
    decided it), its definition ``version`` and when it was computed. Merged and unknown customers
    answer as ``GET /api/v1/customers/<id>`` does.
    """
    db = get_session()
    row = find_customer(db, customer_id)
    if row is None:
        raise ApiError(404, "not_found", f"no customer {customer_id}")
    if row.merged_into is not None:
        return _merged(customer_id, survivor_of(db, row))
    now = clock.now()
    today = local_today(now, current_app.config["CENTRAL"].customers_utc_offset_minutes)
    conn = db.connection()
    body = {
        "customer_id": customer_id,
        "statistics": statistics_of(conn, customer_id, today),
        "tags": tags_of(conn, customer_id),
    }
    audit.record(
        db,
        at=now,
        actor=actor_name(),
        action="customer.tags.view",
        subject=f"customer:{customer_id}",
        detail={"via": "api"},
    )
    db.commit()
    return jsonify(body)
