"""Promotion stress test: members claim coupons, then 50 tills' syncs redeem them at central at once.

Central runs as its own process under waitress (SQLite file, then PostgreSQL). Phase 1: every
member claims the campaign's code through the JSON API (8 logged-in clients, one member a
request); then a member app's backend hands a second campaign to every member, 1,000 members a
request (the same 8 clients). Phase 2: 50
enrolled devices each send their share of ``scan.coupon`` redemptions as signed, gzipped batches of
500, all 50 at once; 1% of the codes are redeemed at two tills (double redemptions) and the
campaign's maximum is 95% of the members, so central must refuse and flag the rest. Baseline, in
the same run: the same 50 devices sending the same number of ``scan.product`` events (ingest without
the coupon step). Prints throughput, p99 latency, flagged counts and over-redemptions (must be 0).
"""

from __future__ import annotations

import gzip
import re
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from sqlalchemy.orm import Session

from bench.common import line
from central.db import make_engine
from central.fleet.enrollment import issue_token
from shared import wire
from shared.crypto import RequestSigner, b64, new_signing_key
from shared.ids import UUID7
from tools.databases import temporary_postgres_database
from tools.processes import Central

AGENTS = 50
BATCH = 500
CLAIM_CLIENTS = 8
CLAIM_BATCH = 1_000
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _login(base: str) -> requests.Session:
    session = requests.Session()
    token = _CSRF.search(session.get(f"{base}/console/login", timeout=30).text)
    assert token, "no CSRF token on the login page"
    reply = session.post(
        f"{base}/console/login",
        data={"username": "bench", "password": "bench-password-1", "csrf_token": token.group(1)},
        allow_redirects=False,
        timeout=30,
    )
    assert reply.status_code == 302, reply.text
    return session


def _claims(base: str, campaign: int, members: int) -> tuple[list[str], list[float], float]:
    sessions = [_login(base) for _ in range(CLAIM_CLIENTS)]
    codes: list[str] = [""] * members
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        mine = []
        for m in range(k, members, CLAIM_CLIENTS):
            start = time.perf_counter()
            reply = sessions[k].post(
                f"{base}/api/v1/coupons/campaigns/{campaign}/codes", json={"member_id": f"M{m:07d}"}, timeout=60
            )
            mine.append(time.perf_counter() - start)
            assert reply.status_code == 201, reply.text
            codes[m] = reply.json()["codes"][0]["code"]
        with lock:
            latencies.extend(mine)

    start = time.perf_counter()
    with ThreadPoolExecutor(CLAIM_CLIENTS) as pool:
        list(pool.map(worker, range(CLAIM_CLIENTS)))
    return codes, latencies, time.perf_counter() - start


def _batch_claims(base: str, campaign: int, members: int) -> tuple[list[float], float]:
    """Every member claims ``campaign`` through requests naming CLAIM_BATCH members each."""
    sessions = [_login(base) for _ in range(CLAIM_CLIENTS)]
    chunks = [range(first, min(members, first + CLAIM_BATCH)) for first in range(0, members, CLAIM_BATCH)]
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        mine = []
        for chunk in chunks[k::CLAIM_CLIENTS]:
            start = time.perf_counter()
            reply = sessions[k].post(
                f"{base}/api/v1/coupons/campaigns/{campaign}/codes",
                json={"member_ids": [f"M{m:07d}" for m in chunk]},
                timeout=300,
            )
            mine.append(time.perf_counter() - start)
            assert reply.status_code == 201, reply.text
            assert len(reply.json()["codes"]) == len(chunk)
        with lock:
            latencies.extend(mine)

    start = time.perf_counter()
    with ThreadPoolExecutor(CLAIM_CLIENTS) as pool:
        list(pool.map(worker, range(CLAIM_CLIENTS)))
    return latencies, time.perf_counter() - start


class _Device:
    def __init__(self, base: str, token: str, store: str) -> None:
        private, public = new_signing_key()
        reply = requests.post(f"{base}/api/v1/enroll", json={"token": token, "public_key": b64(public)}, timeout=30)
        assert reply.status_code == 201, reply.text
        self.device_id = reply.json()["device_id"]
        self.signer = RequestSigner(self.device_id, private)
        self.store = store
        self.seq = 0
        self.ids = UUID7()
        self.http = requests.Session()

    def batches(self, kind: str, payloads: list[dict[str, object]], at: datetime) -> list[bytes]:
        out = []
        for first in range(0, len(payloads), BATCH):
            events = []
            for payload in payloads[first : first + BATCH]:
                self.seq += 1
                events.append(wire.Event(self.ids(), self.seq, kind, wire.format_time(at), self.store, payload))
            batch = wire.Batch(self.device_id, self.ids(), wire.format_time(at), tuple(events))
            out.append(gzip.compress(wire.encode_batch(batch)))
        return out

    def send(self, base: str, bodies: list[bytes]) -> list[float]:
        latencies = []
        for body in bodies:
            headers = self.signer.headers("POST", "/api/v1/batches", wire.timestamp(), body)
            headers.update({"Content-Type": "application/json", "Content-Encoding": "gzip"})
            start = time.perf_counter()
            reply = self.http.post(f"{base}/api/v1/batches", data=body, headers=headers, timeout=300)
            latencies.append(time.perf_counter() - start)
            assert reply.status_code == 200, reply.text
            assert not wire.decode_reply(reply.content).rejected
        return latencies


