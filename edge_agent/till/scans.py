"""From a scanner payload to the event the agent keeps: classify, verify member codes, drop payment codes.

``scan.product`` keeps the code; ``scan.coupon`` keeps the code and what the offline redemption made
of it (accepted, or a refusal such as ``used-here``); ``scan.member`` keeps the member id, the time
step, the certified key's fingerprint, the verdict and the code's digest, never the code itself
(a code copied off a store PC must not be showable elsewhere), except when the store has no keys from
central yet: then the code is kept as ``unverified`` with the code itself, sealed in the outbox, for
central to check and drop. A refused member code is kept too,
with its reason, so HQ sees forgery attempts. Payment codes and unknown payloads make no event:
only their count is kept.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.parsing.scan import Scan, classify
from edge_agent.records import Capture
from edge_agent.till.coupons import CouponRedeemer, CouponVerdict
from edge_agent.till.member_codes import MemberCodeVerifier
from shared.member_code import UNVERIFIED, Verdict
from shared.wire import timestamp

ACCEPTED = "accepted"


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    """What became of one scan: its class, a member code's verdict, and the event to keep (if any)."""

    scan: Scan
    verdict: Verdict | None
    capture: Capture | None
    coupon: CouponVerdict | None = None


class ScanHandler:
    """Turns payloads from one register's scanners into events; thread-safe enough for one source each."""

    def __init__(
        self,
        verifier: MemberCodeVerifier | None,
        register: str,
        *,
        clock: Callable[[], float] = time.time,
        redeemer: CouponRedeemer | None = None,
    ) -> None:
        self.verifier = verifier
        self.redeemer = redeemer
        self.register = register
        self.clock = clock
        self.counts: Counter[str] = Counter()

    def handle(self, payload: str, source: str) -> ScanOutcome:
        """Classify one payload; the outcome's capture is what the writer should append."""
        scan = classify(payload)
        self.counts[scan.kind] += 1
        observed_at = timestamp(self.clock)
        base: dict[str, object] = {"register": self.register}
        if scan.symbology:
            base["symbology"] = scan.symbology
        if scan.kind == "product" and scan.code:
            product = {"code": scan.code, **base, **({"sku": scan.gtin} if scan.gtin else {})}
            return ScanOutcome(scan, None, Capture.of("scan.product", product, observed_at, source))
        if scan.kind == "coupon" and scan.code:
            if self.redeemer is None:
                return ScanOutcome(
                    scan, None, Capture.of("scan.coupon", {"code": scan.code, **base}, observed_at, source)
                )
            coupon = self.redeemer.redeem(scan.code)
            self.counts[f"coupon:{coupon.reason or ACCEPTED}"] += 1
            redeemed = {**base, **coupon.payload(scan.code, self.register)}
            return ScanOutcome(scan, None, Capture.of("scan.coupon", redeemed, observed_at, source), coupon)
        if scan.kind == "member" and scan.code:
            verdict = self._verify(scan.code)
            self.counts[f"member:{verdict.reason or ACCEPTED}"] += 1
            body: dict[str, object] = {"result": verdict.reason or ACCEPTED, **base}
            if verdict.digest:
                body["code"] = f"digest:{verdict.digest}"
            if verdict.member_id and verdict.reason != "not-a-member-code":
                body["member_id"] = verdict.member_id[:64]
            if verdict.step is not None:
                body["step"] = verdict.step
            if verdict.fingerprint:
                body["key"] = verdict.fingerprint
            if verdict.reason:
                body["detail"] = verdict.detail[:200]
            if verdict.reason == UNVERIFIED:
                # No keys from central yet: the code goes, sealed, to central, which checks it itself.
                body["proof"] = scan.code
            capture = Capture.of("scan.member", body, observed_at, source) if "code" in body else None
            return ScanOutcome(scan, verdict, capture)
        return ScanOutcome(scan, None, None)

    def _verify(self, code: str) -> Verdict:
        if self.verifier is None:
            return Verdict("unknown", "member codes are not set up on this agent")
        return self.verifier.verify(code)
