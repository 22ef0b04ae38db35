"""Retention: what central keeps only for a while, deleted by the ``retention`` job in bounded chunks.

* Agents' heartbeat events (``agent.heartbeat`` in ``events``) after ``retention.heartbeat_days``,
  except each device's newest (the one ``devices.heartbeat_seq`` names; the fleet pages read its
  copy in ``devices.last_heartbeat``). A heartbeat is about the agent, not about a customer.
* ``job_runs`` after ``retention.job_run_days``, except each job's latest run (``/api/v1/jobs``
  and the console show it, and the nightly ``tags`` job decides from it whether it is overdue).
* ``login_failures`` whose window has passed: they no longer count (a new failure starts afresh).
* ``webhook_deliveries`` delivered, dead-lettered or cancelled more than ``retention.webhook_days``
  ago; pending calls stay.
* ``enroll_tokens`` used, revoked or expired more than ``retention.enroll_token_days`` ago.

The audit log is never purged: it is the evidence of who saw or changed what, and its hash chain
would show a gap. Customer data is never purged here either: it goes by erasure, not by age.

Each chunk is found through an index and deleted in a transaction of its own (``retention.chunk``
rows), so a large backlog after an upgrade is worked off without long locks. ``job_runs`` is walked
from its oldest id (ids grow with time) and ``login_failures`` and ``enroll_tokens`` are read
whole: both stay small, the first because this job empties it of everything but the current
window, the second because it holds one row per enrollment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import takewhile
from typing import Any

from sqlalchemy import Select, and_, delete, exists, or_, select
from sqlalchemy.orm import Session, sessionmaker

from central.accounts.models import LoginFailures
from central.campaigns.models import DEAD, DELIVERED, WebhookDelivery
from central.campaigns.webhooks import CANCELLED
from central.db import rows_changed
from central.fleet.models import Device, EnrollToken
from central.ingest.models import Event
from central.jobs import JobRun
from central.models import table

HEARTBEAT = "agent.heartbeat"

_events = table(Event)
_devices = table(Device)
_runs = table(JobRun)
_failures = table(LoginFailures)
_deliveries = table(WebhookDelivery)
_tokens = table(EnrollToken)


@dataclass(frozen=True, slots=True)
class Policy:
    """How long each kind of row is kept, and how many rows one transaction deletes."""

    heartbeats: timedelta
    job_runs: timedelta
    login_window: timedelta
    webhooks: timedelta
    enroll_tokens: timedelta
    chunk: int


Progress = Callable[..., None]


def _drain(sessions: sessionmaker[Session], find: Callable[[Session], Sequence[Any]], table_: Any) -> int:
    """Delete the ids ``find`` returns, a chunk per transaction, until it returns none; how many went."""
    gone = 0
    while True:
        with sessions() as db:
            ids = list(find(db))
            if not ids:
                return gone
            db.execute(delete(table_).where(table_.c.id.in_(ids)))
            db.commit()
        gone += len(ids)


def _ids(query: Select[Any]) -> Callable[[Session], Sequence[Any]]:
    """A finder that runs ``query`` (one chunk of ids) in the session it is given."""
    return lambda db: db.scalars(query).all()


def purge_heartbeats(sessions: sessionmaker[Session], now: datetime, policy: Policy) -> int:
    """Delete heartbeat events observed before the cutoff, keeping each device's newest."""
    newest = exists().where(_devices.c.device_id == _events.c.device_id, _devices.c.heartbeat_seq == _events.c.seq)
    # (kind, observed_at) leads ix_events_kind_observed_at_store_id: a range scan of old heartbeats only.
    query = (
        select(_events.c.id)
        .where(_events.c.kind == HEARTBEAT, _events.c.observed_at < now - policy.heartbeats, ~newest)
        .order_by(_events.c.observed_at)
        .limit(policy.chunk)
    )
    return _drain(sessions, _ids(query), _events)


def purge_job_runs(sessions: sessionmaker[Session], now: datetime, policy: Policy) -> int:
    """Delete finished job runs started before the cutoff, keeping each job's latest run."""
    cutoff = now - policy.job_runs
    after = 0  # the walk goes on past the runs it keeps

    def find(db: Session) -> list[int]:
        nonlocal after
        # From the oldest id up: the rows to go come first, and the walk ends at the first recent one.
        rows = db.execute(
            select(_runs.c.id, _runs.c.name, _runs.c.started_at)
            .where(_runs.c.id > after)
            .order_by(_runs.c.id)
            .limit(policy.chunk)
        ).all()
        old = list(takewhile(lambda row: row.started_at < cutoff, rows))
        if not old:
            return []
        latest = {
            name: db.scalar(select(_runs.c.id).where(_runs.c.name == name).order_by(_runs.c.id.desc()).limit(1))
            for name in {row.name for row in old}
        }
        after = old[-1].id
        doomed = [row.id for row in old if row.id != latest[row.name]]
        if not doomed and len(old) == len(rows):
            return find(db)  # a whole chunk of jobs' latest runs: look past it
        return doomed

    return _drain(sessions, find, _runs)


def purge_login_failures(sessions: sessionmaker[Session], now: datetime, policy: Policy) -> int:
    """Delete failure counters whose window has passed (they would start afresh at the next failure)."""
    with sessions() as db:
        gone = rows_changed(db.execute(delete(_failures).where(_failures.c.window_start <= now - policy.login_window)))
        db.commit()
    return gone


def purge_webhook_deliveries(sessions: sessionmaker[Session], now: datetime, policy: Policy) -> int:
    """Delete webhook calls that finished (delivered, dead, cancelled) before the cutoff."""
    cutoff = now - policy.webhooks
    gone = 0
    for status in (DELIVERED, DEAD, CANCELLED):
        # A finished call's next_attempt_at is when its last attempt was due, never after it finished:
        # (status, next_attempt_at) is ix_webhook_deliveries_status_next_attempt_at.
        query = (
            select(_deliveries.c.id)
            .where(
                _deliveries.c.status == status,
                _deliveries.c.next_attempt_at < cutoff,
                _deliveries.c.finished_at < cutoff,
            )
            .order_by(_deliveries.c.next_attempt_at)
            .limit(policy.chunk)
        )
        gone += _drain(sessions, _ids(query), _deliveries)
    return gone


def purge_enroll_tokens(sessions: sessionmaker[Session], now: datetime, policy: Policy) -> int:
    """Delete enrollment tokens used, revoked or expired before the cutoff."""
    cutoff = now - policy.enroll_tokens
    query = (
        select(_tokens.c.id)
        .where(
            or_(
                _tokens.c.expires_at < cutoff,
                and_(_tokens.c.used_at.is_not(None), _tokens.c.used_at < cutoff),
                and_(_tokens.c.revoked_at.is_not(None), _tokens.c.revoked_at < cutoff),
            )
        )
        .limit(policy.chunk)
    )
    return _drain(sessions, _ids(query), _tokens)


def run(sessions: sessionmaker[Session], now: datetime, policy: Policy, progress: Progress) -> None:
    """Apply every kind's retention, reporting each kind's deleted rows as it finishes."""
    progress(heartbeats=purge_heartbeats(sessions, now, policy))
    progress(job_runs=purge_job_runs(sessions, now, policy))
    progress(login_failures=purge_login_failures(sessions, now, policy))
    progress(webhook_deliveries=purge_webhook_deliveries(sessions, now, policy))
    progress(enroll_tokens=purge_enroll_tokens(sessions, now, policy))
