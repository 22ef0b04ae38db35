"""Sources commands: API keys of online sources, backfills, legacy member imports, the identity export."""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from central import audit
from central.cli import PROG, CliError, Command, existing_database, load
from central.clock import system_clock
from central.csvfiles import open_private
from central.customers.consent import notice_problem
from central.identity.registry import load_registry
from central.models import User
from central.params import id_argument
from central.sources.backfill import DEFAULT_CHUNK, BadLine, LoadSummary, load_events
from central.sources.events import SOURCE_RE
from central.sources.export import FILES, export_identity
from central.sources.import_file import DEFAULT_CHUNK as IMPORT_CHUNK
from central.sources.import_file import ImportOptions, plan_import
from central.sources.import_mapping import MappingError
from central.sources.import_report import rejected_reasons, totals, write_report
from central.sources.keys import issue_key, list_keys, revoke_key
from central.sources.legacy_formats import DATE_ORDERS, FormatError
from central.sources.member_import import run_import
from central.sources.models import SourceKey
from central.sources.progress import progress_bar


def check_notice(notice: str) -> str:
    """``notice`` if it can name a privacy notice version; otherwise a usage error."""
    if problem := notice_problem(notice):
        raise CliError(problem, status=2)
    return notice


def check_source(name: str) -> str:
    """``name`` if it is a valid source name; otherwise a usage error naming the rule."""
    if not SOURCE_RE.match(name):
        raise CliError(
            f"source name {name!r} must be 1-57 characters of a-z, 0-9, _ . - starting with a letter or digit,"
            " and not 'console' (the console's own)",
            status=2,
        )
    return name


def cmd_source_key(args: argparse.Namespace) -> int:
    """Issue a new API key for an online source (printed once), or revoke one with --revoke ID."""
    if (args.source is None) == (args.revoke is None):
        raise CliError("give either --source NAME (issue a key) or --revoke KEY_ID", status=2)
    config, path = load(args)
    engine = existing_database(config, path)
    now = system_clock()
    try:
        with Session(engine) as db:
            if args.revoke is not None:
                info = revoke_key(db, args.revoke, now)
                if info is None:
                    raise CliError(f"there is no source key {args.revoke} (list them with `{PROG} source-keys`)")
                audit.record(
                    db,
                    at=now,
                    actor=audit.cli_actor(),
                    action="source_key.revoke",
                    subject=f"source:{info.source}",
                    detail={"key_id": info.id},
                )
                db.commit()
                print(f"{PROG}: revoked key {info.id} ({info.hint}...) of source {info.source}", file=sys.stderr)
                return 0
            source = check_source(args.source)
            key_id, key = issue_key(db, source, now, created_by=audit.cli_actor())
            audit.record(
                db,
                at=now,
                actor=audit.cli_actor(),
                action="source_key.create",
                subject=f"source:{source}",
                detail={"key_id": key_id},
            )
            db.commit()
    finally:
        engine.dispose()
    print(
        f"{PROG}: key {key_id} for source {source}; it is shown only now, store it in the source's secrets",
        file=sys.stderr,
    )
    print(key)
    return 0


def cmd_source_keys(args: argparse.Namespace) -> int:
    """List every source key: id, source, the key's first characters, when issued, whether revoked."""
    config, path = load(args)
    engine = existing_database(config, path)
    try:
        with Session(engine) as db:
            keys = list_keys(db)
    finally:
        engine.dispose()
    print(f"{'id':>5}  {'source':<24} {'key':<16} {'created (UTC)':<17} status")
    for k in keys:
        status = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        print(f"{k.id:>5}  {k.source:<24} {k.hint + '...':<16} {k.created_at:%Y-%m-%d %H:%M} {status}")
    return 0


def common_blocks_line(blocks: dict[str, int]) -> str:
    """How many match blocks were too common for weak-match suggestions, and the largest three.

    A block holds more customers than ``[matching] block_limit``, so its birthday and initial name
    none of them; the largest say which default birthday to add to ``placeholder_birthdays``.
    """
    largest = sorted(blocks.items(), key=lambda item: (-item[1], item[0]))
    shown = "; ".join(f"{block}, {size} customers" for block, size in largest[:3])
    more = f"; {len(largest) - 3} more" if len(largest) > 3 else ""
    return f"{len(largest)} (not paired: {shown}{more})"


