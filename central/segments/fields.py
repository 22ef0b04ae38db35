"""What a segment's rule may read: the declared fields, and the SQL column each one comes from.

The fields are a live customer's statistics (amounts in currency units, rolling windows ending on
the chain's local today), golden-record attributes, a few built-in tags as values, and dates in
the chain's local time. ``has_tag("x")`` tests any tag: ``"service.high_care"`` names the tag,
``"value_tier:loyal"`` a tag with that value.

:class:`Columns` hands the rule compiler one column per field and notes which it used, so that a
rule joins only the tables it reads: ``purchases > 3`` touches ``customer_stats`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from central.customers.models import CustomerDay, CustomerStats, CustomerTag
from central.customers.rules import FieldType, Schema
from central.identity.models import Customer, GoldenAttribute
from central.models import table

N, S, D, B = FieldType.NUMBER, FieldType.STRING, FieldType.DATE, FieldType.BOOL
WINDOWS = (30, 90, 365)
_COUNTS = ("purchases", "store_purchases", "online_purchases", "app_purchases", "mini_program_purchases")
_AMOUNTS = ("spent", "store_spent", "online_spent", "app_spent", "mini_program_spent")
# Built-in tags whose value reads as a field: field name -> (tag, type).
_TAG_FIELDS = {
    "value_tier": ("value_tier", S),
    "lifecycle": ("lifecycle", S),
    "frequency": ("frequency", S),
    "channel_preference": ("channel", S),
    "time_of_day": ("time_of_day", S),
    "preferred_store": ("preferred_store", S),
    "rfm_r": ("rfm.r", N),
    "rfm_f": ("rfm.f", N),
    "rfm_m": ("rfm.m", N),
    "weekend_shopper": ("weekend_shopper", B),
    "high_care": ("service.high_care", B),
}
_GOLDEN = {"gender": S, "city": S, "postcode": S, "birthday": D}
# Coarse forms of golden attributes that roles seeing data masked see only coarsely: field -> (attribute, characters).
_COARSE = {"birth_year": ("birthday", 4), "postcode_area": ("postcode", 3)}

FIELDS: dict[str, FieldType] = {
    **dict.fromkeys(_COUNTS, N),
    **dict.fromkeys(_AMOUNTS, N),
    **{f"{what}_{n}d": N for n in WINDOWS for what in ("purchases", "spent")},
    "first_purchase_on": D,
    "last_purchase_on": D,
    "first_seen_on": D,
    "last_seen_on": D,
    **_GOLDEN,
    "birth_year": N,
    "postcode_area": S,
    **{name: kind for name, (_, kind) in _TAG_FIELDS.items()},
}
SCHEMA = Schema(FIELDS)
"""The schema every segment rule is parsed against."""

MASKED_SCHEMA = Schema(
    {name: kind for name, kind in FIELDS.items() if name not in ("birthday", "postcode")},
    withheld={
        "birthday": "your role sees birthdays as their year only: use birth_year",
        "postcode": "your role sees postcodes as their first three digits only: use postcode_area",
    },
)
"""What a rule written by a role that sees data masked may read: a birthday or a postcode only as
coarsely as that role is shown them. With the whole date, the rule's members (or counts) would
answer a bisection: is this customer born after 1959-06-30, after 1959-03-31, ... (nine saves)."""


def schema_for(unmasked: bool) -> Schema:
    """The schema a user's rules are checked against: every field for those who see data in full."""
    return SCHEMA if unmasked else MASKED_SCHEMA


customers = table(Customer)
_stats = table(CustomerStats)
_days = table(CustomerDay)
_tags = table(CustomerTag)
_golden = table(GoldenAttribute)


