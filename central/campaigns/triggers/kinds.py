"""What makes a trigger due: each kind's parameters and its candidates as one set-based query.

A kind's query selects ``customer_id`` (always a live customer: merged-away customers are left
out or replaced by their survivor), ``occasion`` (the text that makes a firing unique for the
customer) and detail columns that travel with the firing to its action. It must not look at
consent or the ledger: :mod:`central.campaigns.triggers.firing` adds both.

* ``birthday``: the birthday falls within ``days_before`` days; occasion = the year it falls in. A
  placeholder birthday (the identity registry's ``placeholder_birthdays``) never fires.
* ``second_item``: the first purchase was ``hours`` ago (and at most ``grace_hours`` more, so a
  missed run is made up but declaring the trigger does not sweep up the whole customer base);
  with ``unless_bought_again`` only customers with that single purchase; occasion = the first
  purchase's time.
* ``win_back``: the ``lifecycle`` (or ``value_tier``) tag says dormant and the customer's last
  purchase is still the one the tag was computed from; occasion = the last purchase's time, so a
  customer fires once per dormant spell and again only after buying and lapsing again.
* ``repurchase_due``: a category's repurchase tag (next due date) falls within ``days_before``
  days and the category's last purchase is still the one the tag was computed from; occasion =
  due date and category.

Both compare what the statistics hold now with what the tag knew (the last purchase it recorded
among its inputs), not a purchase's time with the tag's ``computed_at``: a purchase made before
the recompute but received after it (a store that was offline, a late online source) is one the
tag did not know about, and it stops the trigger until the next recompute decides again. A late
purchase older than the last one the tag knew changes nothing, so it stops nothing. A tag written
before its inputs held the last purchase falls back to comparing with ``computed_at``.
* ``complaint``: a ``service.complaint`` event received within ``within_hours``; occasion =
  the event, so every complaint fires once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, case, cast, func, literal, literal_column, select

from central.customers.models import CustomerCategory, CustomerStats, CustomerTag
from central.identity.models import Customer, EventCustomer, GoldenAttribute
from central.ingest.models import Event
from central.models import table

MAX_DAYS_BEFORE = 31
MAX_HOURS = 24 * 30
DORMANT = "dormant"
REPURCHASE_PREFIX = "repurchase."
_golden = table(GoldenAttribute)
_customers = table(Customer)
_stats = table(CustomerStats)
_tags = table(CustomerTag)
_categories = table(CustomerCategory)
_events = table(Event)
_owners = table(EventCustomer)


@dataclass(frozen=True, slots=True)
class When:
    """The moment a trigger is evaluated: the chain's calendar date, the instant, and the database."""

    today: date
    now: datetime
    postgres: bool
    # Birthdays sources fill in by default (the identity registry's), ``YYYY-MM-DD`` or ``--MM-DD``.
    placeholder_birthdays: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a kind: its default and what values it accepts."""

    default: Any
    low: int = 0
    high: int = 0
    choices: tuple[str, ...] = ()
    flag: bool = False

    def checked(self, name: str, value: Any) -> Any:
        """``value`` if acceptable; ValueError naming ``name`` and what is expected otherwise."""
        if self.flag:
            if type(value) is not bool:
                raise ValueError(f"{name}: expected true or false")
        elif self.choices:
            if value not in self.choices:
                raise ValueError(f"{name}: expected one of {', '.join(self.choices)}")
        elif type(value) is not int or not self.low <= value <= self.high:
            raise ValueError(f"{name}: expected a whole number from {self.low} to {self.high}")
        return value


Candidates = Callable[[Mapping[str, Any], When], Select[Any]]


@dataclass(frozen=True, slots=True)
class Kind:
    """A trigger kind: its own parameters (besides channel and purpose), its candidates query, and the customer
    fields its list of customers gives away.

    ``reveals`` names golden-record fields that whom it fired for, and on which day, tells about each customer:
    a birthday trigger adds a customer the day their birthday enters its window, so its list holds every
    birthday in full. Purchase times, tags and complaints, which the other kinds fire on, are shown to every
    role that sees customers.
    """

    name: str
    candidates: Candidates
    params: Mapping[str, Param] = field(default_factory=dict)
    reveals: tuple[str, ...] = ()


def revealed(kind: str, withheld: Collection[str]) -> str | None:
    """The first of ``withheld`` (fields a role is shown only coarsely) that the customers a ``kind`` trigger
    fired for would give away, or None when its list gives none of them away."""
    found = KINDS.get(kind)
    return next((name for name in found.reveals if name in withheld), None) if found else None


def iso_instant(column: Any, postgres: bool) -> ColumnElement[str]:
    """A UTC timestamp column as ISO 8601 text to the second (``2026-11-20T02:00:00Z``) on both databases."""
    if postgres:
        return func.to_char(func.timezone("UTC", column), literal('YYYY-MM-DD"T"HH24:MI:SS"Z"'))
    return func.strftime(literal("%Y-%m-%dT%H:%M:%SZ"), column)


def _live(customer_id: Any) -> Any:
    return _customers.c.id == customer_id


def birthday_window(today: date, days: int) -> dict[str, str]:
    """Month-day (``MM-DD``) of every date from today to ``days`` ahead, mapped to the occasion (its year).

    In a year without 29 February, birthdays on 29 February are celebrated on the 28th.
    """
    out: dict[str, str] = {}
    for offset in range(days + 1):
        day = today + timedelta(days=offset)
        out[day.strftime("%m-%d")] = str(day.year)
        if day.month == 2 and day.day == 28 and (day + timedelta(days=1)).month == 3:
            out["02-29"] = str(day.year)
    return out


def _birthday(params: Mapping[str, Any], when: When) -> Select[Any]:
    window = birthday_window(when.today, int(params["days_before"]))
    month_day = func.substr(_golden.c.value, 6, 5)
    return (
        select(
            _golden.c.customer_id.label("customer_id"),
            case(window, value=month_day).label("occasion"),
            _golden.c.value.label("birthday"),
        )
        .join(_customers, _live(_golden.c.customer_id))
        .where(_golden.c.attribute == "birthday", _customers.c.merged_into.is_(None), month_day.in_(list(window)))
        # A default date a source filled in (1970-01-01) is nobody's birthday: no coupon for it.
        .where(_golden.c.value.not_in(sorted(p for p in when.placeholder_birthdays if not p.startswith("--"))))
        .where(month_day.not_in(sorted(p[2:] for p in when.placeholder_birthdays if p.startswith("--"))))
    )


def _second_item(params: Mapping[str, Any], when: When) -> Select[Any]:
    first = _stats.c.first_purchase_at
    latest = when.now - timedelta(hours=int(params["hours"]))
    query = (
        select(
            _stats.c.customer_id.label("customer_id"),
            iso_instant(first, when.postgres).label("occasion"),
            iso_instant(first, when.postgres).label("first_purchase_at"),
        )
        .join(_customers, _live(_stats.c.customer_id))
        .where(
            _customers.c.merged_into.is_(None),
            first <= latest,
            first > latest - timedelta(hours=int(params["grace_hours"])),
        )
    )
    return query.where(_stats.c.purchases == 1) if params["unless_bought_again"] else query


def known_last_purchase(when: When, column: Any) -> ColumnElement[Any]:
    """The last purchase a tag was computed from (its input ``last_purchase_at``), comparable with ``column``.

    The input holds the statistics column as the database wrote it into JSON: on SQLite the stored
    text itself, on PostgreSQL a timestamp that casts back exactly. A tag without it (written by
    an earlier version) falls back to its ``computed_at``.
    """
    known: ColumnElement[Any] = _tags.c.inputs["last_purchase_at"].as_string()
    if when.postgres:
        known = cast(known, column.type)
    return func.coalesce(known, _tags.c.computed_at)


def _win_back(params: Mapping[str, Any], when: When) -> Select[Any]:
    last = _stats.c.last_purchase_at
    return (
        select(
            _tags.c.customer_id.label("customer_id"),
            iso_instant(last, when.postgres).label("occasion"),
            iso_instant(last, when.postgres).label("last_purchase_at"),
            _tags.c.tag.label("tag"),
        )
        .join(_stats, _stats.c.customer_id == _tags.c.customer_id)
        .join(_customers, _live(_tags.c.customer_id))
        .where(
            _tags.c.tag == params["tag"],
            _tags.c.value == DORMANT,
            _customers.c.merged_into.is_(None),
            last.is_not(None),
            # A purchase the tag did not know about means the customer is back, whatever the tag says,
            # even one made before the tag was computed but received after it.
            last <= known_last_purchase(when, last),
        )
    )


def _repurchase_due(params: Mapping[str, Any], when: When) -> Select[Any]:
    category = func.substr(_tags.c.tag, len(REPURCHASE_PREFIX) + 1)
    last_day = when.today + timedelta(days=int(params["days_before"]))
    return (
        select(
            _tags.c.customer_id.label("customer_id"),
            (_tags.c.value + literal(":") + category).label("occasion"),
            category.label("category"),
            _tags.c.value.label("due"),
        )
        .join(_customers, _live(_tags.c.customer_id))
        .join(
            _categories,
            and_(_categories.c.customer_id == _tags.c.customer_id, _categories.c.category == category),
        )
        .where(
            _tags.c.tag.like(REPURCHASE_PREFIX + "%"),
            _tags.c.value >= when.today.isoformat(),
            _tags.c.value <= last_day.isoformat(),
            _customers.c.merged_into.is_(None),
            # Bought again since the due date was computed (received after it, whenever made): not due.
            _categories.c.last_purchase_at <= known_last_purchase(when, _categories.c.last_purchase_at),
        )
    )


def _complaint(params: Mapping[str, Any], when: When) -> Select[Any]:
    owner = func.coalesce(_customers.c.merged_into, _customers.c.id)
    return (
        select(
            owner.label("customer_id"),
            (literal("event:") + cast(_events.c.id, String)).label("occasion"),
            _events.c.event_id.label("event_id"),
            _events.c.store_id.label("store_id"),
            iso_instant(_events.c.observed_at, when.postgres).label("observed_at"),
        )
        .select_from(_events)
        .join(_owners, _owners.c.event_pk == _events.c.id)
        .join(_customers, _live(_owners.c.customer_id))
        .where(
            # A literal, not a bound value, so that both databases use the partial index of complaints.
            _events.c.kind == literal_column("'service.complaint'"),
            _events.c.received_at >= when.now - timedelta(hours=int(params["within_hours"])),
        )
    )


_DAYS_BEFORE = Param(3, 0, MAX_DAYS_BEFORE)
KINDS: dict[str, Kind] = {
    "birthday": Kind("birthday", _birthday, {"days_before": _DAYS_BEFORE}, reveals=("birthday",)),
    "second_item": Kind(
        "second_item",
        _second_item,
        {
            "hours": Param(72, 1, MAX_HOURS),
            "grace_hours": Param(72, 1, MAX_HOURS),
            "unless_bought_again": Param(True, flag=True),
        },
    ),
    "win_back": Kind("win_back", _win_back, {"tag": Param("lifecycle", choices=("lifecycle", "value_tier"))}),
    "repurchase_due": Kind("repurchase_due", _repurchase_due, {"days_before": _DAYS_BEFORE}),
    "complaint": Kind("complaint", _complaint, {"within_hours": Param(72, 1, MAX_HOURS)}),
}
