"""The consent gate: may we market to, profile or locate this customer, and if not, why not.

Which decision holds for a customer, purpose and channel:

* the decisions counted are those recorded for the customer, for every customer merged into it,
  and for events that identity resolution now places with it (a split moves an event's decision
  with the event; a console or API decision stays with the customer it was taken for);
* for a channel, decisions on that channel and decisions covering every channel both count;
* the latest by observed time wins; at the same instant a withdrawal beats a grant, then the
  larger ``(origin, origin_id)``; so the answer never depends on arrival order or duplicates,
  and a withdrawal is never overridden by an older grant, before or after a merge;
* a minor (a customer under 14 by the golden record's birthday, and kept one until the end of the
  calendar year of their fourteenth birthday: decision 0082) is refused unless the holding grant
  was given by a guardian (``scope = "guardian"``); a customer without a known birthday is treated
  as an adult.

:func:`consented` is the same rule as one SQL statement for segments, exports and triggers;
:func:`consent_holds` is it again as a condition on each row of a query that walks live customers in
order, so that an export streams its first rows at once however many members it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, literal, or_, select, union, union_all
from sqlalchemy.orm import Session

from central.customers.consent_models import ALL_CHANNELS, GUARDIAN, ConsentDecision
from central.identity.models import Customer, EventCustomer, GoldenAttribute
from central.models import table

MINOR_AGE = 14
_d = table(ConsentDecision)
_ec = table(EventCustomer)
_by_event = table(Customer).alias("event_owner")
_by_record = table(Customer).alias("recorded_owner")
_golden = table(GoldenAttribute)
# Two plain joins on the primary key rather than one on an expression, so that a few decisions
# cost a few index lookups instead of a hash of the whole customers table.
OWNER = case(
    (_ec.c.customer_id.is_not(None), func.coalesce(_by_event.c.merged_into, _by_event.c.id)),
    else_=func.coalesce(_by_record.c.merged_into, _by_record.c.id),
)
"""The live customer a decision belongs to now: its event's owner (splits move it), else the customer it
was recorded for; then that customer's survivor."""
_ORDER = (_d.c.observed_at.desc(), _d.c.granted.asc(), _d.c.origin.desc(), _d.c.origin_id.desc())


@dataclass(frozen=True, slots=True)
class Verdict:
    """The gate's answer; ``reason`` says why (``granted``, ``no_consent``, ``withdrawn``, ``minor``, ...)."""

    allowed: bool
    reason: str
    decided_at: datetime | None = None

    def __bool__(self) -> bool:
        return self.allowed

    def to_json(self) -> dict[str, Any]:
        at = self.decided_at.isoformat().replace("+00:00", "Z") if self.decided_at else None
        return {"allowed": self.allowed, "reason": self.reason, "decided_at": at}


def minor_cutoff(today: date) -> str:
    """Birthdays after this ISO date belong to customers the gate treats as minors on ``today``.

    Those are the customers born in the year that makes them 14 this year, or later: a customer stays a
    minor until the 31 December after their fourteenth birthday. The flag then changes on 1 January for a
    whole year of births at once, so it tells no more than the birth year, which every role is shown;
    flipping on the birthday itself gave the exact date away to roles shown only the year (decision 0082).
    """
    return date(today.year - MINOR_AGE - 1, 12, 31).isoformat()


def earliest_today(now: datetime) -> date:
    """The earliest calendar date anywhere on Earth at ``now`` (UTC-12): the day to judge on for a caller
    that does not know the chain's time zone, so that it never treats someone as an adult before the
    chain's calendar (and the flag the consoles show) does."""
    return (now.astimezone(UTC) - timedelta(hours=12)).date()


_OWNED = (
    _d.outerjoin(_ec, _ec.c.event_pk == _d.c.event_pk)
    .outerjoin(_by_event, _by_event.c.id == _ec.c.customer_id)
    .join(_by_record, _by_record.c.id == _d.c.customer_id)
)


def owned_decisions() -> Select[Any]:
    """Every decision with the live customer it belongs to now (column ``owner``)."""
    return select(_d, OWNER.label("owner")).select_from(_OWNED)


def _belonging_to(customers: Select[Any] | Sequence[int]) -> ColumnElement[bool]:
    """Decisions that may belong to the live customers selected: recorded for them, for customers merged
    into them, or with events identity now places with them. Written as one IN over the primary key
    of a UNION of index lookups, so that the database never scans every decision or customer."""
    every = table(Customer)
    tree = union(
        select(every.c.id).where(every.c.id.in_(customers)),
        select(every.c.id).where(every.c.merged_into.in_(customers)),
    ).subquery()
    moved_here = select(_ec.c.event_pk).where(_ec.c.customer_id.in_(select(tree.c.id)))
    own = union(
        select(_d.c.id).where(_d.c.customer_id.in_(select(tree.c.id))),
        select(_d.c.id).where(_d.c.event_pk.in_(moved_here)),
    )
    return _d.c.id.in_(own)


