"""Customer commands: load the product catalogue, recompute the built-in tags, export tags and statistics,
list the receipts set aside."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from central import audit
from central.cli import PROG, CliError, Command, cli_session, existing_database, load
from central.clock import system_clock
from central.csvfiles import SpreadsheetWriter
from central.customers import catalog, set_aside
from central.customers.export import FILES, export_tags
from central.sources.legacy_formats import FormatError, detect_encoding

SHOWN_REFUSALS = 20


def cmd_load_catalog(args: argparse.Namespace) -> int:
    """Load products (sku, gtin, name, category, brand) from a CSV file; rows refused are listed."""
    path = Path(args.file)
    config, config_path = load(args)
    try:
        # Excel on a Chinese Windows saves CSV in GBK: read it as GB18030 (its superset) when it is not UTF-8.
        encoding = args.encoding or detect_encoding(path)
        handle = path.open(encoding=encoding, newline="")
    except FormatError:
        raise CliError(
            f"cannot decode {path} as UTF-8 or GB18030; give its encoding with --encoding", status=2
        ) from None
    except LookupError:
        raise CliError(f"unknown encoding {args.encoding!r}", status=2) from None
    except OSError as exc:
        raise CliError(f"cannot read the catalogue {path}: {exc.strerror}", status=2) from None
    engine = existing_database(config, config_path)
    try:
        with handle, engine.begin() as conn:
            report = catalog.load(conn, handle, system_clock())
    except catalog.CatalogError as exc:
        raise CliError(f"{path}: {exc}", status=2) from None
    except UnicodeDecodeError as exc:
        raise CliError(f"cannot read {path} as {encoding}: {exc}", status=2) from None
    finally:
        engine.dispose()
    print(f"{path}: {report.rows} rows, {report.loaded} products loaded, {len(report.refused)} refused")
    for line, reason in report.refused[:SHOWN_REFUSALS]:
        print(f"  line {line}: {reason}")
    if len(report.refused) > SHOWN_REFUSALS:
        print(f"  ... and {len(report.refused) - SHOWN_REFUSALS} more")
    print(
        f"unknown SKUs in sales: {report.unknown_skus} ({report.unknown_lines} sale lines);"
        f" {report.newly_known} became known with this load"
    )
    if report.newly_known:
        print(f"run `{PROG} recompute-tags --statistics` to give their past sales their categories")
    return 0


def cmd_recompute_tags(args: argparse.Namespace) -> int:
    """Recompute the statistics of marked customers (or all, with --statistics) and every built-in tag."""
    from central.customers import tagging  # numpy and scipy (the lifetime model): only this command needs them

    config, config_path = load(args)
    engine = existing_database(config, config_path)
    started = time.monotonic()
    try:
        with engine.begin() as conn:
            done = tagging.recompute(conn, config, system_clock(), statistics=args.statistics)
    except SQLAlchemyError as exc:
        raise CliError(f"recompute failed and was rolled back: {exc.__class__.__name__}: {exc}") from None
    finally:
        engine.dispose()
    scope = "all customers' statistics" if done.statistics else f"statistics of {done.marked} marked customers"
    print(f"recomputed {scope} and {sum(done.tags.values())} tags in {time.monotonic() - started:.1f} s")
    for tag, count in sorted(done.tags.items()):
        print(f"  {tag:<20} {count}")
    if done.clv_problem:
        print(f"{PROG}: {done.clv_problem}", file=sys.stderr)
    return 0


def cmd_export_tags(args: argparse.Namespace) -> int:
    """Write tags.csv and statistics.csv into a directory, streamed."""
    out_dir = Path(args.out)
    config, config_path = load(args)
    engine = existing_database(config, config_path)
    started = time.monotonic()
    try:
        counts = export_tags(engine, out_dir, system_clock(), config.customers_utc_offset_minutes)
        # Every customer's profile leaves the database: audited like the identity and segment exports.
        with Session(engine) as db:
            detail = {"tags": counts.tags, "statistics": counts.statistics}
            audit.record(
                db,
                at=system_clock(),
                actor=audit.cli_actor(),
                action="tags.export",
                subject=str(out_dir)[:255],
                detail=detail,
            )
            db.commit()
    except OSError as exc:
        raise CliError(f"cannot write to {out_dir}: {exc.strerror}") from None
    finally:
        engine.dispose()
    print(f"exported tags and statistics to {out_dir} in {time.monotonic() - started:.1f} s")
    for name, count in zip(FILES, (counts.tags, counts.statistics), strict=True):
        print(f"  {name:<16} {count} rows")
    return 0


def _local_day(text: str, option: str, offset_minutes: int) -> datetime | None:
    """The UTC instant a local day (YYYY-MM-DD, the chain's time zone) starts at; None for no day."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise CliError(f"{option} {text!r} is not a date (2026-11-20, a day in the chain's local time)", 2) from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(minutes=offset_minutes)


