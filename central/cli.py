"""The ``central-server`` command: the platform's subcommands, then each domain's ``cli.COMMANDS``.

Expected failures end with one line on stderr and a status: 2 for configuration and usage errors,
1 for operational ones (database unreachable, port taken). No tracebacks for either. A command
whose stdout is closed under it (``| head -1``) stops quietly with 141, as if killed by SIGPIPE.

Every command that uses the database first says which one on stderr. Only ``serve`` and ``migrate``
may create it; every other command insists on an existing database with central's schema, so a
command run without the server's configuration (which would otherwise open a fresh SQLite file
under the default data directory) stops and says what it looked at.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from central import __version__
from central.config import CentralConfig
from central.config_loader import default_config_path, describe, load_config
from central.secret_key import SecretKeyRefused
from shared.crypto import KeyFileError
from shared.settings import ConfigError

log = logging.getLogger("central")

PROG = "central-server"
MIN_PASSWORD = 8
# Room above ingest.max_body_bytes so that the app, not waitress, answers slightly oversized batches.
BODY_MARGIN = 64 * 1024


class CliError(Exception):
    """An expected failure: printed as one line, exit with ``status``."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, what runs it, its help line, and what adds its own arguments."""

    name: str
    run: Callable[[argparse.Namespace], int]
    help: str
    arguments: Callable[[argparse.ArgumentParser], None] | None = None


class _OneLineFormatter(logging.Formatter):
    """Keeps each record, traceback included, on one line so log collectors see one entry."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " | ")


def configure_logging(level: str) -> None:
    """One line per record on stderr at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # Alembic narrates every plugin and context at INFO; central logs the migration outcome itself.
    logging.getLogger("alembic").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)


def _config_path(args: argparse.Namespace) -> Path | None:
    return Path(args.config) if args.config else default_config_path()


def load(args: argparse.Namespace) -> tuple[CentralConfig, Path | None]:
    path = _config_path(args)
    config = load_config(path)
    configure_logging(config.log_level)
    return config, path


def engine_for(config: CentralConfig) -> Engine:
    """An engine for the configured database (``serve`` and ``migrate`` only: it may create the database)."""
    from central.db import make_engine

    return make_engine(config.effective_database_url)


def database_label(config: CentralConfig) -> str:
    """The database URL with any password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(config.effective_database_url).render_as_string(hide_password=True)


def announce_database(config: CentralConfig, path: Path | None) -> None:
    """One stderr line saying which database this command uses, and from which configuration."""
    print(f"{PROG}: database {database_label(config)} (config: {path or 'defaults and environment'})", file=sys.stderr)


def existing_database(config: CentralConfig, path: Path | None) -> Engine:
    """An engine for the configured database, which must already exist with central's schema.

    Migrates an older schema if ``database.auto_migrate``; never creates a database.
    """
    from sqlalchemy.engine import make_url

    from central import migrate

    announce_database(config, path)
    label = database_label(config)
    where = f"config: {path}" if path else "no configuration file: defaults and environment"
    advice = (
        f"run this with the server's configuration (--config FILE or CENTRAL_CONFIG), "
        f"or create the database first with `{PROG} migrate`"
    )
    url = make_url(config.effective_database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        file = Path(url.database)
        if not file.is_file():
            raise CliError(f"no database at {file} ({where}); this command does not create one: {advice}")
    engine = engine_for(config)
    try:
        current = migrate.current_revision(engine)
        if current is None:
            raise CliError(f"database {label} holds no central-server schema ({where}): {advice}")
        ready_schema(config, engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise CliError(f"cannot use database {label} ({where}): {_db_problem(exc)}") from None
    except CliError:
        engine.dispose()
        raise
    return engine


@contextmanager
def cli_session(args: argparse.Namespace) -> Iterator[tuple[Session, CentralConfig]]:
    """A database session for one command on the configured, existing database, and the configuration."""
    config, path = load(args)
    engine = existing_database(config, path)
    try:
        with Session(engine) as db:
            yield db, config
    finally:
        engine.dispose()


def ready_schema(config: CentralConfig, engine: Engine) -> None:
    """Migrate if ``database.auto_migrate``; otherwise insist the schema is already current."""
    from central import migrate

    current, head = migrate.current_revision(engine), migrate.head_revision()
    refuse_newer_schema(config, current)
    if config.database_auto_migrate:
        if current != head:
            before = run_migrations(config, engine)
            if before != head:  # else another instance migrated it while this one waited
                log.info("database migrated from revision %s to %s", before, head)
        return
    if current != head:
        raise CliError(f"the database is at revision {current}, not {head}; run `{PROG} migrate`")


def run_migrations(config: CentralConfig, engine: Engine) -> str | None:
    """Migrate to the newest revision; the revision the database was at."""
    from central import migrate
    from central.identity.registry import load_registry

    try:
        return migrate.upgrade(engine, load_registry(config))
    except migrate.NewerSchemaError as exc:  # a newer release migrated it while this one waited
        refuse_newer_schema(config, exc.revision)
        raise


def refuse_newer_schema(config: CentralConfig, revision: str | None) -> None:
    """A one-line refusal of a database that a newer release of central-server has migrated."""
    from central import migrate

    try:
        migrate.refuse_newer(revision, f"database {database_label(config)}")
    except migrate.NewerSchemaError as exc:
        raise CliError(str(exc)) from None


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP server until SIGTERM or SIGINT."""
    import waitress

    from central import server_errors
    from central.app import create_app
    from central.db import autovacuum_warning

    config, path = load(args)
    # The port first: a port that is taken (or mistyped) fails before the database is created or migrated.
    sockets = listening_sockets(config)
    try:
        announce_database(config, path)
        engine = engine_for(config)
        try:
            ready_schema(config, engine)
            if warning := autovacuum_warning(engine):
                log.warning("%s", warning)
        finally:
            engine.dispose()
        app = create_app(config)
        server = waitress.create_server(
            app,
            sockets=sockets,
            threads=config.server_threads,
            max_request_body_size=config.ingest_max_body_bytes + BODY_MARGIN,
            ident=PROG,
            **proxy_options(config),
        )
        server_errors.install(server, access_log_on=config.server_access_log)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise

    def stop(signum: int, _frame: FrameType | None) -> None:
        # waitress's loop treats KeyboardInterrupt as "shut down the worker threads and return".
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "%s %s listening on http://%s:%s (config: %s)",
        PROG,
        __version__,
        config.server_host,
        sockets[0].getsockname()[1],
        path or "defaults",
    )
    jobs = None
    if config.scheduler_enabled:
        from central import scheduler

        jobs = scheduler.start(app)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if jobs is not None:
            jobs.shutdown(wait=True)
        server.close()
    log.info("%s stopped", PROG)
    return 0


