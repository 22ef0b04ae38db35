"""`edge-agent doctor`: the technician's checklist, each line a pass or a failure with the reason."""

from __future__ import annotations

import json
import os
import stat
import time
from datetime import UTC, datetime
from pathlib import Path

from edge_agent.central_clock import CentralClock
from edge_agent.central_settings import config_in_force
from edge_agent.central_url import CentralUrlError
from edge_agent.config import ENV_PREFIX, AgentConfig, check_usable
from edge_agent.credentials import Credentials, CredentialsError
from edge_agent.device_key import RotationError as DeviceKeyError
from edge_agent.device_key import pending_path, read_pending_key
from edge_agent.diskspace import inspect_disk
from edge_agent.downlink import DOWNLINK_PATH
from edge_agent.downlink import STATE_FILE as DOWNLINK_STATE_FILE
from edge_agent.journal import inspect_journal
from edge_agent.keys import StoreMissing, find_outbox_key, require_store
from edge_agent.outbox import Outbox
from edge_agent.parsing.receipt_profile import ProfileError
from edge_agent.presence.radios import doctor_checks as presence_checks
from edge_agent.receipt_reader import configured_profiles
from edge_agent.sources.staging import MEMORY_FILESYSTEMS, filesystem_type, staging_dir
from edge_agent.status import (
    StatusError,
    agent_running,
    duration,
    is_current,
    read_status,
    size_words,
    skew_words,
)
from edge_agent.tls import TlsSettingError
from edge_agent.transport import HttpTransport, TransportError, central_transport
from shared.crypto import KeyFileError, RequestSigner, Sealer
from shared.settings import ConfigError, specs
from shared.wire import format_time

# True passes and False fails (doctor exits 1); WARN is a caveat, printed but not failed.
Check = tuple[bool | None, str]
WARN = None


def open_outbox(config: AgentConfig) -> Outbox:
    """Open the outbox for inspection (read-mostly; safe beside a running agent).

    The key comes from where the agent takes it: the systemd credential when present, else the file
    (or the new key of a rotation that committed and is not finished). Raises StoreMissing, never
    creating anything, when the data directory, the outbox or its key is missing, and OutboxKeyError
    when no key at hand opens the outbox.
    """
    found = require_store(config)
    try:
        store_id = Credentials.load(config.credentials_path).store_id
    except CredentialsError:
        store_id = ""
    return Outbox(config.outbox_path, Sealer(found.key), store_id)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def config_checks(config: AgentConfig, path: Path | None, problems: list[ConfigError]) -> list[Check]:
    """Whether the settings are complete and the files they name usable (``problems``, from
    :func:`check_usable` as `run` and `check-config` apply it): the one place the doctor speaks about them."""
    where = str(path) if path is not None else "from defaults and environment (no settings file)"
    checks: list[Check] = []
    missing = [s for s in specs(AgentConfig) if s.required and not str(getattr(config, s.attr)).strip()]
    if missing:
        names = ", ".join(f"{s.name} (or {s.env_name(ENV_PREFIX)})" for s in missing)
        checks.append((False, f"configuration {where}: required setting missing: {names}"))
    for problem in problems:
        if config.pos_mode == "escpos" and problem.problem.startswith("pos.profile"):
            # Said in full by the receipt profiles' own line, further down.
            checks.append((False, f"configuration {where}: the receipt profiles cannot be used (see below)"))
        else:
            checks.append((False, problem.line))
    return checks or [(True, f"configuration {where} is valid")]


