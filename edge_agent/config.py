"""The agent's settings (declared in :mod:`shared.agent_settings`): read from a TOML file, then EDGE_* variables."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_agent.central_url import CentralUrlError, check_central_url
from shared.agent_settings import ENV_PREFIX, AgentConfig
from shared.settings import ConfigError, load, specs

CONFIG_ENV = "EDGE_CONFIG"
DEFAULT_CONFIG_PATH = Path("/etc/edge-agent/agent.toml")


def config_path(explicit: str | None, environ: Mapping[str, str] | None = None) -> Path | None:
    """The file to read: ``--config``, else $EDGE_CONFIG, else the system default if it exists."""
    environ = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def load_config(
    path: Path | None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    check_required: bool = True,
) -> AgentConfig:
    """Load and validate the agent's settings; raise shared.settings.ConfigError on any problem."""
    config = load(
        AgentConfig,
        path=path,
        env_prefix=ENV_PREFIX,
        environ=environ,
        reserved_env=frozenset({CONFIG_ENV}),
        overrides=overrides,
        check_required=check_required,
    )
    problems = []
    if config.sync_central_url:
        try:
            check_central_url(config.sync_central_url)
        except CentralUrlError as exc:
            problems.append(_error("sync.central_url", str(exc), path, environ))
    problems += _panel_problems(config, path, environ)
    if problems:
        raise ConfigError(problems[0].source, problems[0].key, problems[0].problem, problems[1:])
    return config


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address, or ``localhost``) is this PC's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _panel_problems(config: AgentConfig, path: Path | None, environ: Mapping[str, str] | None) -> list[ConfigError]:
    """The cashier panel shows customers (masked): on this PC only, unless a screen elsewhere is named."""
    screen = config.panel_screen_address
    if screen:
        try:
            ipaddress.ip_address(screen)
        except ValueError:
            problem = f"{screen!r} is not an IP address (e.g. 192.168.1.23)"
            return [_error("panel.screen_address", problem, path, environ)]
        return []
    if not is_loopback(config.panel_host):
        return [
            _error(
                "panel.host",
                f"{config.panel_host!r} is not a loopback address: the panel shows customers' masked names and "
                "phones, so it listens on this PC only (127.0.0.1); to show it on another PC, set "
                "panel.screen_address to that PC's IP address",
                path,
                environ,
            )
        ]
    return []


def _error(name: str, problem: str, path: Path | None, environ: Mapping[str, str] | None) -> ConfigError:
    """A problem with setting ``name`` found after loading, named as its source names it (variable or key)."""
    variable = ENV_PREFIX + name.upper().replace(".", "_")
    if variable in (os.environ if environ is None else environ):
        return ConfigError("environment", variable, problem)
    return ConfigError(str(path) if path is not None else "defaults", name, problem)


def check_usable(config: AgentConfig, path: Path | None, environ: Mapping[str, str] | None = None) -> list[ConfigError]:
    """What `run` refuses in settings that load: TLS trust, presence settings, receipt profiles, the
    staging directory.

    Each is checked by the very function the running agent builds that part with, whether or not
    the part is turned on. `check-config` and `run` exit 2 on any of these and doctor fails a line
    for each, so a configuration check-config accepts is one run starts with.
    """
    from edge_agent.parsing.receipt_profile import ProfileError
    from edge_agent.presence.radios import PresenceSettingError, engine_settings, parse_zones, store_timezone
    from edge_agent.receipt_reader import configured_profiles
    from edge_agent.sources.staging import staging_dir_problem
    from edge_agent.tls import TlsSettingError, TlsTrust

    problems = []
    try:
        TlsTrust.from_settings(config.sync_ca_file, config.sync_tls_fingerprint)
    except TlsSettingError as exc:
        problems.append(_named(str(exc), path, environ))
    presence = (
        lambda: engine_settings(config, "wifi"),  # the thresholds, then the zones
        lambda: parse_zones(config.presence_zones),  # the zones even when a threshold failed first
        lambda: store_timezone(config.presence_timezone),
    )
    for check in presence:
        try:
            check()
        except PresenceSettingError as exc:
            if not any(p.problem == str(exc) for p in problems):
                problems.append(_named(str(exc), path, environ))
    # reparse reads pos.profiles_dir in either mode; pos.profile only matters in escpos mode.
    if config.pos_mode == "escpos" or config.pos_profiles_dir:
        profile = config.pos_profile if config.pos_mode == "escpos" else ""
        try:
            configured_profiles(config.pos_profiles_dir, profile)
        except ProfileError as exc:
            name = "pos.profiles_dir" if config.pos_profiles_dir else "pos.profile"
            problems.append(_named(f"{name}: receipt profile error: {exc}", path, environ))
    # Without a usable staging directory every read could be lost to a kill (docs/decisions/0013).
    if staging := staging_dir_problem(config.capture_staging_dir, environ):
        problems.append(_named(staging, path, environ))
    return problems


def _named(message: str, path: Path | None, environ: Mapping[str, str] | None) -> ConfigError:
    """A problem whose message begins with the setting's name, said to come from its variable or file."""
    name = max((s.name for s in specs(AgentConfig) if message.startswith(s.name)), key=len, default="")
    variable = ENV_PREFIX + name.upper().replace(".", "_")
    if name and variable in (os.environ if environ is None else environ):
        return ConfigError("environment", variable, message)
    return ConfigError(str(path) if path is not None else "defaults and environment", None, message)
