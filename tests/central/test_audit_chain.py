"""The audit log's hash chain: intact after normal use, and broken by a changed, deleted or moved row."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from central import audit
from central import db as central_db
from tests.central.cli_runner import Cli, write_config


def _write(app, n=4):
    now = app.config["CLOCK"]()
    with central_db.session_factory(app)() as db:
        for i in range(n):
            audit.record(
                db,
                at=now + timedelta(seconds=i),
                actor="alice",
                action="customers.view",
                subject=f"customer:{i}",
                detail={"via": "console", "n": i, "名": "张三"},
            )
        db.commit()


def _verify(app):
    with central_db.session_factory(app)() as db:
        return audit.verify(db)


def _sql(app, statements):
    with central_db.session_factory(app)() as db:
        for statement in statements.split(";"):
            db.execute(text(statement))
        db.commit()


@pytest.fixture
def cli(backend, tmp_path) -> Cli:
    return Cli(write_config(tmp_path / "central.toml", tmp_path / "data", backend.url))


def test_an_untouched_chain_verifies(app):
    _write(app)
    verdict = _verify(app)
    assert verdict.ok and verdict.rows == 4 and len(verdict.head) == 64


@pytest.mark.parametrize(
    ("attack", "bad_id"),
    [
        ("UPDATE audit_log SET actor = 'mallory' WHERE id = 2", 2),
        ('UPDATE audit_log SET detail = \'{"via": "console", "n": 9}\' WHERE id = 3', 3),
        ("DELETE FROM audit_log WHERE id = 2", 3),
        (
            "UPDATE audit_log SET id = 1002 WHERE id = 2; UPDATE audit_log SET id = 2 WHERE id = 3;"
            " UPDATE audit_log SET id = 3 WHERE id = 1002",
            2,
        ),
        ("UPDATE audit_log SET prev_hash = '', row_hash = '' WHERE id = 4", 4),
    ],
    ids=["changed-actor", "changed-detail", "deleted", "reordered", "blanked"],
)
def test_tampering_is_detected(app, attack, bad_id):
    _write(app)
    _sql(app, attack)
    verdict = _verify(app)
    assert not verdict.ok
    assert verdict.bad_id == bad_id


def _run(config, capsys, monkeypatch, *args, stdin=""):
    """Run a ``central-server`` command in this process (the same code as the console script, no spawn)."""
    import io

    from central.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    capsys.readouterr()
    status = main([*args, "--config", str(config)])
    out, err = capsys.readouterr()
    return status, out, err


def test_cutting_the_tail_changes_the_head(app, cli, capsys, monkeypatch):
    _write(app)
    head = _verify(app).head
    _sql(app, "DELETE FROM audit_log WHERE id = 4")
    assert _verify(app).ok  # a shorter chain is still a chain ...
    status, _out, err = _run(cli.config, capsys, monkeypatch, "audit", "verify", "--expect-head", head)
    assert status == 1 and "head differs" in err  # ... but not the one recorded
    _sql(app, "UPDATE audit_log SET subject = 'x' WHERE id = 1")
    status, out, err = _run(cli.config, capsys, monkeypatch, "audit", "verify")
    assert status == 1 and "broken at row 1" in err and '"bad_id": 1' in out


def test_user_commands_add_list_disable_and_reset(app, cli, capsys, monkeypatch):
    from tests.central.support import login

    def run(*args, stdin=""):
        return _run(cli.config, capsys, monkeypatch, *args, stdin=stdin)

    # A store no one has heard of (a typo, the wrong case) would give its manager empty pages.
    status, _out, err = run("user", "add", "mia", "--role", "store_manager", "--store", "s001")
    assert status == 2 and "store 's001' is not one central knows" in err
    for store in ("S001", "S002", "S003"):
        assert run("enroll-token", "--store", store)[0] == 0  # a store opening: its PC's token first
    status, password, err = run("user", "add", "mia", "--role", "store_manager", "--store", "S001", "--store", "S002")
    assert status == 0, err
    assert run("user", "add", "bad", "--role", "store_manager")[0] == 2  # a store manager needs a store
    assert run("user", "add", "mia", "--role", "marketing")[0] == 1  # taken
    assert "mia\tstore_manager\tS001,S002\tactive" in run("user", "list")[1]
    client = app.test_client()
    assert login(client, "mia", password.strip()).status_code == 302
    # A regional lead moves: her stores change, and her sessions end so the new scope holds at once.
    status, _out, err = run("user", "set-stores", "mia", "--store", "S002", "--store", "S003")
    assert status == 0 and "'mia' now manages S002, S003 (was S001, S002)" in err
    assert client.get("/console/fleet").status_code == 302  # logged out
    assert "mia\tstore_manager\tS002,S003\tactive" in run("user", "list")[1]
    assert run("user", "set-stores", "mia", "--store", "S999")[0] == 2
    assert run("user", "set-stores", "nobody", "--store", "S001")[0] == 1
    assert login(client, "mia", password.strip()).status_code == 302
    status, _out, err = run("user", "reset-password", "mia", "--password-stdin", stdin="a new secret 99\n")
    assert status == 0 and "1 session(s) ended" in err
    assert client.get("/console/fleet").status_code == 302
    assert run("user", "disable", "mia")[0] == 0
    assert login(app.test_client(), "mia", "a new secret 99").status_code == 401
    assert "mia\tstore_manager\tS002,S003\tdisabled" in run("user", "list")[1]
    status, out, _err = run("audit", "verify")
    assert status == 0 and '"ok": true' in out


def test_a_disabled_user_is_enabled_again_with_the_password_they_had(app, cli, capsys, monkeypatch):
    """`user add` said "exists" and nothing enabled a disabled user again."""
    from central.models import AuditLog
    from tests.central.support import login, table_rows

    def run(*args, stdin=""):
        return _run(cli.config, capsys, monkeypatch, *args, stdin=stdin)

    status, password, err = run("user", "add", "tech1", "--role", "technician")
    assert status == 0, err
    assert run("user", "disable", "tech1")[0] == 0
    status, _out, err = run("user", "add", "tech1", "--role", "technician")
    assert status == 1
    assert err.splitlines()[-1] == (
        "central-server: user 'tech1' already exists, disabled: `central-server user enable tech1` lets it log in again"
    )
    status, _out, err = run("user", "enable", "tech1")
    assert status == 0, err
    assert err.splitlines()[-1] == (
        "central-server: enabled technician user 'tech1'; it logs in with the password it had"
    )
    assert login(app.test_client(), "tech1", password.strip()).status_code == 302
    assert "tech1\ttechnician\t-\tactive" in run("user", "list")[1]
    status, _out, err = run("user", "enable", "tech1")
    assert status == 0
    assert err.splitlines()[-1] == "central-server: technician user 'tech1' is not disabled; nothing changed"
    status, _out, err = run("user", "enable", "nobody")
    assert status == 1 and err.splitlines()[-1] == "central-server: no user 'nobody'"
    assert [(a.actor, a.action, a.subject) for a in table_rows(app, AuditLog) if a.action == "user.enable"] == [
        (audit.cli_actor(), "user.enable", "tech1")
    ]


def test_a_new_password_for_a_disabled_user_says_it_is_disabled(app, cli, capsys, monkeypatch):
    def run(*args, stdin=""):
        return _run(cli.config, capsys, monkeypatch, *args, stdin=stdin)

    assert run("user", "add", "mia", "--role", "marketing")[0] == 0
    assert run("user", "disable", "mia")[0] == 0
    status, _out, err = run("user", "reset-password", "mia", "--password-stdin", stdin="a new secret 99\n")
    assert status == 0
    assert err.splitlines()[-1] == (
        "central-server: new password for marketing user 'mia', which is disabled: it cannot log in until"
        " `central-server user enable mia`; 0 session(s) ended"
    )


def test_audit_list_streams_the_rows_and_cli_changes_name_the_operator(app, cli, capsys, monkeypatch):
    """`audit` had only `verify`, and every command's rows named "cli", not who ran it."""
    import getpass
    import json

    from tests.central.support import START

    def run(*args):
        return _run(cli.config, capsys, monkeypatch, *args)

    _write(app)
    assert run("user", "add", "mia", "--role", "marketing")[0] == 0
    operator = f"cli:{getpass.getuser()}"
    status, out, err = run("audit", "list")
    assert status == 0, err
    lines = [line.split("\t") for line in out.splitlines()]
    assert [line[:5] for line in lines] == [
        *[[str(i + 1), f"2026-11-23T02:00:0{i}Z", "alice", "customers.view", f"customer:{i}"] for i in range(4)],
        ["5", lines[4][1], operator, "user.create", "mia"],
    ]
    assert json.loads(lines[0][5]) == {"via": "console", "n": 0, "名": "张三"}
    status, out, _err = run("audit", "list", "--json", "--action", "user.create")
    (created,) = [json.loads(line) for line in out.splitlines()]
    assert (created["actor"], created["subject"], created["detail"]) == (operator, "mia", {"role": "marketing"})
    since = (START + timedelta(seconds=2)).isoformat()
    status, out, _err = run("audit", "list", "--actor", "alice", "--since", since, "--json")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [3, 4]
    assert run("audit", "list", "--since", "last tuesday")[0] == 2
    assert _verify(app).rows == 5  # listing writes nothing
    # Behind sudo the row names who typed the command, not root.
    assert audit.cli_actor({"SUDO_USER": "wang"}) == "cli:wang"
    assert audit.cli_actor({}) == operator


