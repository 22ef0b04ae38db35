"""ESC/POS end to end: printer bytes written to a pty -> edge-agent (pos.mode = "escpos") -> central.

A till prints generated Chinese receipts (GBK and GB18030, logos, QR codes, card numbers, track
data and CVVs) into a pseudo-terminal; the agent splits them by reset, cut and idle gap, reads
them with the built-in profiles and ships the sales. Central must hold exactly the generated
sales, linked to customers by the member phone or card printed on them; a receipt no profile
reads waits in the quarantine until ``edge-agent reparse`` reads it with a technician's profile.
Then every file, log and export of both sides is scanned for card data (``--till-receipts``
receipts, 37 by default with a third of them printing card data; beyond 100 receipts every one but
the last does; 10000 for the acceptance run). Each test runs on
central's SQLite and PostgreSQL backends.
"""

from __future__ import annotations

import json
import random
import re

import pytest
import sqlalchemy as sa

from central.identity.registry import default_registry
from central.sources.export import export_identity
from edge_agent.privacy import PanRedactor, card_issuer_prefix
from edge_agent.sources.staging import staging_path
from shared.identifiers import normalize_phone
from tests.card_scan import leaks, scan_files
from tests.edge_agent.test_escpos_source import expected_payload, sale_fields
from tools.processes import Agent, Till, wait_until
from tools.receipts import receipt

pytestmark = pytest.mark.e2e

HASH = re.compile(r" #[a-p]{16}\]")
TEA_RECEIPT = b"\x1b@TEA HOUSE\nOrder No: T-0042\nGreen tea   2 x 9.00   18.00\nTOTAL 18.00\n\x1dV\x00"
TEA_PROFILE = """name = "tea-house"
require = ['^TEA HOUSE$']
[fields]
receipt_no = 'Order No: (?P<value>\\S+)'
total = '^TOTAL (?P<value>[\\d.]+)$'
member_phone = '^Member (?P<value>1\\d{10})$'
"""


def blank(value: object) -> object:
    """``value`` with the keyed hashes of redaction tokens blanked (the agent's key is its own)."""
    return json.loads(HASH.sub(" #]", json.dumps(value, ensure_ascii=False, sort_keys=True)))


def central_payloads(central) -> list[dict]:
    with central.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT payload FROM events WHERE kind = 'pos.receipt'")).scalars().all()
    return [row if isinstance(row, dict) else json.loads(row) for row in rows]


def database_text(central) -> str:
    """Every text column of every table central has, as one string (what a dump would show)."""
    out = []
    with central.engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            rows = conn.execute(sa.text(f'SELECT * FROM "{table}"')).fetchall()  # noqa: S608 - table names from the db
            out += [" | ".join(str(v) for v in row) for row in rows]
    return "\n".join(out)


