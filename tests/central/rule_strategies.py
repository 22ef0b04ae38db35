"""Hypothesis strategies for rule-language tests: a schema, customers for it, and rules over it."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from hypothesis import strategies as st

from central.customers.rules import FieldType, Schema

AS_OF = dt.date(2025, 6, 30)
TAGS = ("loyal", "vip", "新客", "at_risk")
CITIES = ("上海", "北京", "", "a b", "A", "a", 'say "hi"')
TIERS = ("gold", "silver", "bronze")

# Field name -> (rule type, SQL column type). Numbers come in the three storage types a table uses.
FIELDS: dict[str, tuple[FieldType, Any]] = {
    "visits": (FieldType.NUMBER, sa.Integer()),
    "spend": (FieldType.NUMBER, sa.Numeric(12, 2)),
    "score": (FieldType.NUMBER, sa.Float()),
    "city": (FieldType.STRING, sa.String(40)),
    "tier": (FieldType.STRING, sa.String(40)),
    "first_on": (FieldType.DATE, sa.Date()),
    "last_on": (FieldType.DATE, sa.Date()),
    "member": (FieldType.BOOL, sa.Boolean()),
}
SCHEMA = Schema({name: kind for name, (kind, _) in FIELDS.items()})
_SAME_TYPE_PAIRS = (
    ("visits", "spend"),
    ("spend", "score"),
    ("score", "visits"),
    ("first_on", "last_on"),
    ("city", "tier"),
    ("member", "member"),
)


def customers(count: int, seed: int) -> list[dict[str, object]]:
    """Customers with every kind of value, a sixth of them null, and a random set of tags."""
    rng = random.Random(seed)

    def maybe(value: object) -> object:
        return None if rng.random() < 0.16 else value

    rows: list[dict[str, object]] = []
    for i in range(1, count + 1):
        rows.append(
            {
                "id": i,
                "visits": maybe(rng.randint(0, 30)),
                "spend": maybe(Decimal(rng.randint(0, 50_000)) / 100),
                "score": maybe(rng.randint(0, 400) / 4),
                "city": maybe(rng.choice(CITIES)),
                "tier": maybe(rng.choice(TIERS)),
                "first_on": maybe(AS_OF + dt.timedelta(days=rng.randint(-400, 0))),
                "last_on": maybe(AS_OF + dt.timedelta(days=rng.randint(-400, 60))),
                "member": maybe(rng.random() < 0.5),
                "tags": {tag for tag in TAGS if rng.random() < 0.3},
            }
        )
    return rows


def _quoted(text: str) -> st.SearchStrategy[str]:
    double = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    single = "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return st.sampled_from([double, single])


def _keyword(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.upper(), word.capitalize()])


_numbers = st.one_of(
    st.integers(-5, 520).map(str),
    st.decimals(min_value=0, max_value=500, places=2).map(str),
    st.integers(0, 400).map(lambda n: str(n / 4)),
)
_dates = st.integers(-420, 80).map(lambda d: (AS_OF + dt.timedelta(days=d)).isoformat())
_days = st.one_of(
    st.integers(-30, 420).map(str),
    st.integers(-30, 420).map(lambda n: f"{n}d"),
    st.integers(0, 60).map(lambda n: f"{n}w"),
)
_strings = st.sampled_from((*CITIES, *TIERS, "x")).flatmap(_quoted)
_LITERALS = {
    FieldType.NUMBER: _numbers,
    FieldType.DATE: _dates,
    FieldType.STRING: _strings,
    FieldType.BOOL: _keyword("true") | _keyword("false"),
}
_ORDERED = ("=", "==", "!=", "<>", "<", "<=", ">", ">=")
_EQUALITY = ("=", "==", "!=", "<>")


def _field_against_literal(name: str) -> st.SearchStrategy[str]:
    kind = FIELDS[name][0]
    ops = _EQUALITY if kind in (FieldType.STRING, FieldType.BOOL) else _ORDERED
    literal = _LITERALS[kind]
    forwards = st.tuples(st.sampled_from(ops), literal).map(lambda t: f"{name} {t[0]} {t[1]}")
    backwards = st.tuples(literal, st.sampled_from(ops)).map(lambda t: f"{t[0]} {t[1]} {name}")
    return forwards | backwards


def _in_list(name: str) -> st.SearchStrategy[str]:
    values = st.lists(_LITERALS[FIELDS[name][0]], min_size=1, max_size=5).map(", ".join)
    return st.tuples(st.sampled_from(["in", "not in", "NOT IN"]), values).map(lambda t: f"{name} {t[0]} ({t[1]})")


def _day_count() -> st.SearchStrategy[str]:
    call = st.tuples(st.sampled_from(["days_since", "days_until"]), st.sampled_from(["first_on", "last_on"])).map(
        lambda t: f"{t[0]}({t[1]})"
    )
    compare = st.tuples(call, st.sampled_from(_ORDERED), _days).map(" ".join)
    listed = st.tuples(call, st.lists(_days, min_size=1, max_size=4).map(", ".join)).map(
        lambda t: f"{t[0]} in ({t[1]})"
    )
    return compare | listed


def _atom() -> st.SearchStrategy[str]:
    plain_fields = [name for name, (kind, _) in FIELDS.items() if kind is not FieldType.BOOL]
    return st.one_of(
        st.sampled_from(list(FIELDS)).flatmap(_field_against_literal),
        st.sampled_from(plain_fields).flatmap(_in_list),
        st.tuples(st.sampled_from(_SAME_TYPE_PAIRS), st.sampled_from(_ORDERED)).map(
            lambda t: f"{t[0][0]} {t[1] if FIELDS[t[0][0]][0] in (FieldType.NUMBER, FieldType.DATE) else '='} {t[0][1]}"
        ),
        st.tuples(st.sampled_from(list(FIELDS)), st.sampled_from(["is null", "is not null", "IS NOT NULL"])).map(
            " ".join
        ),
        st.just("member"),
        st.sampled_from((*TAGS, "nobody")).flatmap(_quoted).map(lambda q: f"has_tag({q})"),
        _day_count(),
        _keyword("true") | _keyword("false"),
    )


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    joined = st.tuples(_keyword("and") | _keyword("or"), st.lists(children, min_size=2, max_size=3)).map(
        lambda t: f" {t[0]} ".join(t[1])
    )
    return st.one_of(
        joined,
        children.map(lambda c: f"({c})"),
        st.tuples(_keyword("not"), children).map(lambda t: f"{t[0]} ({t[1]})"),
        children.map(lambda c: f"{c}  # comment\n"),
    )


def rules() -> st.SearchStrategy[str]:
    """Valid rules over SCHEMA in varied spellings (case, operators, comments, constants first)."""
    return st.recursive(_atom(), _combine, max_leaves=8)
