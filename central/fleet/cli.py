"""Fleet commands: enrollment tokens for store PCs."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta

from sqlalchemy.orm import Session

from central import audit
from central.cli import PROG, CliError, Command, engine_for, load, ready_schema
from central.clock import system_clock
from central.fleet.enrollment import STORE_ID_RE, issue_token


def cmd_enroll_token(args: argparse.Namespace) -> int:
    """Print a single-use enrollment token for a store (only the token goes to stdout)."""
    if not STORE_ID_RE.match(args.store):
        raise CliError(f"store id {args.store!r} must be 1-32 characters of A-Z, a-z, 0-9, _ . -", status=2)
    config, _ = load(args)
    ttl = args.ttl_hours if args.ttl_hours is not None else config.enroll_token_ttl_hours
    if ttl <= 0:
        raise CliError("--ttl-hours must be positive", status=2)
    engine = engine_for(config)
    now = system_clock()
    try:
        ready_schema(config, engine)
        with Session(engine) as db:
            token = issue_token(db, args.store, ttl, now=now)
            expires = now + timedelta(hours=ttl)
            audit.record(
                db,
                at=now,
                actor="cli",
                action="enroll_token.create",
                subject=args.store,
                detail={"expires_at": expires.isoformat()},
            )
            db.commit()
    finally:
        engine.dispose()
    print(
        f"{PROG}: enrollment token for store {args.store}, single use, valid until {expires:%Y-%m-%d %H:%M} UTC",
        file=sys.stderr,
    )
    print(token)
    return 0


def _enroll_token_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, metavar="STORE_ID")
    parser.add_argument(
        "--ttl-hours", type=float, metavar="H", help="lifetime in hours (default: enroll.token_ttl_hours)"
    )


COMMANDS = [
    Command(
        "enroll-token",
        cmd_enroll_token,
        "print a single-use enrollment token for a store",
        _enroll_token_arguments,
    ),
]
