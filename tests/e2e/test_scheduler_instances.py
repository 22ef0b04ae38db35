"""Two real central-server processes on one database: each job runs on one at a time, each birthday fires once,
and when one instance stops the other takes its jobs over."""

from __future__ import annotations

import itertools
import shutil
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
import sqlalchemy as sa

from tests.conftest import fresh_postgres_database
from tools.processes import Central, wait_until

pytestmark = pytest.mark.e2e

CUSTOMERS = 12
SCHEDULE = {
    "CENTRAL_SCHEDULER_TRIGGERS_INTERVAL": "1",
    "CENTRAL_SCHEDULER_WEBHOOKS_INTERVAL": "1",
}


def _events(start: int, count: int) -> bytes:
    """Signups with a birthday tomorrow (Shanghai) and marketing consent for every other customer."""
    tomorrow = datetime.now(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=1)
    at = datetime.now(UTC) - timedelta(days=1)
    lines = []
    for n in range(start, start + count):
        phone = f"1390574{n:04d}"
        stamp = at.isoformat()
        birthday = tomorrow.replace(year=1990).isoformat()
        lines.append(
            {
                "event_id": f"s{n}",
                "kind": "member.signup",
                "observed_at": stamp,
                "identifiers": {"phone": phone},
                "birthday": birthday,
            }
        )
        if n % 2 == 0:
            payload = {"purpose": "marketing", "channel": "sms", "notice_version": "2026-01"}
            lines.append(
                {
                    "event_id": f"c{n}",
                    "kind": "consent.given",
                    "observed_at": stamp,
                    "identifiers": {"phone": phone},
                    "payload": payload,
                }
            )
    return b"\n".join(orjson.dumps(line) for line in lines) + b"\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    with fresh_postgres_database("cdp_e2e") as url:
        yield url


def _instance(tmp_path, url, name):
    workdir = tmp_path / name
    workdir.mkdir()
    server = Central(workdir, url)
    server.env.update(SCHEDULE, CENTRAL_SCHEDULER_INSTANCE=name)
    return server


def _load(url: str, workdir, events: bytes, *, declare: bool = False) -> None:
    """Store source events (and declare the trigger) in this process, as load-events and add-trigger do."""
    from central.app import create_app
    from central.campaigns import triggers
    from central.config_loader import load_config
    from central.db import engine_for, session_factory
    from central.identity.registry import load_registry
    from central.sources.events import store_source_events

    config = load_config(None, environ={}, overrides={"database.url": url, "server.data_dir": str(workdir)})
    app = create_app(config)
    now = datetime.now(UTC)
    with session_factory(app)() as db:
        rows = [orjson.loads(line) for line in events.splitlines()]
        store_source_events(db, "crm", rows, now, registry=load_registry(config))
        if declare:
            declared = triggers.check("birthday", "birthday", {"days_before": 3, "channel": "sms"}, "export", {}, 0.0)
            triggers.declare(db, declared, actor="test", now=now)
            db.commit()
    engine_for(app).dispose()


def test_two_instances_share_jobs_and_fire_each_birthday_once(tmp_path, database_url):
    from central.migrate import upgrade

    a, b = _instance(tmp_path, database_url, "a"), _instance(tmp_path, database_url, "b")
    engine = sa.create_engine(database_url)

    def scalar(sql: str, **params: str) -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(sql), params).scalar_one())

    try:
        upgrade(database_url)
        _load(database_url, tmp_path, _events(0, CUSTOMERS), declare=True)
        # Every instance serves the database with the secret.key it was set up with (decision 0092).
        for instance in (a, b):
            shutil.copy2(tmp_path / "secret.key", instance.workdir / "secret.key")
        a.process.start()
        b.process.start()
        wait_until(lambda: a.healthy() and b.healthy(), 60, "both instances to answer /healthz")
        wait_until(
            lambda: scalar("SELECT count(*) FROM trigger_occasions") == CUSTOMERS // 2, 30, "the first birthdays"
        )
        # More customers arrive while both instances run.
        _load(database_url, tmp_path, _events(CUSTOMERS, CUSTOMERS))
        wait_until(lambda: scalar("SELECT count(*) FROM trigger_occasions") == CUSTOMERS, 30, "the later birthdays")
        runs_before = scalar("SELECT count(*) FROM job_runs WHERE name = 'triggers' AND status = 'ok'")
        wait_until(
            lambda: (
                scalar("SELECT count(*) FROM job_runs WHERE name = 'triggers' AND status = 'ok'") >= runs_before + 2
            ),
            30,
            "more trigger runs",
        )
        # Whichever instance ran the triggers job last stops; the other takes the job over. (While both
        # run, one may win every lease, for instance when a run lasts about as long as the interval.)
        with engine.connect() as conn:
            last = conn.execute(
                sa.text("SELECT instance FROM job_runs WHERE name = 'triggers' ORDER BY started_at DESC LIMIT 1")
            ).scalar_one()
        leaving, staying = (a, "b") if last == "a" else (b, "a")
        taken = "SELECT count(*) FROM job_runs WHERE name = 'triggers' AND status = 'ok' AND instance = :name"
        before = scalar(taken, name=staying)
        leaving.stop()
        wait_until(lambda: scalar(taken, name=staying) > before, 30, f"{staying} to take the triggers job over")
    finally:
        a.close()
        b.close()
    with engine.connect() as conn:
        fired = conn.execute(sa.text("SELECT customer_id, occasion FROM trigger_occasions")).all()
        exports = conn.execute(sa.text("SELECT count(*) FROM trigger_exports")).scalar_one()
        runs = conn.execute(
            sa.text(
                "SELECT name, instance, started_at, finished_at, status, error FROM job_runs ORDER BY name, started_at"
            )
        ).all()
    engine.dispose()
    assert len(fired) == len(set(fired)) == CUSTOMERS == exports
    assert {r.status for r in runs} == {"ok"}, [(r.name, r.instance, r.error) for r in runs if r.status != "ok"]
    assert {r.instance for r in runs} == {"a", "b"}
    for name in ("triggers", "webhooks"):
        mine = [r for r in runs if r.name == name]
        for earlier, later in itertools.pairwise(mine):
            assert earlier.finished_at <= later.started_at, f"two runs of {name} overlapped: {earlier} {later}"
