"""Fleet commands run for real: tokens, devices, their revocation, the downlink, and which database.

The commands run through ``central.cli.main`` in this process (``InProcessCli``); the console script
itself, started as a process with the environment's defaults, is the last-but-one test.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from central.audit import cli_actor
from central.fleet.models import Device
from central.models import AuditLog
from tests.central.cli_runner import InProcessCli, clean_environment, command, write_config
from tests.central.support import Agent, table_rows, token_for

UNAUTHORIZED = b'{"error":{"code":"unauthorized","message":"authentication failed"}}\n'


@pytest.fixture
def cli(backend, tmp_path) -> InProcessCli:
    return InProcessCli(write_config(tmp_path / "central.toml", tmp_path / "data", backend.url))


def said_database(done, backend) -> None:
    first = done.stderr.splitlines()[0]
    assert first.startswith("central-server: database "), done.stderr
    assert backend.url.split("@")[-1].split("///")[-1] in first


def test_tokens_are_listed_by_id_and_state_never_by_value(app, client, cli, backend, clock):
    used = token_for(app, "S001")
    Agent().enroll(client, used)
    unused = token_for(app, "S002", now=datetime.now(UTC))  # the CLI judges expiry by the real clock
    done = cli.run("tokens", "--json")
    assert done.returncode == 0, done.stderr
    said_database(done, backend)
    tokens = json.loads(done.stdout)["tokens"]
    assert sorted((t["store_id"], t["state"]) for t in tokens) == [("S001", "used"), ("S002", "unused")]
    assert used not in done.stdout and unused not in done.stdout
    table = cli.run("tokens").stdout
    assert "S002" in table and "unused" in table and unused not in table

    unused_id = next(t["token_id"] for t in tokens if t["store_id"] == "S002")
    revoked = cli.run("revoke-token", unused_id)
    assert revoked.returncode == 0, revoked.stderr
    clock.now = datetime.now(UTC)
    assert Agent(store_id="S002").enroll(client, unused).status_code == 401
    states = {t["store_id"]: t["state"] for t in json.loads(cli.run("tokens", "--json").stdout)["tokens"]}
    assert states == {"S001": "used", "S002": "revoked"}

    used_id = next(t["token_id"] for t in tokens if t["store_id"] == "S001")
    refused = cli.run("revoke-token", used_id)
    assert refused.returncode == 1
    assert "already used by device" in refused.stderr and "revoke-device" in refused.stderr
    assert "no token with id" in cli.run("revoke-token", "abcdef0123").stderr
    actions = [a.action for a in table_rows(app, AuditLog)]
    assert "enroll_tokens.list" in actions and actions.count("enroll_token.revoke") == 1


def test_a_revoked_device_is_refused_at_once_and_a_retired_one_too(app, client, cli, agent):
    other = Agent()
    other.enroll(client, token_for(app))
    assert agent.post(client, agent.body([agent.receipt("R1")])).status_code == 200

    done = cli.run("revoke-device", agent.device_id, "--reason", "stolen")
    assert done.returncode == 0, done.stderr
    assert "refuses it from its next request" in done.stderr
    refused = agent.post(client, agent.body([agent.receipt("R2")]))
    assert (refused.status_code, refused.get_data()) == (401, UNAUTHORIZED)

    assert cli.run("retire-device", other.device_id).returncode == 0
    refused = other.post(client, other.body([other.receipt("R3")]))
    assert (refused.status_code, refused.get_data()) == (401, UNAUTHORIZED)

    listing = json.loads(cli.run("devices", "--json").stdout)["devices"]
    assert {d["device_id"]: d["state"] for d in listing} == {agent.device_id: "revoked", other.device_id: "retired"}
    again = cli.run("retire-device", agent.device_id)
    assert again.returncode == 1
    assert f"device {agent.device_id} is revoked; it cannot become retired" in again.stderr
    assert "no device 'dev_nope'" in cli.run("revoke-device", "dev_nope").stderr
    revoked = next(d for d in table_rows(app, Device) if d.device_id == agent.device_id)
    assert (revoked.status, revoked.status_reason) == ("revoked", "stolen")
    audit = [(a.action, a.subject, a.actor) for a in table_rows(app, AuditLog)]
    assert ("device.revoke", agent.device_id, cli_actor()) in audit
    assert ("device.retire", other.device_id, cli_actor()) in audit


def test_devices_table_and_state_filter(app, client, cli, agent):
    agent.send(client, [agent.event("agent.heartbeat", {"agent_version": "0.9.0"})])
    table = cli.run("devices").stdout.splitlines()
    assert table[0].split()[:3] == ["DEVICE", "STORE", "STATE"]
    # The real clock is far past the fake clock's heartbeat, so the device is offline by now.
    assert table[1].split()[:4] == [agent.device_id, "S001", "offline", "0.9.0"]
    assert json.loads(cli.run("devices", "--json", "--state", "healthy").stdout)["devices"] == []


def test_downlink_set_list_and_delete(app, cli, tmp_path, backend):
    settings = tmp_path / "settings.json"
    settings.write_text('{"sync.interval": 5}', encoding="utf-8")
    done = cli.run("downlink", "set", "--store", "S001", "--name", "settings", str(settings))
    assert done.returncode == 0, done.stderr
    said_database(done, backend)
    assert done.stdout.strip() == "1"
    listing = json.loads(cli.run("downlink", "list", "--store", "S001", "--json").stdout)
    assert listing["version"] == 1
    assert [(d["store_id"], d["name"], d["body"]) for d in listing["documents"]] == [
        ("S001", "settings", {"sync.interval": 5})
    ]
    settings.write_text('{"sync.interval": {"nested": 1}}', encoding="utf-8")
    bad = cli.run("downlink", "set", "--store", "S001", "--name", "settings", str(settings))
    assert bad.returncode == 2
    assert "settings: sync.interval must be a string, number or true/false" in bad.stderr
    gone = cli.run("downlink", "delete", "--store", "S001", "--name", "settings")
    assert gone.returncode == 0, gone.stderr
    assert json.loads(cli.run("downlink", "list", "--json").stdout)["documents"][0]["deleted"] is True


@pytest.mark.parametrize(
    ("document", "said"),
    [
        ({"sync.intervall": 5}, ["settings: sync.intervall: unknown setting (did you mean 'sync.interval'?)"]),
        ({"sync.interval": 0.001}, ["settings: sync.interval: must be from 0.05 to 3600; got 0.001"]),
        (
            {"agent.data_dir": "/x", "pos.port": "/dev/null", "sync.interval": 5},
            [
                "settings: agent.data_dir: set on the store PC only; central may not change it",
                "settings: pos.port: set on the store PC only; central may not change it",
            ],
        ),
        ({"sync.batch_size": "many"}, ["settings: sync.batch_size: expected an integer, got 'many'"]),
    ],
)
def test_downlink_set_refuses_settings_the_agent_would_not_apply(app, cli, tmp_path, document, said):
    """Published anyway, such a document only made each store's agent log "not applied", and HQ never heard."""
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(document), encoding="utf-8")
    refused = cli.run("downlink", "set", "--store", "S001", "--name", "settings", str(settings))
    assert refused.returncode == 2, refused.stderr
    assert refused.stdout == ""
    lines = refused.stderr.splitlines()[1:]  # after the line naming the database
    assert lines == [f"central-server: {line}" for line in said] + [
        f"central-server: {settings} was not published: nothing changed at the stores"
    ]
    assert json.loads(cli.run("downlink", "list", "--json").stdout)["documents"] == []
    assert "downlink.publish" not in [a.action for a in table_rows(app, AuditLog)]