def _storm(base: str, devices: list[_Device], work: list[list[bytes]]) -> tuple[list[float], float]:
    start = time.perf_counter()
    with ThreadPoolExecutor(len(devices)) as pool:
        results = list(pool.map(lambda i: devices[i].send(base, work[i]), range(len(devices))))
    return [x for r in results for x in r], time.perf_counter() - start


def run(workdir: Path, database_url: str, members: int) -> None:
    central = Central(workdir, database_url)
    central.cli("migrate")
    central.cli("create-admin", "--username", "bench", "--password-stdin", stdin="bench-password-1\n")
    maximum = members * 95 // 100
    now = datetime.now(UTC)
    central.cli(
        "coupons", "create", "--name", "promo", "--value", "10", "--valid-from", (now - timedelta(hours=1)).isoformat(),
        "--valid-to", (now + timedelta(days=1)).isoformat(), "--max-redemptions", str(maximum),
        "--per-store-offline-budget", str(members),
    )  # fmt: skip
    central.cli(
        "coupons", "create", "--name", "app-gift", "--value", "5",
        "--valid-from", (now - timedelta(hours=1)).isoformat(), "--valid-to", (now + timedelta(days=1)).isoformat(),
        "--max-redemptions", str(members), "--per-store-offline-budget", "0",
    )  # fmt: skip
    engine = make_engine(database_url)
    with Session(engine) as db:
        tokens = [issue_token(db, f"S{i:03d}", 1.0) for i in range(AGENTS)]
        db.commit()
    engine.dispose()
    central.start()
    try:
        base = central.url
        codes, claim_latencies, claim_s = _claims(base, 1, members)
        line(
            "claims",
            f"{members:,} in {claim_s:.1f} s = {members / claim_s:,.0f}/s, p99 {_p99(claim_latencies) * 1000:.0f} ms",
        )
        batch_latencies, batch_s = _batch_claims(base, 2, members)
        line(
            f"claims, {CLAIM_BATCH:,} a request",
            f"{members:,} in {batch_s:.1f} s = {members / batch_s:,.0f}/s, "
            f"request p99 {_p99(batch_latencies) * 1000:.0f} ms",
        )
        devices = [_Device(base, tokens[i], f"S{i:03d}") for i in range(AGENTS)]
        at = now + timedelta(minutes=5)
        shares: list[list[dict[str, object]]] = [[] for _ in range(AGENTS)]
        doubles = members // 100
        for m, code in enumerate(codes):
            shares[m % AGENTS].append({"code": code, "register": "R1", "result": "accepted"})
        for m in range(doubles):  # the same code at a second till
            shares[(m + 1) % AGENTS].append({"code": codes[m], "register": "R2", "result": "accepted"})
        products = [[{"code": f"690{m:010d}", "register": "R1"} for m in range(len(share))] for share in shares]
        baseline_work = [d.batches("scan.product", p, at) for d, p in zip(devices, products, strict=True)]
        coupon_work = [d.batches("scan.coupon", s, at) for d, s in zip(devices, shares, strict=True)]
        total = sum(len(s) for s in shares)
        base_lat, base_s = _storm(base, devices, baseline_work)
        line(
            "baseline: scan.product",
            f"{total:,} events in {base_s:.1f} s = {total / base_s:,.0f}/s, batch p99 {_p99(base_lat) * 1000:.0f} ms",
        )
        lat, elapsed = _storm(base, devices, coupon_work)
        line(
            "redemptions",
            f"{total:,} in {elapsed:.1f} s = {total / elapsed:,.0f}/s, batch p99 {_p99(lat) * 1000:.0f} ms",
        )
        line("ratio to baseline", f"{(total / elapsed) / (total / base_s):.2f}x throughput")
        redeemed = central.scalar("SELECT redeemed FROM coupon_campaigns WHERE id = 1")
        applied = central.scalar("SELECT COUNT(*) FROM coupon_redemptions WHERE status = 'applied'")
        doubles_flagged = central.scalar("SELECT COUNT(*) FROM coupon_conflicts WHERE kind = 'double_redemption'")
        over_flagged = central.scalar("SELECT COUNT(*) FROM coupon_conflicts WHERE kind = 'over_redemption'")
        stored = central.scalar("SELECT COUNT(*) FROM events WHERE kind = 'scan.coupon'")
        over = max(0, applied - maximum) + max(0, redeemed - maximum) + abs(applied - redeemed)
        line("applied / max", f"{applied:,} / {maximum:,} (campaign counter {redeemed:,})")
        line("flagged", f"{doubles_flagged:,} double (of {doubles:,}), {over_flagged:,} over the maximum")
        line("events stored", f"{stored:,} of {total:,}")
        line("over-redemptions", str(over))
        assert over == 0 and stored == total and doubles_flagged == doubles
        assert applied + over_flagged == members
    finally:
        central.close()


def main(members: int = 100_000, backend: str = "both") -> None:
    """Run on SQLite and/or PostgreSQL with ``members`` members (and as many redemptions)."""
    print(f"promotion stress test: {members:,} members, {AGENTS} agents, batches of {BATCH}")
    if backend in ("sqlite", "both"):
        print("SQLite:")
        with tempfile.TemporaryDirectory() as tmp:
            run(Path(tmp), f"sqlite:///{tmp}/central.db", members)
    if backend in ("postgresql", "both"):
        print("PostgreSQL:")
        with tempfile.TemporaryDirectory() as tmp, temporary_postgres_database("cdp_bench") as url:
            run(Path(tmp), url, members)