def run_checks(config: AgentConfig, *, path: Path | None = None) -> list[Check]:
    """Every check, in the order a technician would fix them."""
    problems = check_usable(config, path)
    checks = config_checks(config, path, problems)
    if not any(p.problem.startswith("capture.staging_dir") for p in problems):
        checks.append(staging_check(config))
    data_dir = config.agent_data_dir
    if not data_dir.is_dir():
        checks.append((False, f"data directory {data_dir} does not exist (run `edge-agent enroll` first)"))
        return checks
    checks.append((_mode(data_dir) & 0o077 == 0, f"data directory {data_dir} mode {_mode(data_dir):04o}"))

    try:
        creds = Credentials.load(config.credentials_path)
        checks.append((True, f"enrolled as {creds.device_id} for store {creds.store_id} at {creds.central_url}"))
    except CredentialsError as exc:
        checks.append((False, str(exc)))
        creds = None

    committed = 0
    key_check, key_ok = outbox_key_check(config)
    checks.append(key_check)
    if config.outbox_path.exists() and key_ok:
        try:
            outbox = open_outbox(config)
            stats = outbox.stats()
            committed = outbox.committed_offset("pos")
        except (KeyFileError, StoreMissing, OSError) as exc:
            checks.append((False, f"outbox cannot be opened: {exc}"))
        else:
            age = (
                "" if stats.oldest_pending_at is None else f", oldest {time.time() - stats.oldest_pending_at:.0f} s old"
            )
            checks.append(
                (
                    True,
                    f"outbox: {stats.pending} pending{age}, {stats.delivered} delivered, "
                    f"{stats.rejected} rejected, {stats.quarantined} quarantined",
                )
            )
    journal = config.journal_dir / "pos.journal"
    if journal.exists():
        facts = inspect_journal(journal, committed)
        torn = f", {facts.torn_bytes} bytes of a torn last record" if facts.torn_bytes else ""
        checks.append(
            (
                True,
                f"capture journal {journal}: {facts.size_bytes} bytes, "
                f"{facts.uncommitted_bytes} bytes of input not yet committed{torn}",
            )
        )
    disk = inspect_disk(data_dir, config.outbox_reserve_bytes)
    free = size_words(disk.free_bytes)
    if disk.full:
        checks.append(
            (
                False,
                f"disk of {data_dir} is full ({free} free, reserve file released): free space so the agent "
                "can commit what it holds; it recovers by itself",
            )
        )
    else:
        checks.append((True, f"disk of {data_dir}: {free} free"))

    if config.pos_port:  # a missing one is reported by the configuration check
        checks.append(port_check("POS port", config.pos_port, "cable unplugged? wrong path?"))
    if config.scanner_port:
        checks.append(port_check("scanner port", config.scanner_port, "scanner unplugged? wrong path?"))
    if config.scanner_evdev_device:
        checks.append(
            port_check(
                "scanner input device",
                config.scanner_evdev_device,
                "scanner unplugged? wrong path? see `ls -l /dev/input/by-id/`",
                access=os.R_OK,
            )
        )

    # A presence setting run refuses is already among the configuration lines.
    checks.extend(c for c in presence_checks(config) if c[0] or not any(c[1] == p.problem for p in problems))
    if config.pos_mode == "escpos":
        checks.append(profiles_check(config))
    checks.extend(status_checks(config))
    if creds is not None:
        # Central is reached as the running agent reaches it: under central's overrides (sync.connect_timeout).
        in_force = config_in_force(path, config, check_required=False).config
        checks.extend(central_checks(in_force, config.sync_central_url or creds.central_url, creds))
    return checks


def outbox_key_check(config: AgentConfig) -> tuple[Check, bool]:
    """Which key opens the outbox, found as the agent will find it; and whether there is an outbox it opens."""
    try:
        found = find_outbox_key(config.key_path, config.outbox_path, config.journal_dir)
    except (StoreMissing, KeyFileError) as exc:
        return (False, str(exc)), False
    if found is None:
        if config.outbox_path.exists():
            return (True, f"outbox {config.outbox_path} holds nothing yet: the agent makes its key when it runs"), False
        return (
            True,
            f"no outbox yet in {config.agent_data_dir}: the agent creates it and its key when it first runs",
        ), False
    if found.rotation_pending and found.source.from_credential:
        return (
            False,
            f"outbox key: the outbox is under the new key in {found.path}, which waits to be installed as the"
            f" service's credential: systemd-creds encrypt --name=outbox.key {found.path}"
            f" /etc/edge-agent/outbox.key.cred, then delete {found.path}",
        ), True
    if found.rotation_pending:
        return (
            True,
            f"outbox key: a rotation was interrupted after its switch: the outbox is under {found.path}, which"
            f" the agent's next start (or `edge-agent rotate-key`) puts in place of {config.key_path}",
        ), True
    return (True, f"outbox key {found.path} mode {_mode(found.path):04o}"), config.outbox_path.exists()


