"""``GET /api/v1/presence/<store_id>``: a store's footfall, capture rate, dwell and zone heat, hour by hour.

Query: ``from`` and ``to`` (ISO 8601 times, default the last 24 hours), ``medium`` (``wifi`` or
``ble``; default both, reported apart). Behind a console login, like the rest of the HQ API.
Presence figures are counts only: no device, address or pseudonym is ever stored or answered.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from central import clock
from central.auth import login_required
from central.db import get_session
from central.errors import ApiError
from central.presence.models import PresenceHour, PresenceVisit
from central.presence.report import summarize

bp = Blueprint("presence", __name__)

MAX_SPAN = timedelta(days=92)
MEDIA = ("wifi", "ble")


def _time_param(name: str, default: datetime) -> datetime:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400, "invalid_request", f"{name} must be an ISO 8601 time, e.g. 2026-11-23T00:00:00+08:00"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@bp.get("/api/v1/presence/<store_id>")
@login_required
def store_presence(store_id: str) -> Response:
    """Hourly and period figures of one store: footfall, capture rate, dwell distribution, zone heat."""
    now = clock.now()
    end = _time_param("to", now)
    start = _time_param("from", end - timedelta(hours=24))
    if not start < end or end - start > MAX_SPAN:
        raise ApiError(400, "invalid_request", f"from must be before to, at most {MAX_SPAN.days} days apart")
    medium = request.args.get("medium")
    if medium is not None and medium not in MEDIA:
        raise ApiError(400, "invalid_request", "medium must be wifi or ble")
    db = get_session()
    query = select(PresenceHour).where(
        PresenceHour.store_id == store_id, PresenceHour.hour_start >= start, PresenceHour.hour_start < end
    )
    visits = select(PresenceVisit.dwell_s).where(
        PresenceVisit.store_id == store_id, PresenceVisit.started_at >= start, PresenceVisit.started_at < end
    )
    if medium is not None:
        query = query.where(PresenceHour.medium == medium)
        visits = visits.where(PresenceVisit.medium == medium)
    report = summarize(db.scalars(query.order_by(PresenceHour.hour_start, PresenceHour.id)))
    dwells = sorted(db.scalars(visits))
    db.rollback()
    return jsonify(
        {
            "store_id": store_id,
            "from": start.isoformat(),
            "to": end.isoformat(),
            **report,
            # Visits of devices with a global address, one by one (randomized ones are only in the hours).
            "visits": {
                "count": len(dwells),
                "dwell_s": [round(d, 1) for d in dwells],
                "median_dwell_s": round(dwells[len(dwells) // 2], 1) if dwells else None,
            },
        }
    )
