"""The till's scanners wired to the outbox: serial and wedge scanners, the member-code verifier, the scan handler.

Built from the settings (``scanner.*``, ``till.register``); scans become events through
:class:`edge_agent.till.scans.ScanHandler`, and the member-code keys come from the downlink
documents the agent runs (:meth:`Till.refresh` after each fetch).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

from edge_agent.config import AgentConfig
from edge_agent.downlink import DownlinkStore
from edge_agent.records import Record
from edge_agent.sources.scanner_evdev import EvdevScanner
from edge_agent.sources.scanner_serial import SerialScanner
from edge_agent.till.coupons import CouponRedeemer
from edge_agent.till.member_codes import MemberCodeVerifier
from edge_agent.till.scans import ScanHandler, ScanOutcome

log = logging.getLogger(__name__)


class Till:
    """One register's scanners and what they scan into."""

    def __init__(
        self,
        config: AgentConfig,
        store_id: str,
        emit: Callable[[Record], None],
        *,
        clock: Callable[[], float] = time.time,
        on_scan: Callable[[ScanOutcome], None] | None = None,
    ) -> None:
        self.emit = emit
        self.on_scan = on_scan
        self._lock = threading.Lock()  # two scanners on one till share the verifier's SQLite connection
        self.verifier = MemberCodeVerifier(config.agent_data_dir, store_id, clock=clock)
        self.redeemer = CouponRedeemer(config.agent_data_dir, store_id, clock=clock)
        self.handler = ScanHandler(self.verifier, config.till_register, clock=clock, redeemer=self.redeemer)
        self.scanners: dict[str, SerialScanner | EvdevScanner] = {}
        if config.scanner_port:
            self.scanners["scanner"] = SerialScanner(
                config.scanner_port, lambda p: self.scan(p, "scanner"), baudrate=config.scanner_baudrate
            )
        if config.scanner_evdev_device:
            self.scanners["wedge"] = EvdevScanner(
                config.scanner_evdev_device,
                lambda p: self.scan(p, "wedge"),
                layout=config.scanner_keyboard_layout,
                grab=config.scanner_grab,
                idle_flush=config.scanner_idle_flush,
            )

    def refresh(self, downlink: DownlinkStore) -> None:
        """Take the member-code and coupon documents now in force."""
        documents = {name: downlink.document(name) for name in downlink.names()}
        with self._lock:
            self.verifier.update(documents)
            self.redeemer.update(documents)

    def used_coupons(self, serials: Collection[int]) -> set[int]:
        """Which of the coupon serials this store has redeemed (for the cashier panel)."""
        if not serials:
            return set()
        with self._lock:
            return self.redeemer.store.used(serials)

    def scan(self, payload: str, source: str) -> ScanOutcome:
        """Handle one payload from a scanner: classify, verify, and hand the event to the writer."""
        with self._lock:
            outcome = self.handler.handle(payload, source)
        if outcome.capture is not None:
            self.emit(outcome.capture)
        if outcome.verdict is not None and not outcome.verdict.accepted:
            log.info("member code refused at %s: %s", source, outcome.verdict.reason)
        if outcome.coupon is not None and not outcome.coupon.accepted:
            log.info("coupon refused at %s: %s", source, outcome.coupon.reason)
        if self.on_scan is not None:
            self.on_scan(outcome)
        return outcome

    def start(self) -> None:
        for scanner in self.scanners.values():
            scanner.start()

    def stop(self) -> None:
        for scanner in self.scanners.values():
            scanner.stop()
        self.verifier.close()
        self.redeemer.close()

    def health(self) -> dict[str, Any]:
        """Each scanner's state and the scan counts by class and member-code verdict."""
        return {name: s.health() for name, s in self.scanners.items()} | {"scans": dict(self.handler.counts)}
