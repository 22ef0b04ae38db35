"""``status.json`` in the data directory: the running agent's health, for `edge-agent status` and doctor.

The agent rewrites the file every ``health.interval`` seconds (write, then rename, so a reader never
sees half a file). It holds counts, times, states and reason codes only. A reader tells a stopped
agent from a running one by the agent's lock on ``agent.lock``, and falls back on the file's age.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from edge_agent.diskspace import DiskFacts
from shared.sizes import size_words as size_words  # edge_agent.doctor reads it from here
from shared.wire import format_time

EXIT_OK, EXIT_DEGRADED, EXIT_NOT_RUNNING = 0, 1, 3


class StatusError(Exception):
    """No usable status file; the message says why and what to do."""


def write_status(path: Path, health: dict[str, Any], *, written_at: float, interval: float) -> None:
    """Replace ``path`` with the health snapshot and when it was taken."""
    doc = {
        "written_at": format_time(datetime.fromtimestamp(written_at, UTC)),
        "written_at_epoch": written_at,
        "interval_s": interval,
        "pid": os.getpid(),
        "health": health,
    }
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        os.write(fd, json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n")
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_status(path: Path) -> dict[str, Any]:
    """The last status the agent wrote; raise StatusError if there is none or it cannot be read."""
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise StatusError(
            f"no status at {path}: the agent has not run with this data directory "
            "(start it: `systemctl start edge-agent`)"
        ) from None
    except PermissionError:
        raise StatusError(f"{path}: permission denied (run as root or the edge-agent user)") from None
    except (OSError, ValueError) as exc:
        raise StatusError(f"{path} cannot be read: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("health"), dict):
        raise StatusError(f"{path} is not a status file")
    return doc


def agent_running(data_dir: Path) -> bool | None:
    """Whether an agent holds the data directory's lock; None if that cannot be told (no permission)."""
    try:
        fd = os.open(data_dir / "agent.lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we may have taken
    return False


def is_current(doc: dict[str, Any], now: float, running: bool | None) -> bool:
    """True if the status describes a running agent: it holds its lock, or (unknown) wrote recently."""
    if running is not None:
        return running and doc["health"].get("state") != "stopped"
    age = now - float(doc.get("written_at_epoch", 0))
    return age <= 3 * float(doc.get("interval_s", 10)) + 5


def render(
    doc: dict[str, Any],
    *,
    now: float,
    running: bool | None,
    dead_letters: Sequence[tuple[int, str, str, str | None]],
    disk: DiskFacts | None = None,
    zone: tzinfo | None = None,
) -> tuple[list[str], int]:
    """The status as lines for a technician, and the exit code (0 ok, 1 degraded, 3 not running).

    ``disk`` is the data disk as this command sees it now: the agent cannot rewrite its status file
    while that disk is full, so a full disk is reported from here, not from the file. Times are
    shown in ``zone``, by default this PC's own, as the store's staff read their clocks.
    """
    h = doc["health"]
    age = now - float(doc.get("written_at_epoch", now))
    lines = []
    if disk is not None and disk.full and running is not False:
        free = "unknown" if disk.free_bytes is None else size_words(disk.free_bytes)
        lines.append(
            f"state          DEGRADED: the data disk is full ({free} free, reserve file released); the agent "
            f"holds what it reads and commits it when space returns: free space there "
            f"(the lines below are from {duration(age)} ago, before it filled)"
        )
        code = EXIT_DEGRADED
    elif not is_current(doc, now, running):
        written = local_time(doc["written_at"], zone)
        lines.append(f"state          NOT RUNNING (last status written {duration(age)} ago, at {written})")
        code = EXIT_NOT_RUNNING
    elif h["state"] == "degraded":
        lines.append(f"state          DEGRADED: {h['problem']}")
        code = EXIT_DEGRADED
    else:
        lines.append(f"state          ok (status written {duration(age)} ago)")
        code = EXIT_OK
    oldest = h.get("oldest_unsent_age_s")
    last_sync = h.get("last_sync_at")
    lines += [
        f"agent          {h['agent_version']}, pid {doc.get('pid')}, up {duration(h.get('uptime_s', 0))}",
        f"backlog        {h['queue_depth']} events waiting"
        + ("" if oldest is None else f", oldest {duration(oldest)}"),
        "last sync      "
        + (
            "never, since start"
            if last_sync is None
            else f"{local_time(last_sync, zone)} ({duration(h['last_sync_age_s'] + age)} ago)"
        ),
        f"since start    {h['captured']} captured, {h['delivered']} delivered",
        f"dead letters   {h['dead_lettered']}" + (" (rejected by central; listed below)" if h["dead_lettered"] else ""),
        f"quarantined    {h['quarantined']} (see `edge-agent quarantine`)"
        + (f", {h['refused_payloads']} refused by the payload schema" if h.get("refused_payloads") else ""),
        f"shed           {'not counted' if h.get('shed') is None else h['shed']}",
    ]
    if h.get("resent") or h.get("resend_missing"):
        lines.append(
            f"resent         {h.get('resent', 0)} delivered events sent again because central asked for them"
            " (restored from a backup?)"
            + (
                f"; {h['resend_missing']} of the seqs it asked for were no longer in the outbox"
                " (purged after delivery, shed or unreadable): central lacks them, except shed ones it was told of"
                if h.get("resend_missing")
                else ""
            )
        )
    if h.get("lost_lines"):
        lines.append(
            f"lost           {h['lost_lines']} POS lines read while the disk stayed full, past what memory may hold"
            " (reported to central as an agent.gap)"
        )
    lines += [
        f"disk free      {size_words(h.get('disk_free_bytes') if disk is None else disk.free_bytes)}",
        "clock          "
        + (
            "not measured yet (no answer from central)"
            if h.get("clock_offset_s") is None
            else f"this PC is {skew_words(h['clock_offset_s'])} central"
        ),
        f"downlink       {h.get('downlink_version') or 'none yet'}",
        *_ignored_lines(h.get("settings_ignored")),
        "sources        " + (", ".join(f"{n}: {s}" for n, s in sorted(h.get("sources", {}).items())) or "none"),
        "last error     "
        + (h.get("last_error") or "none")
        + (f" (next attempt in {duration(h['next_attempt_in_s'])})" if h.get("last_error") else ""),
    ]
    for seq, event_id, kind, reason in dead_letters:
        lines.append(f"  dead letter  seq {seq}  {event_id}  {kind:<18} {reason}")
    return lines, code


def _ignored_lines(ignored: Any) -> list[str]:
    """Central's settings the agent does not apply, by name with the reason code (none: no line)."""
    if not isinstance(ignored, dict) or not ignored:
        return []
    named = ", ".join(f"{name} ({code})" for name, code in sorted(ignored.items()))
    return [f"not applied    {len(ignored)} of central's settings: {named} (the agent's log says why)"]


def local_time(stamp: str, zone: tzinfo | None = None) -> str:
    """An RFC 3339 instant from the status file as '2026-12-02 14:43:47 +08:00' in ``zone`` (None: this PC's)."""
    try:
        moment = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return str(stamp)
    shown = moment.astimezone(zone)
    offset = shown.strftime("%z")
    return shown.strftime("%Y-%m-%d %H:%M:%S ") + (f"{offset[:3]}:{offset[3:]}" if offset else "")


def duration(seconds: float) -> str:
    """3 s, 4 min 10 s, 2 h 5 min, 3 d 4 h."""
    s = int(abs(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def skew_words(offset: float) -> str:
    """'2 h 0 min behind' for a positive central-minus-local offset, '5 s ahead of' for a negative one."""
    if abs(offset) < 1:
        return "in step with"
    return f"{duration(offset)} {'behind' if offset > 0 else 'ahead of'}"
