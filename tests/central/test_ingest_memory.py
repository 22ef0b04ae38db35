"""Memory per request and across requests: inflation is bounded by a limit and a process-wide budget."""

from __future__ import annotations

import gzip
import json
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from central.ingest.budget import budget_for
from shared.crypto import b64
from tests.central.sources_support import new_key, post_events, source_event
from tests.central.support import BATCHES, Agent, create_user, login, row_counts, token_for
from tools.processes import Central

MIB = 1024 * 1024


def _padded_batch(agent: Agent, size: int) -> bytes:
    """A valid batch of one event whose payload carries ``size`` bytes of an unknown field."""
    event = agent.event("scan.member", {"code": "m"}).to_dict()
    event["payload"]["padding"] = "x" * size
    return agent.body([event])


def test_a_batch_that_would_exceed_the_budget_is_a_503_with_retry_after(make_app):
    app = make_app(ingest__decode_budget_bytes=MIB)
    client = app.test_client()
    agent = Agent()
    agent.enroll(client, token_for(app))
    response = agent.post(client, _padded_batch(agent, 2 * MIB))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["error"]["code"] == "busy"
    assert row_counts(app)["events"] == 0
    assert budget_for(app).used == 0
    assert agent.post(client, agent.body([agent.receipt("R1")])).status_code == 200
    assert budget_for(app).used == 0


def test_the_budget_is_shared_by_concurrent_requests(make_app):
    app = make_app(ingest__decode_budget_bytes=3 * MIB, ingest__max_event_bytes=MIB)
    client = app.test_client()
    agent = Agent()
    agent.enroll(client, token_for(app))
    budget = budget_for(app)
    assert budget.take(2 * MIB)  # another request holds two thirds of it
    try:
        busy = agent.post(client, _padded_batch(agent, int(1.5 * MIB)))
        assert busy.status_code == 503
    finally:
        budget.give(2 * MIB)
    reply = agent.post(client, _padded_batch(agent, int(1.5 * MIB)))
    assert reply.status_code == 200  # fits now (and the oversized event itself is rejected alone)
    assert reply.get_json()["rejected"][0]["reason"] == "event_too_large"


def test_the_default_decompressed_limit_stops_a_60_mib_body(app, client, agent):
    response = agent.post(client, _padded_batch(agent, 60 * MIB))
    assert response.status_code == 413
    assert budget_for(app).used == 0


def _peak_rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1)) * 1024


@pytest.mark.e2e
def test_eight_concurrent_60_mib_bodies_leave_memory_bounded(tmp_path):
    """Before the budget, the same eight requests took central from 87 MB to 812 MB."""
    central = Central(tmp_path, f"sqlite:///{tmp_path}/central.db")
    central.start()
    try:
        token = central.enroll_token("S001")
        agent = Agent(clock=lambda: datetime.now(UTC))
        enrolled = requests.post(
            f"{central.url}/api/v1/enroll",
            json={"token": token, "public_key": b64(agent.public_key)},
            timeout=10,
        )
        agent.device_id = enrolled.json()["device_id"]
        body = gzip.compress(_padded_batch(agent, 60 * MIB), compresslevel=6)
        assert len(body) < 1 * MIB
        assert central.process.proc is not None
        pid = central.process.proc.pid
        before = _peak_rss(pid)
        statuses: list[int] = []
        start = threading.Barrier(8)

        def send() -> None:
            headers = agent.signed_headers(body)
            start.wait()
            statuses.append(requests.post(central.url + BATCHES, data=body, headers=headers, timeout=60).status_code)

        threads = [threading.Thread(target=send) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        growth = _peak_rss(pid) - before
        healthy = requests.get(central.url + "/healthz", timeout=10).status_code
    finally:
        central.close()
    print(json.dumps({"peak_rss_growth_mib": round(growth / MIB, 1), "statuses": sorted(statuses)}))
    assert set(statuses) <= {413, 503} and len(statuses) == 8
    assert growth < 160 * MIB, f"peak RSS grew by {growth / MIB:.0f} MiB"
    assert healthy == 200


def test_a_sources_post_inflates_from_the_same_budget(make_app):
    """5,000 gzipped order events inflating to about 1 MB were taken whatever the budget."""
    app = make_app(ingest__decode_budget_bytes=100_000)
    client = app.test_client()
    key = new_key(app)
    events = [
        source_event(f"o-{i}", "order.online", payload={"order_no": f"N{i}", "total": "66.00"}) for i in range(5000)
    ]
    response = post_events(client, key, events, gzipped=True)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["error"]["code"] == "busy"
    assert row_counts(app)["events"] == 0
    assert budget_for(app).used == 0
    budget = budget_for(app)
    assert budget.take(90_000)  # another request holds most of it: a small post waits its turn too
    try:
        busy = post_events(client, key, events[:500], gzipped=True)
        assert busy.status_code == 503
    finally:
        budget.give(90_000)
    assert post_events(client, key, events[:500], gzipped=True).get_json()["accepted"][-1] == "o-499"
    assert budget_for(app).used == 0


def test_a_member_import_upload_inflates_from_the_same_budget(make_app):
    app = make_app(ingest__decode_budget_bytes=100_000)
    create_user(app)
    client = app.test_client()
    assert login(client).status_code == 302
    rows = "".join(f"王芳{i},1380013{i:04d}\n" for i in range(9000))
    body = gzip.compress(f"姓名,手机号码\n{rows}".encode())
    response = client.post(
        "/api/v1/imports/members?map=姓名=name&map=手机号码=phone",
        data=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "text/csv"},
    )
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "busy"
    assert row_counts(app)["events"] == 0
    assert budget_for(app).used == 0