def _shown(value: object) -> str:
    """A till's or source's text for a terminal: control characters (an escape sequence) shown as "?"."""
    return "".join(c if c.isprintable() else "?" for c in str(value))


def cmd_receipts(args: argparse.Namespace) -> int:
    """List the receipts set aside (a copy of a stored receipt's number with another total), per store and day."""
    with cli_session(args) as (db, config):
        offset = config.customers_utc_offset_minutes
        since = _local_day(args.since, "--since", offset)
        last = _local_day(args.until, "--until", offset)
        until = None if last is None else last + timedelta(days=1)  # --until is the last day listed
        if since is not None and until is not None and until <= since:
            raise CliError("--until is before --since: no day to list", 2)
        found = set_aside.listing(db.connection(), store=args.store or None, since=since, until=until)
        writer = SpreadsheetWriter(sys.stdout)
        if args.csv:
            writer.writerow(set_aside.COLUMNS)
        count, days = 0, set()
        for receipt in found:
            row = receipt.row(offset)
            count += 1
            if args.csv:
                writer.writerow(row)
                continue
            store, day, at, register, number, total, counted, _, reason, sender = row[:10]
            if (store, day) not in days:
                days.add((store, day))
                print(f"{store} {day}")
            print(
                f"  {str(at)[11:]}  register {_shown(register) or '-'}  receipt {_shown(number)}  {total}"
                f"  (counted: {counted})"
            )
            print(f"      {reason}; sent by {_shown(sender)}")
        db.rollback()  # read only
    print(f"{PROG}: {count} receipts set aside, counted nowhere", file=sys.stderr)
    return 0


def _receipts_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("set-aside",))
    parser.add_argument("--store", default="", metavar="STORE", help="only this store's receipts")
    parser.add_argument("--since", default="", metavar="DATE", help="from this local day (YYYY-MM-DD)")
    parser.add_argument("--until", default="", metavar="DATE", help="through this local day (YYYY-MM-DD)")
    parser.add_argument("--csv", action="store_true", help="CSV on stdout (a header row, then a row a receipt)")


def _catalog_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE.csv", help="CSV with the columns sku, name, category (gtin, brand)")
    parser.add_argument("--encoding", help="the file's encoding (default: UTF-8 with or without BOM, else GB18030)")


def _recompute_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--statistics", action="store_true", help="recompute every customer's statistics from the events first"
    )


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="directory for tags.csv and statistics.csv, each owner-only (0600); created 0700 if missing",
    )


COMMANDS = [
    Command("load-catalog", cmd_load_catalog, "load the product catalogue from CSV", _catalog_arguments),
    Command("recompute-tags", cmd_recompute_tags, "recompute the built-in tags (set-based)", _recompute_arguments),
    Command("export-tags", cmd_export_tags, "write tags.csv and statistics.csv to a directory", _export_arguments),
    Command(
        "receipts",
        cmd_receipts,
        "set-aside: the receipts kept as evidence and counted nowhere (a receipt number again with another total)",
        _receipts_arguments,
    ),
]
