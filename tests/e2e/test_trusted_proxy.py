"""Central behind the README's nginx: clients are told apart by the address nginx forwards, and only from nginx.

Behind a reverse proxy every request reaches waitress from the proxy's address. Without
``server.trusted_proxy`` the console's throttle counted every user's failed logins as one client's,
so anyone could lock the whole of HQ out of the console with a few wrong passwords, and the audit log
named 127.0.0.1 for everyone. With it, the address the proxy puts in ``X-Forwarded-For`` counts; a
client that sends the header itself, not through the trusted proxy, changes nothing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from sqlalchemy import text
from sqlalchemy.orm import Session

from central.accounts.passwords import hash_password
from central.models import User
from tools.processes import Central

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
ATTACKER, COLLEAGUE = "203.0.113.5", "198.51.100.7"


def _central(workdir: Path, proxy: str | None) -> Central:
    workdir.mkdir()
    central = Central(workdir, f"sqlite:///{workdir / 'central.db'}", cli_in_process=True)
    text = central.config.read_text()
    settings = "login_failures_per_address = 3\nlogin_failures_per_account = 1000\n"
    text = text.replace("[console]\n", f"[console]\n{settings}")
    if proxy:
        text = text.replace("[server]\n", f'[server]\ntrusted_proxy = "{proxy}"\n')
    central.config.write_text(text)
    central.start()
    with Session(central.engine) as db:
        for name in ("alice", "bob"):
            db.add(
                User(username=name, password_hash=hash_password(PASSWORD), role="admin", created_at=datetime.now(UTC))
            )
        db.commit()
    return central


def _login(central: Central, username: str, password: str, forwarded_for: str) -> int:
    session = requests.Session()
    form = session.get(f"{central.url}/console/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token
    answer = session.post(
        f"{central.url}/console/login",
        data={"username": username, "password": password, "csrf_token": token.group(1)},
        headers={"X-Forwarded-For": forwarded_for},
        allow_redirects=False,
        timeout=10,
    )
    return answer.status_code


def test_behind_a_trusted_proxy_one_client_locked_out_locks_out_no_one_else(tmp_path, cleanup):
    central = _central(tmp_path / "proxied", "127.0.0.1")
    cleanup.append(central)
    assert [_login(central, "alice", "wrong", ATTACKER) for _ in range(3)] == [401, 401, 401]
    # nginx appends the address that reached it: what the client wrote before it does not count.
    assert _login(central, "alice", "wrong", f"192.0.2.77, {ATTACKER}") == 429
    assert _login(central, "bob", PASSWORD, COLLEAGUE) == 302  # another client of the same proxy
    assert _login(central, "bob", PASSWORD, ATTACKER) == 429
    with central.engine.connect() as conn:
        throttled = conn.execute(text("SELECT detail FROM audit_log WHERE action = 'login_throttled'")).scalars().all()
    assert throttled and all(ATTACKER in str(detail) for detail in throttled), throttled


def test_without_a_trusted_proxy_a_forwarded_for_header_is_ignored(tmp_path, cleanup):
    central = _central(tmp_path / "direct", None)
    cleanup.append(central)
    # A client cannot dodge the throttle by naming another address in each request.
    tried = [_login(central, "alice", "wrong", f"192.0.2.{n}") for n in range(4)]
    assert tried == [401, 401, 401, 429]
