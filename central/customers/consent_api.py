"""A customer's consent over the JSON API: ``GET`` and ``POST /api/v1/customers/<id>/consents``.

``GET`` answers the current verdict for every purpose and channel (with the minor flag) and the
decisions behind it, newest first; ``POST`` records console or API decisions (see
:func:`central.customers.consent.parse_request`). Both are audited under the logged-in user.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from central import audit, clock
from central.auth import actor_name, login_required
from central.bodies import json_body
from central.customers import consent, consent_gate
from central.db import get_session
from central.errors import ApiError
from central.presence import beacons

bp = Blueprint("consent", __name__)


def _live(customer_id: int) -> int:
    live = consent_gate.live_customer(get_session(), customer_id)
    if live is None:
        raise ApiError(404, "not_found", f"no customer {customer_id}")
    return live


def _decision_json(row: Any) -> dict[str, Any]:
    return {
        "purpose": row.purpose,
        "channel": row.channel,
        "granted": row.granted,
        "observed_at": row.observed_at.isoformat().replace("+00:00", "Z"),
        "source": row.source,
        "notice_version": row.notice_version,
        "scope": row.scope,
        "origin": row.origin,
        "origin_id": row.origin_id,
        "recorded_for": row.customer_id,
    }


@bp.get("/api/v1/customers/<int32:customer_id>/consents")
@login_required
def consents(customer_id: int) -> Response:
    """The customer's consent verdicts and decisions (a merged-away id answers for its survivor)."""
    db = get_session()
    live = _live(customer_id)
    today = clock.today()
    body = {
        "customer_id": live,
        "verdicts": consent_gate.summary(db, live, today),
        "decisions": [_decision_json(d) for d in consent_gate.decisions_of(db, live)],
    }
    audit.record(
        db, at=clock.now(), actor=actor_name(), action="consent.view", subject=f"customer:{live}", detail={"via": "api"}
    )
    db.commit()
    return jsonify(body)


@bp.post("/api/v1/customers/<int32:customer_id>/consents")
@login_required
def record_consents(customer_id: int) -> tuple[Response, int]:
    """Record decisions taken at the console or reported by an API client; 201 with what was new."""
    db = get_session()
    live = _live(customer_id)
    now = clock.now()
    try:
        decisions = consent.parse_request(live, json_body(), now=now, origin="api", actor=actor_name())
    except consent.ConsentError as exc:
        raise ApiError(400, "invalid_consent", str(exc)) from None
    recorded = consent.record(db.connection(), decisions, now)
    if recorded:
        beacons.after_consent(db, {d.purpose for d in decisions}, now=now, actor=actor_name())
    audit.record(
        db,
        at=now,
        actor=actor_name(),
        action="consent.record",
        subject=f"customer:{live}",
        detail={"decisions": len(decisions), "recorded": recorded},
    )
    db.commit()
    return jsonify({"recorded": recorded, "duplicate": len(decisions) - recorded}), 201
