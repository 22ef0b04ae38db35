"""Account and audit commands: ``user add|list|disable|enable|reset-password|reset-two-step|throttled``,
``audit verify|list``.

A new or reset password is read from the first line of stdin with ``--password-stdin``; otherwise
one is generated and printed once on stdout (everything else goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from central import audit
from central.accounts import passwords, throttle, two_step, users
from central.accounts.roles import ROLES
from central.cli import PROG, CliError, Command, cli_session
from central.clock import system_clock
from shared.crypto import load_or_create_key

ACTOR = audit.cli_actor()
USER_ACTIONS = ("add", "list", "disable", "enable", "reset-password", "reset-two-step", "throttled", "set-stores")


@contextmanager
def _session(args: argparse.Namespace) -> Iterator[Session]:
    with cli_session(args) as (db, _config):
        yield db


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    if not args.password_stdin:
        return passwords.generate(), True
    password = sys.stdin.readline().rstrip("\r\n")
    try:
        passwords.check_policy(password, getattr(args, "username", "") or "")
    except passwords.PasswordError as exc:
        raise CliError(str(exc)) from None
    return password, False


def _show_generated(password: str, generated: bool) -> None:
    if generated:
        print(f"{PROG}: generated password follows on stdout; it is not shown again", file=sys.stderr)
        print(password)


def _disabled_hint(user: users.UserSummary) -> str:
    """For a message that ends at the user's name: how to enable them again, if they are disabled."""
    if user.disabled_at is None:
        return ""
    return f", disabled: `{PROG} user enable {user.username}` lets it log in again"


def disabled_note(user: users.UserSummary) -> str:
    """For a message about a user's password: that it does not let a disabled user in."""
    if user.disabled_at is None:
        return ""
    return f", which is disabled: it cannot log in until `{PROG} user enable {user.username}`"


def _throttled(args: argparse.Namespace) -> int:
    """Print each name, browser and address refusing console logins now, with its refusals since."""
    with cli_session(args) as (db, config):
        now = system_clock()
        found = throttle.blocks(db, now=now, rules=throttle.Rules.of(config))
        accounts = {u.username.lower() for u in users.listing(db)}
        db.rollback()
    secret = load_or_create_key(config.secret_key_path)
    for block in found:
        who = block.value
        if block.kind == "account" and who not in accounts:
            who = f"(unknown) {throttle.name_hash(secret, who)}"  # as the audit log names it
        until = block.until.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        print(f"{block.kind}\t{who}\t{block.failures}\t{block.refused}\t{until}")
    print(f"{PROG}: {len(found)} blocked; columns: kind, who, failures, refused since, until", file=sys.stderr)
    return 0


def _reset_two_step(args: argparse.Namespace, now: datetime) -> int:
    """Turn a user's two-step sign-in off (a lost phone): they sign in with the password and set it up again."""
    with _session(args) as db:
        try:
            was_on, ended = two_step.reset(db, args.username, now=now, actor=ACTOR)
        except two_step.TwoStepError as exc:
            raise CliError(str(exc)) from None
        user = users.summary(db, args.username)
        db.commit()
    role = user.role if user is not None else ""
    if was_on:
        print(
            f"{PROG}: two-step sign-in of {role} user {args.username!r} is off; {ended} session(s) ended; at the"
            " next login it signs in with the password and, if its role requires two-step sign-in, sets it up again",
            file=sys.stderr,
        )
    else:
        said = f"{PROG}: {role} user {args.username!r} had no two-step sign-in; {ended} session(s) ended"
        print(said, file=sys.stderr)
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    """Manage console users."""
    if args.action == "throttled":
        return _throttled(args)
    if args.action != "list" and not args.username:
        raise CliError(f"`user {args.action}` needs a username", status=2)
    if args.action == "list":
        with _session(args) as db:
            rows = users.listing(db)
            with_two_step = two_step.enabled_user_ids(db)
        for u in rows:
            state = "disabled" if u.disabled_at else "active"
            stores = ",".join(u.stores) or "-"
            sign_in = "two-step" if u.id in with_two_step else "password-only"
            print(f"{u.username}\t{u.role}\t{stores}\t{state}\t{sign_in}")
        return 0
    now = system_clock()
    if args.action == "reset-two-step":
        return _reset_two_step(args, now)
    if args.action == "add":
        password, generated = _password(args)
        with _session(args) as db:
            existing = users.summary(db, args.username)
            if existing is not None:
                raise CliError(f"user {args.username!r} already exists{_disabled_hint(existing)}")
            try:
                users.add(db, args.username, args.role, password, stores=tuple(args.store), now=now, actor=ACTOR)
            except users.AccountError as exc:
                raise CliError(str(exc), status=2 if "already exists" not in str(exc) else 1) from None
            db.commit()
        print(f"{PROG}: created {args.role} user {args.username!r}", file=sys.stderr)
        _show_generated(password, generated)
        return 0
    if args.action == "set-stores":
        with _session(args) as db:
            try:
                had = users.set_stores(db, args.username, tuple(args.store), now=now, actor=ACTOR)
            except users.AccountError as exc:
                raise CliError(str(exc), status=1 if str(exc).startswith("no user") else 2) from None
            db.commit()
        shown = ", ".join(sorted(set(args.store)))
        print(f"{PROG}: {args.username!r} now manages {shown} (was {', '.join(had) or '-'})", file=sys.stderr)
        return 0
    if args.action == "disable":
        with _session(args) as db:
            try:
                ended = users.disable(db, args.username, now=now, actor=ACTOR)
            except users.AccountError as exc:
                raise CliError(str(exc)) from None
            db.commit()
        print(f"{PROG}: disabled {args.username!r}; {ended} session(s) ended", file=sys.stderr)
        return 0
    if args.action == "enable":
        with _session(args) as db:
            try:
                enabled = users.enable(db, args.username, now=now, actor=ACTOR)
            except users.AccountError as exc:
                raise CliError(str(exc)) from None
            user = users.summary(db, args.username)
            db.commit()
        role = user.role if user is not None else ""
        if enabled:
            print(
                f"{PROG}: enabled {role} user {args.username!r}; it logs in with the password it had", file=sys.stderr
            )
        else:
            print(f"{PROG}: {role} user {args.username!r} is not disabled; nothing changed", file=sys.stderr)
        return 0
    password, generated = _password(args)
    with _session(args) as db:
        try:
            ended = users.reset_password(db, args.username, password, now=now, actor=ACTOR)
        except users.AccountError as exc:
            raise CliError(str(exc)) from None
        user = users.summary(db, args.username)
        db.commit()
    whose = f"{args.username!r}" if user is None else f"{user.role} user {args.username!r}{disabled_note(user)}"
    print(f"{PROG}: new password for {whose}; {ended} session(s) ended", file=sys.stderr)
    _show_generated(password, generated)
    return 0


