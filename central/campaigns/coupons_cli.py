"""``central-server coupons ...``: create and list campaigns, issue and revoke codes, review conflicts.

    central-server coupons create --name double-11 --value 10 --valid-from 2026-11-11T00:00+08:00 \\
        --valid-to 2026-11-12T00:00+08:00 --max-redemptions 5000 --per-store-offline-budget 50 [--stores S001 S002]
    central-server coupons list
    central-server coupons issue double-11 --member M123        # the member's code (same on every claim)
    central-server coupons issue double-11 --count 500          # anonymous codes, one a line
    central-server coupons revoke SERIAL
    central-server coupons conflicts [--all] [--kind double_redemption]
    central-server coupons resolve ID --resolution "cashier refunded"

Every change writes an audit row (actor ``cli``) and republishes the ``coupons`` downlink document
where the stores' copy changes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from central import audit, secret_key
from central.campaigns import coupon_conflicts, coupons, liability
from central.campaigns.coupon_models import CouponCode, CouponConflict
from central.cli import PROG, CliError, Command, cli_session
from central.clock import offset_text, system_clock
from central.params import ROW_COUNT, id_argument

ACTOR = audit.cli_actor()


@contextmanager
def _session(args: argparse.Namespace) -> Iterator[tuple[Session, bytes]]:
    with cli_session(args) as (db, config):
        yield db, secret_key.for_session(db, config.secret_key_path)


def _time(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"{option} {text!r} is not a time such as 2026-12-01T00:00+08:00", status=2) from None
    if moment.tzinfo is None:
        raise CliError(f"{option} {text!r} needs a UTC offset, e.g. 2026-12-01T00:00+08:00", status=2)
    return moment


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, ensure_ascii=False, indent=2))


def cmd_create(args: argparse.Namespace) -> int:
    """Create a campaign and publish it to the stores."""
    now = system_clock()
    with _session(args) as (db, secret):
        try:
            campaign = coupons.create_campaign(
                db,
                name=args.name,
                value=coupons.parse_value(args.value),
                valid_from=_time(args.valid_from, "--valid-from"),
                valid_to=_time(args.valid_to, "--valid-to"),
                max_redemptions=args.max_redemptions,
                offline_budget=args.per_store_offline_budget,
                stores=args.stores,
                now=now,
                actor=ACTOR,
                secret=secret,
            )
        except coupons.CouponError as exc:
            raise CliError(str(exc), status=2) from None
        db.commit()
    print(
        f"{PROG}: campaign {campaign.name} created (id {campaign.id}); stores get it at their next sync",
        file=sys.stderr,
    )
    _print_json(campaign.to_json())
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """List campaigns: id, name, value, validity, issued/redeemed/max, offline budget, stores."""
    with cli_session(args) as (db, config):
        secret_key.for_session(db, config.secret_key_path)  # refused with another key, as every coupons command
        rows = coupons.list_campaigns(db)
        owed = {row.campaign_id: row for row in liability.liabilities(db, system_clock())}
    if args.json:
        _print_json([{**c.to_json(), **owed[c.id].to_json()} if c.id in owed else c.to_json() for c in rows])
        return 0
    # In the chain's local time, as the console shows it, with the offset in the heading.
    offset = timedelta(minutes=config.customers_utc_offset_minutes)
    zone = f"VALID (UTC{offset_text(config.customers_utc_offset_minutes)})"
    head = f"{'ID':>4}  {'NAME':<24} {'VALUE':>8}  {zone:<33} {'ISSUED':>7} {'REDEEMED':>9} {'MAX':>8}"
    print(f"{head} {'BUDGET':>6} {'OUTSTANDING':>11} {'OWED':>12}  STORES")
    for c in rows:
        valid = f"{c.valid_from + offset:%Y-%m-%d %H:%M} - {c.valid_to + offset:%Y-%m-%d %H:%M}"
        stores = "all" if c.stores is None else ",".join(c.stores)
        print(
            f"{c.id:>4}  {c.name:<24} {c.value:>8}  {valid:<33} {c.issued:>7} {c.redeemed:>9} "
            f"{c.max_redemptions:>8} {c.offline_budget:>6} {owed[c.id].outstanding:>11}"
            f" {owed[c.id].outstanding_value / 100:>12.2f}  {stores}"
        )
    return 0


def cmd_issue(args: argparse.Namespace) -> int:
    """Print codes, one a line: the member's (with --member) or --count anonymous ones."""
    if (args.member is None) == (args.count is None):
        raise CliError("give exactly one of --member MEMBER_ID or --count N", status=2)
    now = system_clock()
    with _session(args) as (db, secret):
        try:
            if args.member is not None:
                issued = [coupons.issue_for_member(db, args.campaign, args.member, now=now, actor=ACTOR, secret=secret)]
            else:
                issued = coupons.issue_anonymous(db, args.campaign, args.count, now=now, actor=ACTOR, secret=secret)
        except coupons.CouponError as exc:
            raise CliError(str(exc), status=2) from None
        db.commit()
    print(f"{PROG}: {len(issued)} code(s) for campaign {args.campaign}", file=sys.stderr)
    for item in issued:
        print(item.code)
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """Revoke one code by serial."""
    with _session(args) as (db, secret):
        try:
            coupons.revoke(db, args.serial, now=system_clock(), actor=ACTOR, secret=secret)
        except coupons.CouponError as exc:
            raise CliError(str(exc), status=2) from None
        db.commit()
    print(f"{PROG}: code {args.serial} revoked; stores refuse it after their next sync", file=sys.stderr)
    return 0


