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
    """Load and validate the settings; raise ``shared.settings.ConfigError`` naming the bad key."""
    environ = os.environ if environ is None else environ
    config = settings.load(
        CentralConfig,
        path=path,
        env_prefix=ENV_PREFIX,
        environ=environ,
        reserved_env=frozenset({CONFIG_ENV}),
        overrides=overrides,
    )
    if config.database_url:
        problem = _url_problem(config.effective_database_url)
        if problem:
            if overrides and "database.url" in overrides:
                source, key = "overrides", "database.url"
            elif f"{ENV_PREFIX}DATABASE_URL" in environ:
                source, key = "environment", f"{ENV_PREFIX}DATABASE_URL"
            elif "DATABASE_URL" in environ:
                source, key = "environment", "DATABASE_URL"
            else:
                source, key = str(path), "database.url"
            raise settings.ConfigError(source, key, problem)
    if config.server_trusted_proxy:
        import ipaddress

        try:
            ipaddress.ip_address(config.server_trusted_proxy)
        except ValueError:
            raise settings.ConfigError(
                str(path) if path else "environment",
                "server.trusted_proxy",
                "not an IP address (the proxy's own address, such as 127.0.0.1)",
            ) from None
    if config.triggers_timezone:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(config.triggers_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise settings.ConfigError(
                str(path) if path else "environment", "triggers.timezone", "not an IANA time zone such as Asia/Shanghai"
            ) from None
    if config.identity_registry_file:
        from central.identity.registry import RegistryError, load_registry

        try:
            load_registry(config)
        except RegistryError as exc:
            where = f"{exc.source}:{exc.line}" if exc.line else exc.source
            raise settings.ConfigError(where, exc.key or None, exc.reason) from None
    return config


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
