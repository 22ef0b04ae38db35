"""Settings that HQ publishes to a store through the downlink's ``settings`` document.

Precedence, lowest first: defaults, the local TOML file, central's overrides, then the environment
(so a technician's systemd override still wins on site). Central may not move the agent's data, its
trust anchors or its central URL: those stay local (:data:`shared.agent_settings.LOCAL_ONLY`). What
the agent takes from central is decided by :func:`shared.agent_settings.central_setting_problem`,
the rule central checks a document by before publishing it. An override that fails it anyway (a
document published by an older central) is ignored with a reason, never fatal: a mistake at HQ
must not stop every store's agent. Some settings take effect at once (:data:`LIVE`); the rest at
the next start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.config import ENV_PREFIX, AgentConfig, load_config
from edge_agent.credentials import Credentials, CredentialsError
from edge_agent.downlink import DownlinkStore
from shared.agent_settings import SET_ON_PC, central_setting_refusal

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
    ignored: dict[str, str]  # setting -> why it was not applied, in words (for the PC's log)
    ignored_codes: dict[str, str] = field(default_factory=dict)  # setting -> reason code (for HQ)


def effective_config(
    path: Path | None,
    overrides: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    *,
    check_required: bool = True,
) -> Effective:
    """Load the configuration with central's ``overrides`` layered under the environment."""
    environ = os.environ if environ is None else environ
    applied: dict[str, Any] = {}
    ignored: dict[str, str] = {}
    codes: dict[str, str] = {}
    for key, value in overrides.items():
        refusal = central_setting_refusal(key, value)
        variable = ENV_PREFIX + key.upper().replace(".", "_")
        if refusal is None and variable in environ:
            refusal = SET_ON_PC, f"{variable} is set on this PC"
        if refusal is None:
            applied[key] = value
        else:
            codes[key], ignored[key] = refusal
    config = load_config(path, environ, applied, check_required=check_required)
    return Effective(config, applied, ignored, codes)


def config_in_force(path: Path | None, config: AgentConfig, *, check_required: bool = True) -> Effective:
    """The configuration the agent runs with: ``config`` (loaded from ``path``) under central's overrides
    as last fetched into the data directory; ``config`` itself before enrollment.

    Every command that talks to central as the agent does (rotate-device-key, doctor) starts here,
    so that a setting central moved (``sync.connect_timeout``) is the same for them as for sync.
    """
    try:
        store_id = Credentials.load(config.credentials_path).store_id
    except CredentialsError:
        return Effective(config, {}, {})
    overrides = DownlinkStore(config.agent_data_dir, store_id).settings_overrides()
    return effective_config(path, overrides, check_required=check_required)
