"""Job leases and run records: one holder at a time on both databases, results visible in the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import select

from central import db as central_db
from central import scheduler
from central.customers.models import CustomerTag
from central.db import make_engine
from central.jobs import FAILED, OK, JobRun, acquire, run_job
from tests.central.support import FakeClock


def test_a_lease_has_one_holder_at_a_time(backend):
    engine = make_engine(backend.url)
    clock = FakeClock()
    try:
        first = acquire(engine, "triggers", "one", clock, 60)
        assert first is not None
        assert acquire(engine, "triggers", "two", clock, 60) is None
        assert acquire(engine, "webhooks", "two", clock, 60) is not None  # another job's lease is free
        first.release()
        second = acquire(engine, "triggers", "two", clock, 60)
        assert second is not None
        second.release()
    finally:
        engine.dispose()


def test_a_crashed_holders_sqlite_lease_lapses(tmp_path):
    from central.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'central.db'}"
    upgrade(url)
    engine = make_engine(url)
    clock = FakeClock()
    try:
        crashed = acquire(engine, "triggers", "one", clock, 60)
        assert crashed is not None
        clock.advance(seconds=59)
        assert acquire(engine, "triggers", "two", clock, 60) is None
        assert crashed.renew()  # progress renews it
        clock.advance(seconds=61)
        taken = acquire(engine, "triggers", "two", clock, 60)
        assert taken is not None
        assert not crashed.renew()  # the old holder learns it lost the lease
    finally:
        engine.dispose()


def _runs(app):
    with central_db.session_factory(app)() as db:
        return list(db.execute(select(JobRun.__table__).order_by(JobRun.id)))


def test_runs_are_recorded_with_counts_or_error_and_shown_by_the_api(app, clock, user_client):
    sessions = central_db.session_factory(app)
    config = app.config["CENTRAL"]
    assert scheduler.run_now(sessions, config, "triggers", clock) == OK

    def broken(ctx):
        ctx.progress(rows=3)
        clock.advance(seconds=2)
        raise RuntimeError("the statistics table is missing")

    assert run_job(sessions, "broken", broken, instance="i1", clock=clock, lease_seconds=60) == FAILED
    first, second = _runs(app)
    assert (first.name, first.status, first.counts) == (
        "triggers",
        OK,
        {"due": 0, "fired": 0, "control": 0, "queued": 0, "triggers": 0},
    )
    assert (second.status, second.counts, second.error) == (
        FAILED,
        {"rows": 3},
        "RuntimeError: the statistics table is missing",
    )
    assert second.finished_at - second.started_at == timedelta(seconds=2)

    # While another instance holds the lease, a run is skipped and leaves no row.
    held = acquire(central_db.engine_for(app), "triggers", "elsewhere", clock, 60)
    assert held is not None
    try:
        assert scheduler.run_now(sessions, config, "triggers", clock) is None
    finally:
        held.release()
    assert len(_runs(app)) == 2

    jobs = {j["name"]: j for j in user_client.get("/api/v1/jobs").get_json()["jobs"]}
    assert set(jobs) == {
        "triggers",
        "webhooks",
        "member_beacons",
        "segments",
        "store_alerts",
        "member_cards",
        "reports",
        "tags",
        "name_pinyin",
        "retention",
    }
    assert jobs["triggers"]["last_run"]["status"] == OK
    assert jobs["webhooks"]["last_run"] is None
    assert jobs["triggers"]["interval_seconds"] == config.scheduler_triggers_interval
    assert (jobs["triggers"]["daily_hour"], jobs["tags"]["daily_hour"]) == (None, 3)
    assert app.test_client().get("/api/v1/jobs").status_code == 401


def test_the_nightly_tags_job_recomputes_every_tag_under_its_lease(app, client, agent, clock):
    receipts = [
        agent.receipt(f"R{n}", "88.00", phone="13812345678", observed_at=clock() - timedelta(days=n)) for n in (1, 9)
    ]
    agent.send(client, receipts)
    sessions = central_db.session_factory(app)
    with sessions() as db:
        assert not db.scalars(select(CustomerTag.tag)).all()
    assert scheduler.run_now(sessions, app.config["CENTRAL"], "tags", clock) == OK
    (run,) = _runs(app)
    with sessions() as db:
        tags = db.scalars(select(CustomerTag.tag)).all()
    # Without a profiling consent only the historical spend is kept (the profiling tags need one).
    assert tags == ["value.spend"] and run.counts["tags"] == 1


def test_the_tags_job_waits_for_its_local_hour_unless_a_day_was_missed(make_app, clock):
    app = make_app(scheduler__tags_hour=4)
    sessions = central_db.session_factory(app)
    assert not scheduler.overdue(sessions, "tags", clock())  # never run: it waits for its hour
    with sessions() as db:
        for hours_ago, status in ((30, OK), (2, FAILED)):
            started = clock() - timedelta(hours=hours_ago)
            db.add(JobRun(name="tags", instance="i1", started_at=started, updated_at=started, status=status, counts={}))
        db.commit()
    assert scheduler.overdue(sessions, "tags", clock())  # the last success is more than a day old
    assert not scheduler.overdue(sessions, "tags", clock() - timedelta(hours=7))

    running = scheduler.start(make_app(scheduler__tags_hour=4, scheduler__enabled=False))
    try:
        at = running.get_job("tags").next_run_time
        assert at > datetime.now(UTC) - timedelta(minutes=1)
        assert (at.astimezone(timezone(timedelta(hours=8))).hour, at.minute, at.second) == (4, 0, 0)
    finally:
        running.shutdown(wait=True)
    running = scheduler.start(make_app(scheduler__tags_hour=-1, scheduler__enabled=False))
    try:
        assert running.get_job("tags") is None and running.get_job("triggers") is not None
    finally:
        running.shutdown(wait=True)


def test_an_instance_whose_timer_is_due_skips_a_job_another_ran_within_half_its_interval(make_app, clock):
    """Two instances keep their own timers: each ran the hourly segments job once an hour, twice in all."""
    first = make_app(scheduler__instance="hq-1")
    second = make_app(scheduler__instance="hq-2")
    sessions = central_db.session_factory(first)
    hourly = first.config["CENTRAL"].scheduler_segments_interval
    assert hourly == 3600

    assert scheduler.run_now(sessions, first.config["CENTRAL"], "segments", clock, scheduled=True) == OK
    clock.advance(seconds=hourly / 2 - 60)  # the other instance's timer falls due half an hour later
    assert scheduler.run_now(sessions, second.config["CENTRAL"], "segments", clock, scheduled=True) is None
    clock.advance(seconds=120)  # past half the interval since the run: due again
    assert scheduler.run_now(sessions, second.config["CENTRAL"], "segments", clock, scheduled=True) == OK
    # Run by hand (`central-server run-job`), a job runs whenever asked.
    assert scheduler.run_now(sessions, first.config["CENTRAL"], "segments", clock) == OK
    with sessions() as db:
        runs = db.execute(select(JobRun.instance).where(JobRun.name == "segments").order_by(JobRun.id)).scalars()
        assert list(runs) == ["hq-1", "hq-2", "hq-1"]
