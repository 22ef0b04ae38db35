"""The console overview's figures, each one set-based SQL over indexed columns.

* Customers: live customer profiles (merged-away rows do not count), members or not (a phone given
  at the till makes a profile too); a store manager's figure is the members who signed up at their
  stores.
* New members per store and local day: ``member.signup`` events, counted from the index
  ``(kind, observed_at, store_id)`` without reading the events themselves, and kept per past day
  in ``new_member_days`` by the hourly ``store_alerts`` job, so a view counts only today from the
  events. A sign-up stored for a past day (an agent back online, a backfill) takes that day out of
  the kept ones until the job's next run, so the view counts it from the events meanwhile. Days
  are the chain's local days (``customers.utc_offset_minutes``).
* Sales by value tier: customers and their spending per ``value_tier`` tag (loyal, potential,
  dormant, other); for some stores only, what the tier's customers spent in those stores.
* The RFM grid: customers per recency and frequency score (1-5, the ``rfm.r`` and ``rfm.f`` tags),
  with their mean monetary score.
* Tiers and the grid are read from ``overview_figures``, which every tag recompute refills
  (:func:`snapshot`): joining a million tagged customers on each view would take seconds.
* Footfall: per store and medium, visits, passes, capture rate (visits over visits and passes) and
  mean dwell, summed from the stored presence hours.

``stores=None`` means every store; a tuple limits every figure to those stores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, text
from sqlalchemy.orm import Session

from central.customers import statistics
from central.customers.models import NewMemberDay, OverviewFigure
from central.customers.tags import Sql
from central.fleet.models import Device
from central.identity.models import Customer
from central.models import UTCDateTime, table
from central.presence.models import PresenceHour

SIGNUP = "member.signup"
TIERS = ("loyal", "potential", "dormant", "other")
SCORES = (1, 2, 3, 4, 5)
_figures = table(OverviewFigure)
_hours = table(PresenceHour)
_member_days = table(NewMemberDay)


@dataclass(frozen=True, slots=True)
class TierFigures:
    """One value tier: how many customers hold it and what they spent (cents)."""

    tier: str
    customers: int
    spent: int


@dataclass(frozen=True, slots=True)
class RfmCell:
    """Customers with recency score ``r`` and frequency score ``f``, and their mean monetary score."""

    r: int
    f: int
    customers: int
    mean_m: float


@dataclass(frozen=True, slots=True)
class Footfall:
    """One store's presence counts over a period for one medium (Wi-Fi or BLE)."""

    store_id: str
    medium: str
    visits: int
    passes: int
    dwell_total_s: float
    dwell_visits: int

    @property
    def capture_rate(self) -> float | None:
        """Visits as a share of visits and passes: how much of the passing traffic came in."""
        traffic = self.visits + self.passes
        return self.visits / traffic if traffic else None

    @property
    def mean_dwell_s(self) -> float | None:
        """The mean dwell of the visits whose dwell was measured."""
        return self.dwell_total_s / self.dwell_visits if self.dwell_visits else None


def local_today(now: datetime, offset_minutes: int) -> date:
    """The chain's local date at ``now``."""
    return (now + timedelta(minutes=offset_minutes)).date()


def local_midnight(day: date, offset_minutes: int) -> datetime:
    """The UTC time at which local ``day`` begins."""
    return datetime.combine(day, time(), UTC) - timedelta(minutes=offset_minutes)


def _in_stores(column: str, stores: Sequence[str] | None) -> str:
    return "" if stores is None else f" AND {column} IN :stores"


def _bind(sql: str, stores: Sequence[str] | None, **types: Any) -> Any:
    statement = text(sql)
    binds = [bindparam(name, type_=kind) for name, kind in types.items()]
    if stores is not None:
        binds.append(bindparam("stores", expanding=True))
    return statement.bindparams(*binds)


def _params(stores: Sequence[str] | None, **params: Any) -> dict[str, Any]:
    return params if stores is None else {**params, "stores": list(stores)}


def members_total(db: Session, stores: Sequence[str] | None = None) -> int:
    """Live customer profiles, or for some stores the members who signed up there."""
    if stores is None:
        return db.scalar(select(func.count()).select_from(Customer).where(Customer.merged_into.is_(None))) or 0
    if not stores:
        return 0
    sql = "SELECT COUNT(*) FROM events WHERE kind = :kind" + _in_stores("store_id", stores)  # noqa: S608
    return int(db.execute(_bind(sql, stores), _params(stores, kind=SIGNUP)).scalar_one())


