"""Settings that HQ publishes to a store through the downlink's ``settings`` document.

Precedence, lowest first: defaults, the local TOML file, central's overrides, then the environment
(so a technician's systemd override still wins on site). Central may not move the agent's data, its
trust anchors or its central URL: those stay local (:data:`LOCAL_ONLY`). An override that names an
unknown setting or a bad value is ignored with a reason, never fatal: a mistake at HQ must not stop
every store's agent. Some settings take effect at once (:data:`LIVE`); the rest at the next start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.config import ENV_PREFIX, AgentConfig, load_config
from shared.settings import ConfigError, specs

LOCAL_ONLY = frozenset(
    {
        "agent.data_dir",
        "capture.staging_dir",
        "pos.port",
        "panel.host",  # who on the shop network may see the panel: decided at the PC, not from HQ
        "panel.screen_address",
        "sync.central_url",
        "sync.ca_file",
        "sync.tls_fingerprint",
    }
)
# Applied to the running agent without a restart (see Agent.apply_settings).
LIVE = frozenset(
    {
        "agent.heartbeat_interval",
        "sync.interval",
        "sync.batch_size",
        "sync.batch_bytes",
        "sync.timeout",
        "sync.min_backoff",
        "sync.max_backoff",
    }
)


@dataclass(frozen=True)
class Effective:
    """The configuration in force and what was made of central's overrides."""

    config: AgentConfig
    applied: dict[str, Any]
    ignored: dict[str, str]  # setting -> why it was not applied


def effective_config(
    path: Path | None,
    overrides: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    *,
    check_required: bool = True,
) -> Effective:
    """Load the configuration with central's ``overrides`` layered under the environment."""
    environ = os.environ if environ is None else environ
    env_names = {spec.name: spec.env_name(ENV_PREFIX) for spec in specs(AgentConfig)}
    applied: dict[str, Any] = {}
    ignored: dict[str, str] = {}
    for key, value in overrides.items():
        if key in LOCAL_ONLY:
            ignored[key] = "set locally only"
        elif key not in env_names:
            ignored[key] = "unknown setting"
        elif env_names[key] in environ:
            ignored[key] = f"{env_names[key]} is set on this PC"
        else:
            try:
                load_config(path, environ, {key: value}, check_required=False)
            except ConfigError as exc:
                ignored[key] = str(exc)
            else:
                applied[key] = value
    config = load_config(path, environ, applied, check_required=check_required)
    return Effective(config, applied, ignored)
