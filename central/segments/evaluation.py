"""Counting and evaluating segments in the database, set-based whatever the number of customers.

A segment's audience is the live customers (not merged away) whose data the rule selects and whom
the consent gate (:func:`central.customers.consent_gate.consented`) lets marketing reach on the
segment's channel today. An evaluation writes that audience to a temporary table once, then four
statements compute the difference with the stored members: the customers who left get a ``left``
row and lose their membership, the newcomers get an ``entered`` row and a membership. A
withdrawal of consent or a merge therefore takes the customer out at the next evaluation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from central.customers.consent_gate import consented
from central.db import rows_changed
from central.models import table
from central.segments.definitions import PURPOSE, SegmentError, check_rule
from central.segments.fields import SCHEMA, Columns, Dialect, customers
from central.segments.models import ENTERED, LEFT, Segment, SegmentMember, SegmentMembershipEvent

log = logging.getLogger(__name__)
_segments = table(Segment)
_members = table(SegmentMember)
_history = table(SegmentMembershipEvent)
_TARGET = "segment_target"
_target = sa.table(_TARGET, sa.column("customer_id", sa.Integer), sa.column("fresh", sa.Boolean))


def local_today(now: datetime, offset_minutes: int) -> date:
    """The chain's local date at ``now`` (the day rules and the consent gate are judged on)."""
    return (now + timedelta(minutes=offset_minutes)).date()


@dataclass(frozen=True)
class Count:
    """A rule's live count: customers it selects, and how many of them marketing may reach on the channel."""

    matching: int
    reachable: int

    def to_json(self) -> dict[str, int]:
        return {"matching": self.matching, "reachable": self.reachable}


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: the segment's version, members after it, and who entered and left."""

    version: int
    members: int
    entered: int
    left: int

    def to_json(self) -> dict[str, int]:
        return {"version": self.version, "members": self.members, "entered": self.entered, "left": self.left}


def matching(db: Session, rule_source: str, today: date, offset_minutes: int) -> sa.Select[Any]:
    """The ids of live customers the rule selects on ``today`` (no consent applied)."""
    rule = check_rule(rule_source).rule(SCHEMA)
    columns = Columns(Dialect(db.get_bind().dialect.name == "postgresql", offset_minutes), today)
    condition = rule.sql(columns, as_of=today, has_tag=columns.has_tag)
    return (
        sa.select(customers.c.id).select_from(columns.from_clause()).where(customers.c.merged_into.is_(None), condition)
    )


def _parts(db: Session, rule_source: str, channel: str, today: date, offset_minutes: int) -> tuple[Any, Any]:
    # Both sides computed once each (MATERIALIZED): PostgreSQL underestimates the consent ranking by
    # orders of magnitude and would otherwise walk nested loops from it into every joined table.
    selected = matching(db, rule_source, today, offset_minutes).cte("selected").prefix_with("MATERIALIZED")
    reachable = consented(PURPOSE, channel, today).cte("reachable").prefix_with("MATERIALIZED")
    return selected, reachable


def audience(db: Session, rule_source: str, channel: str, today: date, offset_minutes: int) -> sa.Select[Any]:
    """The ids of live customers the rule selects whom marketing may reach on ``channel``."""
    selected, reachable = _parts(db, rule_source, channel, today, offset_minutes)
    return sa.select(selected.c.id).where(selected.c.id.in_(sa.select(reachable.c.owner)))


def count(db: Session, rule_source: str, channel: str, today: date, offset_minutes: int) -> Count:
    """The live count of a rule, saved or not (the console's builder previews with this)."""
    selected, reachable = _parts(db, rule_source, channel, today, offset_minutes)
    # IN rather than a join of the two: SQLite indexes an IN list once, but would scan a CTE per row.
    reached = sa.case((selected.c.id.in_(sa.select(reachable.c.owner)), 1), else_=0)
    row = db.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(reached), 0))).one()
    return Count(int(row[0]), int(row[1]))


def _temporary(db: Session) -> str:
    return "pg_temp" if db.get_bind().dialect.name == "postgresql" else "temp"


def _create_target(db: Session) -> None:
    # A temporary table: private to this connection, not logged on PostgreSQL, gone with a rollback.
    db.execute(sa.text(f"DROP TABLE IF EXISTS {_temporary(db)}.{_TARGET}"))
    db.execute(sa.text(f"CREATE TEMPORARY TABLE {_TARGET} (customer_id integer PRIMARY KEY, fresh boolean)"))


