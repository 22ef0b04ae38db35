"""A simulated store with known ground truth through the real agent (Wi-Fi source) and central's presence API.

The floor (walkers-by, visitors with known dwell, randomized-MAC phones, same-day returns) is written
as the pcapng a capture tool merging the three readers would write, and the agent replays it. A
second agent of the same store, sharing its presence secret as decision 0045 says, replays the same
capture: central merges the two agents' sketches, so distinct counts do not double. Finally no file
of either agent or of central holds any of the simulated raw MAC addresses.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.orm import Session

from central.auth import hash_password
from central.fleet.enrollment import issue_token
from central.models import User
from tools.processes import Agent, Central, Till, wait_until
from tools.store_floor import PLACEMENTS, StoreFloor, write_pcapng

pytestmark = pytest.mark.e2e

PASSWORD = "presence-pass-1"
MAC_TEXT = re.compile(rb"(?<![0-9a-f])[0-9a-f]{2}(?:[:-]?[0-9a-f]{2}){5}(?![0-9a-f])")
ZONES = ", ".join(f"{reader}={zone}" for reader, zone in PLACEMENTS.items())


def presence_agent(workdir: Path, capture: Path, cleanup: list) -> Agent:
    workdir.mkdir(exist_ok=True)
    till = Till([], rate=1.0)  # the till stays silent: presence alone is under test
    agent = Agent(
        workdir,
        till.path,
        presence_settings=f'wifi = "{capture}"\nzones = "{ZONES}"\ntimezone = "Asia/Shanghai"\ntick_interval = 0.5',
    )
    cleanup += [till, agent]
    return agent


def login(central, session: requests.Session) -> None:
    form = session.get(f"{central.url}/console/login", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token
    reply = session.post(
        f"{central.url}/console/login",
        data={"username": "admin", "password": PASSWORD, "csrf_token": token.group(1)},
        timeout=10,
    )
    assert reply.status_code == 200


def expected_hours(floor: StoreFloor, last_at: float) -> int:
    return int((last_at - floor.start) // 3600) + 1  # the floor starts on the hour


@pytest.fixture
def central(tmp_path):
    """One backend is enough here: the presence tables' SQL is the same on both (the migration test covers
    PostgreSQL)."""
    server = Central(tmp_path, f"sqlite:///{tmp_path / 'central.db'}")
    server.start()
    yield server
    server.close()


def test_simulated_store_through_agent_and_central_matches_the_truth(central, tmp_path, cleanup):
    floor = StoreFloor(seed=5)
    sightings = floor.sightings()
    capture = tmp_path / "floor.pcapng"
    with capture.open("wb") as out:
        write_pcapng(sightings, out)
    hours = expected_hours(floor, sightings[-1].at)

    first = presence_agent(tmp_path / "a", capture, cleanup)
    second = presence_agent(tmp_path / "b", capture, cleanup)
    session = requests.Session()
    with Session(central.engine) as db:  # as `central-server enroll-token` and `create-admin` do, without two processes
        tokens = [issue_token(db, "S001", 1.0), issue_token(db, "S001", 1.0)]
        db.add(
            User(username="admin", password_hash=hash_password(PASSWORD), role="admin", created_at=datetime.now(UTC))
        )
        db.commit()
    enrolls = [
        threading.Thread(target=a.enroll, args=(central.url, t)) for a, t in zip((first, second), tokens, strict=True)
    ]
    for thread in enrolls:
        thread.start()
    for thread in enrolls:
        thread.join(60)
    login(central, session)
    # Both PCs of the store share one presence secret (copied by the technician, decision 0045).
    secret = secrets.token_bytes(32)
    for agent in (first, second):
        path = agent.data_dir / "presence.secret"
        path.write_bytes(secret)
        os.chmod(path, 0o600)
    first.start()
    wait_until(lambda: central.scalar("SELECT COUNT(*) FROM presence_hours") >= hours, 60, "the hours at central")

    window = {"from": "2026-11-23T00:00:00+08:00", "to": "2026-11-24T00:00:00+08:00", "medium": "wifi"}
    report = session.get(f"{central.url}/api/v1/presence/S001", params=window, timeout=10).json()
    total = report["totals"]["wifi"]
    truth = Counter(p.kind for p in floor.people)
    visitors = [p for p in floor.people if p.kind == "visitor"]

    # Visit count and the passer-by / visitor split.
    assert total["visits"] == truth["visitor"] == len(visitors)
    assert total["passes"] == truth["walker"]
    assert total["randomized_visits"] == sum(p.randomized for p in visitors)
    assert total["repeat_visits"] == sum(p.repeat for p in visitors)
    # Distinct counts come from HyperLogLog sketches (p = 12): close to exact at these sizes, not exact.
    assert total["passers_by"] == pytest.approx(truth["walker"], rel=0.05)
    assert total["visitors"] == pytest.approx(len({p.address for p in visitors}), rel=0.05)
    assert total["capture_rate"] == pytest.approx(
        total["visitors"] / (total["visitors"] + total["passers_by"]), abs=1e-3
    )
    # Dwell within 10 %: each visit of a global address, and the total over every visit.
    measured = report["visits"]["dwell_s"]
    true_dwells = sorted(p.dwell for p in visitors if not p.randomized)
    assert len(measured) == len(true_dwells)
    for got, want in zip(measured, true_dwells, strict=True):
        assert abs(got - want) <= 0.10 * want
    assert total["dwell"]["total_s"] == pytest.approx(sum(p.dwell for p in visitors), rel=0.10)
    assert sum(total["dwell"]["counts"]) == len(visitors)
    # Footfall per hour and zone heat.
    assert [h["hour_start"][:13] for h in report["hours"]] == [f"2026-11-23T{10 + n}" for n in range(hours)]
    assert sum(h["visits"] for h in report["hours"]) == len(visitors)
    assert set(total["zones"]) == set(PLACEMENTS.values())
    assert sum(z["dwell_s"] for z in total["zones"].values()) == pytest.approx(total["dwell"]["total_s"], rel=0.01)

    # A second agent of the store hears the same people: distinct counts merge, they do not double.
    first.stop()
    second.start()
    wait_until(
        lambda: central.scalar("SELECT COUNT(*) FROM presence_hours") >= 2 * hours, 60, "the second agent's hours"
    )
    merged = session.get(f"{central.url}/api/v1/presence/S001", params=window, timeout=10).json()["totals"]["wifi"]
    assert merged["agents"] == 2
    assert merged["visits"] == 2 * total["visits"]  # plain counts are each agent's own
    assert (merged["visitors"], merged["passers_by"], merged["devices"]) == (
        total["visitors"],
        total["passers_by"],
        total["devices"],
    )
    second.stop()

    # No simulated raw MAC address in any file of either agent or of central, in any spelling.
    addresses = {p.address for p in floor.people}
    bare = {a.replace(":", "") for a in addresses}
    assert all(bytes.fromhex(a) in capture.read_bytes() for a in list(bare)[:5])  # the scan can see them
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p != capture]
    assert any(p.name == "outbox.db" for p in files) and any(p.suffix == ".log" for p in files)
    for path in files:
        data = path.read_bytes()
        if not data.strip(b"\x00"):
            continue  # the disk reserve: zeros only
        # Written as text with colons, dashes or nothing between the octets, in either case ...
        spelled = {re.sub(rb"[:-]", b"", m).decode() for m in MAC_TEXT.findall(data.lower())}
        assert not spelled & bare, f"a raw address in {path}"
        # ... or as its six raw bytes.
        for address in bare:
            assert bytes.fromhex(address) not in data, f"a raw address in {path}"
    with central.engine.connect() as conn:  # PostgreSQL keeps its files elsewhere: read every presence row
        rows = [
            str(row)
            for table in ("events", "presence_visits", "presence_hours")
            for row in conn.execute(sa.text(f"SELECT * FROM {table}"))  # noqa: S608 - our own table names
        ]
    spelled = {re.sub(rb"[:-]", b"", m).decode() for m in MAC_TEXT.findall("\n".join(rows).lower().encode())}
    assert not spelled & bare
