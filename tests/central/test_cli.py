"""The ``central-server`` command run for real: tokens, admin users, config checks and exit codes."""

from __future__ import annotations

import re

import pytest

from central.audit import cli_actor
from central.fleet.models import Device
from central.migrate import head_revision
from central.models import AuditLog
from tests.central.cli_runner import Cli, InProcessCli, write_config
from tests.central.support import Agent, create_user, login, table_rows


@pytest.fixture
def cli(backend, tmp_path) -> Cli:
    return Cli(write_config(tmp_path / "central.toml", tmp_path / "data", backend.url))


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_enroll_token_prints_only_the_token(app, client, cli):
    done = cli.run("enroll-token", "--store", "S007", "--ttl-hours", "2")
    assert done.returncode == 0, done.stderr
    token = one_line(done.stdout)
    assert re.fullmatch(r"cdpet_[A-Za-z0-9_-]{32}", token)
    assert "store S007" in done.stderr and "single use" in done.stderr
    agent = Agent(store_id="S007")
    assert agent.enroll(client, token).status_code == 201
    assert [d.store_id for d in table_rows(app, Device)] == ["S007"]
    first = table_rows(app, AuditLog)[0]
    assert (first.actor, first.action, first.subject) == (cli_actor(), "enroll_token.create", "S007")


@pytest.fixture
def offline_cli(tmp_path) -> Cli:
    """A CLI whose database is never reached by the commands under test."""
    return Cli(write_config(tmp_path / "central.toml", tmp_path / "data", f"sqlite:///{tmp_path / 'x.db'}"))


def test_enroll_token_refuses_a_bad_store_id(offline_cli):
    done = offline_cli.run("enroll-token", "--store", "S 007")
    assert done.returncode == 2
    assert one_line(done.stderr).startswith("central-server: store id 'S 007' must be")
    assert done.stdout == ""


@pytest.mark.parametrize("hours", ["100000", "720.5", "0", "-1", "0.001", "nan", "inf"])
def test_enroll_token_refuses_a_lifetime_the_setting_would_refuse(offline_cli, hours):
    """--ttl-hours 100000 gave a token valid until 2038, where enroll.token_ttl_hours stops at 720."""
    done = offline_cli.run("enroll-token", "--store", "S007", "--ttl-hours", hours)
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"central-server: --ttl-hours must be from 0.01 to 720 hours (as enroll.token_ttl_hours); got {hours}"
    )
    assert done.stdout == ""


def test_enroll_token_takes_the_longest_lifetime_the_setting_allows(app, cli):
    done = cli.run("enroll-token", "--store", "S007", "--ttl-hours", "720")
    assert done.returncode == 0, done.stderr
    assert "valid until" in done.stderr


def test_create_admin_generates_a_password_that_logs_in(app, cli):
    done = cli.run("create-admin", "--username", "root")
    assert done.returncode == 0, done.stderr
    password = one_line(done.stdout)
    assert len(password) >= 20
    assert login(app.test_client(), "root", password).status_code == 302
    assert (cli_actor(), "user.create", "root") in [(a.actor, a.action, a.subject) for a in table_rows(app, AuditLog)]

    again = cli.run("create-admin", "--username", "root")
    assert again.returncode == 1
    said, refused = again.stderr.strip().splitlines()
    assert said.startswith("central-server: database ")
    assert refused == "central-server: user 'root' already exists (use --reset to set a new password)"

    reset = cli.run("create-admin", "--username", "root", "--reset", "--password-stdin", stdin="new secret 123\n")
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout == ""
    assert login(app.test_client(), "root", password).status_code == 401
    assert login(app.test_client(), "root", "new secret 123").status_code == 302