def new_members(
    db: Session, first: date, last: date, offset_minutes: int, stores: Sequence[str] | None = None
) -> dict[str, dict[date, int]]:
    """Sign-ups per store and local day from ``first`` to ``last`` (both included); days without any are absent.

    Days the ``store_alerts`` job has counted come from ``new_member_days``; the rest (today, as a
    rule) are counted from the events.
    """
    if stores is not None and not stores:
        return {}
    d = _member_days
    in_range = (d.c.day >= first, d.c.day <= last)
    covered = set(db.scalars(select(d.c.day).where(d.c.store_id == "", *in_range)))
    query = select(d.c.store_id, d.c.day, d.c.members).where(d.c.store_id != "", *in_range)
    if stores is not None:
        query = query.where(d.c.store_id.in_(list(stores)))
    out: dict[str, dict[date, int]] = {}
    for store_id, day, members in db.execute(query):
        if day in covered:
            out.setdefault(store_id, {})[day] = members
    missing = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    missing = [day for day in missing if day not in covered]
    if missing:
        for store_id, days in _counted(db, min(missing), last, offset_minutes, stores).items():
            for day, members in days.items():
                if day not in covered:
                    out.setdefault(store_id, {})[day] = members
    return out


def signups_stored(
    conn: Connection, events: Iterable[statistics.StoredEvent], offset_minutes: int | None = None
) -> None:
    """Take the local days of freshly stored store sign-ups out of the counted days of ``new_member_days``.

    Called in the transaction that stores ``events``; the ``store_alerts`` job counts those days
    again at its next run, and views count them from the events until then.
    """
    offset = statistics.settings()[0] if offset_minutes is None else offset_minutes
    days = {local_today(at, offset) for _, kind, store_id, at, _ in events if kind == SIGNUP and store_id}
    if days:
        d = _member_days
        conn.execute(delete(d).where(d.c.store_id == "", d.c.day.in_(sorted(days))))


def count_new_members(conn: Connection, first: date, last: date, offset_minutes: int) -> int:
    """Recount the sign-ups of local days ``first`` to ``last`` into ``new_member_days``; stores' rows written."""
    d = _member_days
    conn.execute(delete(d).where(d.c.day >= first, d.c.day <= last))
    counted = _counted(conn, first, last, offset_minutes)
    rows = [{"store_id": s, "day": day, "members": n} for s, days in counted.items() for day, n in days.items()]
    marks = [{"store_id": "", "day": first + timedelta(days=n), "members": 0} for n in range((last - first).days + 1)]
    conn.execute(insert(d), rows + marks)
    return len(rows)


def _counted(
    db: Session | Connection, first: date, last: date, offset_minutes: int, stores: Sequence[str] | None = None
) -> dict[str, dict[date, int]]:
    """Sign-ups at stores per store and local day from ``first`` to ``last``, counted from the events' index."""
    if stores is not None and not stores:
        return {}
    bind = db.get_bind() if isinstance(db, Session) else db
    postgres = bind.dialect.name == "postgresql"
    day = Sql(postgres, offset_minutes).local_date_plus("observed_at", "0")
    sql = (
        f"SELECT store_id, {day} AS day, COUNT(*) AS n FROM events"  # noqa: S608  (no user text in it)
        " WHERE kind = :kind AND observed_at >= :start AND observed_at < :end"
        # Sign-ups from online sources name no store: they are no store's figure (and an empty
        # store id is the counted-day mark in new_member_days).
        " AND store_id IS NOT NULL AND store_id <> ''" + _in_stores("store_id", stores) + " GROUP BY store_id, day"
    )
    statement = _bind(sql, stores, start=UTCDateTime(), end=UTCDateTime())
    params = _params(
        stores,
        kind=SIGNUP,
        start=local_midnight(first, offset_minutes),
        end=local_midnight(last + timedelta(days=1), offset_minutes),
    )
    out: dict[str, dict[date, int]] = {}
    for store_id, when, count in db.execute(statement, params):
        out.setdefault(store_id, {})[date.fromisoformat(str(when)[:10])] = int(count)
    return out


