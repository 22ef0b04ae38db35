"""Campaign commands: declare a trigger, run a scheduled job now, write a trigger's export list."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from central import audit
from central.campaigns import triggers
from central.campaigns.models import ExportEntry, Trigger
from central.cli import PROG, CliError, Command, existing_database, load
from central.clock import system_clock
from central.models import table

OPERATOR = "cli"


def cmd_add_trigger(args: argparse.Namespace) -> int:
    """Declare a trigger from the command line."""
    try:
        params = json.loads(args.params)
        action_params = json.loads(args.action_params)
    except json.JSONDecodeError as exc:
        raise CliError(f"--params and --action-params take a JSON object: {exc}", status=2) from None
    if not isinstance(params, dict) or not isinstance(action_params, dict):
        raise CliError("--params and --action-params take a JSON object", status=2)
    config, path = load(args)
    engine = existing_database(config, path)
    try:
        with Session(engine) as db:
            now = system_clock()
            try:
                declared = triggers.check(
                    args.name, args.kind, params, args.action, action_params, args.control_percent
                )
                trigger_id = triggers.declare(db, declared, actor=OPERATOR, now=now)
            except triggers.TriggerError as exc:
                raise CliError(str(exc), status=2) from None
            audit.record(db, at=now, actor=OPERATOR, action="trigger.declare", subject=f"trigger:{args.name}")
            db.commit()
    finally:
        engine.dispose()
    print(f"{PROG}: trigger {args.name} declared (id {trigger_id})")
    return 0


def cmd_run_job(args: argparse.Namespace) -> int:
    """Run one scheduled job now, under the same lease as the scheduler's runs."""
    from central import scheduler

    if args.job not in scheduler.JOBS:
        raise CliError(f"no job {args.job!r}; jobs: {', '.join(sorted(scheduler.JOBS))}", status=2)
    config, path = load(args)
    engine = existing_database(config, path)
    try:
        status = scheduler.run_now(sessionmaker(bind=engine, expire_on_commit=False), config, args.job, system_clock)
    finally:
        engine.dispose()
    if status is None:
        raise CliError(f"job {args.job} is running on another instance; try again when it has finished")
    print(f"{PROG}: job {args.job} {status}")
    return 0 if status == "ok" else 1


def cmd_trigger_export(args: argparse.Namespace) -> int:
    """Write the customers a trigger added to its export list as CSV (customer_id, occasion, added_at)."""
    config, path = load(args)
    engine = existing_database(config, path)
    exports, all_triggers = table(ExportEntry), table(Trigger)
    try:
        with Session(engine) as db:
            trigger_id = db.scalar(select(all_triggers.c.id).where(all_triggers.c.name == args.name))
            if trigger_id is None:
                raise CliError(f"no trigger {args.name!r}", status=2)
            rows = db.execute(
                select(exports.c.customer_id, exports.c.occasion, exports.c.added_at)
                .where(exports.c.trigger_id == trigger_id)
                .order_by(exports.c.id)
            )
            out = sys.stdout if args.out == "-" else Path(args.out).open("w", newline="", encoding="utf-8")  # noqa: SIM115
            try:
                writer = csv.writer(out)
                writer.writerow(["customer_id", "occasion", "added_at"])
                count = 0
                for customer_id, occasion, added_at in rows:
                    writer.writerow([customer_id, occasion, added_at.isoformat().replace("+00:00", "Z")])
                    count += 1
            finally:
                if out is not sys.stdout:
                    out.close()
    finally:
        engine.dispose()
    print(f"{PROG}: {count} customers of trigger {args.name} written to {args.out}", file=sys.stderr)
    return 0


def _add_trigger_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="trigger name (lower-case letters, digits, '_', '.', '-')")
    parser.add_argument("--kind", default="birthday", help="when it fires (birthday)")
    parser.add_argument(
        "--params", default="{}", help='JSON, for birthday: {"days_before": 3, "channel": "sms"} (channel required)'
    )
    parser.add_argument("--action", required=True, help="what it does: export, webhook (or a registered action)")
    parser.add_argument(
        "--action-params", default="{}", help='JSON, for webhook: {"url": "https://...", "secret": "16+ characters"}'
    )
    parser.add_argument(
        "--control-percent", type=float, default=triggers.DEFAULT_CONTROL_PERCENT, help="control group share (10)"
    )


def _run_job_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="job name (see GET /api/v1/jobs): triggers, webhooks")


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="trigger name")
    parser.add_argument("--out", default="-", help="CSV file to write (default: standard output)")


COMMANDS = [
    Command("add-trigger", cmd_add_trigger, "declare a trigger (birthday) and its action", _add_trigger_arguments),
    Command("run-job", cmd_run_job, "run a scheduled job now, under its lease", _run_job_arguments),
    Command("trigger-export", cmd_trigger_export, "write a trigger's export list as CSV", _export_arguments),
]
