"""The Python form and the SQL form of every rule select the same customers, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from sqlalchemy.pool import NullPool

from central.customers.rules import RuleError, parse_rule
from tests.central.rule_strategies import AS_OF, FIELDS, SCHEMA, customers, rules
from tests.conftest import fresh_postgres_database

CUSTOMERS = customers(400, seed=20250630)


@dataclass
class Database:
    """A database holding CUSTOMERS in a customers table and a tags table."""

    engine: sa.Engine
    customers: sa.Table
    tags: sa.Table

    def select(self, condition: sa.ColumnElement[bool]) -> set[int]:
        with self.engine.connect() as conn:
            return set(conn.scalars(sa.select(self.customers.c.id).where(condition)))

    def has_tag(self, tag: str) -> sa.ColumnElement[bool]:
        return sa.exists().where(self.tags.c.customer_id == self.customers.c.id, self.tags.c.tag == tag)


def _load(url: str) -> Database:
    metadata = sa.MetaData()
    table = sa.Table(
        "rule_customers",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        *(sa.Column(name, kind) for name, (_, kind) in FIELDS.items()),
    )
    tags = sa.Table(
        "rule_customer_tags",
        metadata,
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("tag", sa.String(40), nullable=False),
    )
    engine = sa.create_engine(url, poolclass=NullPool)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{k: v for k, v in row.items() if k != "tags"} for row in CUSTOMERS])
        conn.execute(
            tags.insert(),
            [{"customer_id": row["id"], "tag": tag} for row in CUSTOMERS for tag in row["tags"]],  # type: ignore[attr-defined]
        )
    return Database(engine, table, tags)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("rules") / "rules.db"
        db = _load(f"sqlite:///{path}")
        yield db
        db.engine.dispose()
        return
    with fresh_postgres_database("cdp_rules") as url:
        db = _load(url)
        yield db
        db.engine.dispose()


def _python_selection(source: str) -> set[int]:
    predicate = parse_rule(source, SCHEMA).predicate(AS_OF)
    return {int(row["id"]) for row in CUSTOMERS if predicate(row)}  # type: ignore[call-overload]


def _sql_selection(database: Database, source: str) -> set[int]:
    rule = parse_rule(source, SCHEMA)
    return database.select(rule.sql(database.customers.c, as_of=AS_OF, has_tag=database.has_tag))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=rules())
def test_python_and_sql_select_the_same_customers(database: Database, source: str) -> None:
    expected = _python_selection(source)
    assert _sql_selection(database, source) == expected, parse_rule(source, SCHEMA).normalised
    # The normalised spelling means the same thing.
    normalised = parse_rule(source, SCHEMA).normalised
    assert parse_rule(normalised, SCHEMA).normalised == normalised
    assert _python_selection(normalised) == expected


@pytest.mark.parametrize(
    "source",
    [
        "spend > 250.5",
        "score >= 50.25 and score < 51",
        "visits >= spend",
        "spend <= score",
        "not (member and has_tag('vip'))",
        "days_since(last_on) > 300d or days_until(last_on) in (0, 1, 2, 3)",
        "city in ('上海', '') or tier not in ('gold')",
        "last_on > first_on or first_on is null",
        "not member or city = 'say \"hi\"'",
    ],
)
def test_hand_picked_rules_agree(database: Database, source: str) -> None:
    selected = _python_selection(source)
    assert 0 < len(selected) < len(CUSTOMERS)  # the rule tells customers apart
    assert _sql_selection(database, source) == selected


def test_sql_needs_a_column_per_field_and_a_tag_source(database: Database) -> None:
    rule = parse_rule("visits > 1 and has_tag('vip')", SCHEMA)
    with pytest.raises(RuleError) as caught:
        rule.sql({"visits": database.customers.c.visits}, as_of=AS_OF)
    assert caught.value.reason == "no_tag_source"
    with pytest.raises(RuleError) as caught:
        rule.sql({}, as_of=AS_OF, has_tag=database.has_tag)
    assert caught.value.reason == "no_column"
