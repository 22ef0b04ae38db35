"""A till agent set up as central would leave it, without a central: for the cashier panel's test and benchmark.

:class:`Chain` plays central's part offline: its member-code key certifies member apps, and its
downlink key signs the ``member_codes`` and ``member_cards`` documents written into the agent's data
directory, exactly as :class:`edge_agent.downlink.DownlinkStore` keeps them after a fetch. The agent
then runs ``edge-agent run`` with its scanner on a pty and the panel on a free loopback port; its
central URL points at a closed port, so it works offline, as a till must.
"""

from __future__ import annotations

import json
import os
import time
import tty
from pathlib import Path
from typing import Any

from edge_agent.credentials import Credentials
from edge_agent.downlink import FORMAT, KEY_FILE, STATE_FILE
from shared.crypto import b64, document_message, new_signing_key, sign
from shared.member_code import STEP_SECONDS, issue_certificate, make_code
from tools.processes import Agent, Till, free_port, wait_until

STORE = "S041"
CHROMIUM = Path("/usr/bin/chromium")

# Run in the panel's page: notes when it shows each scan (data-seq changes) in this machine's
# wall-clock milliseconds, in window.shown[seq].
OBSERVE = """() => {
  window.shown = {};
  const panel = document.getElementById("panel");
  new MutationObserver(() => {
    window.shown[panel.dataset.seq] = performance.timeOrigin + performance.now();
  }).observe(panel, {attributes: true, attributeFilter: ["data-seq"]});
}"""


class Chain:
    """Central's keys, offline: certifies member apps and signs the store's downlink documents."""

    def __init__(self) -> None:
        self.code_private, self.code_public = new_signing_key()
        self.downlink_private, self.downlink_public = new_signing_key()
        self.apps: dict[str, tuple[bytes, Any]] = {}

    def code(self, member_id: str, now: float | None = None) -> str:
        """The member app's code at ``now`` (one app key per member, certified for a day around now)."""
        now = time.time() if now is None else now
        if member_id not in self.apps:
            private, public = new_signing_key()
            cert = issue_certificate(
                self.code_private, self.code_public, member_id, public, int(now) - 86400, int(now) + 86400
            )
            self.apps[member_id] = (private, cert)
        private, cert = self.apps[member_id]
        return make_code(cert, private, now)

    def forged_code(self, member_id: str) -> str:
        """A code whose certificate a look-alike central signed, copying the real key's id."""
        rogue, _ = new_signing_key()
        private, public = new_signing_key()
        now = int(time.time())
        cert = issue_certificate(rogue, self.code_public, member_id, public, now - 60, now + 86400)
        return make_code(cert, private, now)

    def seed(self, data_dir: Path, members: dict[str, dict[str, Any]]) -> None:
        """Enrolment and a fetched downlink, as they would be on disk: credentials, key, documents."""
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        device_private, _ = new_signing_key()
        Credentials("D-PANEL", STORE, f"http://127.0.0.1:{free_port()}", device_private).save(
            data_dir / "credentials.json"
        )
        (data_dir / KEY_FILE).write_text(b64(self.downlink_public) + "\n")
        bodies = {
            "member_codes": {"keys": [b64(self.code_public)], "revoked": [], "step_seconds": STEP_SECONDS},
            "member_cards": {"members": members},
        }
        documents = {
            name: {
                "version": 1,
                "body": body,
                "signature": b64(sign(self.downlink_private, document_message(STORE, name, 1, body))),
            }
            for name, body in bodies.items()
        }
        state = {"format": FORMAT, "store_id": STORE, "version": 1, "documents": documents}
        (data_dir / STATE_FILE).write_text(json.dumps(state, ensure_ascii=False))


class PanelTill:
    """``edge-agent run`` with a scanner on a pty and the cashier panel on; write scans with :meth:`scan`."""

    def __init__(self, workdir: Path, chain: Chain, members: dict[str, dict[str, str]]) -> None:
        self.pos = Till([], rate=1)
        self.scanner, scanner_slave = os.openpty()
        tty.setraw(scanner_slave)
        self._slave = scanner_slave
        self.port = free_port()
        self.agent = Agent(workdir, self.pos.path)
        chain.seed(self.agent.data_dir, members)
        with self.agent.config.open("a") as config:
            config.write(
                f'[scanner]\nport = "{os.ttyname(scanner_slave)}"\n[till]\nregister = "R1"\n'
                f"[panel]\nport = {self.port}\n"
            )
        self.url = f"http://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 30) -> None:
        import requests

        def up() -> bool:
            try:
                return requests.get(self.url, timeout=1).status_code == 200
            except requests.RequestException:
                return False

        self.agent.start()
        wait_until(up, timeout, f"the cashier panel at {self.url}", interval=0.05)

    def scan(self, payload: str) -> float:
        """Write one scan as a serial scanner sends it (CR LF); returns time.time() just before the write."""
        data = payload.encode() + b"\r\n"
        started = time.time()
        os.write(self.scanner, data)
        return started

    def stop(self) -> None:
        self.agent.stop()
        self.pos.close()
        os.close(self.scanner)
        os.close(self._slave)