def listening_sockets(config: CentralConfig) -> list[socket.socket]:
    """Sockets bound to ``server.host:server.port`` (every address the host resolves to), not yet listening."""
    from waitress.adjustments import Adjustments

    where = f"{config.server_host}:{config.server_port}"
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, address in Adjustments(host=config.server_host, port=config.server_port).listen:
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except (OSError, ValueError) as exc:
        for sock in sockets:
            sock.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CliError(f"cannot listen on {where}: {reason}") from None
    return sockets


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the database schema to the newest revision."""
    from central import migrate

    config, path = load(args)
    announce_database(config, path)
    engine = engine_for(config)
    try:
        refuse_newer_schema(config, migrate.current_revision(engine))
        before = run_migrations(config, engine)
        revision = migrate.current_revision(engine)
        if before != revision:
            log.info("database migrated from revision %s to %s", before, revision)
    finally:
        engine.dispose()
    print(f"database is at revision {revision}")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the configuration and print the effective settings."""
    config, path = load(args)
    print(f"config ok: {path if path else 'defaults'}")
    for line in describe(config):
        print(line)
    from central import secret_key

    print(secret_key.report(config.effective_database_url, config.secret_key_path))
    return 0


def _read_password(from_stdin: bool) -> tuple[str, bool]:
    if not from_stdin:
        return secrets.token_urlsafe(18), True
    password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD:
        raise CliError(f"the password must be at least {MIN_PASSWORD} characters")
    return password, False


