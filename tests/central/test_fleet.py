"""The fleet view: healthy, degraded (the heartbeat says so), offline (no heartbeat), retired, revoked."""

from __future__ import annotations

from central import db as central_db
from central.fleet.devices import set_status
from tests.central.support import START, Agent, token_for


def _states(user_client) -> dict[str, str]:
    return {d["device_id"]: d["state"] for d in user_client.get("/api/v1/devices").get_json()["devices"]}


def _agent(app, client) -> Agent:
    agent = Agent()
    assert agent.enroll(client, token_for(app)).status_code == 201
    return agent


def test_states_follow_heartbeats_and_status(app, client, user_client, clock):
    fine, slow, silent, gone, stolen = (_agent(app, client) for _ in range(5))
    beat = {"agent_version": "0.2.0", "sources": {"pos": {"state": "reading"}}}
    fine.send(client, [fine.event("agent.heartbeat", {**beat, "health": {"state": "ok", "backlog": 0}})])
    slow.send(client, [slow.event("agent.heartbeat", {**beat, "health": {"state": "degraded", "backlog": 9000}})])
    silent.send(client, [silent.receipt("R1")])  # delivers, but no heartbeat yet
    with central_db.session_factory(app)() as db:
        set_status(db, gone.device_id, "retired", reason="store closed", now=START, actor="test")
        set_status(db, stolen.device_id, "revoked", reason="stolen", now=START, actor="test")
        db.commit()
    assert _states(user_client) == {
        fine.device_id: "healthy",
        slow.device_id: "degraded",
        silent.device_id: "offline",
        gone.device_id: "retired",
        stolen.device_id: "revoked",
    }
    listing = user_client.get("/api/v1/devices").get_json()
    assert listing["counts"] == {"healthy": 1, "degraded": 1, "offline": 1, "retired": 1, "revoked": 1}
    (slow_row,) = [d for d in listing["devices"] if d["device_id"] == slow.device_id]
    assert slow_row["health"] == {"state": "degraded", "backlog": 9000}
    assert slow_row["sources"] == {"pos": {"state": "reading"}}
    assert slow_row["agent_version"] == "0.2.0"

    clock.advance(seconds=299)
    assert _states(user_client)[fine.device_id] == "healthy"
    clock.advance(seconds=2)
    assert _states(user_client)[fine.device_id] == "offline"
    offline = user_client.get("/api/v1/devices?state=offline").get_json()["devices"]
    assert {d["device_id"] for d in offline} == {fine.device_id, slow.device_id, silent.device_id}
    assert user_client.get("/api/v1/devices?state=sleepy").status_code == 400


def test_the_offline_limit_is_configurable(make_app, clock):
    app = make_app(fleet__offline_after=30)
    client = app.test_client()
    from tests.central.support import create_user, login

    create_user(app)
    admin = app.test_client()
    login(admin)
    agent = _agent(app, client)
    agent.send(client, [agent.event("agent.heartbeat", {"agent_version": "1"})])
    clock.advance(seconds=31)
    assert _states(admin) == {agent.device_id: "offline"}


def test_a_heartbeat_is_bounded_by_its_schema(app, client, agent, user_client):
    huge = {"agent_version": "1", "health": {f"k{i}": i for i in range(100)}}
    reply = agent.send(client, [agent.event("agent.heartbeat", huge)])
    assert reply["rejected"][0]["reason"] == "invalid_payload:health"


def test_admins_revoke_and_retire_through_the_api(app, client, user_client):
    first, second = _agent(app, client), _agent(app, client)
    assert client.post(f"/api/v1/devices/{first.device_id}/revoke", json={}).status_code == 401  # not logged in
    response = user_client.post(f"/api/v1/devices/{first.device_id}/revoke", json={"reason": "stolen"})
    assert response.get_json() == {"device_id": first.device_id, "previous": "active", "status": "revoked"}
    assert first.post(client, first.body([first.receipt("R1")])).status_code == 401
    assert user_client.post(f"/api/v1/devices/{second.device_id}/retire", json={}).status_code == 200
    conflict = user_client.post(f"/api/v1/devices/{first.device_id}/retire", json={})
    assert conflict.status_code == 409
    assert user_client.post("/api/v1/devices/dev_nope/revoke", json={}).status_code == 404
    assert user_client.post(f"/api/v1/devices/{second.device_id}/revoke", data="x").status_code == 415


def test_settings_an_agent_ignores_are_shown_by_name_and_reason_code(app, client, user_client):
    from central.fleet.health import snapshot_figures

    ignoring, older = _agent(app, client), _agent(app, client)
    ignored = {
        "sync.tls_fingerprint": "local_only",
        "sync.intervall": "unknown_setting",
        "sync.batch_size": "invalid_value",
        "Zhang Wei 13800138000": "unknown_setting",  # a hand-written document may hold anything as a name
        "sync.max_backoff": "expected an integer, got '13800138000'",  # an agent's words, not a code
    }
    health = {"state": "ok", "queue_depth": 0, "settings_ignored": ignored}
    ignoring.send(client, [ignoring.event("agent.heartbeat", {"agent_version": "0.3.0", "health": health})])
    older.send(client, [older.event("agent.heartbeat", {"agent_version": "0.1.0", "health": {"state": "ok"}})])

    devices = {d["device_id"]: d for d in user_client.get("/api/v1/devices").get_json()["devices"]}
    assert devices[ignoring.device_id]["settings_ignored"] == {
        "(not a setting name)": "unknown_setting",
        "sync.batch_size": "invalid_value",
        "sync.intervall": "unknown_setting",
        "sync.max_backoff": "invalid_value",
        "sync.tls_fingerprint": "local_only",
    }
    assert devices[ignoring.device_id]["state"] == "healthy"  # it runs; what HQ asked for does not all apply
    assert devices[older.device_id]["settings_ignored"] == {}
    figures = dict(snapshot_figures(devices[ignoring.device_id]["last_heartbeat"]))
    assert figures["settings_ignored"] == (
        "(not a setting name) (unknown_setting), sync.batch_size (invalid_value), sync.intervall (unknown_setting),"
        " sync.max_backoff (invalid_value), sync.tls_fingerprint (local_only)"
    )
    assert "settings_ignored" not in dict(snapshot_figures(devices[older.device_id]["last_heartbeat"]))
    shown = str(devices[ignoring.device_id]["settings_ignored"]) + figures["settings_ignored"]
    assert "13800138000" not in shown
