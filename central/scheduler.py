"""The scheduler: APScheduler runs central's named jobs in ``serve``, each under a database lease.

Jobs are declared in :data:`JOBS` (name, interval setting, function); a domain adds its own with
:func:`register_job`. Every instance serving a database runs the same schedule; the lease
(:mod:`central.jobs`) lets one of them run each job at a time, and an instance whose timer falls
due skips a job any instance ran successfully within the last half of its interval, so two
instances run an hourly job about once an hour, not twice.
``GET /api/v1/jobs`` shows every job with its current or last run, and
``central-server run-job NAME`` runs one now, under the same lease.

Most jobs run at start-up and then every interval. The ``tags`` job, the nightly full recompute
of statistics marks and every built-in tag, runs daily at ``scheduler.tags_hour`` in the chain's
local time instead, and at start-up only when its last successful run is more than a day old (a
central that was down at that hour catches up); a recompute of millions of customers takes
minutes and must not follow every restart.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Blueprint, Flask, Response, current_app, jsonify
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from central import db as central_db
from central.auth import login_required
from central.clock import Clock
from central.config import CentralConfig
from central.jobs import OK, JobRun, RunContext, last_runs, run_job, run_json

log = logging.getLogger(__name__)
bp = Blueprint("jobs", __name__)


@dataclass(frozen=True)
class Job:
    """A named job: its function and how often it runs (seconds, read from the configuration)."""

    name: str
    func: Callable[[RunContext], None]
    interval: Callable[[CentralConfig], float]
    help: str
    # A job run once a day at this local hour (-1: not scheduled) instead of every interval.
    daily_hour: Callable[[CentralConfig], int] | None = None

    def hour(self, config: CentralConfig) -> int | None:
        """The local hour a daily job runs at (-1: never), or None for a job run every interval."""
        return None if self.daily_hour is None else self.daily_hour(config)


def _triggers(ctx: RunContext) -> None:
    from central.campaigns.triggers import evaluate_all
    from central.identity.registry import load_registry

    config: CentralConfig = ctx.settings
    placeholders = load_registry(config).placeholder_birthdays
    with ctx.sessions() as db:
        counts = evaluate_all(db, ctx.clock(), config.triggers_timezone, ctx.lease.holder, ctx.progress, placeholders)
    # fired, queued and control were reported chunk by chunk; adding 0 shows them when nothing fired.
    ctx.progress(due=counts["due"], triggers=counts["triggers"], fired=0, queued=0, control=0)


def _webhooks(ctx: RunContext) -> None:
    from central.campaigns.webhooks import Policy, deliver_due

    config: CentralConfig = ctx.settings
    policy = Policy(
        config.webhooks_max_attempts,
        config.webhooks_backoff_seconds,
        config.webhooks_backoff_max_seconds,
        config.webhooks_timeout_seconds,
        config.webhooks_allow_private_addresses,
    )
    with ctx.sessions() as db:
        counts = deliver_due(db, ctx.clock, policy, timezone=config.triggers_timezone)
    ctx.progress(**counts)


def _member_beacons(ctx: RunContext) -> None:
    from central import secret_key
    from central.presence import beacons

    config: CentralConfig = ctx.settings
    with ctx.sessions() as db:
        secret = secret_key.for_session(db, config.secret_key_path)
        version = beacons.publish(db, secret, now=ctx.clock(), actor="scheduler")
        db.commit()
    ctx.progress(published=int(version is not None))


def _member_cards(ctx: RunContext) -> None:
    from central import secret_key
    from central.members import cards

    config: CentralConfig = ctx.settings
    with ctx.sessions() as db:
        secret = secret_key.for_session(db, config.secret_key_path)
        stores = cards.publish(db, secret, now=ctx.clock(), days=config.members_cards_days, actor="scheduler")
        db.commit()
    ctx.progress(published=len(stores))


def _segments(ctx: RunContext) -> None:
    from central.segments.evaluation import evaluate_all

    config: CentralConfig = ctx.settings
    with ctx.sessions() as db:
        counts = evaluate_all(db, ctx.clock(), config.customers_utc_offset_minutes)
    ctx.progress(**counts)


def _store_alerts(ctx: RunContext) -> None:
    from central.campaigns.webhooks import requests_transport
    from central.customers import alerts

    with ctx.sessions() as db:
        transport = requests_transport(allow_private=ctx.settings.webhooks_allow_private_addresses)
        counts = alerts.run(db, ctx.settings, ctx.clock, transport)
    ctx.progress(**counts)


def _reports(ctx: RunContext) -> None:
    from central.campaigns.snapshots import refresh_all

    config: CentralConfig = ctx.settings
    with ctx.sessions() as db:
        refresh_all(db, ctx.clock(), config.customers_utc_offset_minutes, ctx.progress)
    ctx.progress(triggers=0, campaigns=0)  # shown even when there is nothing to refresh


def _tags(ctx: RunContext) -> None:
    from central.customers import tagging  # numpy and scipy (the lifetime model): only this job needs them

    with ctx.sessions() as db:
        done = tagging.recompute(db.connection(), ctx.settings, ctx.clock())
        db.commit()
    if done.clv_problem:
        log.warning("job tags: %s", done.clv_problem)
    ctx.progress(tags=sum(done.tags.values()), marked=done.marked, seconds=round(sum(done.seconds.values())))


def _name_pinyin(ctx: RunContext) -> None:
    from central.customers.name_search import fill_pinyin

    with ctx.sessions() as db:
        spelled = fill_pinyin(db)
    ctx.progress(spelled=spelled)


def _retention(ctx: RunContext) -> None:
    from central import retention

    config: CentralConfig = ctx.settings
    days = timedelta(days=1)
    policy = retention.Policy(
        heartbeats=config.retention_heartbeat_days * days,
        job_runs=config.retention_job_run_days * days,
        login_window=timedelta(minutes=config.console_login_window_minutes),
        webhooks=config.retention_webhook_days * days,
        enroll_tokens=config.retention_enroll_token_days * days,
        chunk=config.retention_chunk,
    )
    retention.run(ctx.sessions, ctx.clock(), policy, ctx.progress)


JOBS: dict[str, Job] = {}


def register_job(job: Job) -> None:
    """Add a job to every instance's schedule (and to ``run-job`` and the jobs API)."""
    JOBS[job.name] = job


