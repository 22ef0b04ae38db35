"""The downlink end to end: HQ publishes a document, agents (real HTTP, DownlinkStore on disk) apply it."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import pytest
import requests

from central import db as central_db
from central.clock import system_clock
from central.fleet import downlink
from edge_agent.config import load_config as load_agent_config
from edge_agent.downlink import DownlinkError, DownlinkStore, remember_central_key
from edge_agent.transport import Response
from shared import wire
from shared.crypto import b64
from tests.central.live import serving
from tests.central.support import BATCHES, Agent, token_for


class Getter:
    """A GET with headers over a requests session (what the agent's transport provides)."""

    def __init__(self, base: str, tamper=None) -> None:
        self.base = base
        self.tamper = tamper
        self.session = requests.Session()

    def get(self, path: str, timeout: float, headers: dict[str, str] | None = None) -> Response:
        reply = self.session.get(self.base + path, headers=headers, timeout=timeout)
        body = reply.content if self.tamper is None else self.tamper(reply.content)
        return Response(reply.status_code, body)


class StoreAgent:
    """An enrolled agent with its own DownlinkStore directory."""

    def __init__(self, base: str, app, store: str, directory) -> None:
        self.base = base
        self.agent = Agent(store_id=store, clock=lambda: datetime.now(UTC))
        token = token_for(app, store, now=system_clock())
        reply = requests.post(
            f"{base}/api/v1/enroll", json={"token": token, "public_key": b64(self.agent.public_key)}, timeout=10
        )
        assert reply.status_code == 201, reply.text
        self.agent.device_id = reply.json()["device_id"]
        directory.mkdir()
        remember_central_key(directory, reply.json())
        self.directory = directory
        self.store = DownlinkStore(directory, store)

    def sync(self) -> wire.Reply:
        body = gzip.compress(self.agent.body([self.agent.event("scan.member", {"code": "m"})]))
        reply = requests.post(f"{self.base}{BATCHES}", data=body, headers=self.agent.signed_headers(body), timeout=10)
        assert reply.status_code == 200, reply.text
        return wire.decode_reply(reply.content)

    def sync_and_fetch(self, getter: Getter | None = None) -> bool:
        reply = self.sync()
        return self.store.maybe_fetch(getter or Getter(self.base), self.agent.signer(), reply.downlink_version)


@pytest.fixture
def live(app):
    app.config["CLOCK"] = system_clock
    with serving(app) as base:
        yield base


def _publish(app, store: str, name: str, body) -> int:
    with central_db.session_factory(app)() as db:
        version = downlink.publish(db, store, name, body, now=system_clock(), actor="test")
        db.commit()
    return version


def test_a_setting_changed_at_central_is_applied_by_every_agent(app, live, tmp_path, user_client):
    agents = [StoreAgent(live, app, store, tmp_path / f"agent{i}") for i, store in enumerate(["S001", "S001", "S002"])]
    assert [a.sync().downlink_version for a in agents] == [None, None, None]
    assert not any(a.sync_and_fetch() for a in agents)

    # HQ changes a setting for every store through the admin API, then one more for S001 only.
    put = user_client.put("/api/v1/downlink/documents/*/settings", json={"sync.interval": 5, "sync.batch_size": 200})
    assert put.status_code == 200, put.get_data(as_text=True)
    put = user_client.put("/api/v1/downlink/documents/S001/settings", json={"sync.interval": 3})
    assert put.get_json()["version"] == 2

    assert all(a.sync_and_fetch() for a in agents)
    assert [a.store.settings_overrides() for a in agents] == [{"sync.interval": 3}] * 2 + [
        {"sync.interval": 5, "sync.batch_size": 200}
    ]
    assert [a.store.version for a in agents] == [2, 2, 1]
    config = load_agent_config(None, environ={}, overrides=agents[0].store.settings_overrides(), check_required=False)
    assert config.sync_interval == 3.0
    assert not any(a.sync_and_fetch() for a in agents)  # nothing new: no fetch

    # Withdrawing S001's own document falls back to the one for every store.
    assert user_client.delete("/api/v1/downlink/documents/S001/settings").status_code == 200
    assert agents[0].sync_and_fetch()
    assert agents[0].store.settings_overrides() == {"sync.interval": 5, "sync.batch_size": 200}

    # A restart keeps what was applied.
    again = DownlinkStore(agents[0].directory, "S001")
    assert (again.version, again.settings_overrides()) == (3, {"sync.interval": 5, "sync.batch_size": 200})


def test_a_tampered_document_is_refused_and_the_last_good_one_kept(app, live, tmp_path):
    agent = StoreAgent(live, app, "S001", tmp_path / "agent")
    _publish(app, "S001", "settings", {"sync.interval": 5})
    assert agent.sync_and_fetch()
    _publish(app, "S001", "settings", {"sync.interval": 7})

    def raise_interval(body: bytes) -> bytes:
        return body.replace(b'"sync.interval":7', b'"sync.interval":700')

    def other_store(body: bytes) -> bytes:
        return body.replace(b'"store_id":"S001"', b'"store_id":"S002"')

    for tamper in (raise_interval, other_store):
        with pytest.raises(DownlinkError):
            agent.sync_and_fetch(Getter(live, tamper))
        assert (agent.store.version, agent.store.settings_overrides()) == (1, {"sync.interval": 5})
    assert DownlinkStore(agent.directory, "S001").settings_overrides() == {"sync.interval": 5}
    assert agent.sync_and_fetch()
    assert agent.store.settings_overrides() == {"sync.interval": 7}


def test_a_document_signed_for_another_store_does_not_verify(app, live, tmp_path):
    first = StoreAgent(live, app, "S001", tmp_path / "first")
    second = StoreAgent(live, app, "S002", tmp_path / "second")
    _publish(app, "S001", "coupons", {"c1": "10% off"})
    first.sync_and_fetch()
    s001_answer = json.loads(
        requests.get(
            f"{live}/api/v1/downlink?since=0",
            headers=first.agent.signer().headers("GET", "/api/v1/downlink?since=0", wire.timestamp(), b""),
            timeout=10,
        ).content
    )
    s001_answer["store_id"] = "S002"
    with pytest.raises(DownlinkError, match="signature does not verify"):
        second.store.apply(s001_answer)
    assert second.store.names() == []


def test_the_fetch_is_a_signed_request(app, live):
    unsigned = requests.get(f"{live}/api/v1/downlink?since=0", timeout=10)
    assert unsigned.status_code == 401
    assert unsigned.json() == {"error": {"code": "unauthorized", "message": "authentication failed"}}


def test_admin_writes_need_a_login_and_json(app, client, user_client):
    assert client.put("/api/v1/downlink/documents/*/settings", json={"sync.interval": 5}).status_code == 401
    form = user_client.put("/api/v1/downlink/documents/*/settings", data={"sync.interval": "5"})
    assert form.status_code == 415
    bad = user_client.put("/api/v1/downlink/documents/*/settings", json={"interval": 5})
    assert bad.status_code == 400
    assert bad.get_json()["error"]["code"] == "invalid_document"
    # What the agents would not apply is refused too, every problem named.
    sent = {"sync.interval": 0.001, "panel.host": "0.0.0.0"}  # noqa: S104
    bad = user_client.put("/api/v1/downlink/documents/*/settings", json=sent)
    assert bad.status_code == 400
    assert bad.get_json()["error"] == {
        "code": "invalid_document",
        "message": "settings: sync.interval: must be from 0.05 to 3600; got 0.001; "
        "settings: panel.host: set on the store PC only; central may not change it",
    }
    assert user_client.delete("/api/v1/downlink/documents/S001/nothing").status_code == 400
    listing = user_client.get("/api/v1/downlink/documents").get_json()
    assert listing == {"documents": []}


def test_changes_since_a_version(app):
    with central_db.session_factory(app)() as db:
        now = system_clock()
        v1 = downlink.publish(db, "*", "settings", {"sync.interval": 5}, now=now, actor="t")
        v2 = downlink.publish(db, "S001", "coupons", {"c": 1}, now=now, actor="t")
        v3 = downlink.publish(db, "S002", "coupons", {"c": 2}, now=now, actor="t")
        db.commit()
        assert (v1, v2, v3) == (1, 2, 3)
        assert downlink.current_version(db, "S001") == 2
        assert downlink.current_version(db, "S002") == 3
        assert downlink.current_version(db, "S404") == 1
        assert [d.name for d in downlink.changes(db, "S001", 0)] == ["coupons", "settings"]
        assert [d.name for d in downlink.changes(db, "S001", 1)] == ["coupons"]
        assert downlink.changes(db, "S001", 2) == []
