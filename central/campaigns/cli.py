"""Campaign commands: declare a trigger, run a scheduled job now, write a trigger's export list, report its effect."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from central import audit
from central.campaigns import triggers
from central.campaigns.actions import write_export
from central.campaigns.triggers import local_today
from central.cli import PROG, CliError, Command, existing_database, load
from central.clock import system_clock
from central.csvfiles import open_private

OPERATOR = audit.cli_actor()


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
            audit.record(
                db,
                at=now,
                actor=OPERATOR,
                action="trigger.declare",
                subject=f"trigger:{args.name}",
                detail={**declared.audited(), "id": trigger_id},
            )
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
    """Write the customers a trigger added to its export list, and may still reach, as CSV (customer_id, occasion,
    added_at)."""
    config, path = load(args)
    engine = existing_database(config, path)
    try:
        with Session(engine) as db:
            trigger = triggers.trigger_named(db, args.name)
            if trigger is None:
                raise CliError(f"no trigger {args.name!r}", status=2)
            target = nullcontext(sys.stdout) if args.out == "-" else open_private(Path(args.out))
            with target as out:
                count = write_export(db, trigger, local_today(system_clock(), config.triggers_timezone), out)
            audit.record(
                db,
                at=system_clock(),
                actor=OPERATOR,
                action="trigger.export",
                subject=f"trigger:{args.name}",
                detail={"rows": count},
            )
            db.commit()
    finally:
        engine.dispose()
    print(f"{PROG}: {count} customers of trigger {args.name} written to {args.out}", file=sys.stderr)
    return 0


def cmd_trigger_report(args: argparse.Namespace) -> int:
    """Print a trigger's effect report: action group against control group."""
    from central.campaigns.effect import UnknownTrigger, effect_report

    as_of: datetime | None = system_clock()
    if args.as_of:
        try:
            as_of = datetime.fromisoformat(args.as_of.replace("Z", "+00:00"))
        except ValueError:
            as_of = None
        if as_of is None or as_of.tzinfo is None:
            raise CliError("--as-of takes ISO 8601 with an offset, e.g. 2027-01-29T12:00:00Z", status=2)
    config, path = load(args)
    engine = existing_database(config, path)
    try:
        with Session(engine) as db:
            try:
                found = effect_report(
                    db, args.name, args.weeks, now=as_of, offset_minutes=config.customers_utc_offset_minutes
                )
            except UnknownTrigger as exc:
                raise CliError(str(exc), status=2) from None
            except ValueError as exc:
                raise CliError(str(exc), status=2) from None
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(found.to_json(), indent=2))
        return 0
    print(
        f"trigger {found.trigger} ({found.kind}, action {found.action_name}), {found.weeks} weeks after each occasion"
    )
    print(f"{'':22}{'action':>12}{'control':>12}")
    for label, field in (
        ("occasions", "occasions"),
        ("coupons issued", "coupons"),
        ("redeemed", "redeemed"),
        ("redemption rate", "redemption_rate"),
        ("repurchased", "repurchased"),
        ("repurchase rate", "repurchase_rate"),
        ("spent", "spent"),
        ("spend per customer", "spend_per_customer"),
    ):
        a, c = getattr(found.action, field), getattr(found.control, field)
        print(f"{label:22}{_cell(a):>12}{_cell(c):>12}")
    print(f"repurchase uplift: {_cell(found.repurchase_uplift)}; windows still open: {found.open_windows}")
    return 0


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1%}"
    return str(value)


def _add_trigger_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="trigger name (lower-case letters, digits, '_', '.', '-')")
    parser.add_argument(
        "--kind", default="birthday", help="when it fires: birthday, second_item, win_back, repurchase_due, complaint"
    )
    parser.add_argument(
        "--params", default="{}", help='JSON, for birthday: {"days_before": 3, "channel": "sms"} (channel required)'
    )
    parser.add_argument("--action", required=True, help="what it does: coupon, export, webhook (or a registered one)")
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
    parser.add_argument("--out", default="-", help="CSV file to write, owner-only (0600) (default: standard output)")


def _trigger_arguments(parser: argparse.ArgumentParser) -> None:
    # --config is also accepted after the action; SUPPRESS keeps one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="TOML config file")
    sub = parser.add_subparsers(dest="trigger_command", required=True, metavar="ACTION")
    p = sub.add_parser("report", parents=[common], help="effect report: action group against control group")
    p.set_defaults(func=cmd_trigger_report)
    p.add_argument("name", help="trigger name")
    p.add_argument("--weeks", type=int, default=4, help="weeks after each occasion (4)")
    p.add_argument("--as-of", help="report as of this time (ISO 8601 with offset; default now)")
    p.add_argument("--json", action="store_true", help="print JSON, as the API returns it")


def _trigger_usage(args: argparse.Namespace) -> int:
    raise CliError("give an action: report", status=2)


COMMANDS = [
    Command("add-trigger", cmd_add_trigger, "declare a trigger (birthday) and its action", _add_trigger_arguments),
    Command("run-job", cmd_run_job, "run a scheduled job now, under its lease", _run_job_arguments),
    Command("trigger-export", cmd_trigger_export, "write a trigger's export list as CSV", _export_arguments),
    Command("trigger", _trigger_usage, "trigger reports (trigger report NAME)", _trigger_arguments),
]
