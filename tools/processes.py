"""Real processes for end-to-end tests and benchmarks: central under waitress, agents, a POS on a pty."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Callable, Iterable
from pathlib import Path

import requests
import sqlalchemy as sa

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "CENTRAL_")) and k != "DATABASE_URL"}
    env.update(extra or {})
    return env


class Process:
    """A child process whose output goes to a log file, shown when a test fails."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self.argv = argv
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Central:
    """central-server on a free loopback port, on SQLite or PostgreSQL."""

    def __init__(self, workdir: Path, database_url: str, *, cli_in_process: bool = False) -> None:
        """``cli_in_process``: run :meth:`cli` commands through ``tools.central_cli`` in this process
        (same command, same configuration, without a second's start-up each) instead of as processes."""
        self.workdir = workdir
        self.cli_in_process = cli_in_process
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "central.toml"
        self.config.write_text(
            f'[server]\nhost = "127.0.0.1"\nport = {self.port}\nthreads = 4\ndata_dir = "{workdir}"\n'
            f'[database]\nurl = "{database_url}"\n'
            # Plain HTTP over loopback: a Secure session cookie would never be sent back. The tests' admins
            # log in with a password alone (tests/central/test_two_step.py covers two-step sign-in).
            '[console]\nsecure_cookie = false\ntwo_step_roles = ""\n'
        )
        self.env = _clean_env({"CENTRAL_CONFIG": str(self.config)})
        self.process = Process([str(BIN / "central-server"), "serve"], workdir / "central.log", self.env)
        self.engine = sa.create_engine(database_url)

    def start(self) -> None:
        self.process.start()
        wait_until(self.healthy, 60, "central to answer /healthz")

    def healthy(self) -> bool:
        try:
            return requests.get(self.url + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        self.process.stop()

    def cli(self, *args: str, stdin: str | None = None) -> str:
        if self.cli_in_process:
            from tools import central_cli

            result = central_cli.run(args, self.env, stdin or "")
        else:
            result = subprocess.run(
                [str(BIN / "central-server"), *args],
                capture_output=True,
                text=True,
                env=self.env,
                input=stdin,
                timeout=60,
            )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def enroll_token(self, store: str) -> str:
        return self.cli("enroll-token", "--store", store)

    def scalar(self, sql: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text(sql)).scalar_one())

    def receipt_numbers(self) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT payload FROM events WHERE kind = 'pos.receipt'")).scalars().all()
        return [(row if isinstance(row, dict) else json.loads(row))["receipt_no"] for row in rows]

    def close(self) -> None:
        self.stop()
        self.engine.dispose()


class Agent:
    """edge-agent enrolled against a central and reading a pty."""

    def __init__(
        self,
        workdir: Path,
        pos_port: str,
        *,
        sync_settings: str = "",
        pos_settings: str = "",
        presence_settings: str = "",
        heartbeat_interval: float = 5,
    ) -> None:
        """``sync_settings``, ``pos_settings``: more lines for the ``[sync]`` and ``[pos]`` sections,
        such as ``ca_file = "..."`` or ``mode = "escpos"``; ``presence_settings``: lines for a
        ``[presence]`` section; ``heartbeat_interval``: seconds between heartbeats."""
        self.data_dir = workdir / "agent"
        self.config = workdir / "agent.toml"
        lines = [
            f'[agent]\ndata_dir = "{self.data_dir}"\nheartbeat_interval = {heartbeat_interval}',
            f'[pos]\nport = "{pos_port}"' + (f"\n{pos_settings}" if pos_settings else ""),
            "[capture]\nfsync = true",
            "[sync]\ninterval = 0.2\nmax_backoff = 2.0" + (f"\n{sync_settings}" if sync_settings else ""),
            "[health]\ninterval = 1",
        ]
        if presence_settings:
            lines.append(f"[presence]\n{presence_settings}")
        self.config.write_text("\n".join(lines) + "\n")
        self.env = _clean_env({"EDGE_CONFIG": str(self.config)})
        self.process = Process([str(BIN / "edge-agent"), "run"], workdir / "agent.log", self.env)

    def enroll(self, central_url: str, token: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(BIN / "edge-agent"), "enroll", "--central", central_url, f"--token={token}"],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run another edge-agent command (status, doctor, ...) with this agent's settings."""
        return subprocess.run(
            [str(BIN / "edge-agent"), *args], capture_output=True, text=True, env=self.env, timeout=60
        )

    def start(self) -> None:
        self.process.start()

    def kill(self) -> None:
        self.process.signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        self.process.stop()

    def files(self) -> Iterable[Path]:
        return [p for p in self.data_dir.rglob("*") if p.is_file()]


class Till:
    """A POS writing lines into a pty on a thread of its own, at a steady pace."""

    def __init__(self, lines: list[bytes], rate: float) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.lines = lines
        self.rate = rate
        self.written = 0
        self._thread = threading.Thread(target=self._write, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _write(self) -> None:
        start = time.monotonic()
        for n, line in enumerate(self.lines):
            view = memoryview(line)
            while view:
                view = view[os.write(self.master, view) :]  # blocks while nobody reads, like flow control
            self.written += 1
            delay = start + (n + 1) / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the till could not write all its lines"

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