def evaluate(db: Session, name: str, now: datetime, offset_minutes: int) -> Evaluation:
    """Materialise segment ``name``'s members as of ``now`` and record who entered and left; the caller commits."""
    # FOR UPDATE: two evaluations of one segment (the job and a user) take turns on PostgreSQL; SQLite
    # serialises writers anyway.
    segment = db.execute(sa.select(_segments).where(_segments.c.name == name).with_for_update()).first()
    if segment is None:
        raise SegmentError("not_found", f"no segment named {name!r}")
    today = local_today(now, offset_minutes)
    _create_target(db)
    db.execute(
        sa.insert(_target).from_select(
            ["customer_id"], audience(db, segment.rule, segment.channel, today, offset_minutes)
        )
    )
    sid = segment.id
    if db.get_bind().dialect.name == "postgresql":
        db.execute(sa.text(f"ANALYZE {_TARGET}"))  # autovacuum never sees temporary tables
    before = int(db.scalar(sa.select(sa.func.count()).where(_members.c.segment_id == sid)) or 0)
    at, version = sa.literal(now, _history.c.at.type), sa.literal(segment.version)
    columns = ["segment_id", "customer_id", "change", "at", "version"]
    # Leavers: members the audience no longer holds.
    stays = sa.exists().where(_target.c.customer_id == _members.c.customer_id)
    leaving = sa.select(sa.literal(sid), _members.c.customer_id, sa.literal(LEFT), at, version)
    db.execute(sa.insert(_history).from_select(columns, leaving.where(_members.c.segment_id == sid, ~stays)))
    left = rows_changed(db.execute(sa.delete(_members).where(_members.c.segment_id == sid, ~stays)))
    # Newcomers are marked first: an INSERT into segment_members that tested segment_members itself
    # would rescan the rows it had just written, once per row, on PostgreSQL.
    is_member = sa.exists().where(_members.c.segment_id == sid, _members.c.customer_id == _target.c.customer_id)
    db.execute(sa.update(_target).where(~is_member).values(fresh=True))
    fresh = _target.c.fresh.is_(True)
    entering = sa.select(sa.literal(sid), _target.c.customer_id, sa.literal(ENTERED), at, version).where(fresh)
    db.execute(sa.insert(_history).from_select(columns, entering))
    newcomers = sa.select(sa.literal(sid), _target.c.customer_id, sa.literal(now, _members.c.entered_at.type))
    db.execute(sa.insert(_members).from_select(["segment_id", "customer_id", "entered_at"], newcomers.where(fresh)))
    members = int(db.scalar(sa.select(sa.func.count()).select_from(_target)) or 0)
    # Counted rather than read from INSERT ... SELECT's rowcount, which psycopg does not always report.
    entered = members - (before - left)
    db.execute(sa.text(f"DROP TABLE {_temporary(db)}.{_TARGET}"))
    db.execute(
        sa.update(_segments)
        .where(_segments.c.id == sid)
        .values(evaluated_at=now, evaluated_version=segment.version, members=members)
    )
    return Evaluation(segment.version, members, entered, left)


def evaluate_all(db: Session, now: datetime, offset_minutes: int) -> dict[str, int]:
    """Evaluate every segment, committing each; counts of segments evaluated and refused, entries and exits."""
    names = list(db.scalars(sa.select(_segments.c.name).order_by(_segments.c.name)))
    db.commit()
    totals = {"segments": 0, "entered": 0, "left": 0, "refused": 0}
    for name in names:
        try:
            done = evaluate(db, name, now, offset_minutes)
        except SegmentError as exc:
            # A rule that no longer parses (a field retired) keeps its last members; the others go on.
            db.rollback()
            log.warning("segment %s not evaluated: %s", name, exc)
            totals["refused"] += 1
            continue
        db.commit()
        totals["segments"] += 1
        totals["entered"] += done.entered
        totals["left"] += done.left
    return totals


def history_page(db: Session, segment_id: int, before: int | None = None, limit: int = 100) -> list[Any]:
    """Membership changes, newest first, with ids below ``before`` (keyset pagination)."""
    query = sa.select(_history).where(_history.c.segment_id == segment_id)
    if before is not None:
        query = query.where(_history.c.id < before)
    return list(db.execute(query.order_by(_history.c.id.desc()).limit(limit)))
