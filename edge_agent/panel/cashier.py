"""The cashier panel as the agent runs it: scan outcomes in, cards out to the page, member cards from the downlink.

Unless given another :class:`CouponSource`, the panel lists a member's coupons from the same
``member_cards`` document (:class:`MemberCoupons`), less the codes ``used_coupons`` says this store redeemed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection

from edge_agent.downlink import DownlinkStore
from edge_agent.panel.member_coupons import MemberCoupons
from edge_agent.panel.server import Hub, PanelServer
from edge_agent.panel.view import MEMBER_CARDS_DOCUMENT, Coupon, CouponSource, Directory, scan_card
from edge_agent.till.scans import ScanOutcome
from shared.member_code import REPLAYED

log = logging.getLogger(__name__)


class CashierPanel:
    """Shows each of the till's scans on the panel page; give :meth:`show` to the till as ``on_scan``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        coupons: CouponSource | None = None,
        used_coupons: Callable[[Collection[int]], Collection[int]] = lambda _serials: (),
        card_seconds: float = 120.0,
        screen: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.hub = Hub(clock=clock, card_seconds=card_seconds)
        self.clock = clock
        self.card_seconds = card_seconds
        # The member code this register accepted last (its digest) and when: a repeat of it is shown
        # as that member again, not as a refusal.
        self._accepted: tuple[str, float] | None = None
        self.server = PanelServer(self.hub, host, port, screen=screen)
        self.directory = Directory()
        self.member_coupons = MemberCoupons(used_coupons) if coupons is None else None
        self.coupons: CouponSource | None = coupons if coupons is not None else self.member_coupons

    def refresh(self, downlink: DownlinkStore) -> None:
        """Take the member cards and their coupons now in force (downlink document ``member_cards``, if sent)."""
        body = downlink.document(MEMBER_CARDS_DOCUMENT)
        self.directory = Directory.from_document(body)
        if self.member_coupons is not None:
            self.member_coupons.update(body)

    def _valid_coupons(self, member_id: str) -> tuple[Coupon, ...]:
        return self.coupons.valid_for(member_id) if self.coupons is not None else ()

    def _again(self, outcome: ScanOutcome) -> bool:
        """Whether ``outcome`` repeats the member code just accepted here, while its card could still be up."""
        verdict = outcome.verdict
        if outcome.scan.kind != "member" or verdict is None or verdict.digest is None:
            return False
        now = self.clock()
        if verdict.accepted:
            self._accepted = (verdict.digest, now)
            return False
        if verdict.reason != REPLAYED or self._accepted is None:
            return False
        digest, at = self._accepted
        return digest == verdict.digest and now - at <= self.card_seconds

    def show(self, outcome: ScanOutcome) -> None:
        """Put one scan on the panel (called on the scanner's thread; never raises into it)."""
        try:
            again = self._again(outcome)
            self.hub.publish(scan_card(outcome, directory=self.directory, coupons=self._valid_coupons, again=again))
        except Exception:  # a panel fault must not stop the scanner that feeds the outbox
            log.exception("the cashier panel could not show a scan")

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()
