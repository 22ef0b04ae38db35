"""Running the ``central-server`` command for one test, with a config file of its own.

``Cli`` starts the real console script in a subprocess; ``InProcessCli`` calls the same
``central.cli.main`` in this process (``tools.central_cli``: about a second cheaper per command).
Both return a ``subprocess.CompletedProcess``. Tests of the console script itself (its entry
point, the environment's defaults) keep the subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tools import central_cli

SCRIPT = Path(sys.executable).with_name("central-server")


def command() -> list[str]:
    """The installed console script, or ``python -m central`` where it is not installed."""
    return [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "central"]


def clean_environment() -> dict[str, str]:
    """This process's environment without any central settings that could leak into the child."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CENTRAL_") and k != "DATABASE_URL"}


@dataclass(frozen=True)
class Cli:
    """Runs ``central-server`` against one config file."""

    config: Path

    def run(self, *args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command(), *args, "--config", str(self.config)],
            input=stdin,
            capture_output=True,
            text=True,
            env=clean_environment(),
            timeout=timeout,
            check=False,
        )


@dataclass(frozen=True)
class InProcessCli:
    """Runs ``central.cli.main`` against one config file, as ``Cli`` runs the console script."""

    config: Path

    def run(self, *args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return central_cli.run([*args, "--config", str(self.config)], clean_environment(), stdin)


def write_config(path: Path, data_dir: Path, database_url: str, *, server: str = "") -> Path:
    """A TOML config pointing at ``data_dir`` and ``database_url``; ``server`` adds [server] lines."""
    path.write_text(
        f'[server]\ndata_dir = "{data_dir}"\n{server}\n[database]\nurl = "{database_url}"\n',
        encoding="utf-8",
    )
    return path
