"""``central-server sales daily``: sales per store and local day, as the console's daily sales page counts them.

    central-server sales daily --from 2026-11-01 --to 2026-11-30 [--store S001 ...] [--csv FILE]

Without ``--csv`` it prints a tab-separated table with a totals line; with it, the CSV the console
downloads (owner-only, cells safe for spreadsheets), and an audit row ``sales.export``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from central import audit
from central.cli import PROG, CliError, Command, cli_session
from central.clock import system_clock
from central.csvfiles import write_csv
from central.customers import daily_sales


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date such as 2026-11-30") from None


def cmd_daily(args: argparse.Namespace) -> int:
    """Print (or write as CSV) the daily sales of the range."""
    try:
        daily_sales.check_range(args.first, args.last)
    except daily_sales.RangeError as exc:
        raise CliError(f"--from {args.first} --to {args.last}: {exc}", status=2) from None
    stores = tuple(sorted(set(args.store))) if args.store else None
    with cli_session(args) as (db, config):
        rows = daily_sales.daily_sales(db, args.first, args.last, config.customers_utc_offset_minutes, stores)
        if args.csv is not None:
            written = write_csv(args.csv, daily_sales.CSV_HEADER, (daily_sales.csv_row(r) for r in rows))
            detail: dict[str, object] = {"from": args.first.isoformat(), "to": args.last.isoformat(), "rows": written}
            if stores is not None:
                detail["stores"] = list(stores)
            audit.record(
                db, at=system_clock(), actor=audit.cli_actor(), action="sales.export", subject="sales:daily",
                detail={"via": "cli", "to": str(args.csv), **detail},
            )  # fmt: skip
            db.commit()
            print(f"{PROG}: {written} store-day(s) written to {args.csv}", file=sys.stderr)
            return 0
    print("\t".join(daily_sales.CSV_HEADER))
    for row in rows:
        print("\t".join(str(cell) for cell in daily_sales.csv_row(row)))
    total = daily_sales.csv_row(daily_sales.totals(rows))
    total[0] = "total"
    print("\t".join(str(cell) for cell in total))
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="TOML config file")
    sub = parser.add_subparsers(dest="sales_command", required=True, metavar="ACTION")
    p = sub.add_parser("daily", parents=[common], help="sales per store and local day")
    p.set_defaults(func=cmd_daily)
    p.add_argument("--from", dest="first", type=_day, required=True, help="first local day, e.g. 2026-11-01")
    p.add_argument("--to", dest="last", type=_day, required=True, help="last local day (included)")
    p.add_argument("--store", action="append", help="only this store (repeat for several)")
    p.add_argument("--csv", type=Path, metavar="FILE", help="write CSV to FILE instead of printing a table")


def _usage(args: argparse.Namespace) -> int:
    raise CliError("give an action: daily", status=2)


COMMANDS = [Command("sales", _usage, "sales reports for finance: daily sales per store", _arguments)]