def test_create_admin_reset_resets_administrators_only_and_says_when_one_is_disabled(app, cli):
    """It printed "reset the password of admin user 'tech1'" for a disabled technician."""
    create_user(app, "tech1", role="technician")
    refused = cli.run("create-admin", "--username", "tech1", "--reset", "--password-stdin", stdin="new secret 123\n")
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1] == (
        "central-server: 'tech1' is a technician user, not an administrator, and create-admin --reset resets"
        " administrators only: give it a new password with `central-server user reset-password tech1`"
    )
    assert login(app.test_client(), "tech1", "new secret 123").status_code == 401

    create_user(app, "root")
    assert cli.run("user", "disable", "root").returncode == 0
    reset = cli.run("create-admin", "--username", "root", "--reset", "--password-stdin", stdin="new secret 123\n")
    assert reset.returncode == 0, reset.stderr
    assert reset.stderr.splitlines()[-1] == (
        "central-server: reset the password of admin user 'root', which is disabled: it cannot log in until"
        " `central-server user enable root`"
    )
    assert login(app.test_client(), "root", "new secret 123").status_code == 401
    assert cli.run("user", "enable", "root").returncode == 0
    assert login(app.test_client(), "root", "new secret 123").status_code == 302


def test_create_admin_refuses_a_short_password(offline_cli):
    done = offline_cli.run("create-admin", "--username", "root", "--password-stdin", stdin="short\n")
    assert done.returncode == 1
    assert one_line(done.stderr) == "central-server: the password must be at least 8 characters"


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("password", "one of the most common passwords"),
        ("Admin123", "one of the most common passwords"),
        ("12345678", "a run of keys"),
        ("87654321", "a run of keys"),
        ("poiuytrew", "a run of keys"),
        ("aaaaaaaaaa", "repeats one character"),
        ("ops-wang-2026", "contains the username"),
    ],
)
def test_a_common_or_guessable_password_is_refused_with_the_rule_it_breaks(offline_cli, password, rule):
    """Only the length was checked: password, 12345678 and admin123 guarded accounts that read customers."""
    done = offline_cli.run("user", "add", "wang", "--role", "marketing", "--password-stdin", stdin=f"{password}\n")
    assert done.returncode == 1
    assert rule in one_line(done.stderr)


def test_check_config_prints_the_effective_settings(offline_cli, tmp_path):
    done = offline_cli.run("check-config")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"config ok: {offline_cli.config}"
    assert "server.port = 8000" in lines
    assert "database.auto_migrate = true" in lines
    assert f"database.url = sqlite:///{tmp_path / 'x.db'}" in lines
    assert not (tmp_path / "x.db").exists()


def test_a_config_error_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "central.toml"
    path.write_text('[server]\nport = "eighty"\n', encoding="utf-8")
    for subcommand in (["check-config"], ["serve"]):
        done = Cli(path).run(*subcommand)
        assert done.returncode == 2, subcommand
        assert one_line(done.stderr) == (
            f"central-server: config error in {path}:2: server.port: expected an integer, got 'eighty'"
        )


def test_every_config_problem_is_reported_at_once_one_line_each(tmp_path):
    path = tmp_path / "central.toml"
    path.write_text('[server]\nport = "eighty"\nhots = "0.0.0.0"\n', encoding="utf-8")
    done = Cli(path).run("check-config")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"central-server: config error in {path}:2: server.port: expected an integer, got 'eighty'",
        f"central-server: config error in {path}:3: server.hots: unknown key (did you mean 'server.host'?)",
    ]


def test_check_config_reports_a_bad_port_time_zone_registry_and_section_together(tmp_path):
    path = tmp_path / "central.toml"
    registry = tmp_path / "registry.toml"
    path.write_text(
        f'[server]\nport = 0\n[triggers]\ntimezone = "Mars/Olympus_Mons"\n[identity]\nregistry_file = "{registry}"\n'
        "[typo_section]\n",
        encoding="utf-8",
    )
    done = Cli(path).run("check-config")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"central-server: config error in {path}:2: server.port: must be from 1 to 65535; got 0",
        f"central-server: config error in {path}:7: typo_section: unknown section",
        f"central-server: config error in {path}:4: triggers.timezone: not an IANA time zone such as Asia/Shanghai",
        f"central-server: config error in {registry}: cannot read the identifier registry: No such file or directory",
    ]


