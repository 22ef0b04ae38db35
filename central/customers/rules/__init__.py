"""Custom tags and segments as data: a small rule language over a customer's statistics and attributes.

    spend_90d >= 300 and days_since(last_purchase_on) <= 30d
      and (channel in ("online", "app") or has_tag("loyal")) and not is_staff

A rule is parsed by a tokenizer and a recursive-descent parser (grammar in :mod:`.parser`) against a
declared schema; there is no ``eval`` and no Python syntax. It can read only declared fields and
the customer's tags, call three fixed functions, and is bounded in length, nesting and list size
(:class:`Limits`). Every refusal is a :class:`RuleError` with a reason code and a line and column.
A checked :class:`Rule` compiles to a Python predicate and to a SQLAlchemy condition that agree,
null for null; :class:`RuleDefinition` versions it by the fingerprint of its normalised text.
"""

from central.customers.rules.closure import Customer, Predicate
from central.customers.rules.definition import Rule, RuleDefinition, parse_rule
from central.customers.rules.errors import DEFAULT_LIMITS, Limits, Position, RuleError
from central.customers.rules.schema import FUNCTIONS, FieldType, Schema
from central.customers.rules.sql import TagTest

__all__ = [
    "DEFAULT_LIMITS",
    "FUNCTIONS",
    "Customer",
    "FieldType",
    "Limits",
    "Position",
    "Predicate",
    "Rule",
    "RuleDefinition",
    "RuleError",
    "Schema",
    "TagTest",
    "parse_rule",
]
