"""export-identity: three CSV files from one snapshot, live customer ids, masked unless an admin says."""

from __future__ import annotations

import csv
import os
import stat

import pytest

from central import db as central_db
from central.audit import cli_actor
from central.cli import main
from central.models import AuditLog
from central.sources.events import store_source_events
from central.sources.export import FILES, export_identity
from tests.central.cli_runner import write_config
from tests.central.sources_support import default_registry
from tests.central.support import create_user, table_rows


def read(path):
    with path.open(encoding="utf-8", newline="") as stream:
        return list(csv.reader(stream))


@pytest.fixture
def config_path(app):
    config = app.config["CENTRAL"]
    return str(
        write_config(config.server_data_dir.parent / "central.toml", config.server_data_dir, config.database_url)
    )


@pytest.fixture
def graph(app, client, agent):
    """Two customers from an agent's receipts, joined later by an online signup naming both."""
    agent.send(client, [agent.receipt("R1", phone="13800139001"), agent.receipt("R2", card="VIP0002")])
    agent.send(client, [agent.event("agent.heartbeat", {"agent_version": "0.1.0"})])
    events = [
        {
            "event_id": "s-1",
            "kind": "member.signup",
            "observed_at": "2026-11-22T10:00:00Z",
            "identifiers": {"phone": "13800139001", "member_card": "VIP0002"},
        },
        {  # names no one: exported with an empty customer_id
            "event_id": "s-2",
            "kind": "member.login",
            "observed_at": "2026-11-22T10:00:00Z",
        },
        {
            "event_id": "s-3",
            "kind": "member.login",
            "observed_at": "2026-11-22T10:00:00Z",
            "identifiers": {"email": "Fang@Example.cn"},
        },
    ]
    with central_db.session_factory(app)() as db:
        store_source_events(db, "memberapp", events, app.config["CLOCK"](), registry=default_registry())
    return agent


def test_masked_export_with_live_customer_ids(app, graph, config_path, tmp_path, capsys):
    out = tmp_path / "export"
    assert main(["export-identity", "--out", str(out), "--config", config_path]) == 0
    assert "exported identity (masked)" in capsys.readouterr().out
    identifiers = read(out / "identifiers.csv")
    assert identifiers[0] == ["type", "value", "customer_id"]
    assert sorted(identifiers[1:]) == [
        ["email", "f***@example.cn", "3"],
        ["member_card", "***0002", "1"],
        ["phone", "138****9001", "1"],
    ]
    events = read(out / "events.csv")
    assert events[0] == ["source", "event_id", "customer_id"]
    by_id = {e[1]: e for e in events[1:]}
    receipts = [e for e in events[1:] if e[0] == graph.device_id]
    assert [e[2] for e in receipts] == ["1", "1"]  # R2's customer was merged into R1's
    assert by_id["s-1"] == ["source:memberapp", "s-1", "1"]
    assert by_id["s-2"] == ["source:memberapp", "s-2", ""]
    assert by_id["s-3"][2] == "3"
    assert len(events) == 1 + 5  # no heartbeat
    customers = read(out / "customers.csv")
    assert customers[0][0] == "id" and "merged_into" not in customers[0]
    assert [c[0] for c in customers[1:]] == ["1", "3"]
    assert not list(out.glob("*.partial"))
    assert [(a.actor, a.action) for a in table_rows(app, AuditLog)][-1] == (cli_actor(), "identity.export")


def test_unmasked_export_needs_an_administrator(app, graph, config_path, tmp_path, capsys):
    out = tmp_path / "clear"
    assert main(["export-identity", "--out", str(out), "--unmasked", "--config", config_path]) == 2
    assert "--unmasked needs --admin NAME" in capsys.readouterr().err
    assert (
        main(["export-identity", "--out", str(out), "--unmasked", "--admin", "mallory", "--config", config_path]) == 1
    )
    assert "'mallory' is not an administrator" in capsys.readouterr().err
    assert not out.exists()
    create_user(app, "alice")
    assert main(["export-identity", "--out", str(out), "--unmasked", "--admin", "alice", "--config", config_path]) == 0
    assert sorted(r[1] for r in read(out / "identifiers.csv")[1:]) == ["+8613800139001", "VIP0002", "fang@example.cn"]
    last = table_rows(app, AuditLog)[-1]
    assert (last.actor, last.action, last.detail["unmasked"]) == ("alice", "identity.export", True)


