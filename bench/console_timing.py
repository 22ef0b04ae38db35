"""Time every console page against a filled database: through the WSGI app, and in chromium.

Used by :mod:`bench.console_pages`; the pages and the role each is asked as are :func:`pages`.
"""

from __future__ import annotations

import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.pool import NullPool

from bench.common import backends_cpu, line
from bench.fill import NOW
from central import db as central_db
from central.app import create_app
from central.config_loader import load_config
from central.db import make_engine
from central.identity.models import Customer, GoldenAttribute, Identifier, ReviewItem
from central.models import User
from tests.central.support import PASSWORD, create_user, login

CHROMIUM = "/usr/bin/chromium"
# Pages that are downloads, not pages a browser shows.
DOWNLOADS = ("/export.csv",)
Pages = dict[str, tuple[str, list[str]]]  # label -> (role, URLs to request in turn)


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)


def _report(
    label: str, role: str, wall: list[float], cpu: list[float] | None = None, server: float | None = None
) -> None:
    spent = f"   CPU p50 {statistics.median(cpu):6.1f} ms" if cpu else ""
    spent += f"   PostgreSQL CPU mean {server:6.1f} ms" if server is not None else ""
    line(
        f"{label} ({role})",
        f"p50 {statistics.median(wall):6.1f} ms   p95 {_p95(wall):6.1f} ms{spent}   ({len(wall)} requests)",
    )


def _sample(app: Flask, requests: int, rng: random.Random) -> dict[str, Any]:
    """Customer ids, identifiers, names and review items picked at random from the database."""
    with central_db.session_factory(app)() as db:
        top = db.scalar(select(func.max(Customer.id))) or 1
        ids = [rng.randint(1, top) for _ in range(requests)]
        held = db.execute(select(Identifier.kind, Identifier.value).where(Identifier.customer_id.in_(ids))).all()
        names = list(
            db.scalars(
                select(GoldenAttribute.value).where(
                    GoldenAttribute.customer_id.in_(ids), GoldenAttribute.attribute == "name"
                )
            )
        )
        reviews = list(db.scalars(select(ReviewItem.id).where(ReviewItem.status == "open").limit(5000)))
    registry = app.config["IDENTITY_REGISTRY"]
    by_kind: dict[str, list[str]] = {}
    for kind, value in held:
        raw = value.removeprefix("+86")
        if registry.check(kind, raw)[0] == value:  # only values a person could type and find
            by_kind.setdefault(kind, []).append(raw)
    return {"ids": ids, "kinds": by_kind, "names": names, "reviews": reviews or [0], "heavy": min(1000, top)}


def pages(sample: dict[str, Any], requests: int, rng: random.Random) -> Pages:
    """Each page, the role it is asked as, and ``requests`` URLs for it."""

    def n(make: Callable[[], str], count: int = requests) -> list[str]:
        return [make() for _ in range(count)]

    ids, kinds, names, reviews = sample["ids"], sample["kinds"], sample["names"], sample["reviews"]
    search = {
        f"search by {kind}": ("admin", n(lambda k=kind: f"/console/customers?kind={k}&q={rng.choice(kinds[k])}"))  # type: ignore[misc]
        for kind in ("phone", "member_card", "member_id")
        if kinds.get(kind)
    }
    return {
        "login page": ("", n(lambda: "/console/login")),
        "overview": ("admin", n(lambda: "/console/")),
        "customers, newest": ("admin", n(lambda: "/console/customers")),
        "customers, a later page": ("admin", n(lambda: f"/console/customers?after={rng.choice(ids)}")),
        **search,
        "search by name": ("admin", n(lambda: f"/console/customers?kind=name&q={rng.choice(names)}")),
        "search by name, masked": ("marketing", n(lambda: f"/console/customers?kind=name&q={rng.choice(names)}")),
        "360 view": ("admin", n(lambda: f"/console/customers/{rng.choice(ids)}")),
        "360 view, masked": ("marketing", n(lambda: f"/console/customers/{rng.choice(ids)}")),
        "360 view of a heavy customer": ("admin", n(lambda: f"/console/customers/{rng.randint(1, sample['heavy'])}")),
        "review queue": ("admin", n(lambda: "/console/customers/review")),
        "review queue, a later page": ("admin", n(lambda: f"/console/customers/review?after={rng.choice(reviews)}")),
        "review queue, accepted": ("admin", n(lambda: "/console/customers/review?status=accepted")),
        "segments": ("marketing", n(lambda: "/console/segments")),
        "segment export, smallest (CSV)": ("marketing", n(lambda: "/console/segments/seg5/export.csv", 5)),
        "campaigns": ("marketing", n(lambda: "/console/campaigns")),
        # with the effect report and the figures by tier, from the reports job's snapshots
        "trigger page": ("marketing", n(lambda: f"/console/campaigns/triggers/{rng.randint(1, 2)}")),
        "coupon campaign page": ("marketing", n(lambda: f"/console/campaigns/coupons/{rng.randint(1, 4)}")),
        "fleet": ("admin", n(lambda: "/console/fleet")),
        "fleet, a later page": ("admin", n(lambda: f"/console/fleet?after=S{rng.randrange(100):03d},pc-0000")),
        "device page": ("admin", n(lambda: f"/console/fleet/devices/pc-{rng.randrange(300):04d}")),
        "source keys": ("admin", n(lambda: "/console/fleet/source-keys")),
        "imports and jobs": ("admin", n(lambda: "/console/imports")),
        "import page": ("admin", n(lambda: f"/console/imports/{rng.randint(1, 29)}")),
        "import page, the whole member base": ("admin", n(lambda: "/console/imports/30")),
    }


