"""No text makes the rule parser fail with anything but a RuleError, or take long."""

from __future__ import annotations

import datetime as dt
import time

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.customers.rules import DEFAULT_LIMITS, Rule, RuleError, parse_rule
from tests.central.rule_strategies import AS_OF, FIELDS, SCHEMA, rules

_TABLE = sa.Table("c", sa.MetaData(), sa.Column("id", sa.Integer), *(sa.Column(n, t) for n, (_, t) in FIELDS.items()))
_FRAGMENTS = [
    *FIELDS,
    "and", "OR", "not", "in", "is", "null", "true", "false", "days_since", "days_until", "has_tag",
    "(", ")", ",", "=", "==", "!=", "<>", "<", "<=", ">", ">=", "+", "-", "*", ".", "[", "]", "{", ":", ";",
    "0", "-1", "1.5", "007", "99999999999999999999", "30d", "2w", "5y", "2025-02-29", "2024-02-29", "2025-13-01",
    "'x'", '"上海"', "'", '"', "\\", "#", "\n", "\t", "\x00", "__class__", "__import__", "os", "eval", "lambda",
    "０", "＞", "\u200b", "é",
]  # fmt: skip


def _survives(source: str) -> Rule | None:
    """Parse ``source``; a rule that parses must also evaluate, compile to SQL and normalise stably."""
    # This thread's CPU time, not the wall clock: a loaded CI machine once stalled a parse for a second.
    started = time.thread_time()
    refusal: RuleError | None = None
    try:
        rule = parse_rule(source, SCHEMA)
    except RuleError as error:
        refusal = error
    assert time.thread_time() - started < 0.5, f"parsing took too long: {source[:200]!r}"
    if refusal is not None:
        assert refusal.reason and str(refusal)
        where = refusal.position
        assert where is None or (0 <= where.offset <= len(source) and where.line >= 1 and where.column >= 1)
        return None
    rule.predicate(AS_OF)({})
    rule.predicate(AS_OF)({"tags": {"vip"}})
    str(rule.sql(_TABLE.c, as_of=AS_OF, has_tag=lambda tag: _TABLE.c.city == tag))
    assert parse_rule(rule.normalised, SCHEMA).fingerprint == rule.fingerprint
    return rule


_FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.text(max_size=400))
def test_arbitrary_text(source: str) -> None:
    _survives(source)


@_FUZZ
@given(
    st.lists(st.sampled_from(_FRAGMENTS), max_size=80).flatmap(
        lambda parts: st.sampled_from([" ", ""]).map(lambda sep: sep.join(parts))
    )
)
def test_token_soup(source: str) -> None:
    _survives(source)


@_FUZZ
@given(rules(), st.data())
def test_mutated_valid_rules(source: str, data: st.DataObject) -> None:
    assert _survives(source) is not None
    for _ in range(3):
        at = data.draw(st.integers(0, len(source)))
        edit = data.draw(st.sampled_from(["delete", "insert", "replace"]))
        piece = data.draw(st.sampled_from(_FRAGMENTS) | st.characters())
        if edit == "delete":
            source = source[:at] + source[at + 1 :]
        elif edit == "insert":
            source = source[:at] + piece + source[at:]
        else:
            source = source[:at] + piece + source[at + 1 :]
        _survives(source)


def test_worst_cases_are_refused_or_parsed_quickly() -> None:
    limit = DEFAULT_LIMITS.max_length
    worst = [
        "(" * limit,
        "(" * (limit // 2) + ")" * (limit // 2),
        "not " * (limit // 4),
        "'" + "x" * (limit - 2) + "'",
        "visits in (" + ", ".join("1" for _ in range(limit // 3)),
        " or ".join(["member"] * (limit // 12)),
        "# " + "x" * (limit - 2),
        "\n" * limit,
        "9" * limit,
        "is_null " * (limit // 8),
        "days_since(" * (limit // 11),
        "(" * 24 + "member" + ")" * 24 + " and " + "(" * 24 + "member" + ")" * 24,
        "(" * (limit + 1),
        "x" * 10_000_000,  # refused on length before anything else is done
    ]
    for source in worst:
        _survives(source)


def test_the_deepest_allowed_rule_evaluates_within_the_recursion_limit() -> None:
    depth = DEFAULT_LIMITS.max_depth
    source = "not (" * (depth // 2) + "member" + ")" * (depth // 2)
    rule = parse_rule(source, SCHEMA)
    assert rule.predicate(AS_OF)({"member": True}) is (depth // 2 % 2 == 0)
    str(rule.sql(_TABLE.c, as_of=dt.date(2025, 1, 1)))
