"""Scheduled jobs' leases and run records: one instance runs a job at a time, and everyone can see how it went.

Several central instances may serve one database, each with its own scheduler. Before a job runs,
its instance takes the job's lease:

* PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a connection held for
  the run; it is released when the run ends, or by the server when the instance dies.
* SQLite: a row of ``job_leases`` naming the holder with an expiry, taken in one ``BEGIN
  IMMEDIATE`` transaction and renewed as the run reports progress; a crashed holder's lease lapses
  after ``scheduler.lease_seconds``.

An instance that cannot take the lease skips that run. Each run that did take it leaves a row of
``job_runs``: started, finished, status (``running``, ``ok``, ``failed``), counts and error.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Connection, Engine, String, delete, func, insert, or_, select, text, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from central.errors import summary
from central.models import Base, BigId, UTCDateTime, table

log = logging.getLogger(__name__)

RUNNING, OK, FAILED = "running", "ok", "failed"
MAX_ERROR = 1000


class JobLease(Base):
    """Who holds a job's lease on SQLite, and until when (PostgreSQL uses advisory locks instead)."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class JobRun(Base):
    """One run of a scheduled job by one instance: its progress while running, its result after."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    instance: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(MAX_ERROR))


_leases = table(JobLease)
_runs = table(JobRun)


def advisory_key(name: str) -> int:
    """The signed 64-bit PostgreSQL advisory lock key of job ``name``."""
    return int.from_bytes(hashlib.sha256(f"central-job:{name}".encode()).digest()[:8], "big", signed=True)


@dataclass
class Lease:
    """A held lease; ``renew`` extends a SQLite lease, ``release`` gives it up."""

    name: str
    holder: str
    engine: Engine
    clock: Callable[[], datetime]
    seconds: float
    conn: Connection | None = None  # PostgreSQL: the connection holding the advisory lock

    def renew(self) -> bool:
        """Extend the lease; False if another instance took it over (a SQLite lease that lapsed)."""
        if self.conn is not None:
            return True
        with self.engine.begin() as conn:
            result = conn.execute(
                update(_leases)
                .where(_leases.c.name == self.name, _leases.c.holder == self.holder)
                .values(expires_at=self.clock() + timedelta(seconds=self.seconds))
            )
            return bool(result.rowcount)

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": advisory_key(self.name)})
                self.conn.commit()
            finally:
                self.conn.close()
            return
        with self.engine.begin() as conn:
            conn.execute(delete(_leases).where(_leases.c.name == self.name, _leases.c.holder == self.holder))


def acquire(engine: Engine, name: str, holder: str, clock: Callable[[], datetime], seconds: float) -> Lease | None:
    """Take job ``name``'s lease for ``holder``, or None if another instance holds it."""
    if engine.dialect.name == "postgresql":
        conn = engine.connect()
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": advisory_key(name)}).scalar()
            conn.commit()
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return None
        return Lease(name, holder, engine, clock, seconds, conn)
    now = clock()
    until = now + timedelta(seconds=seconds)
    with engine.begin() as conn:
        row = conn.execute(select(_leases.c.holder, _leases.c.expires_at).where(_leases.c.name == name)).first()
        if row is None:
            conn.execute(insert(_leases).values(name=name, holder=holder, expires_at=until))
        elif row.holder == holder or row.expires_at <= now:
            conn.execute(
                update(_leases)
                .where(_leases.c.name == name, or_(_leases.c.holder == holder, _leases.c.expires_at <= now))
                .values(holder=holder, expires_at=until)
            )
        else:
            return None
    return Lease(name, holder, engine, clock, seconds)


@dataclass
class RunContext:
    """What a job function gets: a session factory, the clock, and a way to report progress."""

    sessions: sessionmaker[Session]
    clock: Callable[[], datetime]
    settings: Any
    run_id: int
    lease: Lease
    counts: dict[str, int] = field(default_factory=dict)

    def progress(self, **counts: int) -> None:
        """Add to the run's counts, store them for the API and renew the lease."""
        for key, value in counts.items():
            self.counts[key] = self.counts.get(key, 0) + value
        with self.sessions() as db:
            db.execute(
                update(_runs).where(_runs.c.id == self.run_id).values(counts=dict(self.counts), updated_at=self.clock())
            )
            db.commit()
        self.lease.renew()


JobFunction = Callable[[RunContext], None]


@contextmanager
def _leased(
    engine: Engine, name: str, holder: str, clock: Callable[[], datetime], seconds: float
) -> Iterator[Lease | None]:
    lease = acquire(engine, name, holder, clock, seconds)
    try:
        yield lease
    finally:
        if lease is not None:
            lease.release()


def run_job(
    sessions: sessionmaker[Session],
    name: str,
    func: JobFunction,
    *,
    instance: str,
    clock: Callable[[], datetime],
    lease_seconds: float,
    settings: Any = None,
    unless_ran_within: timedelta | None = None,
) -> str | None:
    """Run ``func`` under job ``name``'s lease; its final status, or None if it did not run here.

    It does not run when another instance holds the lease, nor, with ``unless_ran_within``, when a
    run of the job (on any instance) succeeded that recently: instances serving one database keep
    their own timers, and without this each would run an hourly job once an hour.
    """
    engine = sessions.kw["bind"]
    with _leased(engine, name, instance, clock, lease_seconds) as lease:
        if lease is None:
            log.debug("job %s is running on another instance; skipped here", name)
            return None
        if unless_ran_within is not None and _ran_since(sessions, name, clock() - unless_ran_within):
            log.debug("job %s ran less than %s ago; skipped here", name, unless_ran_within)
            return None
        with sessions() as db:
            started = clock()
            run_id = db.execute(
                insert(_runs)
                .values(name=name, instance=instance, started_at=started, updated_at=started, status=RUNNING, counts={})
                .returning(_runs.c.id)
            ).scalar_one()
            db.commit()
        context = RunContext(sessions, clock, settings, run_id, lease)
        status, error = OK, None
        try:
            func(context)
        except Exception as exc:
            status = FAILED
            error = summary(exc)[:MAX_ERROR]
            log.error("job %s failed: %s", name, summary(exc))
        with sessions() as db:
            finished = clock()
            db.execute(
                update(_runs)
                .where(_runs.c.id == run_id)
                .values(status=status, finished_at=finished, updated_at=finished, counts=context.counts, error=error)
            )
            db.commit()
        if any(context.counts.values()) or status != OK:
            log.info("job %s %s: %s", name, status, context.counts)
        return status


def _ran_since(sessions: sessionmaker[Session], name: str, since: datetime) -> bool:
    """Whether a run of job ``name`` that started at or after ``since`` succeeded."""
    with sessions() as db:
        newest = db.scalar(select(func.max(_runs.c.started_at)).where(_runs.c.name == name, _runs.c.status == OK))
    return newest is not None and newest >= since


def last_runs(db: Session, names: list[str], per_job: int = 1) -> dict[str, list[Any]]:
    """The newest ``per_job`` runs of each named job, newest first."""
    out: dict[str, list[Any]] = {name: [] for name in names}
    for name in names:
        rows = db.execute(select(_runs).where(_runs.c.name == name).order_by(_runs.c.id.desc()).limit(per_job))
        out[name] = list(rows)
    return out


def run_json(row: Any) -> dict[str, Any]:
    """A run row as the API shows it."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if value else None

    return {
        "id": row.id,
        "instance": row.instance,
        "status": row.status,
        "started_at": iso(row.started_at),
        "updated_at": iso(row.updated_at),
        "finished_at": iso(row.finished_at),
        "counts": row.counts,
        "error": row.error,
    }
