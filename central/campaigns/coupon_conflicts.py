"""Flagged coupon redemptions: list them and close them with what was decided.

Central flags a redemption it cannot apply as the till did (a code redeemed twice, a campaign over
its maximum; :mod:`central.campaigns.coupon_redemptions`); operations review them with
``central-server coupons conflicts`` or ``/api/v1/coupons/conflicts`` and resolve each one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from central import audit
from central.campaigns.coupon_models import CouponConflict
from central.campaigns.coupons import CouponError, NotFound
from central.models import table
from shared.wire import format_time

_conflicts = table(CouponConflict)


def list_conflicts(db: Session, *, open_only: bool = True, kind: str | None = None, limit: int = 100) -> list[Any]:
    """Flagged redemptions, newest first."""
    query = select(_conflicts).order_by(_conflicts.c.id.desc()).limit(limit)
    if open_only:
        query = query.where(_conflicts.c.resolved_at.is_(None))
    if kind:
        query = query.where(_conflicts.c.kind == kind)
    return list(db.execute(query))


def conflict_json(row: Any) -> dict[str, Any]:
    """One conflict as the API and CLI show it."""
    return {
        "id": row.id,
        "kind": row.kind,
        "campaign_id": row.campaign_id,
        "serial": row.serial,
        "device_id": row.device_id,
        "store_id": row.store_id,
        "observed_at": format_time(row.observed_at),
        "flagged_at": format_time(row.flagged_at),
        "detail": row.detail,
        "payload": row.payload,
        "resolved_at": None if row.resolved_at is None else format_time(row.resolved_at),
        "resolved_by": row.resolved_by,
        "resolution": row.resolution,
    }


def resolve_conflict(db: Session, conflict_id: int, resolution: str, *, now: datetime, actor: str) -> None:
    """Mark a conflict reviewed with what was decided; the caller commits."""
    if not 1 <= len(resolution) <= 255:
        raise CouponError("a resolution is 1 to 255 characters saying what was decided")
    done = db.execute(
        update(_conflicts)
        .where(_conflicts.c.id == conflict_id, _conflicts.c.resolved_at.is_(None))
        .values(resolved_at=now, resolved_by=actor[:128], resolution=resolution)
        .returning(_conflicts.c.id)
    ).first()
    if done is None:
        raise NotFound(f"no open coupon conflict {conflict_id}")
    audit.record(db, at=now, actor=actor, action="coupons.resolve", subject=str(conflict_id))