def cmd_create_admin(args: argparse.Namespace) -> int:
    """Create an admin console user (or, with --reset, give an existing admin a new password)."""
    from central.accounts import users
    from central.accounts.cli import ACTOR, disabled_note
    from central.accounts.roles import ADMIN
    from central.clock import system_clock

    if not users.USERNAME_RE.match(args.username):
        raise CliError("the username must be 1-64 characters of A-Z, a-z, 0-9, _ . @ -", status=2)
    config, path = load(args)
    password, generated = _read_password(args.password_stdin)
    engine = existing_database(config, path)
    try:
        with Session(engine) as db:
            existing = users.summary(db, args.username)
            if existing is not None and existing.role != ADMIN:
                # Not made an administrator, nor given a password here: `user reset-password` says whose it sets.
                if not args.reset:
                    raise CliError(
                        f"user {args.username!r} already exists, a {existing.role} user, not an administrator"
                    )
                raise CliError(
                    f"{args.username!r} is a {existing.role} user, not an administrator, and create-admin --reset"
                    f" resets administrators only: give it a new password with `{PROG} user reset-password"
                    f" {args.username}`"
                )
            if existing is not None and not args.reset:
                raise CliError(f"user {args.username!r} already exists (use --reset to set a new password)")
            now = system_clock()
            if existing is not None:
                users.reset_password(db, args.username, password, now=now, actor=ACTOR)
            else:
                users.add(db, args.username, ADMIN, password, now=now, actor=ACTOR)
            db.commit()
    finally:
        engine.dispose()
    if existing is None:
        print(f"{PROG}: created admin user {args.username!r}", file=sys.stderr)
    else:
        print(f"{PROG}: reset the password of admin user {args.username!r}{disabled_note(existing)}", file=sys.stderr)
    if generated:
        print(f"{PROG}: generated password follows on stdout; it is not shown again", file=sys.stderr)
        print(password)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        help="TOML config file (default: $CENTRAL_CONFIG, else /etc/central-server/central.toml if present)",
    )
    parser = argparse.ArgumentParser(prog=PROG, description="Retail CDP central server.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _commands():
        p = sub.add_parser(command.name, parents=[common], help=command.help, description=command.help)
        p.set_defaults(func=command.run)
        if command.arguments is not None:
            command.arguments(p)
    return parser


def _admin_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--username", required=True)
    parser.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    parser.add_argument(
        "--reset", action="store_true", help="set a new password if the user exists (administrators only)"
    )


def _commands() -> list[Command]:
    """The platform's commands, then each domain's (its ``cli.COMMANDS``), in that order."""
    from central.accounts import cli as accounts_cli
    from central.campaigns import cli as campaigns_cli
    from central.campaigns import coupons_cli
    from central.customers import cli as customers_cli
    from central.customers import sales_cli
    from central.fleet import cli as fleet_cli
    from central.identity import cli as identity_cli
    from central.members import cli as members_cli
    from central.privacy import cli as privacy_cli
    from central.segments import cli as segments_cli
    from central.sources import cli as sources_cli

    platform = [
        Command("serve", cmd_serve, "run the HTTP server (migrates first if database.auto_migrate)"),
        Command("migrate", cmd_migrate, "bring the database schema up to date"),
        Command("check-config", cmd_check_config, "validate the configuration and print the effective settings"),
        Command("create-admin", cmd_create_admin, "create an admin console user", _admin_arguments),
    ]
    return [
        *platform,
        *accounts_cli.COMMANDS,
        *fleet_cli.COMMANDS,
        *identity_cli.COMMANDS,
        *sources_cli.COMMANDS,
        *members_cli.COMMANDS,
        *customers_cli.COMMANDS,
        *sales_cli.COMMANDS,
        *campaigns_cli.COMMANDS,
        *coupons_cli.COMMANDS,
        *segments_cli.COMMANDS,
        *privacy_cli.COMMANDS,
    ]


def _db_problem(exc: SQLAlchemyError) -> str:
    detail = str(exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc)
    first = next((line.strip() for line in detail.splitlines() if line.strip()), type(exc).__name__)
    return f"database error: {first}"


def proxy_options(config: CentralConfig) -> dict[str, Any]:
    """waitress's options for ``server.trusted_proxy``: the client address and scheme from that proxy only."""
    if not config.server_trusted_proxy:
        return {}
    return {
        "trusted_proxy": config.server_trusted_proxy,
        "trusted_proxy_count": 1,  # the address nginx appends: the one that reached it
        "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"},
        "clear_untrusted_proxy_headers": True,
    }


def _stdout_closed() -> int:
    """The reader of stdout went away (``| head -1``): end quietly, with the status of a command killed by SIGPIPE.

    Not 0: what was printed may not all have been read, and a key or password printed once may be
    lost; a pipeline reports 141 as it does for ``cat`` or ``yes``, and ignores it unless pipefail.
    """
    try:
        # Python flushes stdout once more at exit; from /dev/null that flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (a test's capture): nothing will be flushed to a pipe
        pass
    return 128 + signal.SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand and return its exit status."""
    from alembic.util.exc import CommandError

    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
        sys.stdout.flush()  # a closed stdout shows here, not in the interpreter's own flush at exit
        return status
    except BrokenPipeError:
        return _stdout_closed()
    except ConfigError as exc:
        for line in exc.lines:  # every problem of the file at once, one line each
            print(f"{PROG}: {line}", file=sys.stderr)
        return 2
    except CliError as exc:
        for line in str(exc).splitlines():  # a refusal naming several problems says one a line
            print(f"{PROG}: {line}", file=sys.stderr)
        return exc.status
    except SQLAlchemyError as exc:
        print(f"{PROG}: {_db_problem(exc)}", file=sys.stderr)
        return 1
    except CommandError as exc:  # Alembic refusing the database's migration state
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "no detail")
        print(f"{PROG}: cannot migrate the database: {first}", file=sys.stderr)
        return 1
    except KeyFileError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except SecretKeyRefused as exc:  # a configuration problem: secret.key is not the database's
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0 if args.command == "serve" else 130


if __name__ == "__main__":
    sys.exit(main())