def consented(
    purpose: str, channel: str | None, today: date, among: Select[Any] | Sequence[int] | None = None
) -> Select[tuple[int]]:
    """The ids of live customers who may be reached for ``purpose`` (on ``channel``), as one query.

    Use it as ``customers.c.id.in_(consented("marketing", "sms", today))`` in a segment or export;
    ``among`` (a query of live customer ids) limits the work to those customers.
    """
    channels = [ALL_CHANNELS] if channel is None else [channel, ALL_CHANNELS]
    decisions = owned_decisions().where(_d.c.purpose == purpose, _d.c.channel.in_(channels))
    if among is not None:
        decisions = decisions.where(_belonging_to(among))
    ranked = decisions.add_columns(func.row_number().over(partition_by=OWNER, order_by=_ORDER).label("rank")).subquery()
    minors = select(_golden.c.customer_id).where(
        _golden.c.attribute == "birthday", _golden.c.value > minor_cutoff(today)
    )
    if among is not None:
        minors = minors.where(_golden.c.customer_id.in_(among))
    return select(ranked.c.owner).where(
        ranked.c.rank == 1,
        ranked.c.granted.is_(True),
        or_(ranked.c.scope == GUARDIAN, ranked.c.owner.not_in(minors)),
    )


def refused(purpose: str, today: date) -> Select[tuple[int]]:
    """The ids of live customers the rule refuses a whole-customer ``purpose`` (profiling, location) for.

    Those with a decision for it whose holding decision is not a grant that counts (a withdrawal, or
    a minor's own grant), and minors without any decision: the complement of :func:`consented`
    among customers the rule has something to say about, for callers that let everyone else through.
    """
    decided = (
        select(OWNER.label("customer_id"))
        .select_from(_OWNED)
        .where(_d.c.purpose == purpose, _d.c.channel == ALL_CHANNELS)
    )
    minors = select(_golden.c.customer_id).where(
        _golden.c.attribute == "birthday", _golden.c.value > minor_cutoff(today)
    )
    either = union(decided, minors).subquery()
    return select(either.c.customer_id).where(either.c.customer_id.not_in(consented(purpose, None, today)))


def moved_owners(purpose: str, channels: Sequence[str]) -> Select[tuple[int]]:
    """The live customers holding a decision (for ``purpose`` on ``channels``) that was recorded for another
    customer: its event now belongs to them, by a merge (which moves a merged-away customer's events to the
    survivor) or a split."""
    d, ec, owner = _d.alias("moved"), _ec.alias("moved_event"), table(Customer).alias("moved_owner")
    live = func.coalesce(owner.c.merged_into, owner.c.id)
    return (
        select(live)
        .select_from(d.join(ec, ec.c.event_pk == d.c.event_pk).join(owner, owner.c.id == ec.c.customer_id))
        # A range on the event key (every event's is positive) rather than IS NOT NULL: SQLite reads that from
        # the index, where it scanned every decision (700,000, 170 ms before an export's first row) when none
        # had an event.
        .where(d.c.purpose == purpose, d.c.channel.in_(channels), d.c.event_pk > 0)
        .where(ec.c.customer_id != d.c.customer_id)
        .correlate(None)
    )


def consent_holds(purpose: str, channel: str, today: date, customer: ColumnElement[int]) -> ColumnElement[bool]:
    """Whether :func:`consented`'s rule lets ``purpose`` reach the live customer in column ``customer`` on
    ``channel``, as a condition on each row of a query that walks customers (say, a segment's members by id).

    Most customers hold only decisions recorded for them or for customers merged into them; for them the
    holding decision is the first by the rule's order among those, a few index lookups a row, so the query
    can stream. The few that hold a decision whose event moved to them from another customer are judged
    once, together, by :func:`consented` (and the decisions that moved away are left out of the others).
    """
    channels = [channel, ALL_CHANNELS]
    d = _d.alias("decision")
    ec = _ec.alias("decision_event")
    tree = table(Customer).alias("merged_here")
    # Each inner query names the tables it reads, so that ``customer`` is taken from the walking query.
    minor = (
        exists()
        .where(
            _golden.c.customer_id == customer, _golden.c.attribute == "birthday", _golden.c.value > minor_cutoff(today)
        )
        .correlate_except(_golden)
    )
    moved_away = exists().where(ec.c.event_pk == d.c.event_pk, ec.c.customer_id != d.c.customer_id).correlate_except(ec)
    # Decisions recorded for the customer, and for customers merged into it: index lookups only, each
    # side on its own (an OR sends PostgreSQL through every decision, SQLite through an index it builds).
    rank = (d.c.observed_at, d.c.granted, d.c.origin, d.c.origin_id, d.c.scope)
    wanted = (d.c.purpose == purpose, d.c.channel.in_(channels), ~moved_away)
    own = select(*rank).where(d.c.customer_id == customer, *wanted).correlate_except(d)
    merged = select(tree.c.id).where(tree.c.merged_into == customer).correlate_except(tree)
    merged_here = select(*rank).where(d.c.customer_id.in_(merged), *wanted).correlate_except(d)
    counted = union_all(own, merged_here).subquery("counted")
    holding = (
        select(case((and_(counted.c.granted.is_(True), or_(counted.c.scope == GUARDIAN, ~minor)), 1), else_=0))
        .order_by(
            counted.c.observed_at.desc(), counted.c.granted.asc(), counted.c.origin.desc(), counted.c.origin_id.desc()
        )
        .limit(1)
        .scalar_subquery()
    )
    moved_here = select(moved_owners(purpose, channels).cte("moved_here").c[0])
    return or_(
        and_(customer.not_in(moved_here), holding == 1),
        and_(customer.in_(moved_here), customer.in_(consented(purpose, channel, today, among=moved_here))),
    )


