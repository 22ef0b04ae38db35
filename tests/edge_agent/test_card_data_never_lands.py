"""Generated receipts full of card numbers, track data and CVVs: none reaches a file or a log.

Every receipt prints a full card number (solid, in groups of four, or 4-6-5), its track 2 data and
a CVV; some put another card number into their QR code. They go through the agent's capture path
as the POS source runs it (staging, sealed journal, the ESC/POS stream, redaction, the writer, the
outbox), in reads of random sizes. Then every file the agent wrote, the log, and every event and
quarantine row opened with the key, are scanned. The default run feeds ``--card-receipts``
(500) receipts; the acceptance run is ``pytest --card-receipts 10000`` (about two minutes).
"""

from __future__ import annotations

import logging
import os
import random
import re

import orjson

from edge_agent.journal import CaptureJournal
from edge_agent.outbox import Outbox
from edge_agent.privacy import PanRedactor, card_issuer_prefix
from edge_agent.receipt_reader import builtin_profiles
from edge_agent.sources.pos_streams import EscposStream
from edge_agent.sources.serial_pos import SerialPosSource
from edge_agent.sources.staging import ReadStaging
from edge_agent.writer import OutboxWriter
from tests.card_scan import leaks, scan_files
from tools.receipts import receipt

PAN = re.compile(r"^[0-9]{13,19}$")


def test_no_full_card_number_track_data_or_cvv_lands_anywhere(tmp_path, sealer, request, caplog):
    count = request.config.getoption("--card-receipts")
    data_dir, run_dir = tmp_path / "agent", tmp_path / "run"
    data_dir.mkdir()
    run_dir.mkdir()  # as systemd makes /run/edge-agent: the agent creates no staging directory
    caplog.set_level(logging.DEBUG)
    outbox = Outbox(data_dir / "outbox.db", sealer, "S001")
    journaled = bytearray()  # every byte ever written to the journal file (it is truncated as commits go)

    def write(fd: int, data: memoryview) -> int:
        journaled.extend(data)
        return os.write(fd, data)

    journal = CaptureJournal(data_dir / "journal" / "pos.journal", sealer, "pos", fsync=False, write=write)
    writer = OutboxWriter(outbox, commit_interval=0.05, on_commit=lambda o: setattr(journal, "committed", o["pos"]))
    redactor = PanRedactor(b"p" * 32)
    profiles = builtin_profiles()

    def stream(offset: int) -> EscposStream:
        return EscposStream(offset, profiles=profiles, redactor=redactor, clock=lambda: 1_780_000_000.0)

    source = SerialPosSource(
        url="loop://",
        baudrate=9600,
        journal=journal,
        emit=writer.put,
        redactor=redactor,
        stream=stream,
        staging=ReadStaging(run_dir / "pos.staging"),
    )
    writer.start()
    rng = random.Random(99)
    secrets: set[str] = set()
    for n in range(count):
        last = n == count - 1
        made = receipt(
            random.Random(f"card-{n}"), card_data=True, payment="bank_card", reset=True, cut=True if last else None
        )
        secrets.update(s for s in made.secrets if PAN.match(s))
        pos = 0
        while pos < len(made.data):
            size = rng.choice([1, 7, 64, 300, 4096])
            source.feed(made.data[pos : pos + size])
            pos += size
    source.stop()
    writer.stop()
    journal.close()
    assert len(secrets) >= count  # every receipt printed at least one full card number

    # Every file the agent wrote: the journal and the staging file if any for any card number; the
    # outbox and its WAL for the printed ones only, since the event ids kept in clear there (and the
    # leftovers of old ids in freed space) can run into a Luhn-valid digit string by chance.
    written = [p for root in (data_dir, run_dir) for p in root.rglob("*") if p.is_file()]
    databases = [p for p in written if p.name.startswith("outbox.db")]
    assert databases and scan_files([p for p in written if p not in databases], secrets) == {}
    assert scan_files(databases, secrets, any_card=False) == {}
    assert leaks(caplog.text, secrets) == []
    assert len(journaled) > 1000 * count  # the printer bytes went through the journal, sealed:
    assert leaks(bytes(journaled).decode("latin-1"), secrets) == []
    # What the files hold, opened with the key: every event and every quarantined input.
    opened = Outbox(data_dir / "outbox.db", sealer, "S001")
    rows = opened.pending(count + 10)
    assert len(rows) == count and {r.kind for r in rows} == {"pos.receipt"}
    text = b"\n".join(r.body or b"" for r in rows).decode()
    payloads = [orjson.loads(r.body or b"{}")["payload"] for r in rows]
    # A receipt number that looks like a card number is kept in clear only if no card network
    # issues numbers starting like it (receipt_reader.py); anything else card-like is a leak.
    for payload in payloads:
        if kept := redactor.found(payload["receipt_no"]):
            assert not any(card_issuer_prefix(digits) for digits in kept.values()), payload["receipt_no"]
            text = text.replace(payload["receipt_no"], "-")
    assert leaks(text, secrets) == []
    assert opened.quarantine(10) == []
    assert all(p["payment_method"] == "bank_card" and re.fullmatch(r"[0-9]{4}", p["card_last4"]) for p in payloads)
    assert any("[track data removed]" in line for p in payloads for line in p["text_lines"])
    assert any("[CVV removed]" in line for p in payloads for line in p["text_lines"])
    opened.close()