def test_commands_other_than_serve_and_migrate_never_create_a_database(tmp_path):
    data = tmp_path / "nothing-here"
    cli = InProcessCli(write_config(tmp_path / "central.toml", data, ""))
    for args in (
        ["enroll-token", "--store", "S001"],
        ["tokens"],
        ["devices"],
        ["create-admin", "--username", "root"],
        ["downlink", "list"],
    ):
        done = cli.run(*args)
        assert done.returncode == 1, args
        said, refused = done.stderr.strip().splitlines()
        assert said == f"central-server: database sqlite:///{data / 'central.db'} (config: {cli.config})"
        assert refused.startswith(f"central-server: no database at {data / 'central.db'} (config: {cli.config})")
        assert "--config" in refused and "central-server migrate" in refused
        assert done.stdout == ""
    assert not data.exists()


def test_without_any_configuration_the_default_database_is_named_and_not_created(tmp_path):
    import subprocess

    data = tmp_path / "var-lib-central-server"
    env = {**clean_environment(), "CENTRAL_SERVER_DATA_DIR": str(data)}
    done = subprocess.run(
        [*command(), "enroll-token", "--store", "S001"], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 1
    assert f"no database at {data / 'central.db'} (no configuration file: defaults and environment)" in done.stderr
    assert done.stdout == ""
    assert not data.exists()


def test_an_empty_database_is_refused_too(tmp_path):
    import sqlite3

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    cli = InProcessCli(write_config(tmp_path / "central.toml", tmp_path / "data", f"sqlite:///{empty}"))
    done = cli.run("tokens")
    assert done.returncode == 1
    assert f"database sqlite:///{empty} holds no central-server schema" in done.stderr
    assert not (tmp_path / "data").exists()


def test_a_command_run_in_process_leaves_this_process_as_it_found_it(backend, tmp_path, monkeypatch):
    import logging
    import os
    import sys

    monkeypatch.setenv("CENTRAL_SERVER_DATA_DIR", str(tmp_path / "elsewhere"))  # must not reach the command
    root = logging.getLogger()
    before = (root.handlers[:], root.level, logging.getLogger("alembic").level, dict(os.environ), sys.stdin)
    cli = InProcessCli(write_config(tmp_path / "central.toml", tmp_path / "data", backend.url))
    done = cli.run("tokens", "--json")
    assert done.returncode == 0, done.stderr
    said_database(done, backend)  # central-server configured logging and wrote to its own stderr ...
    assert json.loads(done.stdout) == {"tokens": []}
    after = (root.handlers[:], root.level, logging.getLogger("alembic").level, dict(os.environ), sys.stdin)
    assert after == before  # ... and this process's logging, environment and stdin are as they were
    assert not (tmp_path / "elsewhere").exists()
