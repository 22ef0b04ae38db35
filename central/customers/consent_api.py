"""A customer's consent over the JSON API: ``GET`` and ``POST /api/v1/customers/<id>/consents``.

``GET`` answers the current verdict for every purpose and channel (with the minor flag) and the
decisions behind it, newest first; ``POST`` records console or API decisions (see
:func:`central.customers.consent.parse_request`), as source ``api`` unless the body names another.
A refused body answers 400 ``invalid_consent`` with the ``field`` and a ``reason`` such as
``invalid_payload:notice_version`` (a grant that names no notice). Both are audited under the
logged-in user.

Admins and customer service may call both; customer service records withdrawals only (403
``grant_needs_admin`` for a grant): a grant needs the customer to have read a notice, which the
member app and the till show and a phone call does not (decision 0105). The console's consent
panel records through :func:`record_decisions` as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy.orm import Session

from central import audit, clock
from central.accounts import web
from central.accounts.roles import ADMIN, CUSTOMER_SERVICE
from central.auth import actor_name
from central.bodies import json_body
from central.customers import consent, consent_gate
from central.db import get_session
from central.errors import ApiError
from central.presence import beacons

bp = Blueprint("consent", __name__)
DESK = (ADMIN, CUSTOMER_SERVICE)
"""Who may read and record a customer's consent decisions; only admins record grants."""
GRANTS = (ADMIN,)


def record_decisions(
    db: Session, live: int, decisions: Sequence[consent.Decision], *, now: datetime, actor: str, **detail: Any
) -> int:
    """Record decisions for live customer ``live`` and audit them under ``actor``; return how many were new.

    The one path for the API and the console: a location decision publishes the member beacons again
    (:func:`central.presence.beacons.after_consent`). The caller commits.
    """
    recorded = consent.record(db.connection(), decisions, now)
    if recorded:
        beacons.after_consent(db, {d.purpose for d in decisions}, now=now, actor=actor)
    audit.record(
        db,
        at=now,
        actor=actor,
        action="consent.record",
        subject=f"customer:{live}",
        detail={**detail, "decisions": len(decisions), "recorded": recorded},
    )
    return recorded


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
@web.roles(*DESK)
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
@web.roles(*DESK)
def record_consents(customer_id: int) -> tuple[Response, int]:
    """Record decisions taken at the console or reported by an API client; 201 with what was new."""
    db = get_session()
    live = _live(customer_id)
    now = clock.now()
    try:
        decisions = consent.parse_request(live, json_body(), now=now, origin="api", actor=actor_name())
    except consent.ConsentError as exc:
        raise ApiError(400, "invalid_consent", str(exc), details={"reason": exc.reason, "field": exc.field}) from None
    active = web.current()
    if any(d.granted for d in decisions) and (active is None or active.role not in GRANTS):
        raise ApiError(
            403, "grant_needs_admin", "customer service records withdrawals only; ask an admin to record a grant"
        )
    recorded = record_decisions(db, live, decisions, now=now, actor=actor_name())
    db.commit()
    return jsonify({"recorded": recorded, "duplicate": len(decisions) - recorded}), 201