def _print_load_summary(path: Path, source: str, summary: LoadSummary, seconds: float) -> None:
    rate = summary.lines / seconds if seconds > 0 else 0.0
    print(f"loaded {path} into source:{source} in {seconds:.1f} s ({rate:,.0f} lines/s)")
    print(f"  lines read           {summary.lines}")
    if summary.blank:
        print(f"  blank lines          {summary.blank}")
    print(f"  accepted             {summary.accepted}")
    print(f"  duplicate            {summary.duplicate}")
    print(f"  rejected             {summary.rejected_total}")
    for reason, count in sorted(summary.rejected.items(), key=lambda item: (-item[1], item[0])):
        print(f"    {reason:<26} {count}")
    if summary.warnings:
        print(f"  loaded with warnings {sum(summary.warnings.values())}")
        for reason, count in sorted(summary.warnings.items(), key=lambda item: (-item[1], item[0])):
            print(f"    {reason:<26} {count}")
    print(f"  linked to customers  {summary.linked}")
    print(f"  customers created    {summary.customers_created}")
    print(f"  customers merged     {summary.customers_merged}")
    print(f"  sent to review       {summary.reviewed}")
    if summary.common_blocks:
        print(f"  blocks too common    {common_blocks_line(summary.common_blocks)}")


def cmd_load_events(args: argparse.Namespace) -> int:
    """Load a JSON-lines file of historical events for a source; idempotent, resumable by rerunning.

    Exit status (as --help says): 0 when every line was loaded or was already there,
    1 when any line was rejected (the others are loaded), 2 for a usage error.
    """
    source = check_source(args.source)
    notice = check_notice(args.consent_notice)
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"cannot read {path}: no such file", status=2)
    if args.chunk_size < 1:
        raise CliError("--chunk-size must be at least 1", status=2)
    config, config_path = load(args)
    registry = load_registry(config)
    engine = existing_database(config, config_path)
    bar = progress_bar(total=path.stat().st_size, unit="B", desc=path.name, enabled=not args.no_progress)

    def bad_line(bad: BadLine) -> None:
        named = f" (event {bad.event_id})" if bad.event_id else ""
        bar.write(f"{PROG}: {path}:{bad.line}: rejected{named}: {bad.reason}", file=sys.stderr)

    def chunk_done(summary: LoadSummary) -> None:
        bar.update(summary.bytes_read - bar.n)

    started = time.monotonic()
    try:
        with Session(engine) as db:
            summary = load_events(
                db,
                path,
                source,
                registry=registry,
                clock=system_clock,
                chunk_size=args.chunk_size,
                max_ahead=timedelta(minutes=config.sources_max_ahead_minutes),
                max_event_chars=config.ingest_max_event_bytes,
                on_bad_line=bad_line,
                on_chunk=chunk_done,
                consent_notice=notice,
            )
            audit.record(
                db,
                at=system_clock(),
                actor=audit.cli_actor(),
                action="events.load",
                subject=f"source:{source}",
                detail={"file": str(path), "lines": summary.lines, "accepted": summary.accepted},
            )
            db.commit()
    finally:
        bar.close()
        engine.dispose()
    _print_load_summary(path, source, summary, time.monotonic() - started)
    if summary.rejected_total:
        # Exit 1, as a cron job or a script can tell: the file was not taken whole (a rerun rejects the same lines).
        rest = "the others are loaded" if summary.accepted or summary.duplicate else "nothing was loaded"
        print(
            f"{PROG}: {summary.rejected_total} of the {summary.lines} lines of {path} were rejected (above); {rest}",
            file=sys.stderr,
        )
        return 1
    return 0


def check_report(report: Path) -> Path:
    """``report`` if the per-row report can be written there; otherwise a usage error saying why.

    Checked before importing: the report is written at the end, after the rows are committed.
    """
    folder = report.parent
    why = None
    if report.is_dir():
        why = "it is a directory"
    elif not folder.is_dir():
        why = f"directory {folder} does not exist" if not folder.exists() else f"{folder} is not a directory"
    elif report.exists() and not os.access(report, os.W_OK):
        why = "the file is not writable"
    elif not os.access(folder, os.W_OK | os.X_OK) and (not report.exists() or report.is_file()):
        # The report is written beside its name and moved into place (owner-only from its first byte).
        why = f"directory {folder} is not writable"
    if why is not None:
        raise CliError(f"cannot write the report to {report}: {why}; nothing was imported", status=2)
    return report


