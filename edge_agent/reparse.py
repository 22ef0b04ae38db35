"""`edge-agent reparse`: read quarantined receipts again once a receipt profile has been fixed.

In ``escpos`` mode a printed receipt that no profile reads is quarantined with its reason
(``no_profile_matched``, ``missing_field:total``...), holding its text and codes with card data
already removed (receipt_events.py). After a technician fixes or adds a profile (checked first with
``edge-agent parse CAPTURE --profiles PATH``) and sets ``pos.profiles_dir``, this command reads
every such receipt again with the configured profiles: each one that now gives a sale becomes a
``pos.receipt`` event (sent at the next sync) and leaves the quarantine in the same transaction;
the rest stay as they were. Run it with the agent stopped: the outbox has one writer.

A row that kept the printer bytes of its receipt is read from them, in the printer mode
``--kanji`` gives (default ``pos.kanji``), so a receipt decoded in the wrong mode is recovered;
pieces of one receipt (ended by an idle gap, a pause that lasted too long, or ``pos.max_receipt_bytes``,
whose bytes follow on) are joined first and read with the ``pos.max_receipt_bytes`` in force, and a
row whose bytes hold two receipts gives both. Older rows are read from their text.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.config import AgentConfig
from edge_agent.outbox import Outbox, QuarantineRow
from edge_agent.parsing.escpos import MAX_RECEIPT_BYTES, EscposParser, Kanji
from edge_agent.parsing.receipt_profile import Profile, ProfileError
from edge_agent.privacy import PanRedactor
from edge_agent.receipt_events import QuarantinedReceipt, from_quarantine, receipt_record
from edge_agent.receipt_reader import (
    ReceiptReader,
    ReceiptRecord,
    configured_profiles,
    load_profiles,
    read_record,
    restore_tokens,
)
from edge_agent.records import Capture, Quarantined, Record
from shared.crypto import derive_key

PROG = "edge-agent"
PIECE_ENDS = ("idle", "pause", "limit")
"""How a piece ends whose receipt may go on in the next row: an idle gap, a pause too long, the size limit."""


@dataclass
class Outcome:
    """What one reparse did."""

    sales: int = 0
    still: Counter[str] = field(default_factory=Counter)


def reparse(
    outbox: Outbox,
    profiles: list[Profile],
    only: str | None = None,
    *,
    dry_run: bool = False,
    redactor: PanRedactor | None = None,
    kanji: Kanji = "auto",
    max_receipt_bytes: int = MAX_RECEIPT_BYTES,
) -> Outcome:
    """Read every quarantined printed receipt again; commit those that now give a sale, in one transaction.

    ``redactor`` (the agent's, so card hashes match) reads rows that kept printer bytes from them;
    without one, every row is read from its text.
    """
    outcome = Outcome()
    records: list[Record] = []
    released: list[int] = []
    for group in _groups(outbox, redactor is not None):
        if redactor is not None and all(q.printer_bytes is not None for _, q in group):
            results = _from_bytes(group, profiles, only, redactor, kanji, max_receipt_bytes)
        else:
            [(row, kept)] = group
            results = [read_record(kept.printed, profiles, only)]
        row, first = group[0]
        made = [receipt_record(r, first.observed_at, row.received_at) for r in results]
        if made and all(isinstance(m, Capture) for m in made):
            # No source offset: the journal committed past this receipt when it was quarantined.
            records += [Capture(m.kind, m.payload_json, m.observed_at) for m in made if isinstance(m, Capture)]
            released += [r.id for r, _ in group]
            outcome.sales += len(made)
        else:
            outcome.still.update(m.reason for m in made if isinstance(m, Quarantined))
    if records and not dry_run:
        outbox.append(records, release=released)
    return outcome


def _groups(outbox: Outbox, join: bool) -> list[list[tuple[QuarantineRow, QuarantinedReceipt]]]:
    """The printed receipts in the quarantine, oldest first; pieces of one joined when ``join``."""
    groups: list[list[tuple[QuarantineRow, QuarantinedReceipt]]] = []
    for row in outbox.quarantined("pos"):
        found = from_quarantine(row.raw)
        if found is None:
            continue  # a line-mode line or an unreadable row: nothing a profile can read
        if join and groups:
            last = groups[-1][-1][1]
            if (
                last.printed.ended_by in PIECE_ENDS
                and last.printed.end == found.printed.start
                and last.printer_bytes is not None
                and found.printer_bytes is not None
            ):
                groups[-1].append((row, found))
                continue
        groups.append([(row, found)])
    return groups


def _from_bytes(
    group: list[tuple[QuarantineRow, QuarantinedReceipt]],
    profiles: list[Profile],
    only: str | None,
    redactor: PanRedactor,
    kanji: Kanji,
    max_receipt_bytes: int,
) -> list[ReceiptRecord]:
    """The receipts in the printer bytes of ``group`` (one piece, or the pieces of one receipt)."""
    start = group[0][1].printed.start
    parser = EscposParser(kanji=kanji, start_offset=start, max_receipt_bytes=max_receipt_bytes)
    data = b"".join(q.printer_bytes or b"" for _, q in group)
    printed = parser.feed(data) + parser.close()
    reader = ReceiptReader(profiles, redactor, only=only, kanji=kanji)
    return [reader.record(restore_tokens(p)) for p in printed]


def add_command(sub: Any, config_help: str) -> None:
    """Register ``reparse`` on the ``edge-agent`` subcommand parser."""
    p = sub.add_parser(
        "reparse",
        help="Read quarantined receipts again with the current receipt profiles (stop the agent first).",
        description="Read every printed receipt kept in the quarantine without a sale again, with the profiles "
        "pos.profiles_dir and pos.profile name (or --profiles/--profile); each that now gives a sale is queued "
        "for central and leaves the quarantine.",
    )
    p.add_argument("--config", default=argparse.SUPPRESS, help=config_help)
    p.add_argument("--profile", help="use only this profile (default: pos.profile, else every profile)")
    p.add_argument(
        "--profiles", type=Path, action="append", default=[], metavar="PATH", help="profile file or folder to add"
    )
    p.add_argument(
        "--kanji",
        choices=("auto", "on", "off"),
        help="the printer's Chinese double-byte mode for receipts kept with their printer bytes (default: pos.kanji)",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would become a sale, change nothing")


def run(config: AgentConfig, args: argparse.Namespace) -> int:
    """The ``reparse`` command; its exit status."""
    try:
        profiles = configured_profiles(config.pos_profiles_dir, "")
        if args.profiles:
            extra = load_profiles(args.profiles, with_builtin=False)
            names = {p.name for p in extra}
            profiles = [p for p in profiles if p.name not in names] + extra
    except ProfileError as exc:
        print(f"{PROG}: receipt profile error: {exc}", file=sys.stderr)
        return 2
    only = args.profile or config.pos_profile or None
    if only is not None and only not in {p.name for p in profiles}:
        known = ", ".join(sorted(p.name for p in profiles))
        print(f"{PROG}: no profile named {only!r} (known: {known})", file=sys.stderr)
        return 2
    from edge_agent.agent import AlreadyRunning, lock_data_dir
    from edge_agent.doctor import open_outbox
    from edge_agent.keys import require_store

    try:
        lock = lock_data_dir(config)
    except AlreadyRunning as exc:
        print(f"{PROG}: {exc}; stop it first (systemctl stop edge-agent), then run reparse again", file=sys.stderr)
        return 1
    try:
        outbox = open_outbox(config)
        # The agent's card-hash key, so a card number redacted again hashes as it did the first time.
        pan_key = outbox.secret("pan-hash", derive_key(require_store(config).key, "pan-hash"))
        kanji: Any = args.kanji or config.pos_kanji
        outcome = reparse(
            outbox,
            profiles,
            only,
            dry_run=args.dry_run,
            redactor=PanRedactor(pan_key),
            kanji=kanji,
            max_receipt_bytes=config.pos_max_receipt_bytes,
        )
    finally:
        os.close(lock)
    still = ", ".join(f"{reason}: {n}" for reason, n in sorted(outcome.still.items())) or "none"
    verb = "would become" if args.dry_run else "became"
    print(f"{outcome.sales} quarantined receipts {verb} sales; still without a sale: {still}")
    return 0