def _user_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=USER_ACTIONS)
    parser.add_argument("username", nargs="?", default="")
    parser.add_argument("--role", choices=ROLES, default="marketing", help="role of a new user (default: marketing)")
    parser.add_argument(
        "--store",
        action="append",
        default=[],
        metavar="STORE",
        help="a store manager's store (repeat for more); with set-stores, all of them",
    )
    parser.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")


def _since(text: str) -> datetime | None:
    """``--since``: a date (its midnight, UTC) or a time; one without an offset is UTC."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"--since {text!r} is not a date or time (2026-11-01 or 2026-11-01T08:00:00+08:00)", 2) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _list_audit(args: argparse.Namespace) -> int:
    since = _since(args.since)
    with _session(args) as db:
        for row in audit.listing(db, since=since, action=args.action_name, actor=args.actor):
            shown = audit.row_json(row)
            if args.json:
                print(json.dumps(shown, ensure_ascii=False))
            else:
                detail = json.dumps(row.detail, ensure_ascii=False, sort_keys=True) if row.detail is not None else ""
                print("\t".join((str(row.id), shown["at"], row.actor, row.action, row.subject, detail)))
        db.rollback()  # read only
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Check the audit log's hash chain, or list its rows."""
    if args.action == "list":
        return _list_audit(args)
    with _session(args) as db:
        verdict = audit.verify(db)
    summary = {"rows": verdict.rows, "legacy_rows": verdict.legacy_rows, "head": verdict.head, "ok": verdict.ok}
    if not verdict.ok:
        summary.update(bad_id=verdict.bad_id, problem=verdict.problem)
    print(json.dumps(summary))
    if not verdict.ok:
        raise CliError(f"audit log broken at row {verdict.bad_id}: {verdict.problem}")
    if args.expect_head and args.expect_head != verdict.head:
        raise CliError("audit log head differs from the one recorded: rows were removed from its end or rewritten")
    print(f"{PROG}: audit chain intact over {verdict.rows} rows", file=sys.stderr)
    return 0


def _audit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("verify", "list"))
    parser.add_argument("--expect-head", default="", metavar="HASH", help="verify: the head hash recorded earlier")
    parser.add_argument("--since", default="", metavar="TIME", help="list: rows at or after this date or time")
    parser.add_argument("--action", dest="action_name", default="", metavar="ACTION", help="list: rows of this action")
    parser.add_argument("--actor", default="", metavar="ACTOR", help="list: rows by this actor (cli:NAME, a username)")
    parser.add_argument("--json", action="store_true", help="list: one JSON object a line instead of tab-separated")


COMMANDS = [
    Command(
        "user",
        cmd_user,
        "console users: add, list, disable, enable, reset-password, reset-two-step, throttled",
        _user_arguments,
    ),
    Command("audit", cmd_audit, "audit log: verify its hash chain, list its rows", _audit_arguments),
]
