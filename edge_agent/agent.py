"""Wiring only: builds the outbox, the writer, the sources and the scheduled jobs, and runs them."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

from edge_agent import __version__
from edge_agent.central_settings import LIVE, Effective
from edge_agent.config import AgentConfig
from edge_agent.credentials import Credentials
from edge_agent.device_key import InterruptedRotation
from edge_agent.diskspace import RESERVE_NAME, SpaceReserve
from edge_agent.downlink import DownlinkError, DownlinkStore
from edge_agent.health import HealthMonitor
from edge_agent.jobs import Repeating
from edge_agent.journal import CaptureJournal
from edge_agent.keys import DataDirError
from edge_agent.notify import SystemdNotifier
from edge_agent.outbox import Capture, Outbox
from edge_agent.outbox_policy import OutboxHousekeeper, policy_from_config
from edge_agent.panel.cashier import CashierPanel
from edge_agent.presence.member_beacons import DOCUMENT as MEMBER_BEACONS
from edge_agent.presence.radios import PresenceRadios
from edge_agent.privacy import PanRedactor
from edge_agent.receipt_reader import configured_profiles
from edge_agent.rotation import resolve_outbox_key
from edge_agent.sources.pos_streams import EscposStream, LineStream, PosStream, StreamFactory
from edge_agent.sources.serial_pos import SerialPosSource
from edge_agent.sources.staging import ReadStaging, staging_path
from edge_agent.sync import SyncJob
from edge_agent.till.counter import Till
from edge_agent.transport import RefusalWatch, Transport, central_transport
from edge_agent.writer import OutboxWriter
from shared.crypto import RequestSigner, Sealer, derive_key
from shared.settings import specs
from shared.wire import format_time, timestamp

log = logging.getLogger(__name__)


class AlreadyRunning(Exception):
    """Another agent holds this data directory."""


def prepare_data_dir(config: AgentConfig) -> None:
    """Create the data directory readable by the agent's user only."""
    config.agent_data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(config.agent_data_dir, 0o700)


def lock_data_dir(config: AgentConfig) -> int:
    """Hold an exclusive lock on the data directory for the life of the process; return its fd.

    Two agents on one outbox would interleave sequence numbers and race for the journal.
    """
    path = config.agent_data_dir / "agent.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        raise DataDirError(
            f"data directory {config.agent_data_dir} does not exist (check agent.data_dir, or the file given"
            " with --config)"
        ) from None
    except OSError as exc:
        raise DataDirError(f"cannot lock {path}: {exc.strerror or exc} (run as root or the edge-agent user)") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise AlreadyRunning(f"another edge-agent (pid {holder}) is running on {config.agent_data_dir}") from None
    with contextlib.suppress(OSError):  # the pid only serves the message above; a full disk must not stop us
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def pos_stream(config: AgentConfig, redactor: PanRedactor, clock: Callable[[], float]) -> StreamFactory:
    """How the POS port's bytes become records under ``pos.mode``; ProfileError if a profile is unusable."""
    if config.pos_mode == "escpos":
        profiles = configured_profiles(config.pos_profiles_dir, config.pos_profile)
        only = config.pos_profile or None
        kanji: Any = config.pos_kanji

        def escpos(offset: int) -> PosStream:
            return EscposStream(
                offset,
                profiles=profiles,
                redactor=redactor,
                only=only,
                kanji=kanji,
                clock=clock,
                max_receipt_bytes=config.pos_max_receipt_bytes,
            )

        return escpos

    def lines(offset: int) -> PosStream:
        return LineStream(
            offset,
            redactor=redactor,
            encoding=config.pos_encoding,
            max_line_bytes=config.pos_max_line_bytes,
            clock=clock,
        )

    return lines


