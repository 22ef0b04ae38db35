"""Job leases and run records: one holder at a time on both databases, results visible in the API."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from central import db as central_db
from central import scheduler
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
    }
    assert jobs["triggers"]["last_run"]["status"] == OK
    assert jobs["webhooks"]["last_run"] is None
    assert jobs["triggers"]["interval_seconds"] == config.scheduler_triggers_interval
    assert app.test_client().get("/api/v1/jobs").status_code == 401
