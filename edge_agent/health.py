"""The agent's health: progress, not mere liveness.

Every ``health.interval`` seconds the monitor looks at the running parts and:

* builds a flat snapshot (queue depth, oldest unsent event, last delivery, dead letters, disk free,
  central's clock offset, per-source state, central's settings it ignores and why, ...) that goes
  into heartbeats under ``health`` and into
  ``status.json`` in the data directory, which `edge-agent status` and `edge-agent doctor` read;
* calls the agent *degraded* when events are waiting and nothing has been delivered for
  ``health.stall_minutes``, when the writer or the sync job has stopped moving, while a source
  that the till cannot do without is down (a barcode scanner unplugged), or at once when central
  refuses the device's signature (401: revoked, retired or re-enrolled at HQ, or a device-key
  rotation interrupted after central took the new key, which ``refusal_detail`` then says);
* pings systemd's watchdog only while the writer commits what it is given and the sync job keeps
  running, so a wedged agent is restarted (a central that is down is not a reason to restart);
* logs state changes, and a one-line summary every ``health.summary_interval`` seconds.

Nothing personal is ever in the snapshot or the log: counts, times, states and reason codes only.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_agent import __version__
from edge_agent.notify import SystemdNotifier
from edge_agent.outbox import Outbox
from edge_agent.payload_gate import REFUSED_COUNTER
from edge_agent.status import duration, skew_words, write_status
from edge_agent.sync import SyncJob
from edge_agent.writer import OutboxWriter
from shared.agent_settings import ignored_settings_report
from shared.wire import format_time

log = logging.getLogger(__name__)

WRITER_STALL = 60.0  # seconds a writer with records queued may go without a commit before it counts as stuck
Health = dict[str, Any]


def _iso(moment: float | None) -> str | None:
    return None if moment is None else format_time(datetime.fromtimestamp(moment, UTC))


class HealthMonitor:
    """Watches the writer, the sync job and the sources on a thread of its own."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        writer: OutboxWriter,
        sync: SyncJob,
        sources: Mapping[str, Callable[[], str]],
        status_path: Path,
        interval: float = 10.0,
        stall_seconds: float = 900.0,
        summary_interval: float = 60.0,
        sync_stall_seconds: float = 120.0,
        notifier: SystemdNotifier | None = None,
        shed: Callable[[], int | None] = lambda: None,
        lost: Callable[[], int] = lambda: 0,
        downlink_version: Callable[[], int | None] = lambda: None,
        refused_since: Callable[[], float | None] = lambda: None,
        refusal_detail: Callable[[], str | None] = lambda: None,
        source_problem: Callable[[], str | None] = lambda: None,
        settings_ignored: Callable[[], Mapping[str, str]] = dict,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self.writer = writer
        self.sync = sync
        self.sources = sources
        self.status_path = status_path
        self.interval = interval
        self.stall_seconds = stall_seconds
        self.summary_interval = summary_interval
        self.sync_stall_seconds = sync_stall_seconds
        self.notifier = notifier or SystemdNotifier({})
        self._shed = shed
        self._lost = lost
        self._downlink_version = downlink_version
        self._refused_since = refused_since
        self._refusal_detail = refusal_detail
        self._source_problem = source_problem
        self._settings_ignored = settings_ignored
        self._clock = clock
        self._monotonic = monotonic
        self.started_at = clock()
        self._started_mono = monotonic()
        self._commits_seen = (writer.commits, self._started_mono)
        self._last: Health = {}
        self._problem_kind = ""
        self._last_kind = ""
        self._next_summary = self._started_mono + summary_interval
        self._summary_base = (0, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="health", daemon=True)

    # --- the snapshot ----------------------------------------------------------------------------

    def snapshot(self) -> Health:
        """The agent's health now, as a flat JSON object (plus ``sources``: {name: state})."""
        now, mono = self._clock(), self._monotonic()
        stats = self.outbox.stats()
        sync = self.sync.status
        writer_ok, writer_problem = self._writer_progress(mono)
        sync_ok, sync_problem = self._sync_progress(mono)
        offset = self.sync.central_clock.offset()
        last_progress = sync.last_progress_mono if sync.last_progress_mono is not None else self._started_mono
        problem = writer_problem or sync_problem
        self._problem_kind = "writer" if writer_problem else "sync" if sync_problem else ""
        refused_since = self._refused_since()
        if not problem and refused_since is not None:
            self._problem_kind = "refused"
            problem = f"central has refused this device's signature (401) for {duration(now - refused_since)}" + (
                self._refusal_detail()
                or ": revoked, retired or re-enrolled at HQ? check the device with `central-server devices`; "
                "nothing is delivered until central accepts it again"
            )
        source_problem = None if problem else self._source_problem()
        if source_problem:
            self._problem_kind = "source"
            problem = source_problem
        stalled_for = mono - last_progress
        if not problem and stats.pending and stalled_for > self.stall_seconds:
            self._problem_kind = "stalled"
            problem = (
                f"nothing delivered for {duration(stalled_for)} with {stats.pending} events waiting"
                f" (last error: {sync.last_error or 'none'})"
            )
        return {
            "state": "degraded" if problem else "ok",
            "problem": problem,
            "agent_version": __version__,
            "uptime_s": round(mono - self._started_mono),
            "queue_depth": stats.pending,
            "oldest_unsent_age_s": None if stats.oldest_pending_at is None else round(now - stats.oldest_pending_at, 1),
            "writer_backlog": self.writer.backlog(),
            "last_sync_at": _iso(sync.last_success_at),
            "last_sync_age_s": None if sync.last_success_mono is None else round(mono - sync.last_success_mono, 1),
            "captured": self.writer.committed,
            "delivered": sync.delivered,
            "shed": self._shed(),
            "lost_lines": self._lost(),
            "quarantined": stats.quarantined,
            "refused_payloads": (stats.counters or {}).get(REFUSED_COUNTER, 0),
            "dead_lettered": stats.rejected,
            # Central asked for events again (restored from a backup): how many were resent, and how
            # many of the seqs it asked for the outbox no longer held (lost to central, unless shed).
            "resent": (stats.counters or {}).get("resent", 0),
            "resend_missing": (stats.counters or {}).get("resend_missing", 0),
            "disk_free_bytes": _disk_free(self.status_path.parent),
            "clock_offset_s": None if offset is None else round(offset, 1),
            "downlink_version": self._downlink_version(),
            "sync_failures": sync.consecutive_failures,
            "next_attempt_in_s": round(sync.next_attempt_in, 1),
            "last_error": sync.last_error or "",
            "writer_ok": writer_ok,
            "sync_ok": sync_ok,
            "sources": {name: state() for name, state in self.sources.items()},
            # Central's settings this agent does not apply: {name: reason code}, never a value.
            "settings_ignored": ignored_settings_report(self._settings_ignored()),
        }

    def _writer_progress(self, mono: float) -> tuple[bool, str]:
        commits = self.writer.commits
        if commits != self._commits_seen[0] or self.writer.backlog() == 0:
            self._commits_seen = (commits, mono)
            return True, ""
        idle = mono - self._commits_seen[1]
        if idle <= WRITER_STALL:
            return True, ""
        error = f" ({self.writer.last_error})" if self.writer.last_error else ""
        return False, f"the outbox writer has committed nothing for {duration(idle)}{error}"

    def _sync_progress(self, mono: float) -> tuple[bool, str]:
        quiet = mono - max(self.sync.status.last_activity, self._started_mono)
        if quiet <= self.sync_stall_seconds:
            return True, ""
        return False, f"the sync job has not run for {duration(quiet)}"

    # --- the loop ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the loop and leave a last status.json saying the agent stopped."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        health = self.snapshot()
        health["state"] = "stopped"
        self._write(health)

    def tick_seconds(self) -> float:
        """How often the loop runs: the status interval, or more often if systemd's watchdog needs it."""
        watchdog = self.notifier.watchdog_interval
        return min(self.interval, watchdog / 2) if watchdog else self.interval

    def _loop(self) -> None:
        while not self._stop.wait(self.tick_seconds()):
            try:
                self.check()
            except Exception:  # the monitor must outlive anything it watches
                log.exception("health check failed")

    def check(self, *, notify: bool = True) -> Health:
        """One round: snapshot, status file, watchdog (unless ``notify`` is false), log lines; returns the snapshot."""
        health = self.snapshot()
        self._write(health)
        if notify and health["writer_ok"] and health["sync_ok"]:
            self.notifier.watchdog(_status_line(health))
        elif notify:
            self.notifier.status(_status_line(health))
        self._log_changes(health)
        self._summary(health)
        self._last = health
        return health

    def _write(self, health: Health) -> None:
        try:
            write_status(self.status_path, health, written_at=self._clock(), interval=self.tick_seconds())
        except OSError as exc:
            log.warning("cannot write %s: %s", self.status_path, exc.strerror)

    def _log_changes(self, health: Health) -> None:
        before = self._last
        if self._problem_kind != self._last_kind:
            if self._problem_kind:
                log.warning("health: degraded: %s", health["problem"])
            else:
                log.info("health: ok again")
            self._last_kind = self._problem_kind
        for key in ("writer_ok", "sync_ok"):
            if before.get(key, True) and not health[key]:
                log.error("not telling systemd's watchdog the agent is alive: %s", health["problem"])
        offset = health["clock_offset_s"]
        if offset is not None and (before.get("clock_offset_s") is None or abs(offset - before["clock_offset_s"]) > 60):
            level = logging.WARNING if abs(offset) > 60 else logging.INFO
            log.log(level, "clock: this PC is %s central (requests are signed with central's time)", skew_words(offset))

    def _summary(self, health: Health) -> None:
        mono = self._monotonic()
        if mono < self._next_summary:
            return
        self._next_summary = mono + self.summary_interval
        captured, delivered = self._summary_base
        self._summary_base = (health["captured"], health["delivered"])
        oldest = health["oldest_unsent_age_s"]
        log.info(
            "summary: %s; captured %d (+%d), delivered %d (+%d), backlog %d%s, dead letters %d, quarantined %d, "
            "shed %s, last error: %s",
            health["state"],
            health["captured"],
            health["captured"] - captured,
            health["delivered"],
            health["delivered"] - delivered,
            health["queue_depth"],
            "" if oldest is None else f" (oldest {duration(oldest)})",
            health["dead_lettered"],
            health["quarantined"],
            "unknown" if health["shed"] is None else health["shed"],
            health["last_error"] or "none",
        )


def _status_line(health: Health) -> str:
    """What `systemctl status` shows."""
    parts = [health["state"], f"backlog {health['queue_depth']}"]
    if health["last_sync_age_s"] is not None:
        parts.append(f"last sync {duration(health['last_sync_age_s'])} ago")
    if health["problem"]:
        parts.append(health["problem"])
    return ", ".join(parts)


def _disk_free(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None
