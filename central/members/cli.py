"""Member commands: show a member's code as the member app would (with a QR image), revoke a member's keys."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from central import audit, secret_key
from central.cli import PROG, CliError, Command, cli_session
from central.clock import system_clock
from central.members import codes, wallet

ACTOR = audit.cli_actor()


_session = cli_session


def cmd_member_code(args: argparse.Namespace) -> int:
    """Print the member code the member's app shows now (and write it as a QR image with --png)."""
    now = datetime.fromtimestamp(args.at, UTC) if args.at is not None else system_clock()
    with _session(args) as (db, config):
        secret = secret_key.for_session(db, config.secret_key_path)
        try:
            code = wallet.member_code(
                db,
                secret,
                config.server_data_dir,
                args.member,
                now=now,
                days=config.members_certificate_days,
                actor=ACTOR,
            )
        except codes.MemberCodeError as exc:
            raise CliError(str(exc), status=2) from None
        db.commit()
    if args.png is not None:
        try:
            wallet.write_png(code, args.png)
        except OSError as exc:
            raise CliError(f"cannot write {args.png}: {exc.strerror or exc}") from None
        print(f"{PROG}: QR image of member {args.member}'s code written to {args.png}", file=sys.stderr)
    print(code)
    return 0


def cmd_member_revoke(args: argparse.Namespace) -> int:
    """Revoke every key of a member; stores refuse their codes once they fetch the new list."""
    now = system_clock()
    with _session(args) as (db, config):
        count = codes.revoke(db, secret_key.for_session(db, config.secret_key_path), args.member, now=now, actor=ACTOR)
        db.commit()
    print(f"{PROG}: revoked {count} key(s) of member {args.member}; stores refuse them after their next sync")
    return 0


def _code_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("member", metavar="MEMBER", help="the member id")
    parser.add_argument("--png", type=Path, metavar="FILE", help="also write the code as a QR image (PNG)")
    parser.add_argument("--at", type=float, metavar="UNIX_TIME", help="the code for this moment instead of now")


def _revoke_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("member", metavar="MEMBER", help="the member id")


COMMANDS = [
    Command("member-code", cmd_member_code, "print a member's code as the member app shows it now", _code_arguments),
    Command("member-revoke", cmd_member_revoke, "revoke a member's app keys at every store", _revoke_arguments),
]
