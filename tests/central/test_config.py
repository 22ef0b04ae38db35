"""Central's settings: defaults, TOML file, environment, and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from central.config import CentralConfig
from central.config_loader import describe, load_config
from shared.settings import ConfigError, specs


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "central.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults():
    config = load_config(None, environ={})
    assert (config.server_host, config.server_port, config.server_threads) == ("127.0.0.1", 8000, 8)
    assert config.server_data_dir == Path("/var/lib/central-server")
    assert config.effective_database_url == "sqlite:////var/lib/central-server/central.db"
    assert config.database_auto_migrate is True
    assert config.ingest_max_body_bytes == 8 * 1024 * 1024
    assert config.ingest_max_decompressed_bytes == 16 * 1024 * 1024
    assert config.ingest_max_events == 5000
    assert (config.enroll_token_ttl_hours, config.console_session_hours, config.log_level) == (24.0, 12.0, "info")


def test_every_setting_has_a_dotted_name_and_help():
    for spec in specs(CentralConfig):
        assert "." in spec.name and spec.help.endswith("."), spec.name


def test_file_then_environment(tmp_path):
    path = write(tmp_path, '[server]\nport = 9000\ndata_dir = "/srv/hq"\n[log]\nlevel = "debug"\n')
    config = load_config(path, environ={"CENTRAL_SERVER_PORT": "9100"})
    assert config.server_port == 9100  # the environment wins over the file
    assert config.server_data_dir == Path("/srv/hq")
    assert config.log_level == "debug"
    assert config.effective_database_url == "sqlite:////srv/hq/central.db"


def test_database_url_alias_and_driver_spelling():
    plain = load_config(None, environ={"DATABASE_URL": "postgresql://cdp@db/cdp"})
    assert plain.effective_database_url == "postgresql+psycopg://cdp@db/cdp"
    both = load_config(
        None, environ={"DATABASE_URL": "postgresql://a@x/a", "CENTRAL_DATABASE_URL": "sqlite:////tmp/b.db"}
    )
    assert both.effective_database_url == "sqlite:////tmp/b.db"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[server]\nprot = 80\n", "server.prot", "unknown key (did you mean 'server.port'?)"),
        ('[server]\nport = "eighty"\n', "server.port", "expected an integer"),
        ("[server]\nport = 0\n", "server.port", "must be from 1 to 65535; got 0"),
        ('[log]\nlevel = "loud"\n', "log.level", "must be one of debug, info, warning, error"),
        ('[database]\nurl = "mysql://x@y/z"\n', "database.url", "unsupported database 'mysql'"),
        ('[server]\ntrusted_proxy = "nginx"\n', "server.trusted_proxy", "not an IP address"),
        ('[server]\ntrusted_proxy = "*"\n', "server.trusted_proxy", "not an IP address"),
        (
            '[database]\nurl = "sqlite:///central.db"\n',
            "database.url",
            "the SQLite file 'central.db' is not an absolute path",
        ),
    ],
)
def test_bad_file_names_the_key_and_file(tmp_path, text, key, problem):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert str(path) in message
    assert key in message
    assert problem in message
    assert "\n" not in message


def test_unknown_environment_variable_is_an_error():
    with pytest.raises(ConfigError, match="CENTRAL_SERVER_PROT"):
        load_config(None, environ={"CENTRAL_SERVER_PROT": "80"})


def test_config_path_variable_is_not_a_setting(tmp_path):
    path = write(tmp_path, "")
    assert load_config(path, environ={"CENTRAL_CONFIG": str(path)}).server_port == 8000


def test_describe_hides_the_database_password():
    config = load_config(None, environ={"DATABASE_URL": "postgresql+psycopg://cdp:s3cret@db/cdp"})
    lines = describe(config)
    assert "database.url = postgresql+psycopg://cdp:***@db/cdp" in lines
    assert not any("s3cret" in line for line in lines)
    assert len(lines) == len(specs(CentralConfig))


def test_every_numeric_setting_has_a_range_that_holds_its_default():
    for spec in specs(CentralConfig):
        if spec.type in (int, float):
            assert spec.minimum is not None and spec.maximum is not None, f"{spec.name} has no range"
            assert spec.minimum <= spec.default <= spec.maximum, spec.name


def test_a_port_out_of_range_is_refused_with_the_key_and_the_file(tmp_path):
    path = write(tmp_path, "[server]\nport = 99999\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == f"config error in {path}:2: server.port: must be from 1 to 65535; got 99999"


def test_every_problem_of_the_file_and_environment_is_reported_at_once(tmp_path):
    """Type and range errors, unknown keys and sections, and the checks that look further (database URL,
    proxy address, time zone, identifier registry) together: the file's in its order, the environment's,
    then those checks'."""
    missing = tmp_path / "registry-that-is-not-there.toml"
    path = write(
        tmp_path,
        "[server]\n"
        "port = 99999\n"
        'hots = "0.0.0.0"\n'
        'trusted_proxy = "nginx"\n'
        "\n"
        "[typo_section]\n"
        "\n"
        "[database]\n"
        'url = "mysql://x@y/z"\n'
        "[triggers]\n"
        'timezone = "Mars/Olympus_Mons"\n'
        "[identity]\n"
        f'registry_file = "{missing}"\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"CENTRAL_LOG_LEVEL": "loud"})
    assert caught.value.lines == [
        f"config error in {path}:2: server.port: must be from 1 to 65535; got 99999",
        f"config error in {path}:3: server.hots: unknown key (did you mean 'server.host'?)",
        f"config error in {path}:6: typo_section: unknown section",
        "config error in environment: CENTRAL_LOG_LEVEL: must be one of debug, info, warning, error; got 'loud'",
        f"config error in {path}:9: database.url: unsupported database 'mysql'; use sqlite or postgresql",
        f"config error in {path}:4: server.trusted_proxy: not an IP address "
        "(the proxy's own address, such as 127.0.0.1)",
        f"config error in {path}:11: triggers.timezone: not an IANA time zone such as Asia/Shanghai",
        f"config error in {missing}: cannot read the identifier registry: No such file or directory",
    ]


def test_a_checked_value_from_the_environment_is_named_by_its_variable(tmp_path):
    path = write(tmp_path, '[triggers]\ntimezone = "Asia/Shanghai"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"CENTRAL_TRIGGERS_TIMEZONE": "Asia/Peking", "DATABASE_URL": "mysql://x@y/z"})
    assert caught.value.lines == [
        "config error in environment: DATABASE_URL: unsupported database 'mysql'; use sqlite or postgresql",
        "config error in environment: CENTRAL_TRIGGERS_TIMEZONE: not an IANA time zone such as Asia/Shanghai",
    ]


def test_a_relative_path_is_taken_from_the_files_folder_and_refused_from_the_environment(tmp_path, monkeypatch):
    path = write(tmp_path, '[server]\ndata_dir = "data"\n')
    monkeypatch.chdir("/")
    config = load_config(path, environ={})
    assert config.server_data_dir == tmp_path / "data"
    assert config.effective_database_url == f"sqlite:///{tmp_path / 'data' / 'central.db'}"
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ={"CENTRAL_SERVER_DATA_DIR": "data", "CENTRAL_IDENTITY_REGISTRY_FILE": "r.toml"})
    assert [line.split(", got")[0] for line in caught.value.lines] == [
        "config error in environment: CENTRAL_SERVER_DATA_DIR: must be an absolute path",
        "config error in environment: CENTRAL_IDENTITY_REGISTRY_FILE: must be an absolute path",
    ]
