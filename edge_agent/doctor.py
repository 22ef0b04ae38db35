"""`edge-agent doctor`: the technician's checklist, each line a pass or a failure with the reason."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import requests

from edge_agent.config import ENV_PREFIX, AgentConfig
from edge_agent.credentials import Credentials, CredentialsError
from edge_agent.outbox import Outbox
from shared.crypto import KeyFileError, Sealer, read_secret_file
from shared.settings import specs

Check = tuple[bool, str]


def open_outbox(config: AgentConfig) -> Outbox:
    """Open the outbox for inspection (read-mostly; safe beside a running agent)."""
    key = read_secret_file(config.key_path)
    try:
        store_id = Credentials.load(config.credentials_path).store_id
    except CredentialsError:
        store_id = ""
    return Outbox(config.outbox_path, Sealer(key), store_id)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def config_check(config: AgentConfig, path: Path | None) -> Check:
    """Whether the settings are complete: the one place the doctor speaks about required settings."""
    where = str(path) if path is not None else "from defaults and environment (no settings file)"
    missing = [s for s in specs(AgentConfig) if s.required and not getattr(config, s.attr)]
    if missing:
        names = ", ".join(f"{s.name} (or {s.env_name(ENV_PREFIX)})" for s in missing)
        return False, f"configuration {where}: required setting missing: {names}"
    return True, f"configuration {where} is valid"


def run_checks(config: AgentConfig, *, path: Path | None = None) -> list[Check]:
    """Every check, in the order a technician would fix them."""
    checks: list[Check] = [config_check(config, path)]
    data_dir = config.agent_data_dir
    if not data_dir.is_dir():
        checks.append((False, f"data directory {data_dir} does not exist (run `edge-agent enroll` first)"))
        return checks
    checks.append((_mode(data_dir) & 0o077 == 0, f"data directory {data_dir} mode {_mode(data_dir):04o}"))

    try:
        creds = Credentials.load(config.credentials_path)
        checks.append((True, f"enrolled as {creds.device_id} for store {creds.store_id} at {creds.central_url}"))
    except CredentialsError as exc:
        checks.append((False, str(exc)))
        creds = None

    if config.key_path.exists():
        try:
            read_secret_file(config.key_path)
            checks.append((True, f"outbox key {config.key_path} mode {_mode(config.key_path):04o}"))
        except KeyFileError as exc:
            checks.append((False, str(exc)))
    if config.outbox_path.exists() and config.key_path.exists():
        try:
            stats = open_outbox(config).stats()
        except (KeyFileError, OSError) as exc:
            checks.append((False, f"outbox cannot be opened: {exc}"))
        else:
            age = (
                "" if stats.oldest_pending_at is None else f", oldest {time.time() - stats.oldest_pending_at:.0f} s old"
            )
            checks.append(
                (
                    True,
                    f"outbox: {stats.pending} pending{age}, {stats.delivered} delivered, "
                    f"{stats.rejected} rejected, {stats.quarantined} quarantined",
                )
            )
    journal = config.journal_dir / "pos.journal"
    if journal.exists():
        checks.append((True, f"capture journal {journal}: {journal.stat().st_size} bytes not yet committed"))

    port = config.pos_port
    if not port:
        pass  # reported by the configuration check
    elif "://" in port:
        checks.append((True, f"POS port {port} (a pyserial URL; not opened while the agent may be reading)"))
    elif os.path.exists(port) and stat.S_ISCHR(os.stat(port).st_mode):
        access = os.access(port, os.R_OK | os.W_OK)
        checks.append(
            (
                access,
                f"POS port {port} is a character device" + ("" if access else " without read/write access"),
            )
        )
    else:
        checks.append((False, f"POS port {port} does not exist (cable unplugged? wrong path?)"))

    if creds is not None:
        url = (config.sync_central_url or creds.central_url).rstrip("/") + "/healthz"
        try:
            reply = requests.get(url, timeout=10, verify=config.sync_ca_file or True)
            checks.append((reply.status_code == 200, f"central {url} answered {reply.status_code}"))
        except requests.RequestException as exc:
            checks.append((False, f"central {url} unreachable: {type(exc).__name__}"))
    return checks
