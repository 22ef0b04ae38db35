"""The whole path with real processes on loopback: a till's pty -> edge-agent -> central under waitress.

Each test runs on central's SQLite and PostgreSQL backends.
"""

from __future__ import annotations

import json
import random
import subprocess
import time

import pytest

from tools.processes import BIN, Agent, Till, wait_until

pytestmark = pytest.mark.e2e

PHONES = [f"139{n:08d}" for n in range(1000, 1050)]


def receipt_lines(count: int, *, garbage_every: int = 0, prefix: str = "E2E") -> tuple[list[bytes], set[str]]:
    """``count`` receipts (JSON and key=value, UTF-8 and GB18030), with garbage lines mixed in."""
    rng = random.Random(count)
    lines, numbers = [], set()
    for n in range(count):
        number = f"{prefix}-{n:06d}"
        numbers.add(number)
        phone = PHONES[n % len(PHONES)]
        if n % 2:
            line = json.dumps(
                {
                    "receipt_no": number,
                    "total": f"{n % 97}.50",
                    "member_phone": phone,
                    "items": [{"sku": "6921168509256", "name": "农夫山泉", "qty": 1, "unit_price": "2.00"}],
                },
                ensure_ascii=False,
            ).encode("utf-8")
        else:
            line = f"单号={number} 合计={n % 89}.00 手机={phone}".encode("gb18030")
        lines.append(line + (b"\r\n" if n % 3 else b"\n"))
        if garbage_every and n % garbage_every == garbage_every - 1:
            lines.append(
                bytes(rng.randrange(1, 256) for _ in range(40)).replace(b"\n", b"").replace(b"\r", b"") + b"\n"
            )
            lines.append(b"receipt_no=BROKEN total=\n")
    return lines, numbers


def quarantine_summary(agent: Agent) -> dict:
    result = subprocess.run(
        [str(BIN / "edge-agent"), "quarantine", "--limit", "1000"],
        capture_output=True,
        text=True,
        env=agent.env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_sigkill_at_a_random_moment_loses_nothing_and_duplicates_nothing(central, tmp_path, cleanup):
    lines, numbers = receipt_lines(1000, garbage_every=100)
    till = Till(lines, rate=250)
    agent = Agent(tmp_path, till.path)
    cleanup += [till, agent]
    agent.enroll(central.url, central.enroll_token("S001"))
    agent.start()
    till.start()
    time.sleep(random.uniform(0.3, 3.5))
    agent.kill()
    killed_after = till.written
    time.sleep(0.5)
    agent.start()
    till.join(120)
    wait_until(
        lambda: central.scalar("SELECT COUNT(*) FROM events WHERE kind = 'pos.receipt'") >= 1000,
        90,
        "1,000 receipts at central",
    )
    time.sleep(1.0)  # anything extra would show up now
    got = central.receipt_numbers()
    assert len(got) == 1000, f"{len(got)} receipts (killed after {killed_after} lines)"
    assert set(got) == numbers
    assert central.scalar("SELECT COUNT(*) FROM receipts") == 1000
    # Fifty members, each on twenty receipts, make fifty customers.
    assert central.scalar("SELECT COUNT(*) FROM customers WHERE merged_into IS NULL") == len(PHONES)

    # Heartbeats arrived, and the technician's checklist passes.
    assert central.scalar("SELECT COUNT(*) FROM events WHERE kind = 'agent.heartbeat'") >= 1
    doctor = subprocess.run(
        [str(BIN / "edge-agent"), "doctor"], capture_output=True, text=True, env=agent.env, timeout=60
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "outbox: 0 pending" in doctor.stdout
    assert "bytes of input not yet committed" in doctor.stdout
    assert " 0 bytes of input not yet committed" in doctor.stdout, doctor.stdout
    assert f"central {central.url}/healthz answered 200" in doctor.stdout

    agent.stop()
    summary = quarantine_summary(agent)
    assert summary["shown"] == 20
    assert set(summary["by_reason"]) <= {
        "binary_data",
        "undecodable",
        "unrecognized_format",
        "malformed_pair",
        "invalid_field:total",
    }
    assert summary["by_reason"]["invalid_field:total"] == 10

    # Nothing personal in clear in any file the agent wrote: outbox, WAL, SHM, journal, keys; and
    # again after the technician re-seals everything under a new key.
    files = list(agent.files())
    assert {f.name for f in files} >= {"outbox.db", "outbox.key", "credentials.json"}
    assert_nothing_in_clear(agent, "")
    old_key = (agent.data_dir / "outbox.key").read_bytes()
    rotated = agent.command("rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    assert (agent.data_dir / "outbox.key").read_bytes() != old_key
    assert_nothing_in_clear(agent, " after edge-agent rotate-key")


def assert_nothing_in_clear(agent: Agent, when: str) -> None:
    for path in agent.files():
        data = path.read_bytes()
        for phone in PHONES:
            assert phone.encode() not in data, f"{phone} in {path}{when}"
        for number in ("E2E-000001", "E2E-000500", "E2E-000999"):
            assert number.encode() not in data, f"{number} in {path}{when}"


def test_central_down_for_a_while_loses_nothing(central, tmp_path, cleanup, request):
    # Seconds; 8 by default, --outage 3600 for an hour. Eight already outlasts the agent's longest
    # wait between attempts (sync.max_backoff is 2 s in tests) several times over, as a longer
    # outage does.
    outage = request.config.getoption("--outage")
    lines, numbers = receipt_lines(1500, prefix="OUT")
    till = Till(lines, rate=100)  # 15 s of trading: before, throughout and after a default outage
    agent = Agent(tmp_path, till.path)
    cleanup += [till, agent]
    agent.enroll(central.url, central.enroll_token("S002"))
    agent.start()
    till.start()
    wait_until(
        lambda: central.scalar("SELECT COUNT(*) FROM events WHERE kind = 'pos.receipt'") > 50,
        30,
        "the first receipts at central",
    )
    central.stop()
    down_at = till.written
    time.sleep(outage)
    assert till.written - down_at > 500  # the till kept trading while central was away
    central.start()
    till.join(60)
    wait_until(
        lambda: central.scalar("SELECT COUNT(*) FROM events WHERE kind = 'pos.receipt'") >= 1500,
        60,
        "the backlog to drain",
    )
    time.sleep(1.0)
    got = central.receipt_numbers()
    assert len(got) == 1500
    assert set(got) == numbers