def test_user_throttled_shows_each_block_and_the_logins_it_refused(app, cli, clock, capsys, monkeypatch):
    """Refused logins write no audit rows; IT reads how many there were, and until when, here."""
    from datetime import UTC, datetime

    from tests.central.support import create_user, login

    clock.now = datetime.now(UTC).replace(microsecond=0)  # the command reads the wall clock
    create_user(app)
    client = app.test_client()
    assert [login(client, password="wrong-wrong").status_code for _ in range(8)] == [401] * 5 + [429] * 3
    assert [login(client, username="13812345678", password="x").status_code for _ in range(7)] == [401] * 5 + [429] * 2
    status, out, err = _run(cli.config, capsys, monkeypatch, "user", "throttled")
    assert status == 0, err
    until = (clock.now + timedelta(minutes=15)).isoformat().replace("+00:00", "Z")
    rows = sorted(line.split("\t") for line in out.splitlines())
    (unknown,) = [r for r in rows if r[1].startswith("(unknown) ")]
    assert rows == sorted([["account", "alice", "5", "3", until], unknown])
    assert unknown[2:] == ["5", "2", until] and "13812345678" not in out
    with central_db.session_factory(app)() as db:
        hashes = {r.detail.get("name_hash") for r in audit.listing(db, action="login_failed")}
    assert unknown[1].removeprefix("(unknown) ") in hashes  # the same hash as its audit rows