def cmd_import_members(args: argparse.Namespace) -> int:
    """Import a legacy member CSV: every row becomes an event and a line of the report; rerunnable.

    Exit status (as --help says): 0 when no row of the file was rejected (duplicates, conflicts and
    suggestions are outcomes, not errors), 1 when any row was rejected, 2 for a usage error.
    """
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"cannot read {path}: no such file", status=2)
    if args.report:
        check_report(Path(args.report))
    if args.chunk_size < 1:
        raise CliError("--chunk-size must be at least 1", status=2)
    options = ImportOptions(
        maps=tuple(args.map or ()),
        source=check_source(args.source),
        encoding=args.encoding,
        delimiter=args.delimiter.replace("\\t", "\t") if args.delimiter else None,
        date_order=args.date_order,
        merge_suggestions=args.merge_suggestions,
        chunk_size=args.chunk_size,
        dry_run=args.dry_run,
        consent_notice=check_notice(args.consent_notice),
    )
    config, config_path = load(args)
    registry = load_registry(config)
    today = system_clock().date()
    try:
        plan = plan_import(path, options, registry)
    except MappingError as exc:
        raise CliError(str(exc), status=2) from None
    except FormatError:
        raise CliError(
            f"cannot decode {path} as UTF-8 or GB18030; give its encoding with --encoding", status=2
        ) from None
    except (UnicodeDecodeError, LookupError) as exc:
        raise CliError(f"cannot read {path} as {options.encoding}: {exc}", status=2) from None
    except ValueError as exc:
        raise CliError(str(exc), status=2) from None
    engine = existing_database(config, config_path)
    bar = progress_bar(total=plan.rows, unit="rows", desc=path.name, enabled=not args.no_progress)
    started = time.monotonic()
    try:
        with Session(engine) as db:
            import_id, stats = run_import(
                db,
                plan,
                options,
                registry=registry,
                clock=system_clock,
                today=today,
                on_rows=lambda done: bar.update(done - bar.n),
            )
            bar.close()
            summary = totals(db, import_id)
            reasons = rejected_reasons(db, import_id)
            if args.report:
                with open_private(Path(args.report)) as out:
                    write_report(db, import_id, out, plan.mapping.id_column)
            if options.dry_run:
                db.rollback()
            elif stats.processed:
                audit.record(
                    db,
                    at=system_clock(),
                    actor=audit.cli_actor(),
                    action="members.import",
                    subject=f"import:{plan.digest[:16]}",
                    detail={"file": str(path), "rows": plan.rows, "processed": stats.processed},
                )
                db.commit()
    finally:
        bar.close()
        engine.dispose()
    seconds = time.monotonic() - started
    rate = stats.processed / seconds if seconds > 0 else 0.0
    verb = "dry run of" if options.dry_run else "imported"
    print(f"{verb} {path} (import {plan.digest[:16]}, {plan.encoding}) in {seconds:.1f} s ({rate:,.0f} rows/s)")
    print("\n".join(summary.lines()))
    for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
        print(f"    {reason:<40} {count}")
    consents = f", consent decisions {stats.consents}" if plan.mapping.has_consent else ""
    print(
        f"  this run: {stats.processed} rows processed, {stats.skipped} already imported; customers created"
        f" {stats.created}, existing customers merged into others {stats.merged}, sent to review {stats.reviewed}"
        f"{consents}"
    )
    if stats.common_blocks:
        print(f"  match blocks too common for weak-match suggestions: {common_blocks_line(stats.common_blocks)}")
    if options.dry_run:
        print("  dry run: nothing was stored")
    if args.report:
        print(f"  report: {args.report}")
    rejected = summary.by_outcome.get("rejected", 0)
    if rejected:
        # Exit 1 as load-events does: the file was not taken whole. The count is the import's, not this
        # run's, so a rerun of a finished import (which changes nothing) exits as the first run did.
        rest = "the others are imported" if rejected < summary.rows else "nothing was imported"
        if options.dry_run:
            rest = "the others would be imported" if rejected < summary.rows else "nothing would be imported"
        where = f"; see {args.report}" if args.report else ""
        print(
            f"{PROG}: {rejected} of the {summary.rows} rows of {path} were rejected{where}; {rest}",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_export_identity(args: argparse.Namespace) -> int:
    """Write identifiers.csv, events.csv and customers.csv; masked unless --unmasked by an admin."""
    if args.unmasked and not args.admin:
        raise CliError("--unmasked needs --admin NAME: the administrator answerable for the personal data", status=2)
    out_dir = Path(args.out)
    config, path = load(args)
    engine = existing_database(config, path)
    try:
        actor = audit.cli_actor()
        if args.unmasked:
            with Session(engine) as db:
                role = db.scalar(select(User.role).where(User.username == args.admin))
            if role != "admin":
                raise CliError(f"{args.admin!r} is not an administrator of this server; an unmasked export needs one")
            actor = args.admin
        started = time.monotonic()
        counts = export_identity(engine, out_dir, unmasked=args.unmasked)
        with Session(engine) as db:
            audit.record(
                db,
                at=system_clock(),
                actor=actor,
                action="identity.export",
                subject=str(out_dir)[:255],
                detail={
                    "unmasked": args.unmasked,
                    "identifiers": counts.identifiers,
                    "events": counts.events,
                    "customers": counts.customers,
                },
            )
            db.commit()
    finally:
        engine.dispose()
    masked = "UNMASKED" if args.unmasked else "masked"
    print(f"exported identity ({masked}) to {out_dir} in {time.monotonic() - started:.1f} s")
    for name, count in zip(FILES, (counts.identifiers, counts.events, counts.customers), strict=True):
        print(f"  {name:<16} {count} rows")
    return 0


def _source_key_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", metavar="NAME", help="issue a new key for this source (e.g. miniprogram)")
    parser.add_argument(
        "--revoke",
        type=id_argument(SourceKey.id),
        metavar="KEY_ID",
        help="revoke the key with this id (see source-keys)",
    )


LOAD_EVENTS_STATUS = (
    "Exit status 0 when every line was loaded or was already there, 1 when any line was rejected (each is"
    " reported on stderr with its number and reason; the other lines are loaded all the same, and a rerun"
    " rejects the same lines), 2 for a usage error such as a missing file."
)


def _load_events_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = LOAD_EVENTS_STATUS
    parser.add_argument("file", metavar="FILE.jsonl", help="one JSON event a line")
    parser.add_argument("--source", required=True, metavar="NAME", help="the source the events come from")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK, metavar="N", help="events per transaction")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")
    parser.add_argument(
        "--consent-notice",
        default="",
        metavar="VERSION",
        help="the privacy notice version of consent.given lines that name none (legacy if the old system kept"
        " none); without it such lines are rejected",
    )