def live_customer(db: Session, customer_id: int) -> int | None:
    """The live customer ``customer_id`` is now (itself, or its survivor), or None if unknown."""
    customers = table(Customer)
    row = db.execute(select(customers.c.merged_into).where(customers.c.id == customer_id)).first()
    if row is None:
        return None
    return int(row[0]) if row[0] is not None else customer_id


def decisions_of(db: Session, customer_id: int) -> list[Any]:
    """Every decision belonging to live customer ``customer_id`` now, newest first."""
    query = (
        owned_decisions()
        .where(_belonging_to(select(literal(customer_id))))
        .where(OWNER.in_([customer_id]))
        .order_by(*_ORDER)
    )
    return list(db.execute(query))


def holding(decisions: Sequence[Any], purpose: str, channel: str | None) -> Any | None:
    """The decision that holds for ``purpose`` on ``channel`` among ``decisions`` (newest first), or None."""
    channels = {ALL_CHANNELS} if channel is None else {channel, ALL_CHANNELS}
    return next((d for d in decisions if d.purpose == purpose and d.channel in channels), None)


def is_minor(db: Session, customer_id: int, today: date) -> bool:
    """Whether the golden record's birthday makes the customer a minor on ``today`` (see :func:`minor_cutoff`)."""
    birthday = db.scalar(
        select(_golden.c.value).where(_golden.c.customer_id == customer_id, _golden.c.attribute == "birthday")
    )
    return birthday is not None and birthday > minor_cutoff(today)


def _judge(decision: Any | None, minor: bool) -> Verdict:
    if decision is None:
        return Verdict(False, "no_consent")
    if not decision.granted:
        return Verdict(False, "withdrawn", decision.observed_at)
    if minor and decision.scope != GUARDIAN:
        return Verdict(False, "minor_without_guardian_consent", decision.observed_at)
    return Verdict(True, "granted", decision.observed_at)


def verdict(db: Session, customer_id: int, purpose: str, channel: str | None, today: date) -> Verdict:
    """Whether ``purpose`` (on ``channel``) is allowed for the customer on ``today``, and why."""
    live = live_customer(db, customer_id)
    if live is None:
        return Verdict(False, "unknown_customer")
    decision = holding(decisions_of(db, live), purpose, channel)
    return _judge(decision, decision is not None and is_minor(db, live, today))


def may_market(db: Session, customer_id: int, channel: str, today: date) -> Verdict:
    """Whether marketing may reach the customer on ``channel`` (sms, wechat, app_push, email)."""
    return verdict(db, customer_id, "marketing", channel, today)


def may_profile(db: Session, customer_id: int, today: date) -> Verdict:
    """Whether tags that profile (personalisation) may be computed and used for the customer."""
    return verdict(db, customer_id, "profiling", None, today)


def may_locate(db: Session, customer_id: int, today: date) -> Verdict:
    """Whether the customer's location (store presence) may be linked to them."""
    return verdict(db, customer_id, "location", None, today)


def summary(db: Session, customer_id: int, today: date) -> dict[str, Any]:
    """Every purpose and channel's verdict for a live customer, for the API and console."""
    from central.customers.consent import CHANNELS

    decisions = decisions_of(db, customer_id)
    minor = is_minor(db, customer_id, today)
    out: dict[str, Any] = {"minor": minor}
    for purpose in ("service", "marketing"):
        out[purpose] = {ch: _judge(holding(decisions, purpose, ch), minor).to_json() for ch in CHANNELS}
    for purpose in ("profiling", "location"):
        out[purpose] = _judge(holding(decisions, purpose, None), minor).to_json()
    return out
