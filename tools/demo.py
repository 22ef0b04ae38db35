"""The demo: central on SQLite, an enrolled agent, and a simulated till printing ESC/POS receipts into a pty.

The till (tools/escpos_till.py) prints Chinese receipts as a POS sends them to its receipt printer;
the agent reads them with ``pos.mode = "escpos"``: printer bytes in, receipts and sales out.

The store also has a simulated floor (tools/store_floor.py): the last two hours of walkers-by and
visitors as the agent's Wi-Fi readers heard them, replayed by the agent, so footfall, capture rate,
dwell and zone heat appear at ``/api/v1/presence/S001``.

Run it with ``./dev demo`` (which sets up the virtual environment first). Everything lives in
``.demo/`` beside the repository and is wiped at each start unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))

from tools.store_floor import PLACEMENTS, StoreFloor, write_pcapng  # noqa: E402 - after the path is set


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def pick_port(host: str, wanted: int) -> int:
    if port_free(host, wanted):
        return wanted
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = Path(args.dir).resolve()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.host = args.host
        self.port = pick_port(args.host, args.port)
        self.url = f"http://{'127.0.0.1' if self.host in ('0.0.0.0', '') else self.host}:{self.port}"  # noqa: S104
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "CENTRAL_"))}
        self.env.pop("DATABASE_URL", None)
        self.env["CENTRAL_CONFIG"] = str(self.root / "central.toml")
        self.env["EDGE_CONFIG"] = str(self.root / "agent.toml")

    def prepare(self) -> None:
        if self.root.exists() and not self.args.keep:
            shutil.rmtree(self.root)
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        (self.root / "central.toml").write_text(
            "# central for the demo: SQLite in .demo/central\n"
            f'[server]\nhost = "{self.host}"\nport = {self.port}\ndata_dir = "{self.root / "central"}"\n'
            "# plain HTTP on loopback: the session cookie cannot be __Host-/Secure here\n"
            "[console]\nsecure_cookie = false\n"
        )
        (self.root / "agent.toml").write_text(
            "# the store PC's agent for the demo, reading the simulated till's pty\n"
            f'[agent]\ndata_dir = "{self.root / "agent"}"\nheartbeat_interval = 15\n'
            f'[pos]\nport = "{self.root / "pos.tty"}"\nmode = "escpos"\nidle_gap = 1.0\n'
            "[sync]\ninterval = 2.0\n"
            "[presence]\n"
            f'wifi = "{self.root / "floor.pcapng"}"\n'
            f'zones = "{", ".join(f"{reader}={zone}" for reader, zone in PLACEMENTS.items())}"\n'
            'timezone = "Asia/Shanghai"\n'
        )
        # The simulated floor's last two hours, as a capture tool merging the three readers writes them.
        floor = StoreFloor(seed=self.args.seed, start=time.time() - 2 * 3600, hours=2.0)
        with (self.root / "floor.pcapng").open("wb") as out:
            write_pcapng(floor.sightings(), out)

    def cli(self, *argv: str, stdin: str | None = None) -> str:
        result = subprocess.run(argv, capture_output=True, text=True, env=self.env, input=stdin, check=False)
        if result.returncode != 0:
            raise SystemExit(f"demo: `{' '.join(argv)}` failed:\n{result.stderr.strip()}")
        return result.stdout.strip()

    def spawn(self, name: str, *argv: str, cwd: Path | None = None) -> subprocess.Popen[bytes]:
        log = open(self.root / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=cwd)
        self.processes.append(proc)
        return proc

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            for proc in self.processes:
                if proc.poll() is not None:
                    raise SystemExit(
                        f"demo: a process exited early ({' '.join(map(str, proc.args))}); see {self.root / 'logs'}"
                    )
            time.sleep(0.2)
        raise SystemExit(f"demo: timed out waiting for {what}; see {self.root / 'logs'}")

    def healthy(self) -> bool:
        try:
            return requests.get(self.url + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def run(self) -> int:
        self.prepare()
        central, agent = str(BIN / "central-server"), str(BIN / "edge-agent")
        password = self.args.password or secrets.token_urlsafe(12)
        self.cli(central, "migrate")
        self.cli(central, "create-admin", "--username", "admin", "--password-stdin", stdin=password + "\n")
        self.spawn("central", central, "serve")
        self.wait_for("central to start", self.healthy)
        token = self.cli(central, "enroll-token", "--store", "S001")
        self.cli(agent, "enroll", "--central", self.url, f"--token={token}")
        self.spawn(
            "till",
            sys.executable,
            "-m",
            "tools.escpos_till",
            "--link",
            str(self.root / "pos.tty"),
            "--rate",
            str(self.args.rate),
            "--seed",
            str(self.args.seed),
            "--copy",
            str(self.root / "till.bin"),
            cwd=REPO,
        )
        self.wait_for("the simulated till", (self.root / "pos.tty").exists)
        self.spawn("agent", agent, "run")
        print(
            "\n".join(
                [
                    "",
                    "Retail CDP demo is running.",
                    f"  HQ console:  {self.url}/console/",
                    "  login:       admin",
                    f"  password:    {password}",
                    f"  store S001:  a simulated till prints {self.args.rate:g} Chinese ESC/POS receipts/s",
                    f"  till's pty:  {self.root / 'pos.tty'}",
                    f"  presence:    {self.url}/api/v1/presence/S001 (footfall, dwell, zones; log in first)",
                    f"  logs:        {self.root / 'logs'}/{{central,agent,till}}.log",
                    "Receipts are parsed from printer bytes; customers appear in the console within seconds.",
                    f"  the bytes:   {self.root / 'till.bin'} (what the till printed; read it with",
                    f"               {BIN / 'edge-agent'} parse {self.root / 'till.bin'})",
                    "Press Ctrl-C to stop.",
                    "",
                ]
            ),
            flush=True,
        )
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        deadline = time.monotonic() + self.args.duration if self.args.duration else None
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            if any(proc.poll() is not None for proc in self.processes):
                print(f"demo: a process stopped unexpectedly; see {self.root / 'logs'}", file=sys.stderr)
                self.shutdown()
                return 1
            stop.wait(0.5)
        self.shutdown()
        return 0

    def shutdown(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        print("demo: stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev demo", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1", help="address central listens on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="central's port (a free one if taken)")
    parser.add_argument("--rate", type=float, default=2.0, help="receipts per second from the till")
    parser.add_argument("--seed", type=int, default=1, help="seed for the simulated receipts")
    parser.add_argument("--password", help="admin password (default: a random one, printed)")
    parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: run)")
    parser.add_argument("--dir", default=str(REPO / ".demo"), help="working directory (default .demo/)")
    parser.add_argument("--keep", action="store_true", help="keep the previous run's data")
    return Demo(parser.parse_args(argv)).run()


if __name__ == "__main__":
    raise SystemExit(main())
