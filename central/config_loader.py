"""Loading central's settings: the file ``$CENTRAL_CONFIG`` names (else the system file), then
``CENTRAL_*`` environment variables, each value checked against its declaration in
:mod:`central.config`, and the checks that need more than one setting or a file of their own (the
database URL, the triggers' time zone, the identifier registry). ``describe`` prints the result.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from central.config import CentralConfig
from shared import settings

ENV_PREFIX = "CENTRAL_"
CONFIG_ENV = "CENTRAL_CONFIG"
DEFAULT_CONFIG_PATH = Path("/etc/central-server/central.toml")
SUPPORTED_BACKENDS = ("sqlite", "postgresql")


def default_config_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$CENTRAL_CONFIG`` if set, else the system file if it exists, else None (defaults + env)."""
    environ = os.environ if environ is None else environ
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    if DEFAULT_CONFIG_PATH.is_file():
        return DEFAULT_CONFIG_PATH
    return None


def load_config(
    path: Path | None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> CentralConfig:
    """Load and validate the settings; raise ``shared.settings.ConfigError`` naming every bad key at once."""
    environ = os.environ if environ is None else environ

    def check(config: CentralConfig) -> list[settings.ConfigError]:
        return _cross_checks(config, path, environ, overrides or {})

    return settings.load(
        CentralConfig,
        path=path,
        env_prefix=ENV_PREFIX,
        environ=environ,
        reserved_env=frozenset({CONFIG_ENV}),
        overrides=overrides,
        check=check,
    )


def _cross_checks(
    config: CentralConfig, path: Path | None, environ: Mapping[str, str], overrides: Mapping[str, Any]
) -> list[settings.ConfigError]:
    """The problems of settings that need more than their type and range: each one, not just the first."""
    problems = []

    def origin(name: str) -> tuple[str, str]:
        """Where the value of setting ``name`` came from, and the key it was given under there."""
        if name in overrides:
            return "overrides", name
        spec = next(s for s in settings.specs(CentralConfig) if s.name == name)
        for var in (spec.env_name(ENV_PREFIX), *spec.env_aliases):  # the prefixed name wins over an alias
            if var in environ:
                return "environment", var
        return (str(path), name) if path else ("defaults", name)

    if config.database_url and (problem := _url_problem(config.effective_database_url)):
        problems.append(settings.ConfigError(*origin("database.url"), problem))
    if config.server_trusted_proxy:
        import ipaddress

        try:
            ipaddress.ip_address(config.server_trusted_proxy)
        except ValueError:
            reason = "not an IP address (the proxy's own address, such as 127.0.0.1)"
            problems.append(settings.ConfigError(*origin("server.trusted_proxy"), reason))
    if config.triggers_timezone:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(config.triggers_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            reason = "not an IANA time zone such as Asia/Shanghai"
            problems.append(settings.ConfigError(*origin("triggers.timezone"), reason))
    if config.identity_registry_file:
        from central.identity.registry import RegistryError, load_registry

        try:
            load_registry(config)
        except RegistryError as exc:
            where = f"{exc.source}:{exc.line}" if exc.line else exc.source
            problems.append(settings.ConfigError(where, exc.key or None, exc.reason))
    return problems


def _url_problem(url: str) -> str | None:
    """Why ``url`` cannot be central's database, or None."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return "not a database URL (expected sqlite:///PATH or postgresql+psycopg://USER@HOST/DB)"
    if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
        return f"unsupported database {parsed.get_backend_name()!r}; use sqlite or postgresql"
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        return "PostgreSQL URLs must name the psycopg driver: postgresql+psycopg://..."
    database = parsed.database or ""
    named = database not in ("", ":memory:") and not database.startswith("file:")  # not in memory, not a URI
    if parsed.get_backend_name() == "sqlite" and named and not os.path.isabs(database):
        # SQLite opens a relative file from the working directory (and expands no ~).
        return (
            f"the SQLite file {database!r} is not an absolute path (under systemd it would be taken from /);"
            " write sqlite:////ABSOLUTE/PATH.db, or leave database.url empty for central.db in server.data_dir"
        )
    return None


def describe(config: CentralConfig) -> list[str]:
    """``name = value`` lines for every effective setting, secrets hidden."""
    lines = []
    for spec in settings.specs(CentralConfig):
        value = getattr(config, spec.attr)
        if spec.secret and value:
            shown = "********"
        elif spec.name == "database.url":
            shown = _hide_password(config.effective_database_url)
        elif isinstance(value, bool):
            shown = "true" if value else "false"
        else:
            shown = str(value)
        lines.append(f"{spec.name} = {shown}")
    return lines


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url
