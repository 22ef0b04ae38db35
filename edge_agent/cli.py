"""`edge-agent`: run the agent, check its configuration, enroll it, inspect it."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent import __version__, reparse, replay
from edge_agent.config import CONFIG_ENV, DEFAULT_CONFIG_PATH, AgentConfig, check_usable, config_path, load_config
from edge_agent.credentials import Credentials, CredentialsError
from edge_agent.keys import DataDirError, StoreMissing, require_store
from shared.crypto import KeyFileError
from shared.settings import ConfigError, specs

if TYPE_CHECKING:
    from edge_agent.central_settings import Effective

PROG = "edge-agent"
EXIT_BROKEN_PIPE = 141  # as a shell reports a command killed by SIGPIPE
# Commands that work on the outbox an agent has written: they refuse, creating nothing, when it is not there.
STORE_COMMANDS = frozenset({"quarantine", "rotate-key", "reparse"})
CONFIG_HELP = f"TOML settings file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG_PATH})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Retail CDP edge agent for store PCs.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    # --config is accepted before the command and after it; SUPPRESS keeps the command's copy from
    # overwriting a value given before the command with its default.
    parser.add_argument("--config", help=CONFIG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
        return p

    command("run", "Capture from the POS and sync to central until stopped.")
    command("check-config", "Validate the settings and print them.")
    enroll = command("enroll", "Register this store PC with central using a token from HQ.")
    enroll.add_argument("--central", required=True, help="central's base URL, e.g. https://cdp.example.com")
    enroll.add_argument("--token", required=True, help="single-use token from `central-server enroll-token`")
    command("doctor", "Check enrollment, the outbox, the POS port and the way to central.")
    status = command("status", "Show the running agent's health: backlog, last sync, dead letters, clock, sources.")
    status.add_argument("--json", action="store_true", help="print status.json as it is, plus the dead letters")
    status.add_argument("--dead-letters", type=int, default=10, metavar="N", help="list the N newest (default 10)")
    command("rotate-device-key", "Register a new signing key with central, signed by the current one.")
    quarantine = command("quarantine", "List inputs that could not be parsed, newest first.")
    quarantine.add_argument("--limit", type=int, default=20)
    quarantine.add_argument("--show-raw", action="store_true", help="print the raw bytes (may hold personal data)")
    command("rotate-key", "Re-seal the outbox and the capture journal under a new key (stop the agent first).")
    reparse.add_command(sub, CONFIG_HELP)

    sim = sub.add_parser("simulate-pos", help="Act as a POS printing receipts into a pseudo-terminal.")
    sim.add_argument("--link", required=True, help="path of the symlink to create to the pty's device")
    sim.add_argument("--rate", type=float, default=1.0, help="lines per second (default 1)")
    sim.add_argument("--count", type=int, default=0, help="stop after this many lines (default: never)")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--encoding", default="utf-8", help="utf-8 or gb18030")
    sim.add_argument("--garbage-every", type=int, default=0, help="send a garbage line every N lines")
    replay.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status. A reader that closes our output early (`| head`) ends it quietly."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, rather than at interpreter exit
    except BrokenPipeError:
        # Whatever is still buffered has nowhere to go; keep Python's exit flush from reporting it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "simulate-pos":
        from edge_agent.simulator import main_simulate

        return main_simulate(Path(args.link), args.rate, args.count, args.seed, args.encoding, args.garbage_every)
    if args.command in replay.COMMANDS:
        return replay.run(args)
    path = config_path(args.config)
    try:
        # The doctor reports a missing required setting as its first failed check and goes on.
        config = load_config(path, check_required=args.command in ("run", "check-config"))
        if args.command in ("run", "check-config"):
            # The files the settings name, checked as doctor checks them: what check-config accepts, run starts with.
            problems = check_usable(config, path)
            if problems:
                raise ConfigError(problems[0].source, problems[0].key, problems[0].problem, problems[1:])
    except ConfigError as exc:
        first, *rest = exc.lines  # every problem of the file at once, one line each
        for line in (first + _no_file_hint(path, exc), *rest):
            print(f"{PROG}: {line}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.agent_log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command in STORE_COMMANDS:
        # These open the outbox the agent made; none of them may create a data directory or a key.
        try:
            require_store(config)
        except (StoreMissing, KeyFileError) as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 1
    handler = {
        "run": _run,
        "check-config": _check_config,
        "enroll": _enroll,
        "doctor": _doctor,
        "status": _status,
        "quarantine": _quarantine,
        "rotate-key": _rotate_key,
        "rotate-device-key": _rotate_device_key,
        "reparse": lambda config, path, args: reparse.run(config, args),
    }[args.command]
    try:
        return handler(config, path, args)
    except (CredentialsError, KeyFileError, StoreMissing, DataDirError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


def _run(config: AgentConfig, path: Path | None, args: argparse.Namespace) -> int:
    from edge_agent.agent import Agent, AlreadyRunning
    from edge_agent.central_settings import config_in_force, effective_config
    from edge_agent.central_url import CentralUrlError
    from edge_agent.panel.server import PanelError
    from edge_agent.parsing.receipt_profile import ProfileError
    from edge_agent.presence.radios import PresenceSettingError
    from edge_agent.tls import TlsSettingError

    def with_central(overrides: Mapping[str, Any]) -> Effective:
        return effective_config(path, overrides)

    effective = config_in_force(path, config)  # not enrolled: the local settings, and Agent() says so below
    for key, why in sorted(effective.ignored.items()):
        logging.getLogger("edge_agent").warning("central's setting %s is not applied: %s", key, why)
    config = effective.config
    try:
        agent = Agent(config, settings_loader=with_central, settings_ignored=effective.ignored_codes)
    except AlreadyRunning as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except (CentralUrlError, TlsSettingError, PresenceSettingError, PanelError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except ProfileError as exc:
        print(f"{PROG}: receipt profile error: {exc}", file=sys.stderr)
        return 2
    agent.run_forever()
    return 0


def _no_file_hint(path: Path | None, exc: ConfigError) -> str:
    """When no file was read and a required value is missing, say where a file was looked for."""
    if path is not None or not exc.problem.startswith("required"):
        return ""
    return f" (no settings file was read: no --config, ${CONFIG_ENV} unset, {DEFAULT_CONFIG_PATH} does not exist)"


def _check_config(config: AgentConfig, path: Path | None, args: argparse.Namespace) -> int:
    if path is None:
        print(
            f"config ok: no settings file (no --config, ${CONFIG_ENV} unset, {DEFAULT_CONFIG_PATH} does not exist);"
            " defaults and environment only"
        )
    else:
        print(f"config ok: {path}")
    for spec in specs(AgentConfig):
        print(f"  {spec.name} = {getattr(config, spec.attr)!s}")
    return 0


def _enroll(config: AgentConfig, path: Path | None, args: argparse.Namespace) -> int:
    from edge_agent.agent import prepare_data_dir
    from edge_agent.enroll import EnrollError, enroll

    prepare_data_dir(config)
    try:
        creds = enroll(args.central, args.token, config.credentials_path, config=config)
    except EnrollError as exc:
        print(f"{PROG}: enrollment failed: {exc}", file=sys.stderr)
        return 1
    print(f"enrolled as device {creds.device_id} of store {creds.store_id}")
    print(f"credentials written to {config.credentials_path}")
    return 0


def _doctor(config: AgentConfig, path: Path | None, args: argparse.Namespace) -> int:
    from edge_agent.doctor import WARN, run_checks

    problems = 0
    for ok, line in run_checks(config, path=path):
        print(("warn  " if ok is WARN else "ok    " if ok else "FAIL  ") + line)
        problems += ok is False
    return 1 if problems else 0


def _status(config: AgentConfig, path: Path | None, args: argparse.Namespace) -> int:
    from edge_agent.device_key import pending_path
    from edge_agent.diskspace import inspect_disk
    from edge_agent.status import EXIT_NOT_RUNNING, StatusError, agent_running, read_status, render

    try:
        doc = read_status(config.status_path)
    except StatusError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    running = agent_running(config.agent_data_dir)
    dead_letters: list[tuple[int, str, str, str | None]] = []
    note = ""
    if doc["health"].get("dead_lettered") and args.dead_letters > 0:
        from edge_agent.doctor import open_outbox

        try:
            dead_letters = open_outbox(config).rejected(args.dead_letters)
        except (KeyFileError, StoreMissing, OSError, sqlite3.Error) as exc:
            note = f"(dead letters not listed: the outbox cannot be opened: {exc})"
    disk = inspect_disk(config.agent_data_dir, config.outbox_reserve_bytes)  # the agent cannot report a full disk
    pending = pending_path(config.credentials_path)
    pending_key = pending if pending.exists() else None
    if args.json:
        doc["running"] = running
        doc["disk_now"] = disk.as_dict()
        doc["pending_device_key"] = None if pending_key is None else str(pending_key)
        doc["dead_letters"] = [
            {"seq": seq, "event_id": event_id, "kind": kind, "reason": reason}
            for seq, event_id, kind, reason in dead_letters
        ]
        print(json.dumps(doc, indent=1, sort_keys=True))
        return 0
    lines, code = render(doc, now=time.time(), running=running, dead_letters=dead_letters, disk=disk)
    if pending_key is not None:
        # A rotation whose reply was lost: central may refuse the old key until it is finished (decision 0078).
        lines.append(
            f"device key     a rotation did not finish: {pending_key} holds the new key; run `edge-agent"
            " rotate-device-key` again with the agent stopped (the agent finishes it by itself once central has"
            " registered that key)"
        )
    print("\n".join([*lines, note] if note else lines))
    return code


def _quarantine(config: AgentConfig, path: Path | None, args: argparse.Namespace) -> int:
    from edge_agent.doctor import open_outbox

    outbox = open_outbox(config)
    rows = outbox.quarantine(args.limit)
    counts = Counter(row.reason for row in rows)
    for row in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.received_at))
        size = "unreadable" if row.raw is None else f"{len(row.raw)} bytes"
        print(f"{row.id:>8}  {when}  {row.source:<6} {row.reason:<28} {size}")
        if args.show_raw and row.raw is not None:
            print(f"          {row.raw!r}")
    print(json.dumps({"shown": len(rows), "by_reason": dict(counts)}, ensure_ascii=False))
    return 0


def _rotate_key(config: AgentConfig, path: Path | None, args: argparse.Namespace) -> int:
    from edge_agent.rotation import run_rotate_key

    return run_rotate_key(config)


def _rotate_device_key(config: AgentConfig, path: Path | None, args: argparse.Namespace) -> int:
    from edge_agent.agent import AlreadyRunning, lock_data_dir
    from edge_agent.central_settings import config_in_force
    from edge_agent.central_url import CentralUrlError
    from edge_agent.device_key import RotationError, rotate_device_key
    from edge_agent.tls import TlsSettingError
    from edge_agent.transport import central_transport

    creds = Credentials.load(config.credentials_path)
    # A running agent would go on signing with the old key, which central refuses once it has the new one.
    try:
        lock = lock_data_dir(config)
    except AlreadyRunning as exc:
        print(f"{PROG}: {exc}; stop it first (systemctl stop edge-agent)", file=sys.stderr)
        return 1
    try:
        # The client and the wait of the running agent's sync: its TLS trust, timeouts and central's overrides.
        config = config_in_force(path, config, check_required=False).config
        transport = central_transport(config, config.sync_central_url or creds.central_url)
        rotated = rotate_device_key(config.credentials_path, transport, timeout=config.sync_timeout)
    except (CentralUrlError, TlsSettingError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except RotationError as exc:
        print(f"{PROG}: key rotation failed: {exc}", file=sys.stderr)
        return 1
    finally:
        os.close(lock)
    print(f"device {rotated.device_id}: new signing key registered with central and saved in {config.credentials_path}")
    print("start the agent again (systemctl start edge-agent); it signs with the new key")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