def staging_check(config: AgentConfig, mountinfo: Path = Path("/proc/self/mountinfo")) -> Check:
    """Is the staging directory in memory? Bytes just read wait there, card numbers in clear included
    (docs/decisions/0013): on a disk they would be written to it. A caveat, not a failure: the agent works."""
    directory = staging_dir(config.capture_staging_dir)
    kind = filesystem_type(directory, mountinfo)
    if kind in MEMORY_FILESYSTEMS:
        return True, f"capture staging directory {directory} is in memory ({kind})"
    where = f"is on {kind}, not in memory" if kind else "may not be in memory (no mount table to tell)"
    return (
        WARN,
        f"capture staging directory {directory} {where}: bytes just read, card numbers in clear included, are"
        " written to it; set capture.staging_dir to a tmpfs such as /run/edge-agent (systemd's RuntimeDirectory=)"
        " or /dev/shm",
    )


def port_check(what: str, port: str, hint: str, access: int = os.R_OK | os.W_OK) -> Check:
    """A serial port or input device the agent reads: there, a character device, and open to it.

    Only looked at, never opened: the running agent may be reading it.
    """
    if "://" in port:
        return True, f"{what} {port} (a pyserial URL; not opened while the agent may be reading)"
    if os.path.exists(port) and stat.S_ISCHR(os.stat(port).st_mode):
        allowed = os.access(port, access)
        mode = "read" if access == os.R_OK else "read/write"
        return allowed, f"{what} {port} is a character device" + ("" if allowed else f" without {mode} access")
    return False, f"{what} {port} does not exist ({hint})"


def profiles_check(config: AgentConfig) -> Check:
    """In ``escpos`` mode: do the receipt profiles load, and is ``pos.profile`` one of them?"""
    try:
        profiles = configured_profiles(config.pos_profiles_dir, config.pos_profile)
    except ProfileError as exc:
        return False, f"receipt profiles: {exc} (check with `edge-agent parse CAPTURE --profiles PATH`)"
    names = ", ".join(p.name for p in profiles)
    used = f"only {config.pos_profile}" if config.pos_profile else "the first that recognises each receipt"
    return True, f"receipt profiles: {names}; reading receipts with {used}"


def status_checks(config: AgentConfig, now: float | None = None) -> list[Check]:
    """What the running agent says about itself in status.json."""
    now = time.time() if now is None else now
    try:
        doc = read_status(config.status_path)
    except StatusError as exc:
        return [(False, str(exc))]
    health = doc["health"]
    lost: list[Check] = []
    if health.get("lost_lines"):
        lost.append(
            (
                False,
                f"{health['lost_lines']} POS lines were lost: read while the data disk stayed full, past what"
                " memory may hold (central has them counted in an agent.gap); keep free space on that disk",
            )
        )
    if not is_current(doc, now, agent_running(config.agent_data_dir)):
        age = duration(now - float(doc.get("written_at_epoch", 0)))
        return [
            (False, f"the agent is not running (last status {age} ago); start it: `systemctl start edge-agent`"),
            *lost,
        ]
    if health["state"] == "degraded":
        return [(False, f"the agent is degraded: {health['problem']}"), *lost]
    last = health.get("last_sync_age_s")
    return [
        *lost,
        (
            True,
            f"the agent is running: {health['queue_depth']} waiting, last sync "
            + ("not yet" if last is None else f"{duration(last)} before its last status")
            + f", {health['dead_lettered']} dead letters",
        ),
    ]