def cmd_conflicts(args: argparse.Namespace) -> int:
    """Print redemptions flagged for review as JSON, newest first."""
    with _session(args) as (db, _):
        rows = coupon_conflicts.list_conflicts(db, open_only=not args.all, kind=args.kind, limit=args.limit)
        _print_json([coupon_conflicts.conflict_json(r) for r in rows])
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    """Close a conflict with what was decided."""
    with _session(args) as (db, _):
        try:
            coupon_conflicts.resolve_conflict(db, args.id, args.resolution, now=system_clock(), actor=ACTOR)
        except coupons.CouponError as exc:
            raise CliError(str(exc), status=2) from None
        db.commit()
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    # --config is also accepted after the action; SUPPRESS keeps one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="TOML config file")
    sub = parser.add_subparsers(dest="coupons_command", required=True, metavar="ACTION")
    p = sub.add_parser("create", parents=[common], help="create a campaign")
    p.set_defaults(func=cmd_create)
    p.add_argument("--name", required=True)
    p.add_argument("--value", required=True, help="amount off, e.g. 10 or 12.50")
    p.add_argument("--valid-from", required=True, help="ISO 8601 with offset, e.g. 2026-12-01T00:00+08:00")
    p.add_argument("--valid-to", required=True)
    p.add_argument("--max-redemptions", type=int, required=True, help="redemptions central applies in all")
    p.add_argument("--per-store-offline-budget", type=int, required=True, help="codes one store may redeem on its own")
    p.add_argument("--stores", nargs="+", help="store ids (default: every store)")
    p = sub.add_parser("list", parents=[common], help="list campaigns")
    p.set_defaults(func=cmd_list)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("issue", parents=[common], help="issue a member's code or anonymous codes")
    p.set_defaults(func=cmd_issue)
    p.add_argument("campaign", help="campaign id or name")
    p.add_argument("--member", help="member id: prints that member's code (the same on every claim)")
    p.add_argument("--count", type=int, help="number of anonymous codes")
    p = sub.add_parser("revoke", parents=[common], help="revoke one code")
    p.set_defaults(func=cmd_revoke)
    p.add_argument("serial", type=id_argument(CouponCode.serial))
    p = sub.add_parser("conflicts", parents=[common], help="redemptions flagged for review")
    p.set_defaults(func=cmd_conflicts)
    p.add_argument("--all", action="store_true", help="resolved ones too")
    p.add_argument("--kind")
    p.add_argument("--limit", type=ROW_COUNT, default=100)
    p = sub.add_parser("resolve", parents=[common], help="close a conflict")
    p.set_defaults(func=cmd_resolve)
    p.add_argument("id", type=id_argument(CouponConflict.id))
    p.add_argument("--resolution", required=True)


def _usage(args: argparse.Namespace) -> int:
    raise CliError("give an action: create, list, issue, revoke, conflicts, resolve", status=2)


COMMANDS = [Command("coupons", _usage, "coupon campaigns, codes and redemption conflicts", _arguments)]