register_job(Job("triggers", _triggers, lambda c: c.scheduler_triggers_interval, "fire time-based triggers"))
register_job(Job("webhooks", _webhooks, lambda c: c.scheduler_webhooks_interval, "deliver due webhook calls"))
# Hourly: the day keys move on at UTC midnight, and a consent decision recorded outside a request
# (a backfill) is published at the latest then.
register_job(Job("member_beacons", _member_beacons, lambda c: 3600.0, "publish consenting members' beacon day keys"))
register_job(Job("segments", _segments, lambda c: c.scheduler_segments_interval, "evaluate every segment's members"))
register_job(
    Job(
        "store_alerts",
        _store_alerts,
        lambda c: c.scheduler_store_alerts_interval,
        "alert on stores whose new members dropped on the last full day",
    )
)
register_job(
    Job(
        "reports",
        _reports,
        lambda c: c.scheduler_reports_interval,
        "refresh the campaign pages' reports (trigger effects, coupon redemptions by tier)",
    )
)
# Hourly: new members, tags, claimed and redeemed coupons reach the stores' cashier panels within the hour.
register_job(Job("member_cards", _member_cards, lambda c: 3600.0, "publish each store's masked member cards"))
register_job(
    Job(
        "retention",
        _retention,
        lambda c: c.retention_interval,
        "delete heartbeats, job runs, login failures, webhook calls and enrollment tokens past their retention",
    )
)
register_job(
    Job(
        "tags",
        _tags,
        lambda c: 86400.0,
        "recompute marked customers' statistics and every built-in tag (nightly)",
        daily_hour=lambda c: c.scheduler_tags_hour,
    )
)