def central_checks(config: AgentConfig, central_url: str, creds: Credentials | None = None) -> list[Check]:
    """Whether central answers /healthz with this agent's TLS settings, how far apart the clocks are,
    and (given the credentials) whether central accepts this device's signature."""
    try:
        transport = central_transport(config, central_url)
    except (CentralUrlError, TlsSettingError) as exc:
        return [(False, f"central not checked: {exc}")]
    url = transport.base_url + "/healthz"
    clock = CentralClock()
    sent = time.monotonic()
    try:
        reply = transport.get("/healthz", 10)
    except TransportError as exc:
        transport.close()
        return [(False, f"central {url} unreachable: {exc}")]
    checks: list[Check] = [(reply.status == 200, f"central {url} answered {reply.status}")]
    if transport.base_url.startswith("https://"):
        checks.append((True, f"central's TLS certificate verified: {transport.trust.describe()}"))
    if clock.observe(reply.header("Date"), sent, time.monotonic()):
        offset = clock.offset() or 0.0
        text = f"clock: this PC is {skew_words(offset)} central"
        if abs(offset) > 300:
            text += " (the agent signs with central's time, but fix this PC's clock: `timedatectl set-ntp true`)"
        checks.append((abs(offset) <= 300, text))
    try:
        if creds is not None and reply.status == 200:
            pending = pending_path(config.credentials_path)
            checks.append(device_check(transport, creds, clock, config.agent_data_dir, pending=pending))
    finally:
        transport.close()
    return checks


def device_check(
    transport: HttpTransport, creds: Credentials, clock: CentralClock, data_dir: Path, *, pending: Path | None = None
) -> Check:
    """Does central accept this device's signature? A signed read of the downlink, as the agent makes one.

    Signed with central's time (measured from /healthz), asking only for documents newer than the
    version this PC already has, so it changes nothing on either side. With a device-key rotation
    waiting in ``pending`` (``credentials.json.next``), a refused signature is asked again with the
    new key: central accepting it means the rotation was interrupted after central registered it.
    """
    path = f"{DOWNLINK_PATH}?since={_downlink_version(data_dir)}"
    try:
        new_key = read_pending_key(pending) if pending is not None else None
    except DeviceKeyError as exc:
        return False, str(exc)
    if new_key == creds.private_key:
        new_key = None  # the rotation finished but for deleting that file, which the next rotation does
    try:
        status = _signed_read(transport, creds.device_id, creds.private_key, clock, path)
        new_status = _signed_read(transport, creds.device_id, new_key, clock, path) if status == 401 and new_key else 0
    except TransportError as exc:
        return False, f"central could not be asked whether it accepts device {creds.device_id}: {exc}"
    if status == 200 and new_key is not None:
        return (
            False,
            f"central accepts the signature of device {creds.device_id}, but a device-key rotation did not finish:"
            f" {pending} holds a new key central does not have; run `edge-agent rotate-device-key` again with the"
            " agent stopped",
        )
    if status == 200:
        return True, f"central accepts the signature of device {creds.device_id}"
    if new_status == 200:
        return (
            False,
            f"central refuses the signature of device {creds.device_id} (401) but accepts the new key in {pending}:"
            " a device-key rotation was interrupted after central registered the new key; run `edge-agent"
            " rotate-device-key` again to finish it (or start the agent: it finishes the rotation itself)",
        )
    if status == 401:
        too = f", and the new key in {pending} too" if new_key is not None else ""
        return (
            False,
            f"central refuses the signature of device {creds.device_id} (401){too}: revoked, retired or re-enrolled"
            " at HQ? check it with `central-server devices`; a revoked PC must be enrolled again with a new token",
        )
    return False, f"central answered {status} to a signed request from device {creds.device_id} ({path})"


def _signed_read(transport: HttpTransport, device_id: str, key: bytes, clock: CentralClock, path: str) -> int:
    """The status central answers to a GET of ``path`` signed by ``key`` with central's time."""
    stamp = format_time(datetime.fromtimestamp(clock.now(), UTC))
    headers = RequestSigner(device_id, key).headers("GET", path, stamp, b"")
    return transport.get(path, 10, headers=headers).status


def _downlink_version(data_dir: Path) -> int:
    """The downlink version this PC holds (0 if none), read without the store's side effects."""
    try:
        version = json.loads((data_dir / DOWNLINK_STATE_FILE).read_bytes())["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return version if type(version) is int and version >= 0 else 0