IMPORT_MEMBERS_STATUS = (
    "Exit status 0 when no row was rejected (rows already imported, duplicates, conflicts and suggestions are"
    " not errors), 1 when any row was rejected (the summary counts them by reason and --report names each;"
    " the other rows are imported all the same, and a rerun rejects the same rows), 2 for a usage error such"
    " as a missing file or an unknown --map field."
)


def _import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = IMPORT_MEMBERS_STATUS
    parser.add_argument("file", metavar="FILE.csv", help="the legacy system's member export, with a header line")
    parser.add_argument(
        "--map",
        action="append",
        metavar="COLUMN=FIELD",
        help="what a column holds (repeat): name, given_name, family_name, gender, birthday, phone, email,"
        " member_card, member_id, address, city, postcode, province, external_id, any identifier type,"
        " attr:NAME, consent:PURPOSE[:CHANNEL] (a yes/no answer), consent_at (its date), or - to drop it;"
        " unmapped columns are kept as attributes",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="do everything, then roll it back; the report shows what would happen"
    )
    parser.add_argument(
        "--merge-suggestions",
        type=float,
        nargs="?",
        const=0.9,
        metavar="SCORE",
        help="merge weak-evidence matches scoring at least SCORE (default 0.9) instead of only suggesting them",
    )
    parser.add_argument("--report", metavar="FILE", help="write the per-row CSV report here, owner-only (0600)")
    parser.add_argument(
        "--consent-notice",
        default="",
        metavar="VERSION",
        help="the privacy notice the file's consent columns were answered under (kept with each decision;"
        " required with consent columns, legacy if the old system kept none)",
    )
    parser.add_argument(
        "--source", default="import", metavar="NAME", help="source the rows' events belong to (default: import)"
    )
    parser.add_argument("--encoding", help="the file's encoding (default: UTF-8 with or without BOM, else GB18030)")
    parser.add_argument("--delimiter", help="field delimiter (default: sniffed from the header; \\t for tab)")
    parser.add_argument(
        "--date-order", choices=DATE_ORDERS, help="how to read dates like 05/03/2024 (default: refuse them)"
    )
    parser.add_argument("--chunk-size", type=int, default=IMPORT_CHUNK, metavar="N", help="rows per transaction")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="directory for the three CSV files, each owner-only (0600); created 0700 if missing",
    )
    parser.add_argument("--unmasked", action="store_true", help="write identifiers and personal values in clear")
    parser.add_argument("--admin", metavar="NAME", help="the console administrator answerable for an unmasked export")


COMMANDS = [
    Command("source-key", cmd_source_key, "issue (or --revoke) an API key for an online source", _source_key_arguments),
    Command("source-keys", cmd_source_keys, "list the API keys of online sources"),
    Command(
        "load-events",
        cmd_load_events,
        "load a source's historical events from a JSON-lines file",
        _load_events_arguments,
    ),
    Command("import-members", cmd_import_members, "import a legacy member CSV export (rerunnable)", _import_arguments),
    Command(
        "export-identity",
        cmd_export_identity,
        "export identifiers, events and customers as CSV (masked unless --unmasked)",
        _export_arguments,
    ),
]
