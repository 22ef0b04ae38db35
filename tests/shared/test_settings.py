"""The declared-settings loader: TOML then environment, strict validation, one-line errors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.settings import ConfigError, load, reference_rows, setting


@dataclass(frozen=True)
class Example:
    port: str = setting("io.port", "", "Port URL.", required=True)
    speed: int = setting("io.speed", 9600, "Baud.", minimum=50)
    ratio: float = setting("io.ratio", 0.5, "A ratio.")
    fast: bool = setting("io.fast", False, "Go fast.")
    home: Path = setting("io.home", Path("/var/lib/x"), "Home.")
    mode: str = setting("io.mode", "line", "Mode.", choices=("line", "escpos"))
    url: str = setting("db.url", "", "Database.", env_aliases=("DATABASE_URL",))
    tcp: int = setting("io.tcp", 8000, "TCP port.", minimum=1, maximum=65535)
    wait: float = setting("io.wait", 1.0, "Seconds.", maximum=60)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "example.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_file_then_environment(tmp_path):
    path = write(tmp_path, '[io]\nport = "/dev/ttyUSB0"\nspeed = 19200\nratio = 2\nhome = "~/x"\n')
    cfg = load(Example, path=path, env_prefix="EX_", environ={"EX_IO_FAST": "yes", "EX_IO_SPEED": "38400"})
    assert cfg.port == "/dev/ttyUSB0"
    assert cfg.speed == 38400  # environment wins over the file
    assert cfg.ratio == 2.0 and isinstance(cfg.ratio, float)
    assert cfg.fast is True
    assert cfg.home == Path("~/x").expanduser()
    assert cfg.mode == "line"


def test_prefixed_variable_wins_over_alias():
    env = {"EX_IO_PORT": "loop://", "DATABASE_URL": "sqlite://a", "EX_DB_URL": "sqlite://b"}
    assert load(Example, path=None, env_prefix="EX_", environ=env).url == "sqlite://b"
    del env["EX_DB_URL"]
    assert load(Example, path=None, env_prefix="EX_", environ=env).url == "sqlite://a"


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ('[io]\nport = "x"\nsped = 1\n', "io.sped", "io.sped: unknown key (did you mean 'io.speed'?)"),
        ('[io]\nport = "x"\nspeed = "fast"\n', "io.speed", "expected an integer, got 'fast'"),
        ('[io]\nport = "x"\nspeed = 1.5\n', "io.speed", "expected an integer"),
        ('[io]\nport = "x"\nfast = "yes"\n', "io.fast", "expected true or false"),
        ('[io]\nport = "x"\nspeed = 10\n', "io.speed", "must be at least 50"),
        ('[io]\nport = "x"\ntcp = 99999\n', "io.tcp", "must be from 1 to 65535; got 99999"),
        ('[io]\nport = "x"\ntcp = 0\n', "io.tcp", "must be from 1 to 65535; got 0"),
        ('[io]\nport = "x"\nwait = 61\n', "io.wait", "must be at most 60; got 61.0"),
        ('[io]\nport = "x"\nmode = "raw"\n', "io.mode", "must be one of line, escpos"),
        ("[io]\nport = 5\n", "io.port", "expected a string"),
        ("[io]\nspeed = 9600\n", "io.port", "required setting is missing (or set EX_IO_PORT)"),
    ],
)
def test_file_errors_name_the_key_and_the_file(tmp_path, text, key, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(Example, path=path, env_prefix="EX_", environ={})
    message = str(info.value)
    assert info.value.key == key
    assert str(path) in message
    assert fragment in message
    assert "\n" not in message


def test_every_problem_is_reported_at_once_one_line_each(tmp_path):
    path = write(tmp_path, '[io]\nsped = 1\ntcp = 0\nmode = "raw"\n')
    with pytest.raises(ConfigError) as info:
        load(Example, path=path, env_prefix="EX_", environ={"EX_IO_FAST": "maybe", "EX_IO_SPEDD": "2"})
    assert (info.value.source, info.value.key) == (f"{path}:2", "io.sped")  # the first, at its line
    lines = info.value.lines
    assert len(lines) == 6 and all(line.startswith("config error in ") for line in lines), lines
    assert [line.split(": ", 2)[0].rsplit(":", 1)[-1] for line in lines[:3]] == ["2", "3", "4"]
    assert [line.split(": ", 2)[1] for line in lines] == [
        "io.sped",
        "io.tcp",
        "io.mode",
        "EX_IO_SPEDD",
        "EX_IO_FAST",
        "io.port",  # required and missing, said last
    ]


def test_a_key_is_reported_at_its_line_under_its_table_or_as_a_dotted_key(tmp_path):
    text = '# serial port\n[io]\n\n"port" = 70000\n\n[other]\nio.x = 1\n'
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(Example, path=path, env_prefix="EX_", environ={})
    assert [line.split(": ")[0] for line in info.value.lines] == [
        f"config error in {path}:4",
        f"config error in {path}:6",  # [other] is an unknown section, said once at its header
    ]
    inline = write(tmp_path, "io = { port = 70000 }\n")
    with pytest.raises(ConfigError) as info:
        load(Example, path=inline, env_prefix="EX_", environ={})
    assert info.value.source == f"{inline}:1"  # an inline table: the line of its section


def test_an_unknown_section_is_one_problem_at_its_line_even_when_empty(tmp_path):
    text = '[io]\nport = "x"\n\n[typo_section]\nspeed = 1\nfast = true\n[dbb]\n[io2.deeper]\nx = 1\n'
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(Example, path=path, env_prefix="EX_", environ={})
    assert info.value.lines == [
        f"config error in {path}:4: typo_section: unknown section",
        f"config error in {path}:7: dbb: unknown section (did you mean 'db'?)",
        f"config error in {path}:8: io2: unknown section (did you mean 'io'?)",
    ]


def test_a_check_of_the_loaded_settings_is_reported_with_the_other_problems(tmp_path):
    path = write(tmp_path, '[io]\nport = "x"\nspeed = 1\nmode = "escpos"\n')
    seen = []

    def check(cfg: Example) -> list[ConfigError]:
        seen.append(cfg)
        return (
            [ConfigError(str(path), "io.mode", "escpos needs io.fast")] if cfg.mode == "escpos" and not cfg.fast else []
        )

    with pytest.raises(ConfigError) as info:
        load(Example, path=path, env_prefix="EX_", environ={}, check=check)
    assert [line.split(": ", 2)[1:] for line in info.value.lines] == [
        ["io.speed", "must be at least 50; got 1"],
        ["io.mode", "escpos needs io.fast"],
    ]
    assert seen[0].speed == 9600  # the check saw the invalid value at its default
    assert load(Example, path=None, env_prefix="EX_", environ={"EX_IO_PORT": "x"}, check=check).mode == "line"


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"invalid TOML: .*line 1"):
        load(Example, path=write(tmp_path, "io.port = \n"), env_prefix="EX_", environ={})
    with pytest.raises(ConfigError, match="file not found"):
        load(Example, path=tmp_path / "absent.toml", env_prefix="EX_", environ={})


def test_unknown_and_malformed_environment_variables():
    with pytest.raises(ConfigError) as info:
        load(Example, path=None, env_prefix="EX_", environ={"EX_IO_PORT": "x", "EX_IO_SPED": "1"})
    assert str(info.value).startswith("config error in environment: EX_IO_SPED: unknown variable")
    with pytest.raises(ConfigError, match="EX_IO_FAST: expected true or false, got 'maybe'"):
        load(Example, path=None, env_prefix="EX_", environ={"EX_IO_PORT": "x", "EX_IO_FAST": "maybe"})
    # Reserved names (the config path) are not settings and not errors.
    load(
        Example,
        path=None,
        env_prefix="EX_",
        environ={"EX_IO_PORT": "x", "EX_CONFIG": "/a"},
        reserved_env=frozenset({"EX_CONFIG"}),
    )


def test_required_can_be_waived_for_partial_commands():
    cfg = load(Example, path=None, env_prefix="EX_", environ={}, check_required=False)
    assert cfg.port == ""


def test_reference_rows_show_name_env_type_default_and_help():
    rows = reference_rows(Example, "EX_")
    assert rows[0] == "| `io.port` | `EX_IO_PORT` | a string | *(required)* | Port URL. |"
    assert rows[3] == "| `io.fast` | `EX_IO_FAST` | true or false | `false` | Go fast. |"


def test_maximum_applies_to_environment_values_and_bounds_are_inclusive():
    with pytest.raises(ConfigError, match="EX_IO_TCP: must be from 1 to 65535; got 70000"):
        load(Example, path=None, env_prefix="EX_", environ={"EX_IO_PORT": "x", "EX_IO_TCP": "70000"})
    cfg = load(Example, path=None, env_prefix="EX_", environ={"EX_IO_PORT": "x", "EX_IO_TCP": "65535"})
    assert cfg.tcp == 65535


def test_reference_rows_show_the_range_of_bounded_settings():
    rows = {row.split(" | ")[0]: row for row in reference_rows(Example, "EX_")}
    assert rows["| `io.tcp`"] == "| `io.tcp` | `EX_IO_TCP` | an integer, from 1 to 65535 | `8000` | TCP port. |"
    assert "a number, at most 60" in rows["| `io.wait`"]
    assert "| an integer | `9600` |" in rows["| `io.speed`"]  # a minimum alone is not shown, as before


def test_a_minimum_above_the_maximum_is_a_declaration_error():
    with pytest.raises(ValueError, match="minimum 10 is above maximum 1"):
        setting("x.y", 5, "Nonsense.", minimum=10, maximum=1)


def test_a_relative_path_in_a_file_is_taken_from_the_files_folder_whatever_the_working_directory(tmp_path, monkeypatch):
    folder = tmp_path / "etc" / "x"
    folder.mkdir(parents=True)
    path = write(folder, '[io]\nport = "x"\nhome = "data"\n')
    for cwd in (folder, tmp_path, Path("/")):
        monkeypatch.chdir(cwd)
        assert load(Example, path=path, env_prefix="EX_", environ={}).home == folder / "data"
        # The settings file given by a relative name is found from the working directory, as any argument is.
        relative = Path(os.path.relpath(path, cwd))
        assert load(Example, path=relative, env_prefix="EX_", environ={}).home == folder / "data"
    up = write(folder, '[io]\nport = "x"\nhome = "../lib/./data"\n')
    assert load(Example, path=up, env_prefix="EX_", environ={}).home == tmp_path / "etc" / "lib" / "data"
    absolute = write(folder, '[io]\nport = "x"\nhome = "/srv/x"\n')
    assert load(Example, path=absolute, env_prefix="EX_", environ={}).home == Path("/srv/x")


def test_a_relative_path_from_the_environment_or_overrides_is_refused_naming_where_it_came_from(tmp_path):
    env = {"EX_IO_PORT": "x", "EX_IO_HOME": "data"}
    with pytest.raises(ConfigError) as info:
        load(Example, path=write(tmp_path, ""), env_prefix="EX_", environ=env)
    assert info.value.lines == [
        "config error in environment: EX_IO_HOME: must be an absolute path, got 'data'"
        " (only a settings file's relative paths are resolved, against the file's folder)"
    ]
    with pytest.raises(ConfigError, match=r"overrides: io\.home: must be an absolute path, got 'data'"):
        load(Example, path=None, env_prefix="EX_", environ={"EX_IO_PORT": "x"}, overrides={"io.home": "data"})
    home = load(Example, path=None, env_prefix="EX_", environ={"EX_IO_PORT": "x", "EX_IO_HOME": "~/data"}).home
    assert home == Path("~/data").expanduser() and home.is_absolute()
    with pytest.raises(ConfigError, match="EX_IO_HOME: must not be empty"):
        load(Example, path=None, env_prefix="EX_", environ={"EX_IO_PORT": "x", "EX_IO_HOME": ""})


def test_text_settings_declared_as_paths_are_resolved_by_the_same_rule(tmp_path):
    from shared.settings import PATH, PATH_OR_NAME, PATH_OR_URL

    @dataclass(frozen=True)
    class Paths:
        ca: str = setting("io.ca", "", "A file; empty: none.", path=PATH)
        port: str = setting("io.port", "loop://", "A device path or a URL.", path=PATH_OR_URL)
        wifi: str = setting("io.wifi", "", "An interface name, or a capture file's path.", path=PATH_OR_NAME)

    path = write(tmp_path, '[io]\nca = "ca.pem"\nport = "pty/till"\nwifi = "captures/floor.pcapng"\n')
    loaded = load(Paths, path=path, env_prefix="EX_", environ={})
    assert (loaded.ca, loaded.port, loaded.wifi) == (
        str(tmp_path / "ca.pem"),
        str(tmp_path / "pty" / "till"),
        str(tmp_path / "captures" / "floor.pcapng"),
    )
    # Empty stays empty (not set), a URL stays a URL, a name without a slash stays a name.
    path = write(tmp_path, '[io]\nca = ""\nport = "socket://till:9100"\nwifi = "wlan1mon"\n')
    loaded = load(Paths, path=path, env_prefix="EX_", environ={})
    assert (loaded.ca, loaded.port, loaded.wifi) == ("", "socket://till:9100", "wlan1mon")
    with pytest.raises(ConfigError) as info:
        load(Paths, path=None, env_prefix="EX_", environ={"EX_IO_CA": "ca.pem", "EX_IO_PORT": "ttyUSB0"})
    assert [line.split(", got")[0] for line in info.value.lines] == [
        "config error in environment: EX_IO_CA: must be an absolute path",
        "config error in environment: EX_IO_PORT: must be an absolute path or a URL",
    ]
    with pytest.raises(ValueError, match=r"io\.x: a path setting's default must be absolute or empty"):
        setting("io.x", "relative", "Nonsense.", path=PATH)
