"""``central-server segment add|list|show|count|evaluate|export|delete``: segments from the command line.

The command line acts as an operator with administrator rights: exports are unmasked (``--masked``
masks them) and every one is written to the audit log. ``delete`` follows decision 0081 as the API
and the console do, and asks for ``--yes`` as the console asks on a page of its own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from central import audit
from central.cli import PROG, CliError, Command, existing_database, load
from central.clock import system_clock
from central.csvfiles import write_csv
from central.segments import definitions, deletion, evaluation, exports
from central.segments.definitions import Draft, SegmentError

OPERATOR = audit.cli_actor()


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
            elif args.action == "delete":
                _delete(db, args.name, confirmed=args.yes)
            else:
                _export(db, args, today, config.segments_webhook_chunk)
    finally:
        engine.dispose()
    return 0


def _delete(db: Session, name: str, *, confirmed: bool) -> None:
    """Delete a segment as ``DELETE /api/v1/segments/<name>`` does, once ``--yes`` confirms it.

    Exit status 2 for a name no segment has or a missing ``--yes`` (nothing changed), 1 while its
    webhook export is still being sent (the same command succeeds once the calls have ended).
    """
    row: Any = _found(db, name)
    if not confirmed:
        raise CliError(
            f"deleting segment {name!r} (version {row.version}, {row.members} members at its last evaluation)"
            " cannot be undone; it stops being evaluated and exported, its membership history and"
            " definition are kept (audit log). Nothing was changed: run again with --yes to delete it",
            status=2,
        )
    now = system_clock()
    try:
        done = deletion.delete(db, name, now=now)
    except SegmentError as exc:
        db.rollback()
        status = 1 if exc.reason == deletion.IN_USE_EXPORT else 2
        raise CliError(f"{exc} ({exc.reason})", status=status) from None
    detail = {"via": "cli", **done.to_audit()}
    audit.record(db, at=now, actor=OPERATOR, action="segment.delete", subject=f"segment:{name}", detail=detail)
    db.commit()
    print(f"{PROG}: segment {name} deleted; {done.left} members left it, its history is kept")


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
    remove = actions.add_parser(
        "delete", help="delete a segment, keeping its membership history (audited; refused while its export is sent)"
    )
    remove.add_argument("name")
    remove.add_argument("--yes", action="store_true", help="confirm the deletion, which cannot be undone")
    named += [add, export, remove]
    export.add_argument("name")
    export.add_argument(
        "--to", choices=("csv", "webhook"), default="csv", help="csv (default) or the segment's webhook"
    )
    export.add_argument("--out", help="CSV file to write, owner-only (0600); it appears whole or not at all")
    export.add_argument("--masked", action="store_true", help="mask identifiers and names as marketing sees them")
    for sub in named:
        # Also accepted after the action; SUPPRESS keeps a --config given before it.
        sub.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="TOML config file")


COMMANDS = [Command("segment", cmd_segment, "segments: add, list, show, count, evaluate, export, delete", _arguments)]
