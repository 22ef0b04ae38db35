"""What one device's till sent lately that central kept aside: reprints, and member scans that linked no sale.

Operations reads it on the device page to tell a till that works from one that needs a visit: a
till that reprints a receipt for every sale, or a scanner whose scans never meet a sale (scanned
after the receipt, or at another register), shows here before it shows in a customer's figures.

Receipts are counted by their ``flag`` (``None`` for a counted sale, then ``reprint``,
``reprint_total_differs``, ``reprint_unmatched`` and whatever flags later rules add), scans by
outcome: linked to a sale, flagged (``doubtful``, ``code_reused``, ``unknown_key``), or waiting
(no flag and no sale yet: still inside ``members.link_window``, or past it and linking nothing).
Both tables are read through their (device, time) indexes, so the cost is one device's window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from central.customers.models import Receipt
from central.members.models import MemberScan
from central.models import table

WINDOW = timedelta(days=30)
LINKED = "linked"
UNLINKED = "unlinked"
_receipts = table(Receipt)
_scans = table(MemberScan)


@dataclass(frozen=True, slots=True)
class TillQuality:
    """Counts over one device's receipts and member scans observed since ``since``."""

    since: datetime
    receipts: dict[str | None, int]
    scans: dict[str, int]

    @property
    def counted(self) -> int:
        """Receipts that count as sales or refunds (no flag)."""
        return self.receipts.get(None, 0)

    @property
    def set_aside(self) -> dict[str, int]:
        """Receipts kept as evidence only, by flag, most frequent first."""
        flagged = ((flag, n) for flag, n in self.receipts.items() if flag is not None)
        return dict(sorted(flagged, key=lambda item: (-item[1], item[0])))


def till_quality(db: Session, device_id: str, now: datetime, window: timedelta = WINDOW) -> TillQuality:
    """The device's receipts by flag and its member scans by outcome over ``window`` before ``now``."""
    since = now - window
    receipts = db.execute(
        select(_receipts.c.flag, func.count())
        .where(_receipts.c.device_id == device_id, _receipts.c.observed_at >= since)
        .group_by(_receipts.c.flag)
    ).all()
    outcome = case(
        (_scans.c.flag.is_not(None), _scans.c.flag),
        (_scans.c.receipt_id.is_not(None), LINKED),
        else_=UNLINKED,
    )
    scans = db.execute(
        select(outcome, func.count())
        .where(_scans.c.device_id == device_id, _scans.c.observed_at >= since)
        .group_by(outcome)
    ).all()
    return TillQuality(since, {flag: n for flag, n in receipts}, {str(kind): n for kind, n in scans})
