"""Identity commands: split a customer, remove an identifier for good, work the review queue, rebuild."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from central import audit
from central.cli import PROG, CliError, Command, existing_database, load
from central.clock import system_clock
from central.config import CentralConfig
from central.identity import ledger, review, split
from central.identity.models import Customer, LedgerEntry, ReviewItem
from central.identity.registry import load_registry
from central.params import ROW_COUNT, id_argument
from shared.masking import mask_identifier

OPERATOR = audit.cli_actor()


def _in_session(args: argparse.Namespace, work: Callable[[Session, Any, CentralConfig], int]) -> int:
    config, path = load(args)
    registry = load_registry(config)
    engine = existing_database(config, path)
    try:
        with Session(engine) as db:
            return work(db, registry, config)
    finally:
        engine.dispose()


def cmd_split(args: argparse.Namespace) -> int:
    """Undo one merge or link of a customer (ledger row from `review` or the API's ledger view)."""

    def work(db: Session, registry: Any, config: CentralConfig) -> int:
        now = system_clock()
        try:
            result = split.split(
                db,
                args.customer,
                args.ledger_row,
                now=now,
                operator=OPERATOR,
                registry=registry,
                offset_minutes=config.customers_utc_offset_minutes,
            )
        except split.SplitError as exc:
            raise CliError(str(exc)) from None
        audit.record(
            db,
            at=now,
            actor=OPERATOR,
            action="identity.split",
            subject=f"customer:{args.customer}",
            detail={"ledger_id": args.ledger_row, "customers": result.customers},
        )
        db.commit()
        print(f"{PROG}: customer {args.customer} split into customers {', '.join(map(str, result.customers))}")
        return 0

    return _in_session(args, work)


def cmd_remove_identifier(args: argparse.Namespace) -> int:
    """Remove an identifier from its customer and keep it from ever linking again."""

    def work(db: Session, registry: Any, config: CentralConfig) -> int:
        value, reason = registry.check(args.type, args.value, args.app_id)
        if value is None:
            raise CliError(f"the {args.type} value cannot identify anyone ({reason})", status=2)
        now = system_clock()
        customer = split.remove_identifier(
            db, args.type, value, now=now, operator=OPERATOR, offset_minutes=config.customers_utc_offset_minutes
        )
        shown = mask_identifier(args.type, value)
        audit.record(
            db,
            at=now,
            actor=OPERATOR,
            action="identity.identifier.remove",
            subject=f"{args.type}:{shown}",
            detail={"customer": customer},
        )
        db.commit()
        held = f"taken from customer {customer}" if customer is not None else "held by no customer"
        print(f"{PROG}: {args.type} {shown} removed ({held}); it will not be linked again")
        return 0

    return _in_session(args, work)


def cmd_review(args: argparse.Namespace) -> int:
    """List open review items, or accept / reject one."""

    def work(db: Session, registry: Any, config: CentralConfig) -> int:
        now = system_clock()
        if args.action == "list":
            items, total = review.list_items(db, args.status, args.limit, 0)
            blocked = review.blocked(db, registry, items)
            audit.record(
                db,
                at=now,
                actor=OPERATOR,
                action="identity.review.list",
                detail={"returned": len(items), "customers": review.customers_of(items)},
            )
            db.commit()
            print(f"{total} {args.status} review item(s)")
            for item in items:
                score = f" score {item.score:.2f}" if item.score is not None else ""
                why = f" (cannot be accepted: {blocked[item.id]})" if item.id in blocked else ""
                print(f"#{item.id} {item.reason}: customer {item.customer_id} / {item.other_customer_id}{score}{why}")
            return 0
        if args.item is None:
            raise CliError(f"review {args.action} needs the item number", status=2)
        try:
            if args.action == "accept":
                offset = config.customers_utc_offset_minutes
                done = review.accept(db, registry, args.item, operator=OPERATOR, now=now, offset_minutes=offset)
            else:
                done = review.reject(db, args.item, operator=OPERATOR, now=now)
        except review.ReviewError as exc:
            raise CliError(str(exc)) from None
        audit.record(
            db,
            at=now,
            actor=OPERATOR,
            action=f"identity.review.{args.action}",
            subject=f"review:{args.item}",
            detail={"also": list(done.also)} if done.also else None,
        )
        db.commit()
        also = f"; with it item(s) {', '.join(map(str, done.also))} on the same two customers" if done.also else ""
        print(f"{PROG}: review item {done.item_id} {done.status} (customer {done.customer_id}){also}")
        return 0

    return _in_session(args, work)


def cmd_rebuild(args: argparse.Namespace) -> int:
    """Replay the identity ledger and report (or, with --apply, repair) any difference with the tables."""

    def work(db: Session, registry: Any, config: CentralConfig) -> int:
        found = ledger.rebuild(db, apply=args.apply)
        db.commit()
        print(
            f"ledger rows {found.links}, identifier mismatches"
            f" {found.identifier_mismatches}, customer mismatches {found.customer_mismatches}"
            + (" (repaired)" if args.apply and (found.identifier_mismatches or found.customer_mismatches) else "")
        )
        return 0 if args.apply or not (found.identifier_mismatches or found.customer_mismatches) else 1

    return _in_session(args, work)


def _split_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--customer", type=id_argument(Customer.id), required=True, metavar="ID")
    parser.add_argument(
        "--ledger-row", type=id_argument(LedgerEntry.id), required=True, metavar="N", help="the merge or link to undo"
    )


def _remove_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--type", required=True, help="identifier type, e.g. phone, member_card")
    parser.add_argument("--value", required=True, help="the value as typed; it is normalized first")
    parser.add_argument("--app-id", help="the app for app-scoped types (wechat_openid, app_user_id)")


def _review_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "accept", "reject"])
    parser.add_argument("item", nargs="?", type=id_argument(ReviewItem.id), help="review item number (accept, reject)")
    parser.add_argument("--status", default="open", choices=["open", "accepted", "rejected"])
    parser.add_argument("--limit", type=ROW_COUNT, default=50)


def _rebuild_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--apply", action="store_true", help="repair the tables where they differ from the ledger")


COMMANDS = [
    Command("split", cmd_split, "undo a merge or link of a customer by replaying its ledger", _split_arguments),
    Command(
        "remove-identifier", cmd_remove_identifier, "remove an identifier for good (a tombstone)", _remove_arguments
    ),
    Command("review", cmd_review, "list, accept or reject identity review items", _review_arguments),
    Command(
        "rebuild-identity", cmd_rebuild, "check (or repair) the identity graph against its ledger", _rebuild_arguments
    ),
]
