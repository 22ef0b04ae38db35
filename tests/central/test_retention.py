"""The retention job: heartbeats, job runs, login failures, finished webhook calls and spent enrollment tokens
go after their retention; each device's newest heartbeat, each job's latest run, the audit log and customer
data stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from central import audit, retention
from central import db as central_db
from central.accounts import throttle
from central.accounts.models import LoginFailures
from central.campaigns.models import WebhookDelivery
from central.fleet.enrollment import issue_token
from central.fleet.models import EnrollToken
from central.ingest.models import Event
from central.jobs import JobRun, run_job
from central.models import AuditLog
from central.scheduler import run_now
from tests.central.support import START, Agent, login, table_rows, token_for

DAY = timedelta(days=1)
BEAT = {"agent_version": "0.4.2", "health": {"state": "ok"}}


def _heartbeats(app) -> dict[str, list[int]]:
    """Each device's stored heartbeat seqs."""
    out: dict[str, list[int]] = {}
    for row in table_rows(app, Event):
        if row.kind == "agent.heartbeat":
            out.setdefault(row.device_id, []).append(row.seq)
    return out


def _run(app, name: str, at, func=lambda ctx: None) -> None:
    assert run_job(central_db.session_factory(app), name, func, instance="hq-1", clock=lambda: at, lease_seconds=60)


def _delivery(status: str, finished, *, created=None) -> WebhookDelivery:
    created = created or (finished or START) - DAY
    return WebhookDelivery(
        url="https://crm.example/hook",
        body="{}",
        status=status,
        attempts=1,
        created_at=created,
        next_attempt_at=finished or created,
        finished_at=finished,
    )


def test_retention_deletes_what_aged_out_and_keeps_what_is_read(app, client, agent, clock):
    # Heartbeats: one device still beating, one that went quiet 25 days ago; a sale as old stays.
    other = Agent(store_id="S002")
    assert other.enroll(client, token_for(app, "S002")).status_code == 201
    agent.send(client, [agent.event("agent.heartbeat", BEAT, observed_at=START - n * DAY) for n in (20, 19, 1)])
    agent.send(client, [agent.receipt("R-1", observed_at=START - 20 * DAY)])
    other.send(client, [other.event("agent.heartbeat", BEAT, observed_at=START - n * DAY) for n in (30, 25)])
    # Job runs: webhooks ran long ago and now; segments last ran long ago.
    for at in (START - 40 * DAY, START - 35 * DAY, START):
        _run(app, "webhooks", at)
    _run(app, "segments", START - 40 * DAY)
    # A failed login an hour ago (its window has passed) and one just now, counted in login_failures.
    rules = throttle.Rules(per_account=5, per_address=30, window=timedelta(minutes=15))
    with central_db.session_factory(app)() as db:
        throttle.failed(db, "old-name", "10.0.0.1", now=START - timedelta(hours=1), rules=rules)
        db.commit()
    assert login(client, username="new-name", password="wrong-wrong").status_code == 401
    # Webhook calls delivered, dead and cancelled 100 days ago go; a recent one and a pending one stay.
    with central_db.session_factory(app)() as db:
        for status in ("delivered", "dead", "cancelled"):
            db.add(_delivery(status, START - 100 * DAY))
        db.add(_delivery("delivered", START - 10 * DAY))
        db.add(_delivery("pending", None, created=START - 200 * DAY))
        # An enrollment token that expired 200 days ago goes; the ones the agents used today stay.
        issue_token(db, "S003", 24, now=START - 200 * DAY)
        db.commit()
    audited = [(r.id, r.row_hash) for r in table_rows(app, AuditLog)]

    sessions, config = central_db.session_factory(app), app.config["CENTRAL"]
    assert run_now(sessions, config, "retention", clock) == "ok"

    assert _heartbeats(app) == {agent.device_id: [3], other.device_id: [2]}
    assert [r.kind for r in table_rows(app, Event) if r.kind != "agent.heartbeat"] == ["pos.receipt"]
    runs = [(r.name, r.started_at) for r in table_rows(app, JobRun)]
    assert runs == [("webhooks", START), ("segments", START - 40 * DAY), ("retention", START)]
    with sessions() as db:
        keys = set(db.scalars(select(LoginFailures.key)))
        tokens = set(db.scalars(select(EnrollToken.store_id)))
        assert audit.verify(db).ok
    assert keys == {"account:new-name", "address:127.0.0.1"}
    left = [(r.status, r.finished_at) for r in table_rows(app, WebhookDelivery)]
    assert left == [("delivered", START - 10 * DAY), ("pending", None)]
    assert tokens == {"S001", "S002"}
    assert [(r.id, r.row_hash) for r in table_rows(app, AuditLog)][: len(audited)] == audited  # never purged
    (last,) = [r for r in table_rows(app, JobRun) if r.name == "retention"]
    assert last.counts == {
        "heartbeats": 3,
        "job_runs": 2,
        "login_failures": 2,
        "webhook_deliveries": 3,
        "enroll_tokens": 1,
    }


def test_chunks_walk_past_the_runs_and_heartbeats_they_keep(app, client, agent):
    """One row per transaction: the jobs' latest runs at the oldest end do not stop the walk."""
    for name in ("a", "b", "c"):
        _run(app, name, START - 50 * DAY)
    for n in range(40, 30, -1):
        _run(app, "webhooks", START - n * DAY)
    agent.send(client, [agent.event("agent.heartbeat", BEAT, observed_at=START - n * DAY) for n in range(30, 20, -1)])
    policy = retention.Policy(
        heartbeats=14 * DAY, job_runs=30 * DAY, login_window=DAY, webhooks=DAY, enroll_tokens=DAY, chunk=1
    )
    sessions = central_db.session_factory(app)
    assert retention.purge_job_runs(sessions, START, policy) == 9
    assert retention.purge_heartbeats(sessions, START, policy) == 9
    assert [r.name for r in table_rows(app, JobRun)] == ["a", "b", "c", "webhooks"]
    assert _heartbeats(app) == {agent.device_id: [10]}
    assert retention.purge_job_runs(sessions, START, policy) == 0