def test_every_file_is_owner_only_in_a_directory_others_may_read(app, graph, config_path, tmp_path, capsys):
    """``mkdir exp3`` under a usual umask makes a 0755 directory; the full phone numbers stay the owner's."""
    out = tmp_path / "exp3"
    out.mkdir(mode=0o755)
    create_user(app, "alice")
    old = os.umask(0o022)
    try:
        assert (
            main(["export-identity", "--out", str(out), "--unmasked", "--admin", "alice", "--config", config_path]) == 0
        )
    finally:
        os.umask(old)
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {name: 0o600 for name in FILES}


def test_pages_cover_every_row_exactly_once(app, graph, tmp_path):
    from central.db import engine_for

    whole = export_identity(engine_for(app), tmp_path / "a", unmasked=True)
    paged = export_identity(engine_for(app), tmp_path / "b", unmasked=True, page=1)
    assert paged == whole
    for name in ("identifiers.csv", "events.csv", "customers.csv"):
        assert read(tmp_path / "a" / name) == read(tmp_path / "b" / name)


def test_after_a_split_every_event_names_the_customer_it_now_belongs_to(app, graph, tmp_path):
    """Ownership has one home (event_customers): a split moves source events and receipts alike."""
    from sqlalchemy import select

    from central.db import engine_for
    from central.identity.models import LedgerEntry
    from central.identity.split import split

    with central_db.session_factory(app)() as db:
        merge = db.scalar(select(LedgerEntry.id).where(LedgerEntry.action == "merge"))
        result = split(db, 1, merge, now=app.config["CLOCK"](), operator="alice", registry=default_registry())
        db.commit()
    assert len(result.customers) == 2
    export_identity(engine_for(app), tmp_path / "after", unmasked=True)
    events = {e[1]: e[2] for e in read(tmp_path / "after" / "events.csv")[1:]}
    receipts = [e for e in read(tmp_path / "after" / "events.csv")[1:] if e[0] == graph.device_id]
    by_card, by_phone = receipts[1][2], receipts[0][2]  # R2 named the card, R1 the phone
    assert by_card != by_phone
    # The signup came through the card (the stronger identifier): it goes where the card went.
    assert events["s-1"] == by_card


def test_an_event_id_that_would_run_as_a_formula_is_exported_as_text(app, config_path, tmp_path):
    """A source chooses its own event ids (any text up to 64 characters); the files open in spreadsheets."""
    events = [
        {
            "event_id": "=cmd|' /C calc'!A0",
            "kind": "member.signup",
            "observed_at": "2026-11-22T10:00:00Z",
            "identifiers": {"phone": "13800139001"},
        }
    ]
    with central_db.session_factory(app)() as db:
        store_source_events(db, "memberapp", events, app.config["CLOCK"](), registry=default_registry())
    create_user(app, "alice")
    out = tmp_path / "clear"
    assert main(["export-identity", "--out", str(out), "--unmasked", "--admin", "alice", "--config", config_path]) == 0
    assert read(out / "events.csv")[1] == ["source:memberapp", "'=cmd|' /C calc'!A0", "1"]
    assert read(out / "identifiers.csv")[1] == ["phone", "+8613800139001", "1"]


def test_an_identifier_held_by_no_customer_is_exported_with_an_empty_customer_id(app, graph, config_path, tmp_path):
    """A removed identifier (a tombstone) belongs to no one; the export names it with no customer, as it
    does an event of no one."""
    removed = ["remove-identifier", "--type", "phone", "--value", "13800139001", "--config", config_path]
    assert main(removed) == 0
    never_seen = ["remove-identifier", "--type", "phone", "--value", "13987654329", "--config", config_path]
    assert main(never_seen) == 0
    out = tmp_path / "export"
    assert main(["export-identity", "--out", str(out), "--config", config_path]) == 0
    assert sorted(read(out / "identifiers.csv")[1:]) == [
        ["email", "f***@example.cn", "3"],
        ["member_card", "***0002", "1"],
        ["phone", "138****9001", ""],
        ["phone", "139****4329", ""],
    ]
    assert not list(out.glob("*.partial"))
