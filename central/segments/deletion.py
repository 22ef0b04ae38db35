"""Deleting a segment: refused while an export of it is still being sent; its history stays.

A deleted segment's definition goes to the audit chain (``segment.delete``, with its id, rule,
version, channel and last evaluation), its current members leave it in the membership history at
the moment of deletion, and its row and current members go. The history rows keep the segment's
id, which the audit row names, so who was in the segment and when can still be answered
(decision 0081). Nothing else refers to a segment: triggers and coupon campaigns have their own
rules; only queued webhook calls of an export do, and those refuse the deletion until they end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from central.campaigns.models import PENDING, WebhookDelivery
from central.db import rows_changed
from central.models import table
from central.segments.definitions import SegmentError, to_json
from central.segments.models import LEFT, Segment, SegmentMember, SegmentMembershipEvent

IN_USE_EXPORT = "in_use_export"
_segments = table(Segment)
_members = table(SegmentMember)
_history = table(SegmentMembershipEvent)
_deliveries = table(WebhookDelivery)


@dataclass(frozen=True)
class Deleted:
    """What a deletion removed: the segment as it was (for the audit row) and how many members left it."""

    segment: dict[str, Any]
    left: int

    def to_audit(self) -> dict[str, Any]:
        """The audit row's detail: enough to read the history rows that keep the segment's id."""
        kept = ("rule", "version", "fingerprint", "channel", "description", "evaluated_at", "evaluated_version")
        return {"id": self.segment["id"], **{k: self.segment[k] for k in kept}, "members_left": self.left}


def delete(db: Session, name: str, *, now: datetime) -> Deleted:
    """Delete segment ``name``; the caller audits and commits. Raises :class:`SegmentError`:
    ``not_found``, or ``in_use_export`` while calls of a webhook export of it are still queued."""
    # FOR UPDATE: an evaluation of the same segment (the job, a user) finishes first, or waits.
    row = db.execute(sa.select(_segments).where(_segments.c.name == name).with_for_update()).first()
    if row is None:
        raise SegmentError("not_found", f"no segment named {name!r}")
    queued = db.scalar(
        sa.select(sa.func.count()).where(_deliveries.c.segment_id == row.id, _deliveries.c.status == PENDING)
    )
    if queued:
        raise SegmentError(
            IN_USE_EXPORT,
            f"segment {name!r} is in use: {queued} webhook call(s) of its export are still queued;"
            " delete it once they are delivered or dead (GET /api/v1/webhooks/dead lists those)",
        )
    columns = ["segment_id", "customer_id", "change", "at", "version"]
    leaving = sa.select(
        sa.literal(row.id),
        _members.c.customer_id,
        sa.literal(LEFT),
        sa.literal(now, _history.c.at.type),
        sa.literal(row.version),
    ).where(_members.c.segment_id == row.id)
    db.execute(sa.insert(_history).from_select(columns, leaving))
    left = rows_changed(db.execute(sa.delete(_members).where(_members.c.segment_id == row.id)))
    db.execute(sa.delete(_segments).where(_segments.c.id == row.id))
    return Deleted({"id": row.id, **to_json(row)}, left)
