"""The demo: central on SQLite, an enrolled agent, and a simulated till printing ESC/POS receipts into a pty.

The till (tools/escpos_till.py) prints Chinese receipts as a POS sends them to its receipt printer;
the agent reads them with ``pos.mode = "escpos"``: printer bytes in, receipts and sales out.

A simulated scanner at the same till scans members' codes, as the member app shows them, about
every half minute; the agent's cashier panel shows each scan with the member's tier and coupons.
Before each scan the till falls quiet for a while (the member's basket being rung up), as a real
register between customers: central links a scan to the sale that follows it, but not one made
right after another customer's unclaimed sale (decision 0086), which at the till's demo pace of
two receipts a second would be every scan.

The store also has a simulated floor (tools/store_floor.py): the last two hours of walkers-by and
visitors as the agent's Wi-Fi readers heard them, replayed by the agent, so footfall, capture rate,
dwell and zone heat appear at ``/api/v1/presence/S001``.

A simulated member app (tools/member_app.py) signs a shopper up every few seconds, posted to
central as an online source with its key: half of them are the till's regulars, whose receipts and
sign-up become one named customer, and the overview's new members per store fill up as it runs.

Behind the live store, two years of the whole chain's history load in the background
(tools/demo_history.py), then the tags, a segment and a birthday coupon campaign follow, so the
console's overview, customer pages, segments and campaigns have something to show.

Run it with ``./dev demo`` (which sets up the virtual environment first). Everything lives in
``.demo/`` beside the repository and is wiped at each start unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))

from tools.demo_history import load_history  # noqa: E402 - after the path is set
from tools.escpos_till import Printer  # noqa: E402
from tools.member_app import SOURCE, MemberApp, post  # noqa: E402
from tools.store_floor import PLACEMENTS, StoreFloor, write_pcapng  # noqa: E402

SCAN_INTERVAL = 8.0  # seconds of trading between one member's scan and the till falling quiet again
QUIET_BEFORE_SCAN = 22.0  # the till's silence before a member scan: past linking's 20 s of doubt
SCANNED_MEMBERS = 6  # members of store S001 whose app codes the scanner reads
SIGNUP_INTERVAL = 5.0  # seconds between the simulated member app's sign-ups


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
        self.panel_port = pick_port("127.0.0.1", self.port + 1)
        self.stop = threading.Event()
        self.children: list[subprocess.Popen[str]] = []  # the background history's CLI runs
        self.logs: dict[int, Path] = {}  # each spawned process's log, by pid
        self.till: subprocess.Popen[bytes] | None = None  # held quiet (SIGSTOP) before each member scan

    def prepare(self) -> None:
        self.fresh = not self.args.keep or not (self.root / "central").exists()
        if self.root.exists() and not self.args.keep:
            shutil.rmtree(self.root)
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        # The simulated scanner's serial line: the agent opens the pty's far end like a /dev/ttyACM0.
        self.scanner_fd, slave = os.openpty()
        self.scanner_port = os.ttyname(slave)
        (self.root / "central.toml").write_text(
            "# central for the demo: SQLite in .demo/central\n"
            f'[server]\nhost = "{self.host}"\nport = {self.port}\ndata_dir = "{self.root / "central"}"\n'
            "# plain HTTP on loopback: the session cookie cannot be __Host-/Secure here\n"
            "[console]\nsecure_cookie = false\n"
            '# the demo admin logs in with the password alone; "admin" (the default) asks for a code too\n'
            'two_step_roles = ""\n'
        )
        (self.root / "agent.toml").write_text(
            "# the store PC's agent for the demo, reading the simulated till's pty\n"
            f'[agent]\ndata_dir = "{self.root / "agent"}"\nheartbeat_interval = 15\n'
            f'[pos]\nport = "{self.root / "pos.tty"}"\nmode = "escpos"\nidle_gap = 1.0\n'
            "[sync]\ninterval = 2.0\n"
            f'[scanner]\nport = "{self.scanner_port}"\n'
            f"[panel]\nport = {self.panel_port}\n"
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
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env
        )
        self.children.append(proc)
        try:
            out, err = proc.communicate(stdin)
        finally:
            self.children.remove(proc)
        if proc.returncode != 0:
            if self.stop.is_set():
                raise SystemExit(0)
            raise SystemExit(f"demo: `{' '.join(argv)}` failed:\n{err.strip()}")
        return out.strip()

    def background(self, central: str) -> None:
        """Load the chain's history, then scan a member's code at the till every few seconds."""
        started = time.monotonic()
        try:
            shown = load_history(
                self.cli, central, self.root, self.args.history_customers, self.args.seed, scanned=SCANNED_MEMBERS
            )
        except SystemExit as exc:
            if not self.stop.is_set():
                print(exc, file=sys.stderr, flush=True)
            return
        print(
            f"demo: history loaded in {time.monotonic() - started:.0f} s: {shown.events:,} events of "
            f"{self.args.history_customers:,} members; tags computed, segment recent-repeat and the "
            "birthday-10 coupon campaign with its trigger are in the console",
            flush=True,
        )
        # Their apps get their keys now, so the store's member_codes document names them by the first scan.
        members = shown.members
        try:
            for member in members:
                self.cli(central, "member-code", member)
        except SystemExit:
            return
        rng = random.Random(self.args.seed)
        pause = 0.0  # the first member comes to the till at once; then one every SCAN_INTERVAL of trading
        while members and not self.stop.wait(pause):
            pause = SCAN_INTERVAL
            try:
                code = self.cli(central, "member-code", rng.choice(members))
            except SystemExit:
                return
            if not self._quiet_till(QUIET_BEFORE_SCAN):
                return
            os.write(self.scanner_fd, code.encode("ascii") + b"\r\n")
            if self.till is not None and self.till.poll() is None:
                self.till.send_signal(signal.SIGUSR1)  # its next receipt is the member's: no member on it
            self.stop.wait(1.0)  # the member's receipt prints a moment after the scan
            self._resume_till()

    def _quiet_till(self, seconds: float) -> bool:
        """Hold the till's printing for ``seconds``; False if the demo is stopping meanwhile."""
        if self.till is None or self.till.poll() is not None:
            return not self.stop.is_set()
        self.till.send_signal(signal.SIGSTOP)
        if self.stop.wait(seconds):
            self._resume_till()
            return False
        return True

    def _resume_till(self) -> None:
        if self.till is not None and self.till.poll() is None:
            self.till.send_signal(signal.SIGCONT)

    def member_app(self, key: str) -> None:
        """Post a sign-up from the simulated member app every few seconds; say once if central refuses."""
        app = MemberApp(self.args.seed, Printer(self.args.seed).regulars)
        failing = False
        with requests.Session() as session:
            while not self.stop.is_set():
                try:
                    post(session, self.url, key, app.signup(datetime.now(UTC)))
                    failing = False
                except requests.RequestException as exc:
                    if not failing and not self.stop.is_set():
                        print(f"demo: the member app's sign-up was not taken: {exc}", file=sys.stderr, flush=True)
                    failing = True
                self.stop.wait(SIGNUP_INTERVAL)

    def spawn(self, name: str, *argv: str, cwd: Path | None = None) -> subprocess.Popen[bytes]:
        log = open(self.root / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=cwd)
        self.processes.append(proc)
        self.logs[proc.pid] = self.root / "logs" / f"{name}.log"
        return proc

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            for proc in self.processes:
                if proc.poll() is not None:
                    log = self.logs.get(proc.pid)
                    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines() if log else []
                    said = f": {lines[-1].strip()}" if lines else ""
                    argv = proc.args if isinstance(proc.args, list) else [proc.args]
                    raise SystemExit(
                        f"demo: a process exited early ({' '.join(map(str, argv))}){said}; see {log or self.root}"
                    )
            time.sleep(0.2)
        raise SystemExit(f"demo: timed out waiting for {what}; see {self.root / 'logs'}")

    def central_listening(self) -> bool:
        """Our central bound its port (it logs so once bound) and answers. A health answer alone can
        come from another program that took the port between pick_port and the bind."""
        log = self.root / "logs" / "central.log"
        return log.exists() and b" listening on http://" in log.read_bytes() and self.healthy()

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
        self.wait_for("central to start", self.central_listening)
        token = self.cli(central, "enroll-token", "--store", "S001")
        self.cli(agent, "enroll", "--central", self.url, f"--token={token}")
        self.till = self.spawn(
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
        app_key = self.cli(central, "source-key", "--source", SOURCE)
        threading.Thread(target=self.member_app, args=(app_key,), name="member-app", daemon=True).start()
        if self.args.history_customers and self.fresh:
            threading.Thread(target=self.background, args=(central,), name="history", daemon=True).start()
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
                    f"  member app:  a shopper signs up every {SIGNUP_INTERVAL:g} s (online source {SOURCE}), half of"
                    " them the till's regulars",
                    f"  presence:    {self.url}/api/v1/presence/S001 (footfall, dwell, zones; log in first)",
                    f"  till panel:  http://127.0.0.1:{self.panel_port}/ (member scans from a simulated scanner, "
                    "with tier and coupons)",
                    f"  logs:        {self.root / 'logs'}/{{central,agent,till}}.log",
                    "Receipts are parsed from printer bytes; customers appear in the console within seconds.",
                    *(
                        [
                            f"  history:     two years of a ten-store chain ({self.args.history_customers:,} members) "
                            "load in the background;",
                            "               tags, a segment and a birthday coupon campaign follow (about a minute)",
                        ]
                        if self.args.history_customers and self.fresh
                        else []
                    ),
                    f"  the bytes:   {self.root / 'till.bin'} (what the till printed; read it with",
                    f"               {BIN / 'edge-agent'} parse {self.root / 'till.bin'})",
                    "Press Ctrl-C to stop.",
                    "",
                ]
            ),
            flush=True,
        )
        stop = self.stop
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
        self.stop.set()
        for child in list(self.children):
            child.terminate()
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        self._resume_till()  # a till held quiet takes its SIGTERM once it runs again
        for proc in self.processes:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        print("demo: stopped", flush=True)


def parser() -> argparse.ArgumentParser:
    """The demo's command line."""
    parser = argparse.ArgumentParser(prog="./dev demo", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1", help="address central listens on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="central's port (a free one if taken)")
    parser.add_argument("--rate", type=float, default=2.0, help="receipts per second from the till")
    parser.add_argument("--seed", type=int, default=1, help="seed for the simulated receipts")
    parser.add_argument("--password", help="admin password (default: a random one, printed)")
    parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: run)")
    parser.add_argument("--dir", default=str(REPO / ".demo"), help="working directory (default .demo/)")
    parser.add_argument("--keep", action="store_true", help="keep the previous run's data")
    parser.add_argument(
        "--history-customers",
        type=int,
        default=1500,
        help="members in the chain's two-year history loaded in the background (default 1500; 0: none)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    return Demo(parser().parse_args(argv)).run()


if __name__ == "__main__":
    raise SystemExit(main())