def test_printer_bytes_on_a_pty_become_sales_at_central_and_no_card_number_lands(central, tmp_path, cleanup, request):
    count = max(2, request.config.getoption("--till-receipts"))
    made = []
    for n in range(count - 1):
        options = {"card_data": True, "payment": "bank_card"} if n % 3 == 0 or count > 100 else {}
        made.append(receipt(random.Random(f"e2e-{n}"), reset=True, cut=n % 2 == 0 or None, **options))
    made.append(receipt(random.Random("e2e-last"), reset=True, cut=False))  # only the idle gap ends it
    chunks = [m.data for m in made[:18]] + [TEA_RECEIPT] + [m.data for m in made[18:]]
    till = Till(chunks, rate=40 if count < 100 else 400)
    agent = Agent(tmp_path, till.path, pos_settings='mode = "escpos"\nidle_gap = 0.5')
    cleanup += [till, agent]
    agent.enroll(central.url, central.enroll_token("S001"))
    agent.start()
    till.start()
    till.join(60 + count / 100)
    wait_until(
        lambda: central.scalar("SELECT COUNT(*) FROM receipts") >= len(made), 60 + count / 50, "the sales at central"
    )

    got = central_payloads(central)
    assert len(got) == len(made)
    want = [expected_payload(m, _redactor()) for m in made]
    key = lambda p: json.dumps(p, sort_keys=True, ensure_ascii=False)  # noqa: E731
    assert sorted(map(key, blank([sale_fields(p) for p in got]))) == sorted(map(key, blank([w for w, _ in want])))
    assert sorted(map(key, blank([p["codes"] for p in got]))) == sorted(map(key, blank([c for _, c in want])))
    assert all(p["format"] == "escpos" and p["text_lines"] for p in got)
    # Linked to customers as line-mode receipts are: by a whole member phone or card (what the
    # identity registry accepts of them; a masked phone is not a phone).
    printed = sorted((m.sale["member_phone"] or "", normalize_phone(m.sale["member_phone"] or "") or "") for m in made)
    assert sorted((p.get("member_phone", ""), p["member"].get("phone", "")) for p in got) == printed
    registry = default_registry()
    members = sum(
        1
        for p in got
        if any(
            registry.normalize(kind, p["member"][key])
            for key, kind in (("phone", "phone"), ("card", "member_card"))
            if key in p["member"]
        )
    )
    assert members > 5
    assert central.scalar("SELECT COUNT(*) FROM receipts WHERE customer_id IS NOT NULL") == members

    # The unread receipt is in the quarantine; reparse with the technician's profile sends it on.
    # (Reparse is the agent's own business: it runs against one of the two central backends.)
    quarantine = agent.command("quarantine")
    assert quarantine.returncode == 0 and '"no_profile_matched": 1' in quarantine.stdout
    if central.database_url.startswith("sqlite"):
        busy = agent.command("reparse")
        assert busy.returncode == 1 and "stop it first" in busy.stderr
        agent.stop()
        profile = tmp_path / "tea.toml"
        profile.write_text(TEA_PROFILE, encoding="utf-8")
        reparsed = agent.command("reparse", "--profiles", str(profile))
        assert reparsed.returncode == 0, reparsed.stderr
        assert "1 quarantined receipts became sales; still without a sale: none" in reparsed.stdout
        agent.start()
        wait_until(lambda: "T-0042" in central.receipt_numbers(), 30, "the reparsed receipt at central")
    agent.stop()

    # No full card number, track data or CVV anywhere: files, logs, the database, an export.
    secrets = {s for m in made for s in m.secrets if s.isdigit()}
    assert len(secrets) >= (count - 1 if count > 100 else count // 3)
    export = tmp_path / "export"
    export_identity(central.engine, export, unmasked=True)  # what `central-server export-identity --unmasked` writes
    staged = staging_path(agent.data_dir, "pos")
    # SQLite files hold sealed blobs and clear event ids side by side, where a Luhn-valid run of
    # digits turns up by chance once in a few thousand receipts: those are scanned for the seeded
    # numbers, track data and CVVs only (central's rows are also scanned value by value below).
    databases = [p for p in agent.data_dir.rglob("*.db*")] + list(tmp_path.glob("central.db*"))
    others = [p for p in agent.data_dir.rglob("*") if p.is_file() and p not in databases]
    places = [*others, tmp_path / "agent.log", tmp_path / "central.log", export]
    assert scan_files(places + ([staged] if staged.exists() else []), secrets) == {}
    assert scan_files(databases, secrets, any_card=False) == {}
    # A receipt number that looks like a card number stays in clear only when no card network
    # issues numbers starting like it (receipt_reader.py); any other card-like number is a leak.
    dump = database_text(central)
    for payload in got:
        if kept := _redactor().found(payload["receipt_no"]):
            assert not any(card_issuer_prefix(digits) for digits in kept.values()), payload["receipt_no"]
            dump = dump.replace(payload["receipt_no"], "-")
    assert leaks(dump, secrets) == []
    assert not (tmp_path / "agent.log").read_text(errors="replace").count("Traceback")


def _redactor() -> PanRedactor:
    return PanRedactor(b"\0" * 32)  # any key: hashes are blanked before comparing
