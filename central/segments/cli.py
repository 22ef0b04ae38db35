"""``central-server segment add|list|show|count|evaluate|export``: segments from the command line.

The command line acts as an operator with administrator rights: exports are unmasked (``--masked``
masks them) and every one is written to the audit log.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy.orm import Session

from central import audit
from central.cli import PROG, CliError, Command, existing_database, load
from central.clock import system_clock
from central.csvfiles import write_csv
from central.segments import definitions, evaluation, exports
from central.segments.definitions import Draft, SegmentError

OPERATOR = "cli"


def _refusal(exc: SegmentError) -> CliError:
    return CliError(f"{exc} ({exc.reason})", status=2)


def _found(db: Session, name: str) -> object:
    row = definitions.find(db, name)
    if row is None:
        raise CliError(f"no segment {name!r}; see '{PROG} segment list'", status=2)
    return row


def cmd_segment(args: argparse.Namespace) -> int:
    """Run one ``segment`` action against the configured database."""
    config, path = load(args)
    engine = existing_database(config, path)
    offset = config.customers_utc_offset_minutes
    now = system_clock()
    today = evaluation.local_today(now, offset)
    try:
        with Session(engine) as db:
            if args.action == "add":
                draft = Draft(
                    args.name, args.rule, args.channel, args.description, args.webhook_url, args.webhook_secret
                )
                try:
                    definitions.create(db, draft, actor=OPERATOR, now=now)
                except SegmentError as exc:
                    raise _refusal(exc) from None
                audit.record(db, at=now, actor=OPERATOR, action="segment.create", subject=f"segment:{args.name}")
                db.commit()
                print(f"{PROG}: segment {args.name} saved (version 1, channel {args.channel})")
            elif args.action == "list":
                for row in definitions.listed(db):
                    evaluated = row.evaluated_at.isoformat() if row.evaluated_at else "never"
                    print(f"{row.name}\tv{row.version}\t{row.channel}\t{row.members} members\tevaluated {evaluated}")
            elif args.action == "show":
                row = _found(db, args.name)
                for key, value in definitions.to_json(row).items():
                    print(f"{key}: {value}")
            elif args.action == "count":
                row = _found(db, args.name)
                counted = evaluation.count(db, row.rule, row.channel, today, offset)  # type: ignore[attr-defined]
                print(f"{args.name}: {counted.matching} matching, {counted.reachable} reachable")
            elif args.action == "evaluate":
                _found(db, args.name)
                done = evaluation.evaluate(db, args.name, now, offset)
                audit.record(
                    db,
                    at=now,
                    actor=OPERATOR,
                    action="segment.evaluate",
                    subject=f"segment:{args.name}",
                    detail=done.to_json(),
                )
                db.commit()
                print(f"{args.name}: {done.members} members, {done.entered} entered, {done.left} left")
            else:
                _export(db, args, today, config.segments_webhook_chunk)
    finally:
        engine.dispose()
    return 0


def _export(db: Session, args: argparse.Namespace, today: object, chunk: int) -> None:
    row = _found(db, args.name)
    unmasked = not args.masked
    if args.to == "webhook":
        now = system_clock()
        try:
            export_id, calls, count = exports.queue_webhook(db, row, today, now, unmasked=unmasked, chunk=chunk)  # type: ignore[arg-type]
        except ValueError as exc:
            raise CliError(str(exc), status=2) from None
        detail = {"to": "webhook", "masked": not unmasked, "export_id": export_id, "calls": calls, "members": count}
        audit.record(db, at=now, actor=OPERATOR, action="segment.export", subject=f"segment:{args.name}", detail=detail)
        db.commit()
        print(f"{PROG}: {count} members of segment {args.name} queued in {calls} webhook calls", file=sys.stderr)
        return
    if not args.out:
        raise CliError("export --to csv needs --out FILE", status=2)
    audit.record(
        db,
        at=system_clock(),
        actor=OPERATOR,
        action="segment.export",
        subject=f"segment:{args.name}",
        detail={"to": "csv", "masked": not unmasked, "out": str(args.out)},
    )
    db.commit()
    rows = exports.csv_rows(db, row, today, unmasked=unmasked)  # type: ignore[arg-type]
    written = write_csv(Path(args.out), exports.HEADER, rows)
    print(f"{PROG}: {written} members of segment {args.name} written to {args.out}", file=sys.stderr)


def _arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="save a new segment")
    add.add_argument("name", help="segment name (lower-case letters, digits, '-', '_')")
    add.add_argument(
        "--rule", required=True, help="rule, e.g. 'value_tier = \"loyal\" and days_since(last_purchase_on) <= 30'"
    )
    add.add_argument("--channel", required=True, help="marketing channel: sms, wechat, app_push, email")
    add.add_argument("--description", default="", help="what the segment is for")
    add.add_argument("--webhook-url", default=None, help="where 'export --to webhook' posts the members")
    add.add_argument("--webhook-secret", default=None, help="16+ characters shared with the receiver")
    listing = actions.add_parser("list", help="every segment with its last evaluation")
    named = [listing]
    for action, text in (("show", "one segment"), ("count", "the live count"), ("evaluate", "evaluate now")):
        one = actions.add_parser(action, help=text)
        one.add_argument("name")
        named.append(one)
    export = actions.add_parser("export", help="write the members as CSV, or post them to the webhook (audited)")
    named += [add, export]
    export.add_argument("name")
    export.add_argument(
        "--to", choices=("csv", "webhook"), default="csv", help="csv (default) or the segment's webhook"
    )
    export.add_argument("--out", help="CSV file to write, owner-only (0600); it appears whole or not at all")
    export.add_argument("--masked", action="store_true", help="mask identifiers and names as marketing sees them")
    for sub in named:
        # Also accepted after the action; SUPPRESS keeps a --config given before it.
        sub.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="TOML config file")


COMMANDS = [Command("segment", cmd_segment, "segments: add, list, show, count, evaluate, export", _arguments)]