class Agent:
    """One running agent: a POS source, the outbox writer, the sync and heartbeat jobs."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.time,
        notifier: SystemdNotifier | None = None,
        settings_loader: Callable[[Mapping[str, Any]], Effective] | None = None,
        settings_ignored: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self._settings_loader = settings_loader
        # Central's overrides this agent does not apply, with reason codes: reported in every heartbeat.
        self.settings_ignored: dict[str, str] = dict(settings_ignored or {})
        self._clock = clock
        self._started_at = time.monotonic()
        prepare_data_dir(config)
        self._lock_fd = lock_data_dir(config)
        self.credentials = Credentials.load(config.credentials_path)
        key = resolve_outbox_key(config.key_path, config.outbox_path, config.journal_dir)
        sealer = Sealer(key)
        self.reserve = SpaceReserve(config.agent_data_dir / RESERVE_NAME, config.outbox_reserve_bytes, clock=clock)
        if not self.reserve.ensure():
            self.reserve.release(f"too little free space in {config.agent_data_dir} for the disk reserve at start")
        self.outbox = Outbox(config.outbox_path, sealer, self.credentials.store_id, clock=clock)
        self.housekeeper = OutboxHousekeeper(self.outbox, policy_from_config(config), reserve=self.reserve, clock=clock)
        self.writer = OutboxWriter(
            self.outbox,
            commit_interval=config.outbox_commit_interval,
            max_group=config.outbox_max_group,
            on_commit=self._committed,
            on_disk_full=self.reserve.release,
            housekeeping=self.housekeeper.run,
        )
        self.journal = CaptureJournal(config.journal_dir / "pos.journal", sealer, "pos", fsync=config.capture_fsync)
        # Kept in the outbox so card hashes stay comparable across key rotations.
        redactor = PanRedactor(self.outbox.secret("pan-hash", derive_key(key, "pan-hash")))
        self.pos = SerialPosSource(
            url=config.pos_port,
            baudrate=config.pos_baudrate,
            journal=self.journal,
            emit=self.writer.put,
            redactor=redactor,
            stream=pos_stream(config, redactor, clock),
            idle_gap=config.pos_idle_gap,
            max_receipt_pause=config.pos_max_receipt_pause,
            encoding=config.pos_encoding,
            max_line_bytes=config.pos_max_line_bytes,
            reconnect_max_delay=config.pos_reconnect_max_delay,
            clock=clock,
            max_unjournaled_bytes=config.capture_max_unjournaled_bytes,
            on_disk_full=self.reserve.release,
            staging=ReadStaging(
                staging_path(config.agent_data_dir, "pos", config.capture_staging_dir),
                limit_bytes=2 * config.capture_max_unjournaled_bytes,
            ),
        )
        # Probe requests and advertisements become pseudonymous visits and hourly aggregates (shed first).
        self.presence = PresenceRadios(config, self.writer.put, clock=clock)
        central_url = config.sync_central_url or self.credentials.central_url
        self.transport = RefusalWatch(
            transport or central_transport(config, central_url),
            clock=clock,
        )
        # A device-key rotation whose reply was lost is finished here, after central refuses the old key.
        self.device_rotation = InterruptedRotation(
            config.credentials_path, self.transport, timestamp=self._central_time, timeout=config.sync_timeout
        )
        self._refusals_seen = 0
        self.downlink = DownlinkStore(config.agent_data_dir, self.credentials.store_id)
        self._downlink_problem: str | None = None
        # Central asked for events it had acknowledged (restored from a backup): its downlink
        # versions may since have been reused for other documents, so the next fetch takes everything.
        self._downlink_refetch = False
        self.panel = (
            CashierPanel(
                config.panel_host,
                config.panel_port,
                used_coupons=lambda serials: self.till.used_coupons(serials),
                card_seconds=config.panel_card_seconds,
                screen=config.panel_screen_address,
                clock=clock,
            )
            if config.panel_port
            else None
        )
        self.till = Till(
            config,
            self.credentials.store_id,
            self.writer.put,
            clock=clock,
            on_scan=self.panel.show if self.panel is not None else None,
        )
        self._refresh_till()
        self.sync = SyncJob(
            self.outbox,
            self.transport,
            RequestSigner(self.credentials.device_id, self.credentials.private_key),
            batch_size=config.sync_batch_size,
            batch_bytes=config.sync_batch_bytes,
            timeout=config.sync_timeout,
            min_backoff=config.sync_min_backoff,
            max_backoff=config.sync_max_backoff,
            keep_delivered_hours=config.outbox_keep_delivered_hours,
            clock=clock,
            on_downlink=self._downlink_named,
            on_resend=self._central_restored,
        )
        self.notifier = notifier or SystemdNotifier()
        self.monitor = HealthMonitor(
            outbox=self.outbox,
            writer=self.writer,
            sync=self.sync,
            sources={
                "pos": lambda: self.pos.health.state,
                **{name: partial(getattr, scanner, "state") for name, scanner in self.till.scanners.items()},
                **self.presence.states(),
            },
            status_path=config.status_path,
            interval=config.health_interval,
            stall_seconds=config.health_stall_minutes * 60,
            summary_interval=config.health_summary_interval,
            # The longest a healthy sync job can go without finishing a request: a connection, and
            # two waits for an answer (a request re-signed after a clock correction), plus slack.
            sync_stall_seconds=config.sync_connect_timeout + 2 * config.sync_timeout + config.sync_interval + 60,
            notifier=self.notifier,
            shed=self._shed,
            lost=lambda: self.pos.health.dropped_lines,
            downlink_version=lambda: self.downlink.version or None,
            refused_since=lambda: self.transport.refused_since,
            refusal_detail=self.device_rotation.refusal_detail,
            source_problem=self._scanner_problem,
            settings_ignored=lambda: self.settings_ignored,
            clock=clock,
        )
        self.jobs: dict[str, Repeating] = {}
        self._stopped = threading.Event()

    def _scanner_problem(self) -> str | None:
        """Why a configured barcode scanner is not being read, if one is down (member codes and coupons need it)."""
        down = [
            scanner.detail or f"{name} is down"
            for name, scanner in self.till.scanners.items()
            if scanner.state == "down"
        ]
        return "barcode scanner down: " + "; ".join(down) if down else None

    def _shed(self) -> int | None:
        """Events the outbox has shed under its quotas or disk pressure."""
        return self.outbox.shed_count()

    def _central_restored(self, seq: int) -> None:
        """Central lacks events from ``seq`` on that it had acknowledged: fetch its whole downlink again."""
        self._downlink_refetch = True

    def _downlink_named(self, version: int, central_time: Callable[[], str]) -> None:
        """Central's reply named downlink ``version``: fetch what changed and put new settings in force."""
        before = self.downlink.settings_overrides()
        try:
            fetched = self.downlink.maybe_fetch(
                self.transport,
                RequestSigner(self.credentials.device_id, self.credentials.private_key),
                version,
                timestamp=central_time,
                timeout=self.config.sync_timeout,
                everything=self._downlink_refetch,
            )
        except DownlinkError as exc:
            if str(exc) != self._downlink_problem:
                log.warning(
                    "downlink version %d not applied, keeping version %d: %s", version, self.downlink.version, exc
                )
            self._downlink_problem = str(exc)
            return
        self._downlink_problem = None
        self._downlink_refetch = False
        if fetched:
            self._refresh_till()
        if fetched and self.downlink.settings_overrides() != before:
            self.apply_settings()

    def _refresh_till(self) -> None:
        """Hand the downlink documents now in force to the till, the cashier panel and the presence station."""
        self.till.refresh(self.downlink)
        self.presence.use_beacons(self.downlink.document(MEMBER_BEACONS))
        if self.panel is not None:
            self.panel.refresh(self.downlink)

    def apply_settings(self) -> None:
        """Put central's settings overrides in force: the live ones now, the others at the next start."""
        if self._settings_loader is None:
            return
        effective = self._settings_loader(self.downlink.settings_overrides())
        for key, why in sorted(effective.ignored.items()):
            log.warning("central's setting %s is not applied: %s", key, why)
        self.settings_ignored = dict(effective.ignored_codes)
        old, new = self.config, effective.config
        changed = [s for s in specs(AgentConfig) if getattr(old, s.attr) != getattr(new, s.attr)]
        later = [s.name for s in changed if s.name not in LIVE]
        self.config = new
        self.sync.batch_size = self.sync.current_batch_size = new.sync_batch_size
        self.sync.batch_bytes = new.sync_batch_bytes
        self.sync.timeout = new.sync_timeout
        self.sync.backoff.minimum = new.sync_min_backoff
        self.sync.max_backoff = new.sync_max_backoff
        if any(s.name == "sync.interval" for s in changed) and "sync" in self.jobs:
            self.jobs["sync"].reschedule(new.sync_interval)
        if any(s.name == "agent.heartbeat_interval" for s in changed) and "heartbeat" in self.jobs:
            self.jobs["heartbeat"].reschedule(new.agent_heartbeat_interval)
        if changed:
            log.info(
                "settings from central (downlink version %d) in force: %s%s",
                self.downlink.version,
                ", ".join(s.name for s in changed if s.name in LIVE) or "none live",
                f"; at the next restart: {', '.join(later)}" if later else "",
            )

    def _sync(self) -> None:
        """One run of the sync job; after a new refusal (401) with a device key waiting, finish that rotation."""
        self.sync.run()
        if self.transport.refused_since is None or self.transport.refusals == self._refusals_seen:
            return  # at most one try per refusal the sync job met, so the tries follow its backoff
        rotated = self.device_rotation.after_refusal()
        self._refusals_seen = self.transport.refusals
        if rotated is not None:
            self.credentials = rotated
            self.sync.signer = RequestSigner(rotated.device_id, rotated.private_key)

    def _central_time(self) -> str:
        """Now on central's clock, as the sync job signs with it."""
        return format_time(datetime.fromtimestamp(self.sync.central_clock.now(), UTC))

    def _committed(self, offsets: dict[str, int]) -> None:
        if "pos" in offsets:
            self.journal.committed = offsets["pos"]

    def start(self) -> None:
        """Recover what an unclean stop left in the journal, then start reading and syncing."""
        self.writer.start()
        self.pos.recover(self.outbox.committed_offset("pos"))
        self.pos.start()
        self.till.start()
        if self.panel is not None:
            self.panel.start()
        self.jobs["sync"] = Repeating("sync", self._sync, self.config.sync_interval)
        self.jobs["heartbeat"] = Repeating("heartbeat", self.heartbeat, self.config.agent_heartbeat_interval)
        if self.presence.enabled:
            self.presence.start()
            self.jobs["presence"] = Repeating(
                "presence", self.presence.tick, self.config.presence_tick_interval, run_first=False
            )
        for job in self.jobs.values():
            job.start()
        self.monitor.check(notify=False)  # a first status.json before telling systemd start-up is over
        self.monitor.start()
        self.notifier.ready(f"capturing from {self.config.pos_port}")
        log.info(
            "edge agent %s started: device %s, store %s, POS on %s, central %s; status in %s",
            __version__,
            self.credentials.device_id,
            self.credentials.store_id,
            self.config.pos_port,
            getattr(self.transport, "base_url", "(injected transport)"),
            self.config.status_path,
        )

    def health(self) -> dict[str, Any]:
        """The agent's own view of itself, as sent in heartbeats."""
        stats = self.outbox.stats()
        return {
            "agent_version": __version__,
            "uptime_s": int(time.monotonic() - self._started_at),
            "outbox": {
                "pending": stats.pending,
                "delivered": stats.delivered,
                "rejected": stats.rejected,
                "quarantined": stats.quarantined,
                "last_seq": stats.last_seq,
                "writer_backlog": self.writer.backlog(),
                "writer_error": self.writer.last_error,
            },
            "sources": {"pos": self.pos.health.as_dict(), "till": self.till.health(), **self.presence.health()},
            "sync": {
                "consecutive_failures": self.sync.status.consecutive_failures,
                "last_error": self.sync.status.last_error,
                "warned_by_reason": dict(self.sync.status.warned_by_reason.most_common(16)),
            },
            "health": self.monitor.snapshot(),
        }

    def heartbeat(self) -> None:
        self.writer.put(Capture.of("agent.heartbeat", self.health(), timestamp(self._clock)))

    def stop(self) -> None:
        """Stop reading, commit what was read, stop the jobs."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.notifier.stopping()
        self.sync.interrupt()  # a drain of a long backlog ends after its batch in flight
        self.pos.stop()
        self.till.stop()
        if self.panel is not None:
            self.panel.stop()
        for job in self.jobs.values():
            job.stop()
        self.presence.stop()
        self.sync.close()
        self.writer.stop()
        self.monitor.stop()
        self.journal.close()
        close = getattr(self.transport, "close", None)
        if callable(close):
            close()
        log.info("edge agent stopped")

    def run_forever(self) -> None:
        """Run until SIGTERM or SIGINT."""
        done = threading.Event()

        def on_signal(signum: int, _frame: object) -> None:
            log.info("received %s, stopping", signal.Signals(signum).name)
            done.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        done.wait()
        self.stop()
