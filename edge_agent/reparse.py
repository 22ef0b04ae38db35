"""`edge-agent reparse`: read quarantined receipts again once a receipt profile has been fixed.

In ``escpos`` mode a printed receipt that no profile reads is quarantined with its reason
(``no_profile_matched``, ``missing_field:total``...), holding its text and codes with card data
already removed (receipt_events.py). After a technician fixes or adds a profile (checked first with
``edge-agent parse CAPTURE --profiles PATH``) and sets ``pos.profiles_dir``, this command reads
every such receipt again with the configured profiles: each one that now gives a sale becomes a
``pos.receipt`` event (sent at the next sync) and leaves the quarantine in the same transaction;
the rest stay with their (possibly new) reason. Run it with the agent stopped: the outbox has one
writer.
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
from edge_agent.outbox import Outbox
from edge_agent.parsing.receipt_profile import Profile, ProfileError
from edge_agent.receipt_events import from_quarantine, receipt_record
from edge_agent.receipt_reader import configured_profiles, load_profiles, read_record
from edge_agent.records import Capture, Record

PROG = "edge-agent"


@dataclass
class Outcome:
    """What one reparse did."""

    sales: int = 0
    still: Counter[str] = field(default_factory=Counter)


def reparse(outbox: Outbox, profiles: list[Profile], only: str | None = None, *, dry_run: bool = False) -> Outcome:
    """Read every quarantined printed receipt again; commit those that now give a sale, in one transaction."""
    outcome = Outcome()
    records: list[Record] = []
    released: list[int] = []
    for row in outbox.quarantined("pos"):
        found = from_quarantine(row.raw)
        if found is None:
            continue  # a line-mode line or an unreadable row: nothing a profile can read
        printed, observed_at = found
        result = receipt_record(read_record(printed, profiles, only), observed_at, row.received_at)
        if isinstance(result, Capture):
            # No source offset: the journal committed past this receipt when it was quarantined.
            records.append(Capture(result.kind, result.payload_json, result.observed_at))
            released.append(row.id)
            outcome.sales += 1
        else:
            outcome.still[result.reason] += 1
    if records and not dry_run:
        outbox.append(records, release=released)
    return outcome


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

    try:
        lock = lock_data_dir(config)
    except AlreadyRunning as exc:
        print(f"{PROG}: {exc}; stop it first (systemctl stop edge-agent), then run reparse again", file=sys.stderr)
        return 1
    try:
        outcome = reparse(open_outbox(config), profiles, only, dry_run=args.dry_run)
    finally:
        os.close(lock)
    still = ", ".join(f"{reason}: {n}" for reason, n in sorted(outcome.still.items())) or "none"
    verb = "would become" if args.dry_run else "became"
    print(f"{outcome.sales} quarantined receipts {verb} sales; still without a sale: {still}")
    return 0
