"""Fleet commands: enrollment tokens, devices and their states, and the documents published to stores.

Every command names the database it uses on stderr and refuses one that does not exist yet; every
command that reads or changes fleet state writes an audit row (actor ``cli``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from central import audit
from central.cli import PROG, CliError, Command, cli_session
from central.clock import system_clock
from central.config import CentralConfig
from central.fleet import downlink
from central.fleet.devices import STATES, DeviceError, list_devices, set_status
from central.fleet.enrollment import STORE_ID_RE, TokenError, issue_token, list_tokens, revoke_token
from shared.settings import specs

ACTOR = audit.cli_actor()
TTL_SETTING = "enroll.token_ttl_hours"


_session = cli_session


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, ensure_ascii=False, indent=2))


def _ttl_bounds() -> tuple[float, float]:
    """The lifetimes ``enroll.token_ttl_hours`` allows, in hours: ``--ttl-hours`` is held to the same."""
    spec = next(s for s in specs(CentralConfig) if s.name == TTL_SETTING)
    assert spec.minimum is not None and spec.maximum is not None  # declared with both
    return spec.minimum, spec.maximum


def _check_ttl(hours: float) -> None:
    low, high = _ttl_bounds()
    if not low <= hours <= high:  # NaN fails both comparisons
        raise CliError(
            f"--ttl-hours must be from {low:g} to {high:g} hours (as {TTL_SETTING}); got {hours:g}", status=2
        )


def cmd_enroll_token(args: argparse.Namespace) -> int:
    """Print a single-use enrollment token for a store (only the token goes to stdout)."""
    if not STORE_ID_RE.match(args.store):
        raise CliError(f"store id {args.store!r} must be 1-32 characters of A-Z, a-z, 0-9, _ . -", status=2)
    if args.ttl_hours is not None:
        _check_ttl(args.ttl_hours)
    now = system_clock()
    with _session(args) as (db, config):
        ttl = args.ttl_hours if args.ttl_hours is not None else config.enroll_token_ttl_hours
        token = issue_token(db, args.store, ttl, now=now)
        expires = now + timedelta(hours=ttl)
        audit.record(
            db,
            at=now,
            actor=ACTOR,
            action="enroll_token.create",
            subject=args.store,
            detail={"expires_at": expires.isoformat()},
        )
        db.commit()
    print(
        f"{PROG}: enrollment token for store {args.store}, single use, valid until {expires:%Y-%m-%d %H:%M} UTC",
        file=sys.stderr,
    )
    print(token)
    return 0


def cmd_tokens(args: argparse.Namespace) -> int:
    """List enrollment tokens (never the tokens themselves): id, store, created, expires, state."""
    now = system_clock()
    with _session(args) as (db, _):
        tokens = list_tokens(db, now)
        audit.record(db, at=now, actor=ACTOR, action="enroll_tokens.list", detail={"returned": len(tokens)})
        db.commit()
    if args.json:
        _print_json({"tokens": [t.to_json() for t in tokens]})
        return 0
    print(f"{'TOKEN ID':<14}{'STORE':<12}{'CREATED (UTC)':<18}{'EXPIRES (UTC)':<18}{'STATE':<9}DEVICE")
    for t in tokens:
        print(
            f"{t.token_id:<14}{t.store_id:<12}{_when(t.created_at):<18}{_when(t.expires_at):<18}"
            f"{t.state:<9}{t.device_id or '-'}"
        )
    return 0


def cmd_revoke_token(args: argparse.Namespace) -> int:
    """Revoke an unused enrollment token by its id (as `tokens` shows it)."""
    with _session(args) as (db, _):
        try:
            token = revoke_token(db, args.token_id, now=system_clock(), actor=ACTOR)
        except TokenError as exc:
            raise CliError(str(exc)) from None
        db.commit()
    print(f"{PROG}: token {token.token_id} for store {token.store_id} is revoked", file=sys.stderr)
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    """List enrolled devices with their fleet state, version and last contact."""
    now = system_clock()
    with _session(args) as (db, config):
        rows = list_devices(db, now, config.fleet_offline_after, state=args.state)
        audit.record(db, at=now, actor=ACTOR, action="devices.list", detail={"via": "cli", "returned": len(rows)})
        db.commit()
    if args.json:
        _print_json({"devices": [d.to_json() for d in rows]})
        return 0
    print(f"{'DEVICE':<22}{'STORE':<12}{'STATE':<10}{'VERSION':<10}{'LAST SEEN (UTC)':<18}HOSTNAME")
    for d in rows:
        print(
            f"{d.device_id:<22}{d.store_id:<12}{d.state:<10}{d.agent_version or '-':<10}"
            f"{_when(d.last_seen_at):<18}{d.hostname or '-'}"
        )
        if d.settings_ignored:
            ignored = ", ".join(f"{name} ({code})" for name, code in d.settings_ignored.items())
            print(f"  settings not applied: {ignored}")
        health = d.health or {}
        if health.get("resent") or health.get("resend_missing"):
            # Central asked the agent for events it lacked (restored from a backup), docs/decisions/0093.
            print(
                f"  resent on central's request: {health.get('resent', 0)} events;"
                f" no longer held by the agent: {health.get('resend_missing', 0)}"
            )
    return 0


def _status_command(status: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        with _session(args) as (db, _):
            try:
                previous = set_status(db, args.device_id, status, reason=args.reason, now=system_clock(), actor=ACTOR)
            except DeviceError as exc:
                raise CliError(str(exc)) from None
            db.commit()
        if previous == status:
            print(f"{PROG}: device {args.device_id} was already {status}", file=sys.stderr)
        else:
            print(
                f"{PROG}: device {args.device_id} is {status} (was {previous}); "
                "every central instance refuses it from its next request",
                file=sys.stderr,
            )
        return 0

    run.__doc__ = f"Mark a device {status}."
    return run


def _read_document(file: str) -> Any:
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"{file} is not JSON: {exc}") from None


def cmd_downlink_set(args: argparse.Namespace) -> int:
    """Publish a JSON document to one store (or every store, ``--store '*'``); a refusal exits 2, a line a problem."""
    body = _read_document(args.file)
    with _session(args) as (db, _):
        try:
            version = downlink.publish(db, args.store, args.name, body, now=system_clock(), actor=ACTOR)
        except downlink.DownlinkError as exc:
            refusal = [*exc.lines, f"{args.file} was not published: nothing changed at the stores"]
            raise CliError("\n".join(refusal), status=2) from None
        db.commit()
    print(f"{PROG}: published {args.name} for store {args.store} as version {version}", file=sys.stderr)
    print(version)
    return 0


def cmd_downlink_delete(args: argparse.Namespace) -> int:
    """Withdraw a published document (agents drop it, or fall back to the '*' one)."""
    with _session(args) as (db, _):
        try:
            version = downlink.publish(db, args.store, args.name, None, now=system_clock(), actor=ACTOR)
        except downlink.DownlinkError as exc:
            raise CliError(str(exc)) from None
        db.commit()
    print(f"{PROG}: withdrew {args.name} for store {args.store} as version {version}", file=sys.stderr)
    return 0


def cmd_downlink_list(args: argparse.Namespace) -> int:
    """List published documents (for one store with --store, including the '*' ones)."""
    with _session(args) as (db, _):
        rows = downlink.listing(db, args.store)
        version = downlink.current_version(db, args.store) if args.store else None
    if args.json:
        _print_json({"documents": [r.to_json() for r in rows], "version": version})
        return 0
    print(f"{'STORE':<12}{'NAME':<20}{'VERSION':<9}{'UPDATED (UTC)':<18}{'BY':<16}SIZE")
    for r in rows:
        size = "deleted" if r.body is None else f"{len(json.dumps(r.body))} chars"
        print(f"{r.store_id:<12}{r.name:<20}{r.version:<9}{_when(r.updated_at):<18}{r.updated_by:<16}{size}")
    if version is not None:
        print(f"store {args.store} runs version {version}")
    return 0


def _enroll_token_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, metavar="STORE_ID")
    low, high = _ttl_bounds()
    parser.add_argument(
        "--ttl-hours",
        type=float,
        metavar="H",
        help=f"lifetime in hours, {low:g} to {high:g} (default: {TTL_SETTING})",
    )


def _json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _devices_arguments(parser: argparse.ArgumentParser) -> None:
    _json_argument(parser)
    parser.add_argument("--state", choices=STATES, help="only devices in this state")


def _token_id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("token_id", metavar="TOKEN_ID", help="the token's id as `tokens` shows it (6+ hex digits)")


def _device_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("device_id", metavar="DEVICE_ID")
    parser.add_argument("--reason", default="", help="why (kept in the audit log)")


def _downlink_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, run: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        # SUPPRESS: without --config here, the value given before the action is kept.
        p.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="TOML config file")
        p.set_defaults(func=run)
        return p

    names = ", ".join(downlink.KNOWN_NAMES)
    put = action("set", cmd_downlink_set, "publish a JSON document to a store")
    put.add_argument("--store", default=downlink.ALL_STORES, help="store id, or '*' for every store (default)")
    put.add_argument("--name", required=True, help=f"document name ({names}, ...)")
    put.add_argument("file", metavar="FILE.json", help="the document; - reads stdin")
    withdraw = action("delete", cmd_downlink_delete, "withdraw a published document")
    withdraw.add_argument("--store", default=downlink.ALL_STORES)
    withdraw.add_argument("--name", required=True)
    show = action("list", cmd_downlink_list, "list published documents")
    show.add_argument("--store", help="only what applies to this store")
    _json_argument(show)


COMMANDS = [
    Command(
        "enroll-token", cmd_enroll_token, "print a single-use enrollment token for a store", _enroll_token_arguments
    ),
    Command("tokens", cmd_tokens, "list enrollment tokens (ids and states, never the tokens)", _json_argument),
    Command("revoke-token", cmd_revoke_token, "revoke an unused enrollment token", _token_id_argument),
    Command("devices", cmd_devices, "list devices with their fleet state", _devices_arguments),
    Command("revoke-device", _status_command("revoked"), "refuse a device from now on", _device_arguments),
    Command("retire-device", _status_command("retired"), "take a device out of service", _device_arguments),
    Command("downlink", lambda args: 2, "publish documents to stores (set, delete, list)", _downlink_arguments),
]