def snapshot(conn: Connection, now: datetime) -> int:
    """Replace the tier and RFM figures, for the chain and per store, from the tags just written; rows written.

    Called by every tag recompute, in its transaction: the tiers and scores change only then, so the
    page reads a few hundred rows instead of joining every tagged customer on each view. The chain's
    rows have the store id '', which no store has (online sales that name no store have no
    ``customer_stores`` row).
    """
    conn.execute(delete(_figures))
    rfm = (
        " FROM customer_tags r"
        " JOIN customer_tags f ON f.customer_id = r.customer_id AND f.tag = 'rfm.f'"
        " JOIN customer_tags m ON m.customer_id = r.customer_id AND m.tag = 'rfm.m'"
    )
    statements = (
        "SELECT 'tier', '', t.value, '', COUNT(*), COALESCE(SUM(s.spent), 0), :now FROM customer_tags t"
        " JOIN customer_stats s ON s.customer_id = t.customer_id WHERE t.tag = 'value_tier' GROUP BY t.value",
        "SELECT 'tier', cs.store_id, t.value, '', COUNT(*), COALESCE(SUM(cs.spent), 0), :now FROM customer_stores cs"
        " JOIN customer_tags t ON t.customer_id = cs.customer_id AND t.tag = 'value_tier'"
        " GROUP BY cs.store_id, t.value",
        f"SELECT 'rfm', '', r.value, f.value, COUNT(*), SUM(CAST(m.value AS INTEGER)), :now{rfm}"
        " WHERE r.tag = 'rfm.r' GROUP BY r.value, f.value",
        f"SELECT 'rfm', cs.store_id, r.value, f.value, COUNT(*), SUM(CAST(m.value AS INTEGER)), :now{rfm}"
        " JOIN customer_stores cs ON cs.customer_id = r.customer_id"
        " WHERE r.tag = 'rfm.r' GROUP BY cs.store_id, r.value, f.value",
    )
    written = 0
    for select_sql in statements:
        statement = text(
            "INSERT INTO overview_figures (figure, store_id, a, b, customers, total, computed_at) " + select_sql
        ).bindparams(bindparam("now", type_=UTCDateTime()))
        written += conn.execute(statement, {"now": now}).rowcount
    return written


def _figures_of(db: Session, figure: str, stores: Sequence[str] | None) -> list[Any]:
    where = [_figures.c.figure == figure]
    where.append(_figures.c.store_id == "" if stores is None else _figures.c.store_id.in_(list(stores)))
    query = (
        select(_figures.c.a, _figures.c.b, func.sum(_figures.c.customers), func.sum(_figures.c.total))
        .where(*where)
        .group_by(_figures.c.a, _figures.c.b)
    )
    return list(db.execute(query))


def figures_computed_at(db: Session) -> datetime | None:
    """When the tier and RFM figures were last computed (the last tag recompute), or None."""
    return db.scalar(select(func.max(_figures.c.computed_at)).where(_figures.c.store_id == ""))


def tier_sales(db: Session, stores: Sequence[str] | None = None) -> list[TierFigures]:
    """Customers and spending per value tier, every tier listed (zero when nobody holds it).

    For stores, each store's customers of the tier and what they spent there, added up: a customer
    who bought in two of the stores counts in both.
    """
    found = {str(a): (int(n), int(t)) for a, _b, n, t in _figures_of(db, "tier", stores)}
    return [TierFigures(tier, *found.get(tier, (0, 0))) for tier in (*TIERS, *sorted(set(found) - set(TIERS)))]


def rfm_grid(db: Session, stores: Sequence[str] | None = None) -> list[RfmCell]:
    """Customers per recency and frequency score with their mean monetary score (empty cells left out)."""
    cells = [
        RfmCell(int(r), int(f), int(n), round(int(m) / int(n), 2)) for r, f, n, m in _figures_of(db, "rfm", stores) if n
    ]
    return sorted(cells, key=lambda c: (c.r, c.f))


def known_stores(db: Session) -> list[str]:
    """Every store with an enrolled agent."""
    return list(db.scalars(select(Device.store_id).distinct().order_by(Device.store_id)))


def footfall(db: Session, start: datetime, end: datetime, stores: Sequence[str]) -> list[Footfall]:
    """Per store and medium, visits, passes and dwell summed over the presence hours from ``start`` to ``end``.

    Sums, not the merged distinct-device sketches of ``GET /api/v1/presence/<store>``: merging
    thousands of sketches in Python per page view would not stay fast for a hundred stores.
    """
    if not stores:
        return []
    h = _hours
    query = (
        select(
            h.c.store_id,
            h.c.medium,
            func.sum(h.c.visits),
            func.sum(h.c.passes),
            func.sum(h.c.dwell_total_s),
            func.sum(h.c.dwell_visits),
        )
        .where(h.c.store_id.in_(list(stores)), h.c.hour_start >= start, h.c.hour_start < end)
        .group_by(h.c.store_id, h.c.medium)
        .order_by(h.c.store_id, h.c.medium)
    )
    return [Footfall(s, m, int(v), int(p), float(d or 0), int(n or 0)) for s, m, v, p, d, n in db.execute(query)]
