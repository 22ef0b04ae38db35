"""``central-server customer``: answer a person's request for a copy of their data, or for its erasure."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy.orm import Session

from central import audit, secret_key
from central.cli import PROG, CliError, Command, cli_session
from central.clock import system_clock
from central.config import CentralConfig
from central.identity.models import Customer
from central.identity.registry import load_registry
from central.params import id_argument
from central.privacy import access, erasure, subjects

ACTOR = audit.cli_actor()


def _subject(db: Session, args: argparse.Namespace) -> int:
    if (args.customer is None) == (args.type is None):
        raise CliError("name the customer by ID, or by --type and --value (not both)", status=2)
    try:
        return subjects.find(
            db, load_registry(args.config_object), customer_id=args.customer, kind=args.type, value=args.value or ""
        )
    except subjects.SubjectError as exc:
        raise CliError(str(exc), status=2) from None


def cmd_customer(args: argparse.Namespace) -> int:
    """Run ``customer export-data`` or ``customer erase``."""
    with cli_session(args) as (db, config):
        args.config_object = config
        customer_id = _subject(db, args)
        if args.action == "export-data":
            return _export(db, customer_id, args.out)
        return _erase(db, config, customer_id, args)


def _export(db: Session, customer_id: int, out: Path | None) -> int:
    if out is None:
        raise CliError("export-data needs --out FILE", status=2)
    now = system_clock()
    try:
        written = access.export_file(db, customer_id, out, now=now)
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror or exc}") from None
    audit.record(
        db, at=now, actor=ACTOR, action="privacy.export", subject=f"customer:{customer_id}", detail=written.counts
    )
    db.commit()
    print(f"{PROG}: everything held about customer {customer_id} written to {out} (mode 0600)", file=sys.stderr)
    return 0


def _erase(db: Session, config: CentralConfig, customer_id: int, args: argparse.Namespace) -> int:
    done = erasure.erasure_of(db, customer_id)
    if done is not None:
        print(f"{PROG}: customer {customer_id} was already erased on {done.erased_at:%Y-%m-%d %H:%M} UTC")
        return 0
    if not args.reason or not args.reason.strip():
        raise CliError("erase needs --reason TEXT (the request's ticket, never the person's details)", status=2)
    if not args.yes:
        planned = erasure.plan(db, customer_id, registry=load_registry(config))
        shown = ", ".join(f"{name} {n}" for name, n in planned.counts.items())
        print(f"customer {customer_id} would be erased: {shown}")
        print(f"{PROG}: nothing erased; run again with --yes to erase", file=sys.stderr)
        return 2
    needed = erasure.revokes_member_keys(db, customer_id)
    secret = secret_key.for_session(db, config.secret_key_path) if needed else None
    now = system_clock()
    try:
        result = erasure.erase(
            db, customer_id, now=now, operator=ACTOR, reason=args.reason, secret=secret, registry=load_registry(config)
        )
    except erasure.ErasureError as exc:
        raise CliError(str(exc)) from None
    audit.record(
        db, at=now, actor=ACTOR, action="privacy.erase", subject=f"customer:{customer_id}", detail=result.counts
    )
    db.commit()
    shown = ", ".join(f"{name} {n}" for name, n in result.counts.items())
    print(f"{PROG}: customer {customer_id} erased ({shown})")
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["export-data", "erase"])
    parser.add_argument("customer", nargs="?", type=id_argument(Customer.id), metavar="CUSTOMER_ID")
    parser.add_argument("--type", help="find the customer by an identifier instead: phone, member_id, member_card...")
    parser.add_argument("--value", help="the identifier's value as typed (with --type)")
    parser.add_argument("--out", type=Path, metavar="FILE", help="export-data: the JSON file to write (mode 0600)")
    parser.add_argument("--reason", help="erase: why (the request's ticket); kept with the erasure")
    parser.add_argument("--yes", action="store_true", help="erase: do it (without it, only say what would go)")


COMMANDS = [
    Command(
        "customer",
        cmd_customer,
        "a person's requests: export-data (a copy of everything held) or erase",
        _arguments,
    )
]