def _app(url: str, data_dir: Path) -> Flask:
    config = load_config(None, environ={}, overrides={"server.data_dir": str(data_dir), "database.url": url})
    app = create_app(config, test_config={"CLOCK": lambda: NOW})
    with central_db.session_factory(app)() as db:
        known = set(db.scalars(select(User.username)))  # a reused database keeps its users
    for role in ("admin", "marketing"):
        if role not in known:
            create_user(app, role, role=role)
    return app


def _older(client: FlaskClient, urls: list[str]) -> list[str]:
    """The 360 views' second timeline pages."""
    found = []
    for url in urls:
        match = re.search(r'id="older" href="([^"]+)"', client.get(url).get_data(as_text=True))
        if match:
            found.append(match.group(1).replace("&amp;", "&"))
    return found


def _postgres_cpu(engine: Engine) -> float | None:
    """CPU seconds PostgreSQL's backends serving this database have used so far (None on SQLite).

    Read from /proc: the server runs on this machine. The clock ticks are coarse (10 ms), so pages
    report the mean over their requests.
    """
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:  # an engine of its own: not one of the backends serving the app
        pids = conn.scalars(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        ).all()
    return backends_cpu(pids)


def server_side(app: Flask, listed: Pages) -> None:
    """Each page through the WSGI app: wall and CPU time of this process per request (and PostgreSQL's)."""
    watch = make_engine(central_db.engine_for(app).url.render_as_string(hide_password=False), poolclass=NullPool)
    clients: dict[str, FlaskClient] = {}
    for role in ("", "admin", "marketing"):
        clients[role] = app.test_client()
        if role:
            assert login(clients[role], role).status_code == 302, role
    for label, (role, urls) in listed.items():
        client = clients[role]
        wall, cpu = [], []
        client.get(urls[0])  # the pool's connection is open before PostgreSQL's backends are read
        before = _postgres_cpu(watch)
        for url in urls:
            began, used = time.perf_counter(), time.process_time()
            response = client.get(url)
            body = response.data  # a download streams: read it all
            cpu.append((time.process_time() - used) * 1000)
            wall.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200 and body, (url, response.status_code)
        after = _postgres_cpu(watch)
        server = None if before is None or after is None else (after - before) * 1000 / len(urls)
        _report(label, role or "anonymous", wall, cpu, server)
    watch.dispose()


NAVIGATION = "JSON.stringify(performance.getEntriesByType('navigation')[0])"


def in_browser(app: Flask, listed: Pages) -> None:
    """Each page in chromium against waitress: navigation duration (and time to first byte) p50, p95."""
    import json

    from playwright.sync_api import sync_playwright

    from tests.central.live import serving

    with serving(app) as base, sync_playwright() as playwright:
        host = base.replace("127.0.0.1", "localhost")  # a secure context, so the __Host- cookie is kept
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            tabs = {}
            for role in ("", "admin", "marketing"):
                tabs[role] = browser.new_context().new_page()
                if role:
                    tabs[role].goto(f"{host}/console/login")
                    tabs[role].fill("input[name=username]", role)
                    tabs[role].fill("input[name=password]", PASSWORD)
                    tabs[role].click("form:not(.lang) button[type=submit]")
                    tabs[role].wait_for_url(re.compile(r".*/console/\Z"))
            for label, (role, urls) in listed.items():
                if any(url.endswith(DOWNLOADS) for url in urls):
                    continue
                total, first = [], []
                for url in urls:
                    tabs[role].goto(f"{host}{url}", wait_until="load")
                    entry = json.loads(tabs[role].evaluate(NAVIGATION))
                    total.append(entry["duration"])
                    first.append(entry["responseStart"] - entry["requestStart"])
                line(
                    f"{label} ({role or 'anonymous'})",
                    f"p50 {statistics.median(total):6.1f} ms   p95 {_p95(total):6.1f} ms"
                    f"   first byte p95 {_p95(first):6.1f} ms",
                )
        finally:
            browser.close()


def measure(
    url: str, requests: int, browser: bool, seed: int = 7, only: str = "", concurrency: tuple[int, ...] = ()
) -> None:
    """Every page (or those whose label contains one of ``only``'s comma-separated parts) server-side, then
    (``browser``) in chromium; with ``concurrency``, instead of server-side, that many clients at a time
    against waitress (each number in turn)."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as data_dir:
        app = _app(url, Path(data_dir))
        listed = pages(_sample(app, requests, rng), requests, rng)
        admin = app.test_client()
        assert login(admin, "admin").status_code == 302
        views = listed["360 view"][1]
        listed["360 view, an older timeline page"] = ("admin", _older(admin, views) or views)
        wanted = [part for part in only.split(",") if part] or [""]
        listed = {label: page for label, page in listed.items() if any(w in label for w in wanted)}
        name = central_db.engine_for(app).dialect.name
        for clients in concurrency:
            from bench.console_load import concurrent

            print(f"  {clients} at a time, against waitress on loopback ({name}):", flush=True)
            concurrent(app, listed, clients)
        if not concurrency:
            print(f"  server-side, through the WSGI app ({name}):", flush=True)
            server_side(app, listed)
        if browser:
            print("  in chromium, against waitress on loopback:", flush=True)
            in_browser(app, listed)
        central_db.engine_for(app).dispose()
