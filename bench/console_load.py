"""Console pages with several clients at a time: threads walking every page against waitress on loopback.

Used by :mod:`bench.console_pages` (``--concurrency N``). Each client logs in as each role it needs
(through the real form), then walks the pages in turn, every URL of a page, starting at a page of its
own so that the clients ask for different pages at once, as people do. Per page: p50 and p95 of the
time from sending the request to reading the whole answer (and, for downloads, to its first byte);
then the requests served per second over the whole run, and the CPU this process (the server and
the clients) and PostgreSQL's backends spent per request.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from typing import Any

import requests
from flask import Flask
from sqlalchemy.pool import NullPool

from bench.common import line
from bench.console_timing import DOWNLOADS, Pages, _p95, _postgres_cpu
from central import db as central_db
from central.db import make_engine
from tests.central.live import serving
from tests.central.support import PASSWORD

SERVER_THREADS = 8  # central's default (server.threads)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class _Loopback(requests.Session):
    """Sends the ``__Host-`` Secure cookies back over plain HTTP to 127.0.0.1, as a browser does to localhost."""

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        for cookie in self.cookies:
            cookie.secure = False
        return super().request(*args, **kwargs)


def _client(base: str, role: str) -> requests.Session:
    session = _Loopback()
    if role:
        page = session.get(f"{base}/console/login").text
        match = _CSRF.search(page)
        assert match, "no CSRF token on the login page"
        form = {"username": role, "password": PASSWORD, "csrf_token": match.group(1)}
        answer = session.post(f"{base}/console/login", data=form, allow_redirects=False)
        assert answer.status_code == 302, (role, answer.status_code)
    return session


def _walk(base: str, listed: Pages, start: int, times: dict[str, list[tuple[float, float]]], lock: Any) -> None:
    sessions = {role: _client(base, role) for role in {role for role, _ in listed.values()}}
    labels = list(listed)
    for label in labels[start:] + labels[:start]:
        role, urls = listed[label]
        mine = []
        for url in urls:
            began = time.perf_counter()
            with sessions[role].get(f"{base}{url}", stream=True) as answer:
                first = time.perf_counter() - began
                body = answer.content
            mine.append(((time.perf_counter() - began) * 1000, first * 1000))
            assert answer.status_code == 200 and body, (url, answer.status_code)
        with lock:
            times[label].extend(mine)
    for session in sessions.values():
        session.close()


def concurrent(app: Flask, listed: Pages, clients: int) -> None:
    """Every page asked by ``clients`` clients at once against waitress; p50/p95 per page, then throughput."""
    watch = make_engine(central_db.engine_for(app).url.render_as_string(hide_password=False), poolclass=NullPool)
    times: dict[str, list[tuple[float, float]]] = {label: [] for label in listed}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def run(start: int) -> None:
        try:
            _walk(base, listed, start, times, lock)
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    with serving(app, threads=max(SERVER_THREADS, clients)) as base:
        _client(base, "admin").close()  # the pool's connections are open before PostgreSQL's backends are read
        before, cpu = _postgres_cpu(watch), time.process_time()
        began = time.perf_counter()
        walkers = [threading.Thread(target=run, args=(k * len(listed) // clients,)) for k in range(clients)]
        for walker in walkers:
            walker.start()
        for walker in walkers:
            walker.join()
        wall = time.perf_counter() - began
        used, after = time.process_time() - cpu, _postgres_cpu(watch)
    watch.dispose()
    if errors:
        raise errors[0]
    for label, (role, urls) in listed.items():
        total = [t for t, _ in times[label]]
        first = ""
        if any(url.endswith(DOWNLOADS) for url in urls):
            firsts = [f for _, f in times[label]]
            first = f"   first byte p50 {statistics.median(firsts):6.1f} ms, p95 {_p95(firsts):6.1f} ms"
        line(
            f"{label} ({role or 'anonymous'})",
            f"p50 {statistics.median(total):6.1f} ms   p95 {_p95(total):6.1f} ms{first}   ({len(total)} requests)",
        )
    served = sum(len(t) for t in times.values())
    server = "" if before is None or after is None else f", PostgreSQL {(after - before) * 1000 / served:.1f} ms"
    line(
        f"{clients} clients: {served} requests in",
        f"{wall:.1f} s, {served / wall:.1f} requests/s; CPU per request: here {used * 1000 / served:.1f} ms{server}",
    )
