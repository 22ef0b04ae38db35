"""A checked rule as a Python closure over one customer's fields, with SQL's three-valued logic.

A missing or null field makes a comparison *unknown* (None); 'not unknown' is unknown, 'and' and
'or' follow Kleene's tables, and only a definite True matches: the same answers a database gives
for the SQL form of the rule, so both can be used interchangeably.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from central.customers.rules.errors import RuleError
from central.customers.rules.schema import FieldType, Schema
from central.customers.rules.tree import (
    And,
    Compare,
    Constant,
    DayCount,
    FieldRef,
    HasTag,
    InList,
    IsNull,
    Node,
    Not,
    Or,
    Truth,
)

Customer = Mapping[str, object]
Predicate = Callable[[Customer], bool]
_Check = Callable[[Customer], bool | None]
_Read = Callable[[Customer], object]

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _accepts(kind: FieldType, value: object) -> bool:
    if kind is FieldType.NUMBER:
        return isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    if kind is FieldType.DATE:
        return isinstance(value, dt.date) and not isinstance(value, dt.datetime)
    if kind is FieldType.STRING:
        return isinstance(value, str)
    return isinstance(value, bool)


def _reader(field: FieldRef) -> _Read:
    name, kind = field.name, field.type

    def read(customer: Customer) -> object:
        value = customer.get(name)
        if value is None or _accepts(kind, value):
            return value
        raise RuleError(
            "bad_value", f"field '{name}' holds a {type(value).__name__}; the schema declares a {kind.value}"
        )

    return read


def _days_reader(count: DayCount, as_of: dt.date) -> _Read:
    read = _reader(count.field)
    since = count.function == "days_since"

    def days(customer: Customer) -> object:
        value = read(customer)
        if value is None:
            return None
        assert isinstance(value, dt.date)
        return (as_of - value).days if since else (value - as_of).days

    return days


def _operand(operand: FieldRef | DayCount, as_of: dt.date) -> _Read:
    return _days_reader(operand, as_of) if isinstance(operand, DayCount) else _reader(operand)


def _aligned(left: object, right: object) -> tuple[object, object]:
    # Databases compare a float with an exact number as two floats; do the same so both forms agree.
    if isinstance(left, float) and isinstance(right, int | Decimal):
        return left, float(right)
    if isinstance(right, float) and isinstance(left, int | Decimal):
        return float(left), right
    return left, right


def _compare(node: Compare, as_of: dt.date) -> _Check:
    left = _operand(node.left, as_of)
    test = _OPERATORS[node.op]
    if isinstance(node.right, FieldRef):
        right = _reader(node.right)

        def fields(customer: Customer) -> bool | None:
            a, b = left(customer), right(customer)
            return None if a is None or b is None else test(*_aligned(a, b))

        return fields
    constant = node.right.value
    as_float = float(constant) if isinstance(constant, Decimal) else None

    def against_constant(customer: Customer) -> bool | None:
        value = left(customer)
        if value is None:
            return None
        return test(value, as_float if as_float is not None and isinstance(value, float) else constant)

    return against_constant


def _in_list(node: InList, as_of: dt.date) -> _Check:
    read = _operand(node.operand, as_of)
    exact = frozenset(literal.value for literal in node.values)
    floats = frozenset(float(v) for v in exact if isinstance(v, Decimal))
    negated = node.negated

    def check(customer: Customer) -> bool | None:
        value = read(customer)
        if value is None:
            return None
        found = value in (floats if isinstance(value, float) else exact)
        return found != negated

    return check


def _has_tag(node: HasTag, tags_field: str | None) -> _Check:
    tag = node.tag

    def check(customer: Customer) -> bool:
        tags = customer.get(tags_field) if tags_field else None
        if tags is None:
            return False
        if isinstance(tags, str | bytes) or not hasattr(tags, "__contains__"):
            raise RuleError("bad_value", f"field '{tags_field}' must hold a collection of tag names")
        return tag in tags

    return check


def _all(parts: list[_Check]) -> _Check:
    def check(customer: Customer) -> bool | None:
        unknown = False
        for part in parts:
            result = part(customer)
            if result is False:
                return False
            unknown = unknown or result is None
        return None if unknown else True

    return check


def _any(parts: list[_Check]) -> _Check:
    def check(customer: Customer) -> bool | None:
        unknown = False
        for part in parts:
            result = part(customer)
            if result is True:
                return True
            unknown = unknown or result is None
        return None if unknown else False

    return check


def _negate(part: _Check) -> _Check:
    def check(customer: Customer) -> bool | None:
        result = part(customer)
        return None if result is None else not result

    return check


def _build(node: Node, schema: Schema, as_of: dt.date) -> _Check:
    if isinstance(node, Compare):
        return _compare(node, as_of)
    if isinstance(node, InList):
        return _in_list(node, as_of)
    if isinstance(node, IsNull):
        read, negated = _reader(node.field), node.negated
        return lambda customer: (read(customer) is None) != negated
    if isinstance(node, Truth):
        read_bool = _reader(node.field)
        return lambda customer: read_bool(customer)  # type: ignore[return-value]  # checked as bool | None
    if isinstance(node, HasTag):
        return _has_tag(node, schema.tags_field)
    if isinstance(node, Constant):
        value = node.value
        return lambda customer: value
    if isinstance(node, Not):
        return _negate(_build(node.operand, schema, as_of))
    if isinstance(node, And):
        return _all([_build(child, schema, as_of) for child in node.operands])
    assert isinstance(node, Or)
    return _any([_build(child, schema, as_of) for child in node.operands])


def compile_predicate(node: Node, schema: Schema, as_of: dt.date) -> Predicate:
    """A function telling whether a customer's fields satisfy the rule on day ``as_of``."""
    check = _build(node, schema, as_of)

    def predicate(customer: Customer) -> bool:
        return check(customer) is True

    return predicate