@dataclass(frozen=True)
class Dialect:
    """How local dates are spelt on this database, and the chain's offset from UTC."""

    postgres: bool
    offset_minutes: int

    def local_date(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """The chain's local date of a UTC timestamp column, comparable with a bound date."""
        minutes = int(self.offset_minutes)
        if self.postgres:
            shifted = sa.func.timezone("UTC", column) + sa.literal_column(f"interval '{minutes} minutes'")
            return sa.cast(shifted, sa.Date)
        return sa.func.date(column, f"{minutes:+d} minutes")

    def text_date(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """An ISO date held as text (a golden birthday), comparable with a bound date."""
        return sa.cast(column, sa.Date) if self.postgres else column


class Columns(Mapping[str, ColumnElement[Any]]):
    """Field name to column for the rule compiler; remembers which joins the fields it was asked for need."""

    def __init__(self, dialect: Dialect, today: date) -> None:
        self.dialect = dialect
        self.today = today
        self.joins: dict[str, sa.FromClause] = {}

    def __len__(self) -> int:
        return len(FIELDS)

    def __iter__(self) -> Iterator[str]:
        return iter(FIELDS)

    def __getitem__(self, name: str) -> ColumnElement[Any]:
        if name not in FIELDS:
            raise KeyError(name)
        if name in _COUNTS:
            return sa.func.coalesce(self._stats().c[name], 0)
        if name in _AMOUNTS:
            return sa.func.coalesce(self._stats().c[name], 0) / 100.0
        if name.startswith(("purchases_", "spent_")):
            window = sa.func.coalesce(self._windows().c[name], 0)
            return window / 100.0 if name.startswith("spent_") else window
        if name in ("first_purchase_on", "last_purchase_on"):
            stats = self._stats()
            return self.dialect.local_date(stats.c[name.replace("_on", "_at")])
        if name in ("first_seen_on", "last_seen_on"):
            return self.dialect.local_date(customers.c[name.replace("_on", "_at")])
        if name in _COARSE:
            attribute, characters = _COARSE[name]
            start = sa.func.substr(
                self._keyed("golden", attribute, _golden, _golden.c.attribute).c.value, 1, characters
            )
            return sa.cast(start, sa.Integer) if FIELDS[name] is N else start
        if name in _GOLDEN:
            value = self._keyed("golden", name, _golden, _golden.c.attribute).c.value
            return self.dialect.text_date(value) if _GOLDEN[name] is D else value
        tag, kind = _TAG_FIELDS[name]
        value = self._keyed("tag", tag, _tags, _tags.c.tag).c.value
        if kind is N:
            return sa.cast(value, sa.Integer)
        if kind is B:
            return sa.case((value == "yes", sa.true()), else_=sa.false())
        return value

    def _stats(self) -> sa.FromClause:
        if "stats" not in self.joins:
            self.joins["stats"] = _stats.alias("st")
        return self.joins["stats"]

    def _windows(self) -> sa.FromClause:
        if "windows" not in self.joins:
            sums = []
            for n in WINDOWS:
                inside = _days.c.day >= self.today - timedelta(days=n - 1)
                sums.append(sa.func.sum(sa.case((inside, _days.c.purchases), else_=0)).label(f"purchases_{n}d"))
                sums.append(sa.func.sum(sa.case((inside, _days.c.spent), else_=0)).label(f"spent_{n}d"))
            oldest = self.today - timedelta(days=max(WINDOWS) - 1)
            self.joins["windows"] = (
                sa.select(_days.c.customer_id, *sums)
                .where(_days.c.day >= oldest)
                .group_by(_days.c.customer_id)
                .subquery("win")
            )
        return self.joins["windows"]

    def _keyed(self, prefix: str, key: str, source: sa.Table, key_column: sa.Column[Any]) -> sa.FromClause:
        name = f"{prefix}:{key}"
        if name not in self.joins:
            alias = f"{prefix}_{len(self.joins)}"
            self.joins[name] = sa.select(source).where(key_column == key).subquery(alias)
        return self.joins[name]

    def has_tag(self, tag: str) -> ColumnElement[bool]:
        """The live customer carries tag ``tag`` (``"name"``, or ``"name:value"`` for one value)."""
        name, colon, value = tag.partition(":")
        condition = sa.and_(_tags.c.customer_id == customers.c.id, _tags.c.tag == name)
        if colon:
            condition = sa.and_(condition, _tags.c.value == value)
        return sa.exists().where(condition)

    def from_clause(self) -> sa.FromClause:
        """``customers`` with a LEFT JOIN for each source the rule read."""
        joined: sa.FromClause = customers
        for source in self.joins.values():
            joined = joined.outerjoin(source, source.c.customer_id == customers.c.id)
        return joined