def instance_name(config: CentralConfig) -> str:
    """This instance's name in job runs: ``scheduler.instance``, else host name and process id."""
    return config.scheduler_instance or f"{socket.gethostname()}:{os.getpid()}"


def run_now(
    sessions: sessionmaker[Session], config: CentralConfig, name: str, clock: Clock, *, scheduled: bool = False
) -> str | None:
    """Run job ``name`` once under its lease; its status, or None if it did not run here.

    ``scheduled``: this instance's timer is due, and the job is skipped when any instance ran it
    successfully within the last half of its interval (every instance keeps its own timer).
    """
    job = JOBS[name]
    return run_job(
        sessions,
        name,
        job.func,
        instance=instance_name(config),
        clock=clock,
        lease_seconds=config.scheduler_lease_seconds,
        settings=config,
        unless_ran_within=timedelta(seconds=job.interval(config) / 2) if scheduled else None,
    )


def start(app: Flask) -> BackgroundScheduler:
    """Start the app's background scheduler with every registered job; the caller shuts it down."""
    config: CentralConfig = app.config["CENTRAL"]
    sessions = central_db.session_factory(app)
    clock: Clock = app.config["CLOCK"]
    # APScheduler logs every run at INFO; central logs what a run changed (central.jobs) instead.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, log.getEffectiveLevel()))
    scheduler = BackgroundScheduler(timezone="UTC")
    first = datetime.now(UTC)
    for job in JOBS.values():
        when: dict[str, Any] = {"next_run_time": first}  # once at start-up, then every interval
        trigger: CronTrigger | IntervalTrigger = IntervalTrigger(seconds=job.interval(config))
        hour = job.hour(config)
        if hour is not None:
            if hour < 0:
                continue
            trigger = daily_trigger(hour, config)
            if not overdue(sessions, job.name, clock()):
                when = {}  # the trigger's own next time
        scheduler.add_job(
            run_now,
            trigger,
            args=(sessions, config, job.name, clock),
            kwargs={"scheduled": True},
            id=job.name,
            name=job.name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            **when,
        )
    scheduler.start()
    log.info("scheduler started as %s with jobs %s", instance_name(config), ", ".join(sorted(JOBS)))
    return scheduler


def daily_trigger(hour: int, config: CentralConfig) -> CronTrigger:
    """Every day at ``hour``:00 in the chain's local time (``customers.utc_offset_minutes``)."""
    return CronTrigger(hour=hour, minute=0, timezone=timezone(timedelta(minutes=config.customers_utc_offset_minutes)))


def overdue(sessions: sessionmaker[Session], name: str, now: datetime) -> bool:
    """Whether a daily job last succeeded more than a day before ``now`` (never: not overdue, it waits for its hour)."""
    with sessions() as db:
        last = db.scalar(select(func.max(JobRun.started_at)).where(JobRun.name == name, JobRun.status == OK))
    return last is not None and now - last > timedelta(days=1)


@bp.get("/api/v1/jobs")
@login_required
def jobs() -> Response:
    """Every scheduled job with its latest run (running: its progress so far; else its result)."""
    config: CentralConfig = current_app.config["CENTRAL"]
    db = central_db.get_session()
    runs = last_runs(db, sorted(JOBS))
    db.commit()
    return jsonify(
        {
            "jobs": [
                {
                    "name": name,
                    "help": JOBS[name].help,
                    "interval_seconds": JOBS[name].interval(config),
                    "daily_hour": JOBS[name].hour(config),
                    "last_run": run_json(runs[name][0]) if runs[name] else None,
                }
                for name in sorted(JOBS)
            ]
        }
    )


# Every five minutes: names written since are found by their pinyin within minutes.
register_job(Job("name_pinyin", _name_pinyin, lambda c: 300.0, "spell new names in pinyin for the search by name"))
