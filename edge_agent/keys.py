"""The outbox key and the store it opens, as the inspection commands find them: read, never created.

Only `edge-agent run` creates the data directory's outbox and its key (on its first start). The
commands that look at a store or change one in place (``quarantine``, ``status``, ``reparse``,
``rotate-key``, ``doctor``) use :func:`read_outbox_key` and :func:`require_store`, which say what is
missing instead of writing a fresh key: a new key cannot open an existing outbox, and a phantom
outbox in a mistyped directory hides the real one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from edge_agent.config import AgentConfig
from edge_agent.credentials import KeySource, outbox_key_source
from shared.crypto import KEY_BYTES, KeyFileError, read_secret_file


class StoreMissing(Exception):
    """The data directory, the outbox or its key is not there; the message says which and what to do."""


class DataDirError(Exception):
    """The data directory cannot be locked (gone, or not this user's); the message says which and why."""


def missing_key_message(key_path: Path, outbox_path: Path) -> str:
    """What to say about an outbox whose key file is gone."""
    return (
        f"outbox key missing: {outbox_path} exists but {key_path} does not, and the outbox cannot be opened "
        "without it; restore outbox.key from the backup taken with this outbox (a new key cannot open it)"
    )


def read_outbox_key(
    key_path: Path, outbox_path: Path, environ: Mapping[str, str] | None = None
) -> tuple[bytes, KeySource]:
    """The outbox key and where it came from (systemd credential or file); StoreMissing if there is none."""
    source = outbox_key_source(key_path, environ)
    if not source.path.exists():
        if outbox_path.exists():
            raise StoreMissing(missing_key_message(key_path, outbox_path))
        raise StoreMissing(f"no outbox key at {key_path}: the agent has not run with this data directory yet")
    key = read_secret_file(source.path)
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{source.path}: expected a {KEY_BYTES}-byte key, found {len(key)} bytes")
    return key, source


def require_store(config: AgentConfig, environ: Mapping[str, str] | None = None) -> None:
    """Raise StoreMissing unless the data directory holds an outbox and its key."""
    data_dir = config.agent_data_dir
    if not data_dir.is_dir():
        raise StoreMissing(
            f"data directory {data_dir} does not exist: no agent has run with it (check agent.data_dir,"
            " or the file given with --config)"
        )
    if not config.outbox_path.exists():
        raise StoreMissing(
            f"no outbox at {config.outbox_path}: the agent has not run with this data directory yet"
            " (start it: `systemctl start edge-agent`)"
        )
    read_outbox_key(config.key_path, config.outbox_path, environ)
