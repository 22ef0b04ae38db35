"""A member code scanned at a real `edge-agent run` while central is down links the member to that till's sale.

Real processes: central under waitress, an enrolled agent reading its POS and its serial scanner from
two ptys. The agent learns central's member-code key through the downlink; central then stops; the
cashier scans the member's code twice and the POS prints the sale; central comes back, the backlog
syncs, and central attaches the receipt to the member.
"""

from __future__ import annotations

import os
import tty
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from central.members import wallet
from edge_agent.status import read_status
from shared.crypto import read_secret_file
from tools.processes import Agent, Central, Till, wait_until

pytestmark = pytest.mark.e2e


def _downlink_version(agent: Agent) -> int:
    try:
        return int(read_status(agent.data_dir / "status.json").get("health", {}).get("downlink_version") or 0)
    except Exception:  # not written yet
        return 0


def _member_code(central: Central, member: str) -> str:
    """What `central-server member-code MEMBER` prints (tested in tests/central), without a second process."""
    with Session(central.engine) as db:
        code = wallet.member_code(
            db,
            read_secret_file(central.workdir / "secret.key"),
            central.workdir,
            member,
            now=datetime.now(UTC),
            days=30,
            actor="test",
        )
        db.commit()
    return code


# One database is enough here: tests/central/test_member_codes.py runs the linking on both.
@pytest.mark.parametrize("central", ["sqlite"], indirect=True)
def test_a_member_scanned_offline_gets_the_sale_at_central(central, tmp_path, cleanup):
    pos = Till([b"receipt_no=MS-1 total=35.50\n"], rate=20)
    scanner_master, scanner_slave = os.openpty()
    tty.setraw(scanner_slave)
    agent = Agent(tmp_path, pos.path)
    with agent.config.open("a") as config:
        config.write(f'[scanner]\nport = "{os.ttyname(scanner_slave)}"\n[till]\nregister = "R3"\n')
    cleanup += [pos, agent]
    agent.enroll(central.url, central.enroll_token("S031"))
    agent.start()
    code = _member_code(central, "M-0042")  # the first certified app key publishes member_codes
    wait_until(lambda: _downlink_version(agent) > 0, 60, "the agent to run central's member_codes document")

    central.stop()
    try:
        os.write(scanner_master, code.encode() + b"\r\n" + code.encode() + b"\r\n")
        # The scan belongs to the next receipt: the till prints only once the agent has read both scans
        # (the second is refused as a replay), however slowly a loaded machine schedules its readers.
        wait_until(
            lambda: "member code refused at scanner: replayed" in agent.process.log.read_text(),
            60,
            "the agent to read both scans",
        )
        pos.start()
        pos.join(10)
    finally:
        central.start()
    try:
        wait_until(
            lambda: central.scalar("SELECT count(*) FROM member_scans WHERE receipt_id IS NOT NULL") == 1,
            60,
            "central to link the member's scan to receipt MS-1",
        )
    finally:
        os.close(scanner_master)
        os.close(scanner_slave)
    assert central.scalar("SELECT count(*) FROM receipts WHERE receipt_no = 'MS-1' AND customer_id IS NOT NULL") == 1
    assert central.scalar("SELECT count(*) FROM events WHERE kind = 'scan.member'") == 2  # accepted, then replayed
    log = agent.process.log.read_text()
    assert "member code refused at scanner: replayed" in log
    assert code[10:60] not in "".join(p.read_bytes().decode("latin-1") for p in agent.files())