def test_a_closed_stdout_ends_the_command_quietly_as_sigpipe_would(offline_cli):
    """``central-server check-config | head -1``: the reader goes away before the command has written."""
    import os
    import subprocess

    from tests.central.cli_runner import clean_environment, command

    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to stdout now fails with EPIPE
    try:
        done = subprocess.run(
            [*command(), "check-config", "--config", str(offline_cli.config)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_environment(),
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141  # 128 + SIGPIPE, what a shell reports for `yes | head -1`'s yes


def test_an_unreachable_database_is_one_line_and_exit_1(tmp_path, backend):
    if backend.name == "sqlite":
        (tmp_path / "db-is-a-directory").mkdir()
        url = f"sqlite:///{tmp_path / 'db-is-a-directory'}"
    else:
        url = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
    cli = Cli(write_config(tmp_path / "central.toml", tmp_path / "data", url))
    done = cli.run("migrate")
    assert done.returncode == 1
    said, failed = done.stderr.strip().splitlines()
    assert said.startswith("central-server: database ") and url.split("@")[-1] in said
    assert failed.startswith("central-server: database error: ")


def test_migrate_reports_the_revision(tmp_path):
    cli = Cli(write_config(tmp_path / "central.toml", tmp_path / "data", f"sqlite:///{tmp_path / 'new.db'}"))
    done = cli.run("migrate")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"database is at revision {head_revision()}\n"


@pytest.mark.parametrize(
    "args",
    [
        ["source-key", "--source", "miniprogram"],
        ["source-key", "--revoke", "1"],
        ["source-keys"],
        ["load-events", "{dir}/history.jsonl", "--source", "crm", "--no-progress"],
        ["import-members", "{dir}/members.csv", "--map", "手机号码=phone", "--no-progress"],
        ["export-identity", "--out", "{dir}/export"],
        ["split", "--customer", "1", "--ledger-row", "1"],
        ["remove-identifier", "--type", "phone", "--value", "13987654329"],
        ["review", "list"],
        ["rebuild-identity"],
    ],
    ids=lambda args: " ".join(arg for arg in args[:2] if not arg.startswith("{")),
)
def test_the_identity_and_sources_commands_never_create_a_database(tmp_path, args):
    (tmp_path / "history.jsonl").write_text("", encoding="utf-8")
    (tmp_path / "members.csv").write_text("手机号码\n13812345678\n", encoding="utf-8")
    data = tmp_path / "nothing-here"
    cli = InProcessCli(write_config(tmp_path / "central.toml", data, ""))
    done = cli.run(*(arg.format(dir=tmp_path) for arg in args))
    assert done.returncode == 1, done.stderr
    said, refused = done.stderr.strip().splitlines()
    assert said == f"central-server: database sqlite:///{data / 'central.db'} (config: {cli.config})"
    assert refused.startswith(f"central-server: no database at {data / 'central.db'} (config: {cli.config})")
    assert "this command does not create one" in refused and "central-server migrate" in refused
    assert done.stdout == ""
    assert not data.exists()
    assert not (tmp_path / "export").exists()


def test_a_database_migrated_by_a_newer_release_is_refused_in_one_line(backend, tmp_path):
    from sqlalchemy import text

    from central.db import make_engine

    engine = make_engine(backend.url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
    try:
        config = write_config(tmp_path / "central.toml", tmp_path / "data", backend.url)
        frozen = tmp_path / "no-auto-migrate.toml"
        frozen.write_text(config.read_text(encoding="utf-8") + "auto_migrate = false\n", encoding="utf-8")
        for path, args in ((config, ["migrate"]), (config, ["serve"]), (config, ["tokens"]), (frozen, ["tokens"])):
            done = InProcessCli(path).run(*args)
            assert done.returncode == 1, (args, done.stderr)
            said, refused = done.stderr.strip().splitlines()
            assert said.startswith("central-server: database ")
            assert refused == (
                f"central-server: database {backend.url}"
                f" was migrated by a newer release of central-server (revision 0099_future; this release knows"
                f" revisions up to {head_revision()}): upgrade central-server, or restore a backup taken before"
                f" that upgrade"
            ), args
            assert done.stdout == ""
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0099_future"
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head_revision()})
        engine.dispose()


BIGINT_MAX, INTEGER_MAX = 2**63 - 1, 2**31 - 1  # the largest ids of BIGINT and (on PostgreSQL) INTEGER columns


@pytest.mark.parametrize(
    ("args", "largest", "not_found"),
    [
        (["review", "accept", "{id}"], INTEGER_MAX, "no review item {id}"),
        (["review", "reject", "{id}"], INTEGER_MAX, "no review item {id}"),
        (["split", "--customer", "{id}", "--ledger-row", "1"], INTEGER_MAX, "no customer {id}"),
        (["split", "--customer", "1", "--ledger-row", "{id}"], BIGINT_MAX, "no customer 1"),
        (["source-key", "--revoke", "{id}"], INTEGER_MAX, "there is no source key {id} (list them with"),
        (["coupons", "revoke", "{id}"], BIGINT_MAX, "no coupon code with serial {id}"),
        (["coupons", "resolve", "{id}", "--resolution", "refunded"], BIGINT_MAX, "no open coupon conflict {id}"),
        (["review", "list", "--limit", "{id}"], BIGINT_MAX, None),
        (["coupons", "conflicts", "--limit", "{id}"], BIGINT_MAX, None),
    ],
    ids=lambda value: " ".join(a for a in value if a != "{id}")[:40] if isinstance(value, list) else "",
)
def test_an_id_past_what_the_database_holds_is_a_usage_error(backend, tmp_path, args, largest, not_found):
    cli = InProcessCli(write_config(tmp_path / "central.toml", tmp_path / "data", backend.url))
    for bad in (str(largest + 1), "99999999999999999999999", "0", "-1", "seven"):
        done = cli.run(*(arg.format(id=bad) for arg in args))
        assert done.returncode == 2, (bad, done.stderr)
        assert "Traceback" not in done.stderr
        assert (
            done.stderr.strip().splitlines()[-1].endswith(f"must be a whole number from 1 to {largest}; got {bad!r}")
        ), done.stderr
        assert done.stdout == ""
    done = cli.run(*(arg.format(id=largest) for arg in args))  # the largest is looked up, and is not there
    assert "Traceback" not in done.stderr
    if not_found is None:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode in (1, 2), done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith(f"central-server: {not_found.format(id=largest)}")


def test_relative_paths_in_the_settings_file_are_taken_from_its_folder_from_any_working_directory(tmp_path):
    """Under systemd the working directory is /: `data_dir = "reldata"` must mean the same from anywhere."""
    import subprocess

    from tests.central.cli_runner import clean_environment, command

    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "registry.toml").write_text("[review]\nsuspicious_per_day = 9\n")
    path = folder / "central.toml"
    path.write_text('[server]\ndata_dir = "reldata"\n[identity]\nregistry_file = "registry.toml"\n')
    outputs = []
    for cwd in (folder, "/"):
        done = subprocess.run(
            [*command(), "check-config", "--config", str(path)],
            capture_output=True,
            text=True,
            env=clean_environment(),
            cwd=cwd,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert f"server.data_dir = {folder / 'reldata'}" in lines
        assert f"database.url = sqlite:///{folder / 'reldata' / 'central.db'}" in lines
        assert f"identity.registry_file = {folder / 'registry.toml'}" in lines
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    assert not (folder / "reldata").exists()
