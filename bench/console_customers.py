"""The customer pages' server-side latency on a generated chain: search, newest customers, the 360 view.

``python -m bench.console_customers [--customers 10000] [--backend sqlite|postgresql] [--requests 200]``
writes a chain (:mod:`bench.chain`), loads it through ``central-server load-events``'s code path,
logs in as admin and as marketing, and times each page through the WSGI app (rendering included,
no network): the newest customers' first and a later keyset page, search by phone and by name, and
the 360 view and its second timeline page of customers picked at random. Prints p50 and p95 per page.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.chain import write_chain
from bench.common import default_registry, line, load_note
from central import db as central_db
from central.app import create_app
from central.config_loader import load_config
from central.db import make_engine
from central.identity.models import Customer, GoldenAttribute, Identifier
from central.migrate import upgrade
from central.sources.backfill import load_events
from tests.central.support import create_user, login
from tools.databases import temporary_postgres_database


def _load(url: str, events: Path) -> None:
    upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine) as db:
            load_events(db, events, "chain", registry=default_registry(), clock=lambda: datetime.now(UTC))
    finally:
        engine.dispose()


def _timed(client: FlaskClient, urls: list[str]) -> list[float]:
    out = []
    for url in urls:
        start = time.perf_counter()
        response = client.get(url)
        out.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return out


def _report(label: str, millis: list[float]) -> None:
    p95 = statistics.quantiles(millis, n=20)[-1] if len(millis) >= 20 else max(millis)
    line(label, f"p50 {statistics.median(millis):6.1f} ms   p95 {p95:6.1f} ms   ({len(millis)} requests)")


def measure(url: str, data_dir: Path, requests: int, seed: int = 7) -> None:
    """Time every customer page against the database at ``url``."""
    config = load_config(None, environ={}, overrides={"server.data_dir": str(data_dir), "database.url": url})
    app = create_app(config, test_config={"TESTING": True})
    rng = random.Random(seed)
    with central_db.session_factory(app)() as db:
        live = list(db.scalars(select(Customer.id).where(Customer.merged_into.is_(None))))
        phones = list(db.scalars(select(Identifier.value).where(Identifier.kind == "phone").limit(5000)))
        names = list(db.scalars(select(GoldenAttribute.value).where(GoldenAttribute.attribute == "name").limit(5000)))
    for role in ("admin", "marketing"):
        create_user(app, role, role=role)
    pick: Callable[[list[int]], list[int]] = lambda ids: [rng.choice(ids) for _ in range(requests)]  # noqa: E731
    for role in ("admin", "marketing"):
        client = app.test_client()
        assert login(client, role).status_code == 302
        print(f"  {role}:", flush=True)
        _report("newest customers, first page", _timed(client, ["/console/customers"] * requests))
        afters = [f"/console/customers?after={cid}" for cid in pick(live)]
        _report("newest customers, a later page (?after=)", _timed(client, afters))
        searches = [
            f"/console/customers?kind=phone&q={rng.choice(phones).removeprefix('+86')}" for _ in range(requests)
        ]
        _report("search by phone", _timed(client, searches))
        by_name = [f"/console/customers?kind=name&q={rng.choice(names)}" for _ in range(requests)]
        _report("search by name", _timed(client, by_name))
        views = [f"/console/customers/{cid}" for cid in pick(live)]
        _report("360 view", _timed(client, views))
        older = []
        for url in views[: max(20, requests // 4)]:
            match = re.search(r'id="older" href="([^"]+)"', client.get(url).get_data(as_text=True))
            if match:
                older.append(match.group(1).replace("&amp;", "&"))
        if older:
            _report("360 view, an older timeline page", _timed(client, older))
    central_db.engine_for(app).dispose()


def main(customers: int = 10_000, backend: str = "sqlite", requests: int = 200) -> None:
    """Generate, load and time; print the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        counts = write_chain(out / "chain", customers)
        print(
            f"customer pages: chain of {counts['people']:,} people, {counts['events']:,} events, {backend}", flush=True
        )
        data_dir = out / "data"
        data_dir.mkdir()
        started = time.perf_counter()
        if backend == "sqlite":
            url = f"sqlite:///{data_dir / 'central.db'}"
            _load(url, out / "chain" / "events.jsonl")
            line("loaded in", f"{time.perf_counter() - started:.0f} s")
            measure(url, data_dir, requests)
        else:
            with temporary_postgres_database("cdp_bench") as url:
                _load(url, out / "chain" / "events.jsonl")
                line("loaded in", f"{time.perf_counter() - started:.0f} s")
                measure(url, data_dir, requests)
        line("", load_note())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    main(args.customers, args.backend, args.requests)
